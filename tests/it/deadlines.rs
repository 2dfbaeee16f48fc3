//! Deadlines on calls: per call (`Call::timeout`), per proxy (`Proxy::with_timeout`) and
//! per connection (`ClientBuilder::call_timeout`); blocked calls of the SyncManager types
//! and a user `async fn` withdrawn on the server with nothing lost; the deadline kept by
//! the server when the client's cancel never comes.
//!
//! Deadlines here are short (`SHORT`) only where the call must not complete; nothing
//! asserts how long anything took.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use manager_core::wire::{ClientMessage, Reply, Request, ServerMessage};
use managers::sync::{SyncError, SyncManager};
use managers::{shared, Client, Error, Pipeline, Proxy, Registration, RemoteError};

use crate::common::{
    bounded, builder, share, start_sync, sync_client, until, Running, Transport, SHORT, TRANSPORTS,
};
use crate::raw::Raw;

fn deadline(e: &SyncError) -> bool {
    matches!(e, SyncError::Manager(Error::DeadlineExceeded { .. }))
}

#[track_caller]
fn assert_deadline<T: std::fmt::Debug>(result: Result<T, SyncError>) {
    match result {
        Err(e) if deadline(&e) => {}
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_calls_withdrawn_at_the_deadline_lose_no_item() {
    for transport in TRANSPORTS {
        let server = start_sync(transport).await;
        let (a, b) = (sync_client(&server).await, sync_client(&server).await);
        let queue = a.queue::<String>(1).await.unwrap();
        let theirs = share(&queue, b.client());
        // A `get` on the empty queue, withdrawn.
        assert_deadline(queue.with_timeout(SHORT).get().await);
        // The item put next goes to the next `get`, not to the withdrawn one.
        theirs.put("first".to_owned()).await.unwrap();
        // A `put` on the full queue, withdrawn: its item is never added.
        assert_deadline(queue.with_timeout(SHORT).put("lost".to_owned()).await);
        assert_eq!(queue.qsize().await.unwrap(), 1, "{transport:?}");
        assert_eq!(theirs.get().await.unwrap(), "first");
        assert!(queue.empty().await.unwrap());
        // A deadline long enough does not get in the way.
        let waiting = queue.with_timeout(Duration::from_secs(30));
        let (got, ()) = tokio::join!(waiting.get(), async {
            theirs.put("second".to_owned()).await.unwrap()
        });
        assert_eq!(got.unwrap(), "second");
        // JoinableQueue.join while a task is not done.
        let jobs = a.joinable_queue::<u32>(0).await.unwrap();
        jobs.put(7).await.unwrap();
        assert_deadline(jobs.with_timeout(SHORT).join().await);
        assert_eq!(jobs.get().await.unwrap(), 7);
        jobs.task_done().await.unwrap();
        bounded("join", jobs.join()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_types_withdrawn_at_the_deadline_hold_nothing() {
    let server = start_sync(Transport::Tcp).await;
    let (a, b) = (sync_client(&server).await, sync_client(&server).await);

    let lock = a.lock().await.unwrap();
    let theirs = share(&lock, b.client());
    lock.acquire().await.unwrap();
    assert_deadline(theirs.with_timeout(SHORT).acquire().await);
    lock.release().await.unwrap();
    assert!(
        !lock.locked().await.unwrap(),
        "the withdrawn acquire holds nothing"
    );
    assert!(theirs.try_acquire().await.unwrap());
    theirs.release().await.unwrap();

    let rlock = a.rlock().await.unwrap();
    let their_rlock = share(&rlock, b.client());
    rlock.acquire().await.unwrap();
    assert_deadline(their_rlock.with_timeout(SHORT).acquire().await);
    rlock.release().await.unwrap();
    assert!(their_rlock.try_acquire().await.unwrap());
    their_rlock.release().await.unwrap();

    let sem = a.semaphore(1).await.unwrap();
    let their_sem = share(&sem, b.client());
    sem.acquire().await.unwrap();
    assert_deadline(their_sem.with_timeout(SHORT).acquire().await);
    sem.release().await.unwrap();
    assert_eq!(
        sem.value().await.unwrap(),
        1,
        "the withdrawn acquire took no permit"
    );
    let bsem = a.bounded_semaphore(1).await.unwrap();
    let their_bsem = share(&bsem, b.client());
    bsem.acquire().await.unwrap();
    assert_deadline(their_bsem.with_timeout(SHORT).acquire().await);
    bsem.release().await.unwrap();
    assert_eq!(
        bsem.value().await.unwrap(),
        1,
        "the withdrawn acquire took no permit"
    );

    // A condition's wait released the lock; withdrawn, it leaves the lock free.
    let cond = a.condition().await.unwrap();
    let their_cond = share(&cond, b.client());
    cond.acquire().await.unwrap();
    assert_deadline(cond.with_timeout(SHORT).wait(None).await);
    assert!(
        their_cond.acquire_timeout(Duration::ZERO).await.unwrap(),
        "the lock was left free"
    );
    their_cond.release().await.unwrap();

    // An event's wait has no effect to undo.
    let event = a.event().await.unwrap();
    let err = event.wait(None).timeout(SHORT).await.unwrap_err();
    assert!(matches!(err, Error::DeadlineExceeded { .. }), "{err:?}");
    event.set().await.unwrap();
    assert!(event
        .wait(None)
        .timeout(Duration::from_secs(30))
        .await
        .unwrap());

    // A barrier party withdrawn breaks the barrier for the others, as a timeout does.
    let barrier = a.barrier(2, None).await.unwrap();
    assert_deadline(barrier.with_timeout(SHORT).wait().await);
    until("the barrier is broken", async || {
        barrier.broken().await.unwrap()
    })
    .await;
}

/// A type whose `async fn` waits until dropped, counting the drops.
#[derive(Debug, Default)]
pub struct Sleeper {
    started: AtomicUsize,
    dropped: Arc<AtomicUsize>,
}

struct CountDrop(Arc<AtomicUsize>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[shared]
impl Sleeper {
    /// Wait for ever (until the call is dropped).
    pub async fn forever(&self) -> u64 {
        let _count = CountDrop(self.dropped.clone());
        self.started.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
        0
    }

    /// How many calls started, and how many were dropped.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.started.load(Ordering::SeqCst),
            self.dropped.load(Ordering::SeqCst),
        )
    }
}

async fn sleeper_server() -> Running {
    let (builder, dir) = builder(Transport::Tcp);
    let builder = builder.register(Registration::constructor("sleeper", |()| {
        Sleeper::default()
    }));
    Running {
        manager: builder.start().await.unwrap(),
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_async_fn_is_dropped_on_the_server_at_the_deadline() {
    let server = sleeper_server().await;
    let sleeper: SleeperProxy = server.create("sleeper", ()).await.unwrap();
    // Per call.
    let err = sleeper.forever().timeout(SHORT).await.unwrap_err();
    assert!(err.is_deadline_exceeded(), "{err:?}");
    until("the call is dropped", async || {
        sleeper.counts().await.unwrap() == (1, 1)
    })
    .await;
    // Per proxy, and per connection; a call's own deadline overrides both.
    let err = sleeper.with_timeout(SHORT).forever().await.unwrap_err();
    assert!(err.is_deadline_exceeded(), "{err:?}");
    let client = Client::builder()
        .call_timeout(SHORT)
        .connect(server.address(), "test-key")
        .await
        .unwrap();
    let theirs: SleeperProxy = share(&sleeper, &client);
    assert_eq!(theirs.handle().timeout(), Some(SHORT));
    let err = theirs.forever().await.unwrap_err();
    assert!(
        matches!(err, Error::DeadlineExceeded { timeout } if timeout == SHORT),
        "{err:?}"
    );
    let longer = Duration::from_millis(80);
    let err = theirs.forever().timeout(longer).await.unwrap_err();
    assert!(
        matches!(err, Error::DeadlineExceeded { timeout } if timeout == longer),
        "{err:?}"
    );
    until("every call is dropped", async || {
        sleeper.counts().await.unwrap() == (4, 4)
    })
    .await;
    // In a pipeline the server keeps the deadline: the results come in order.
    let mut pipeline = Pipeline::new();
    pipeline.push(sleeper.forever().timeout(SHORT));
    pipeline.push(sleeper.forever().timeout(SHORT));
    for _ in 0..2 {
        let err = bounded("a pipelined deadline", pipeline.next())
            .await
            .unwrap()
            .unwrap_err();
        assert!(err.is_deadline_exceeded(), "{err:?}");
    }
    until("the pipelined calls are dropped", async || {
        sleeper.counts().await.unwrap() == (6, 6)
    })
    .await;
    // No deadline by default.
    assert_eq!(sleeper.handle().timeout(), None);
}

/// The deadline travels: a client that never sends its cancel (it is gone, or the network
/// is) still has its blocked `get` withdrawn by the server, which answers
/// `DeadlineExceeded`, and the queue keeps the item put afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_keeps_the_deadline_without_the_clients_cancel() {
    let server = start_sync(Transport::Tcp).await;
    let manager = SyncManager::from_client(crate::common::connect(&server).await);
    let queue = manager.queue::<String>(0).await.unwrap();
    let mut raw = Raw::authenticated(server.address(), b"test-key").await;
    // Adopt the queue on the raw connection: serialise the proxy, as a hand-off does.
    let id = queue.handle().id();
    let args = postcard::to_stdvec(&(true, None::<Duration>)).unwrap();
    raw.send(&ClientMessage::V1(Request::Incref { object: id }))
        .await;
    raw.send(&ClientMessage::V1(Request::CallWithin {
        id: 1,
        object: id,
        method: "get",
        args: &args,
        timeout_ms: 50,
    }))
    .await;
    let reply = bounded(
        "the server's deadline",
        raw.recv(|ServerMessage::V1(response)| (response.id, response.result.map(|_| ()))),
    )
    .await;
    assert_eq!(
        reply,
        (1, Err(RemoteError::DeadlineExceeded { timeout_ms: 50 }))
    );
    queue.put("kept".to_owned()).await.unwrap();
    assert_eq!(
        queue.qsize().await.unwrap(),
        1,
        "the withdrawn get took nothing"
    );
    // The raw connection is still served.
    raw.send(&ClientMessage::V1(Request::NumberOfObjects { id: 2 }))
        .await;
    let count = raw
        .recv(|ServerMessage::V1(response)| match response.result {
            Ok(Reply::Count(n)) => n,
            other => panic!("{other:?}"),
        })
        .await;
    assert!(count >= 1);
    assert_eq!(queue.get().await.unwrap(), "kept");
}
