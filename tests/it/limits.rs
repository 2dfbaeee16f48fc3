//! A connection's limits never deadlock it: calls beyond `max_calls_in_flight` are refused
//! with a retryable `Busy` while the connection keeps being read, and proxies passed to a
//! call that waits for its object are adopted as the call is read.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;
use managers::sync::{QueueProxy, SyncError, SyncManager};
use managers::{Client, Holder, RemoteError};

use crate::common::*;

/// Where the items for the waiting getters come from.
#[derive(Debug, Clone, Copy)]
enum Putter {
    /// The getters' own connection.
    Same,
    /// Another connection of the same process.
    Other,
}

/// `waiters` tasks share one connection and each wait in `get` on one queue; then
/// `waiters` items are put. Nothing may hang: every get takes an item or is refused with
/// `Busy` at once, nothing is lost or taken twice, and a refused get succeeds when retried.
async fn waiters_then_puts(transport: Transport, waiters: usize, putter: Putter, limit: usize) {
    let running: Running = {
        let (builder, dir) = builder(transport);
        let builder = managers::sync::register(builder).max_calls_in_flight(limit);
        Running {
            manager: builder.start().await.expect("server starts"),
            _dir: dir,
        }
    };
    let m = SyncManager::from_client(connect(&running).await);
    let q: QueueProxy<u64> = m.queue(0).await.unwrap();
    let gets: Vec<_> = (0..waiters)
        .map(|_| {
            let q = q.clone();
            tokio::spawn(async move { q.get().await })
        })
        .collect();
    let other = SyncManager::from_client(connect(&running).await);
    let put_q: QueueProxy<u64> = match putter {
        Putter::Same => q.clone(),
        Putter::Other => share(&q, other.client()),
    };
    let what = format!("{waiters} gets and puts over {transport:?} ({putter:?} connection)");
    bounded(&what, async {
        for chunk in (0..waiters as u64).collect::<Vec<_>>().chunks(512) {
            let puts = join_all(chunk.iter().map(|&i| put_q.put(i))).await;
            for put in puts {
                put.expect("a put is never refused: it does not wait");
            }
        }
    })
    .await;
    let results = bounded(&what, join_all(gets)).await;
    let mut got = HashSet::new();
    let mut busy = 0;
    for result in results {
        match result.expect("get task") {
            Ok(item) => assert!(got.insert(item), "item {item} taken twice"),
            Err(e) if e.is_retryable() => busy += 1,
            Err(e) => panic!("{what}: unexpected {e:?}"),
        }
    }
    assert_eq!(got.len() + busy, waiters, "{what}");
    assert!(
        busy <= waiters.saturating_sub(limit),
        "{what}: {busy} refused, but only calls beyond {limit} waiting ones may be"
    );
    // What the refused gets did not take is still there, and a retry takes it.
    assert_eq!(q.qsize().await.unwrap(), busy, "{what}");
    for _ in 0..busy {
        assert!(got.insert(q.get().await.unwrap()));
    }
    assert_eq!(got.len(), waiters, "{what}: every item taken once");
    assert_eq!(q.qsize().await.unwrap(), 0);
}

/// `n` calls of `store` that wait on the server until cancelled, once they all wait.
async fn fill_waiting(store: &StoreProxy, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let calls = (0..n)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let _ = store.wait_counted().await;
            })
        })
        .collect();
    until("every slot is taken", async || {
        store.waiting().await.unwrap() == n
    })
    .await;
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_waiting_gets_than_the_limit_never_freeze_their_connection() {
    for transport in TRANSPORTS {
        for putter in [Putter::Same, Putter::Other] {
            for waiters in [1_100, 5_000, 20_000] {
                waiters_then_puts(transport, waiters, putter, 1024).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_limit_serves_20000_waiting_gets_on_one_connection() {
    for transport in TRANSPORTS {
        waiters_then_puts(transport, 20_000, Putter::Same, 20_000).await;
    }
}

/// At the limit, the connection is still read: a call that does not wait is answered, one
/// that would wait gets `Busy` at once, and cancelling waiting calls frees their slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_limit_cancels_and_plain_calls_are_still_served() {
    const LIMIT: usize = 8;
    for transport in TRANSPORTS {
        let running: Running = {
            let (builder, dir) = builder(transport);
            Running {
                manager: builder
                    .max_calls_in_flight(LIMIT)
                    .start()
                    .await
                    .expect("server starts"),
                _dir: dir,
            }
        };
        let client = connect(&running).await;
        let store: StoreProxy = client.create("store", ()).await.unwrap();
        let waiting = fill_waiting(&store, LIMIT).await;
        // One more call that waits is refused at once, with the limit in the error.
        match bounded("a call beyond the limit", store.wait_counted()).await {
            Err(managers::Error::Remote(RemoteError::Busy { limit })) => {
                assert_eq!(limit, LIMIT as u64)
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        // Calls that do not wait are served, on the same connection (a `&mut self` one
        // would wait for the waiting calls' shared borrows: refused too).
        assert_eq!(store.get("k".into()).await.unwrap(), None);
        assert!(store.incr("k".into()).await.unwrap_err().is_retryable());
        // Cancelling the waiting calls frees their slots.
        for task in &waiting {
            task.abort();
        }
        until("the cancelled calls stop", async || {
            store.waiting().await.unwrap() == 0
        })
        .await;
        let again = store.clone();
        let task = tokio::spawn(async move { again.wait_counted().await });
        until("a new call waits", async || {
            store.waiting().await.unwrap() == 1
        })
        .await;
        task.abort();
        until("it is cancelled", async || {
            store.waiting().await.unwrap() == 0
        })
        .await;
        // A decref at the limit is read too: dropping the proxies frees the object.
        let fill = fill_waiting(&store, LIMIT).await;
        let counter: CounterProxy = client.create("counter", (1,)).await.unwrap();
        assert_eq!(client.number_of_objects().await.unwrap(), 2);
        drop(counter);
        objects_become(&client, 1).await;
        for task in fill {
            task.abort();
        }
    }
}

/// A `&mut self` call that waits behind another for longer than the hold timeout keeps the
/// proxy it was given: the proxy is adopted when the call is read, not when it gets the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_for_its_lock_adopts_its_proxies_when_read() {
    for transport in TRANSPORTS {
        let running: Running = {
            let (builder, dir) = builder(transport);
            Running {
                manager: builder
                    .hold_timeout(Duration::from_millis(200))
                    .start()
                    .await
                    .expect("server starts"),
                _dir: dir,
            }
        };
        let client: Client = connect(&running).await;
        let registry: RegistryProxy = client.create("registry", ()).await.unwrap();
        let counter: CounterProxy = client.create("counter", (41,)).await.unwrap();
        let id = counter.handle().token().id;
        // `put` is read while `hold_for` holds the lock, and waits for it three hold
        // timeouts.
        let holder = registry.clone();
        let held = tokio::spawn(async move { holder.hold_for(600).await });
        until("hold_for holds the lock", async || {
            REGISTRIES_HELD.load(std::sync::atomic::Ordering::SeqCst) > 0
        })
        .await;
        registry.put("c".into(), counter.clone()).await.unwrap();
        held.await.unwrap().unwrap();
        let rows = holders(&client, id).await;
        assert!(rows.contains(&(Holder::Objects, 1)), "{rows:?}");
        drop(counter);
        let stored = registry.get("c".into()).await.unwrap().expect("stored");
        assert_eq!(stored.incr().await.unwrap(), 42);
    }
}

/// `SyncError::is_retryable` is what a caller checks: `Busy` is, a queue's `Empty` is not.
#[test]
fn only_busy_is_retryable() {
    let busy = SyncError::Manager(managers::Error::Remote(RemoteError::Busy { limit: 1 }));
    assert!(busy.is_retryable());
    assert!(!SyncError::Empty.is_retryable());
    assert!(!managers::Error::Remote(RemoteError::ShuttingDown).is_retryable());
}

/// Past `max_connections`, a new client is not served until a slot frees: its handshake
/// times out with a typed error (no silent hang), and it connects once another leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_limit_a_client_times_out_then_gets_in() {
    for transport in TRANSPORTS {
        let running = {
            let (builder, dir) = builder(transport);
            Running {
                manager: builder.max_connections(2).start().await.expect("starts"),
                _dir: dir,
            }
        };
        // The manager's own connection is the first; this one the second.
        let first = connect(&running).await;
        assert_eq!(first.number_of_objects().await.unwrap(), 0);
        let refused = Client::builder()
            .handshake_timeout(Duration::from_millis(300))
            .connect(running.address(), "test-key")
            .await;
        match refused {
            Err(managers::Error::Transport(managers::TransportError::HandshakeTimeout)) => {}
            other => panic!("expected a handshake timeout, got {other:?}"),
        }
        drop(first);
        let admitted = bounded("a client after a slot freed", async {
            loop {
                let attempt = Client::builder()
                    .handshake_timeout(Duration::from_secs(2))
                    .connect(running.address(), "test-key")
                    .await;
                match attempt {
                    Ok(client) => break client,
                    Err(e) if e.is_transport() => continue,
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
        })
        .await;
        assert_eq!(admitted.number_of_objects().await.unwrap(), 0);
    }
}

/// A barrier wait and a condition wait refused at the limit leave no trace: the barrier is
/// not broken (the retry trips it) and the condition's lock is still held by its caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_refused_at_the_limit_leave_barriers_and_conditions_as_they_were() {
    const LIMIT: usize = 2;
    for transport in TRANSPORTS {
        let running = {
            let (builder, dir) = builder(transport);
            let builder = managers::sync::register(builder).max_calls_in_flight(LIMIT);
            Running {
                manager: builder.start().await.expect("server starts"),
                _dir: dir,
            }
        };
        let m = SyncManager::from_client(connect(&running).await);
        let other = SyncManager::from_client(connect(&running).await);
        let store: StoreProxy = m.client().create("store", ()).await.unwrap();
        let barrier = m.barrier(2, None).await.unwrap();
        let cond = m.condition().await.unwrap();
        cond.acquire().await.unwrap();
        let fill = fill_waiting(&store, LIMIT).await;
        let refused = bounded("a barrier wait at the limit", barrier.wait()).await;
        assert!(refused.unwrap_err().is_retryable());
        let refused = bounded("a condition wait at the limit", cond.wait(None)).await;
        assert!(refused.unwrap_err().is_retryable());
        for task in fill {
            task.abort();
        }
        until("the slots free", async || {
            store.waiting().await.unwrap() == 0
        })
        .await;
        // The condition's lock is still this caller's.
        cond.release().await.unwrap();
        // The barrier is whole: the retry and another party trip it.
        let theirs: managers::sync::BarrierProxy = share(&barrier, other.client());
        let (mine, theirs) = bounded("the barrier trips", async {
            tokio::join!(barrier.wait(), theirs.wait())
        })
        .await;
        let mut indices = [mine.unwrap(), theirs.unwrap()];
        indices.sort();
        assert_eq!(indices, [0, 1]);
    }
}

/// 1,000 clients connecting at the same moment over TCP all get in: the listen backlog
/// follows the connection limit (it was tokio's default of 128, and connections beyond it
/// were dropped by the kernel and retried only after a second or more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_connecting_at_once_all_get_in() {
    let running = start(Transport::Tcp).await;
    let address = running.address().clone();
    let mut connects = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let address = address.clone();
        connects.spawn(async move {
            Client::builder()
                .handshake_timeout(Duration::from_secs(15))
                .connect(address, "test-key")
                .await
        });
    }
    let clients = bounded("1,000 connects", connects.join_all()).await;
    let failed = clients.iter().filter(|c| c.is_err()).count();
    let first = clients.iter().find_map(|c| c.as_ref().err());
    assert_eq!(
        failed, 0,
        "{failed} of 1,000 clients failed to connect: {first:?}"
    );
}

/// A flood of connections that never authenticate cannot keep a legitimate client out:
/// handshakes have slots of their own, and the oldest makes way for a newcomer once it has
/// had its grace. (Before, silent connections held the connection slots for the whole
/// handshake timeout: 600 of them kept a 64-connection server full for about 10 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_cannot_keep_a_client_out() {
    let running = {
        let (builder, dir) = builder(Transport::Tcp);
        Running {
            manager: builder
                .max_connections(64)
                .max_handshakes(8)
                .handshake_timeout(Duration::from_secs(1))
                .start()
                .await
                .expect("server starts"),
            _dir: dir,
        }
    };
    let address = running.address().to_string();
    // 600 connections that say nothing, opened together and kept open.
    let mut silent = tokio::task::JoinSet::new();
    for _ in 0..600 {
        let address = address.clone();
        silent.spawn(async move { tokio::net::TcpStream::connect(address).await });
    }
    let mut opened = Vec::new();
    while let Some(stream) = silent.join_next().await {
        if let Ok(Ok(stream)) = stream {
            opened.push(stream);
        }
    }
    let client = Client::builder()
        .handshake_timeout(Duration::from_secs(5))
        .connect(running.address(), "test-key")
        .await
        .expect("a legitimate client gets in");
    assert_eq!(client.number_of_objects().await.unwrap(), 0);
    drop(opened);
}
