//! Clients that survive a dropped connection: a small TCP relay between client and server
//! cuts every connection on demand (both sockets closed, as a reset or a dead link does)
//! and can refuse new ones for a while. Within the server's grace period the client
//! reconnects by itself and resumes its session: proxies work, locks are still held,
//! references are exactly the client's; past it, everything is released; after a server
//! restart, the client says so instead of resuming.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use managers::sync::{SyncError, SyncManager};
use managers::{Client, ConnectionState, Error, LostReason, Manager, Pipeline, Proxy};
use tokio::sync::watch;

use crate::common::{bounded, builder, register_all, share, until, PairProxy, Transport};
use crate::relay::Relay;

/// A server with the test types and the SyncManager types, keeping sessions for `grace`.
async fn server(grace: Option<Duration>) -> Manager {
    let (builder, _) = builder(Transport::Tcp);
    managers::sync::register(builder)
        .session_grace(grace)
        .start()
        .await
        .unwrap()
}

/// Wait until `client`'s connection state satisfies `want`.
async fn state(client: &Client, what: &str, want: impl Fn(&ConnectionState) -> bool) {
    let mut state = client.connection_state();
    bounded(what, state.wait_for(|s| want(s))).await.unwrap();
}

/// Cut the relay's connections, and wait until `client` saw it (calls in flight at the
/// cut fail with the transport error; calls made after wait for the reconnect).
async fn cut(relay: &Relay, client: &Client) {
    let mut state: watch::Receiver<ConnectionState> = client.connection_state();
    state.mark_unchanged();
    relay.cut();
    bounded("the client sees the cut", state.changed())
        .await
        .unwrap();
}

/// Another client of `manager`, straight to it (not through the relay).
async fn direct(manager: &Manager) -> SyncManager {
    SyncManager::from_client(
        Client::connect(manager.address(), "test-key")
            .await
            .unwrap(),
    )
}

/// The references each object has, by object, as the server counts them.
async fn refcounts(manager: &Manager) -> Vec<(managers::ObjectId, u64)> {
    let mut rows: Vec<_> = manager
        .debug_info()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.refcount))
        .collect();
    rows.sort();
    rows
}

/// A server keeping sessions for a minute, a relay to it, a client through the relay (and
/// its SyncManager), and another client straight to the server.
async fn relayed() -> (Manager, Relay, Client, SyncManager, SyncManager) {
    let manager = server(Some(Duration::from_secs(60))).await;
    let relay = Relay::start(manager.address()).await;
    let client = Client::connect(relay.address.as_str(), "test-key")
        .await
        .unwrap();
    let sync = SyncManager::from_client(client.clone());
    let other = direct(&manager).await;
    (manager, relay, client, sync, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_resumes_with_proxies_locks_and_references_intact() {
    let (manager, relay, client, sync, other) = relayed().await;

    let pair: PairProxy = client.create("get_pair", (1, 2)).await.unwrap();
    let copies = (pair.clone(), pair.clone());
    let lock = sync.lock().await.unwrap();
    lock.acquire().await.unwrap();
    let their_lock = share(&lock, other.client());
    let queue = sync.queue::<u32>(0).await.unwrap();
    let their_queue = share(&queue, other.client());
    for item in [1, 2, 3] {
        their_queue.put(item).await.unwrap();
    }
    assert_eq!(queue.get().await.unwrap(), 1);
    let before = refcounts(&manager).await;

    // The link is down for a while: the client keeps trying.
    relay.refuse(true);
    cut(&relay, &client).await;
    assert_eq!(
        *client.connection_state().borrow(),
        ConnectionState::Reconnecting
    );
    // A proxy dropped meanwhile is counted, and reaches the server once.
    drop(copies.0);
    // Calls made now wait for the reconnect, and go through the new connection: plain,
    // pipelined, the client's own.
    let waiting = async {
        let mut pipeline = Pipeline::new();
        pipeline.push(pair.get_x());
        pipeline.push(pair.sum());
        let x = pipeline.next().await.unwrap().unwrap();
        let sum = pipeline.next().await.unwrap().unwrap();
        (
            x,
            sum,
            pair.sum().await.unwrap(),
            client.number_of_objects().await.unwrap(),
        )
    };
    let back = async {
        relay.refuse(false);
    };
    let ((x, sum, again, objects), ()) = bounded("calls across the reconnect", async {
        tokio::join!(waiting, back)
    })
    .await;
    assert_eq!((x, sum, again), (1, 3, 3));
    assert!(objects >= 3);
    state(&client, "connected again", |s| {
        *s == ConnectionState::Connected
    })
    .await;

    // The lock is still this client's: others cannot take it, and it can release it.
    assert!(their_lock.locked().await.unwrap());
    assert!(!their_lock.try_acquire().await.unwrap());
    lock.release().await.unwrap();
    assert!(their_lock.try_acquire().await.unwrap());
    their_lock.release().await.unwrap();
    // No item lost or taken twice.
    assert_eq!(queue.get().await.unwrap(), 2);
    assert_eq!(their_queue.get().await.unwrap(), 3);
    assert!(queue.empty().await.unwrap());
    // References: as before the cut, less the copy dropped while reconnecting.
    let pair_id = pair.handle().id();
    let expected: Vec<_> = before
        .iter()
        .map(|&(id, n)| (id, if id == pair_id { n - 1 } else { n }))
        .collect();
    assert_eq!(refcounts(&manager).await, expected);
    drop(copies.1);
    pair.set_x(10).await.unwrap();
    let after: Vec<_> = refcounts(&manager).await;
    assert_eq!(
        after.iter().find(|(id, _)| *id == pair_id).map(|r| r.1),
        Some(1),
        "one proxy left"
    );
    // Cut again: the resumed session resumes again.
    cut(&relay, &client).await;
    assert_eq!(
        bounded("a second reconnect", pair.get_x()).await.unwrap(),
        10
    );
    // Everything only it held goes once the client does (at once: it said goodbye, so
    // the server keeps nothing for the grace period).
    let count_before = manager.number_of_objects().await.unwrap();
    drop((pair, lock, queue, sync, client));
    until("the client's objects are released", async || {
        manager.number_of_objects().await.unwrap() == count_before - 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_get_cut_off_takes_nothing() {
    let (_manager, relay, _client, sync, other) = relayed().await;
    let queue = sync.queue::<String>(0).await.unwrap();
    let their_queue = share(&queue, other.client());
    // A blocking get, polled once: its request is queued on the connection that is about
    // to be cut (it may reach the server and wait there, or not).
    let handle = queue.handle();
    let mut get = std::pin::pin!(
        handle.call_method::<_, Result<String, SyncError>>("get", (true, None::<Duration>))
    );
    let first = std::future::poll_fn(|cx| Poll::Ready(get.as_mut().poll(cx))).await;
    assert!(first.is_pending());
    relay.cut();
    let err = bounded("the cut-off get", get).await.unwrap_err();
    assert!(err.is_transport(), "{err:?}");
    their_queue.put("only".to_owned()).await.unwrap();
    // The withdrawn get took nothing: the item is there for the next get.
    assert_eq!(
        bounded("a get after the reconnect", queue.get())
            .await
            .unwrap(),
        "only"
    );
    assert!(their_queue.empty().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_grace_period_the_session_is_released() {
    let manager = server(Some(Duration::from_millis(300))).await;
    let relay = Relay::start(manager.address()).await;
    let client = Client::builder()
        .reconnect(Some(managers::Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
        }))
        .connect(relay.address.as_str(), "test-key")
        .await
        .unwrap();
    let sync = SyncManager::from_client(client.clone());
    let other = direct(&manager).await;
    let pair: PairProxy = client.create("get_pair", (1, 2)).await.unwrap();
    let lock = sync.lock().await.unwrap();
    lock.acquire().await.unwrap();
    let their_lock = share(&lock, other.client());
    let objects = manager.number_of_objects().await.unwrap();

    // The network is down for longer than the grace period.
    relay.refuse(true);
    relay.cut();
    state(&client, "the session lost", |s| {
        *s == ConnectionState::Lost(LostReason::Expired)
    })
    .await;
    // The lock was released, and the session's objects freed.
    until("the lock is released", async || {
        their_lock.try_acquire().await.unwrap()
    })
    .await;
    until("the session's objects are freed", async || {
        manager.number_of_objects().await.unwrap() < objects
    })
    .await;
    relay.refuse(false);
    let err = pair.sum().await.unwrap_err();
    assert!(
        matches!(&err, Error::SessionLost { typeid, .. } if typeid == "get_pair"),
        "{err:?}"
    );
    assert!(err.is_transport());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_back_at_a_restarted_server_says_so() {
    let first = server(Some(Duration::from_secs(60))).await;
    let address = first.address().clone();
    let relay = Relay::start(&address).await;
    let client = Client::connect(relay.address.as_str(), "test-key")
        .await
        .unwrap();
    let pair: PairProxy = client.create("get_pair", (1, 2)).await.unwrap();
    assert!(first.shutdown());
    // Another instance on the same address.
    let second = managers::sync::register(register_all(
        managers::ServerBuilder::new().address(address.clone()),
    ))
    .session_grace(Some(Duration::from_secs(60)))
    .start()
    .await
    .unwrap();
    state(&client, "the restart reported", |s| {
        *s == ConnectionState::Lost(LostReason::ServerRestarted)
    })
    .await;
    let err = pair.sum().await.unwrap_err();
    assert!(
        matches!(&err, Error::ServerRestarted { typeid, id } if typeid == "get_pair" && *id == pair.handle().id()),
        "{err:?}"
    );
    assert_eq!(second.number_of_objects().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sessions_a_cut_connection_is_lost_as_before() {
    let manager = server(None).await;
    let relay = Relay::start(manager.address()).await;
    let client = Client::connect(relay.address.as_str(), "test-key")
        .await
        .unwrap();
    let pair: PairProxy = client.create("get_pair", (1, 2)).await.unwrap();
    relay.cut();
    state(&client, "lost", |s| {
        *s == ConnectionState::Lost(LostReason::Dropped)
    })
    .await;
    let err = pair.sum().await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    until("the object is freed", async || {
        manager.number_of_objects().await.unwrap() == 0
    })
    .await;
}
