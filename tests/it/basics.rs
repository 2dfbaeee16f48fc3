//! Declaring, calling (typed and raw), registering, printing.

use futures_util::future::join_all;
use managers::{manager, Error, Proxy, RemoteError};

use crate::common::{connect, start, OpaqueProxy, PairProxy, StoreProxy, TRANSPORTS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_calls_of_every_shape() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let pair: PairProxy = server.create("get_pair", (1, 3)).await.unwrap();
        assert_eq!(pair.get_x().await.unwrap(), 1, "{transport:?}");
        pair.set_x(5).await.unwrap();
        assert_eq!(pair.sum().await.unwrap(), 8);
        assert_eq!(pair.add_async(1, 1).await.unwrap(), (6, 4));
        pair.swap().await.unwrap();
        assert_eq!(pair.get_x().await.unwrap(), 4);
        assert_eq!(pair.checked_div(2).await.unwrap(), 2);
        let (bytes, text) = pair.echo(vec![0, 1, 255], "héllo").await.unwrap();
        assert_eq!((bytes, text.as_str()), (vec![0, 1, 255], "héllo"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_errors_arrive_as_typed_remote_errors() {
    let server = start(crate::common::Transport::Tcp).await;
    let pair: PairProxy = server.create("get_pair", (9, 0)).await.unwrap();
    match pair.checked_div(0).await {
        Err(Error::Remote(RemoteError::Method { method, message })) => {
            assert_eq!(method, "checked_div");
            assert_eq!(message, "cannot divide 9 by zero");
        }
        other => panic!("expected a method error, got {other:?}"),
    }
    // The connection is still fine.
    assert_eq!(pair.get_x().await.unwrap(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_method_is_reported_and_the_server_keeps_serving() {
    let server = start(crate::common::Transport::Tcp).await;
    let pair: PairProxy = server.create("get_pair", (1, 2)).await.unwrap();
    let err = pair.boom("kaboom".into()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Remote(RemoteError::Panicked { method, message })
            if method == "boom" && message == "kaboom"),
        "{err:?}"
    );
    assert_eq!(pair.sum().await.unwrap(), 3);
    // The same for an async `&mut self` method (driven on its own task), and a constructor.
    let err = pair.boom_async().await.unwrap_err();
    assert!(
        matches!(&err, Error::Remote(RemoteError::Panicked { method, message })
            if method == "boom_async" && message == "async kaboom"),
        "{err:?}"
    );
    pair.set_x(4).await.unwrap(); // the write lock was released by the panicking call
    let err = server
        .create::<PairProxy, _>("bad_pair", (-1,))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote(RemoteError::Panicked { message, .. }) if message == "negative x"),
        "{err:?}"
    );
    let other = connect(&server).await;
    let second: PairProxy = other.create("get_pair", (2, 2)).await.unwrap();
    assert_eq!(second.sum().await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_methods_run_concurrently_and_mut_methods_exclusively() {
    let server = start(crate::common::Transport::Tcp).await;
    let store: StoreProxy = server.create("store", ()).await.unwrap();
    // Three `&self` calls that each wait for the other two: completes only if they run
    // at the same time.
    let (a, b, c) = tokio::join!(
        store.rendezvous(3),
        store.rendezvous(3),
        store.rendezvous(3)
    );
    let mut arrived = vec![a.unwrap(), b.unwrap(), c.unwrap()];
    arrived.sort();
    assert_eq!(arrived, vec![1, 2, 3]);
    // Twenty `&mut self` calls that yield midway never overlap.
    let calls: Vec<_> = (0..20).map(|_| store.exclusive()).collect();
    let overlaps = join_all(calls).await;
    assert!(
        overlaps.iter().all(|o| *o.as_ref().unwrap() == 0),
        "{overlaps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_calls_by_name() {
    let server = start(crate::common::Transport::Tcp).await;
    let pair: PairProxy = server.create("get_pair", (4, 5)).await.unwrap();
    let h = pair.handle();
    assert_eq!(h.call_method::<_, i64>("sum", ()).await.unwrap(), 9);
    h.call_method::<_, ()>("set_x", (10,)).await.unwrap();
    assert_eq!(pair.get_x().await.unwrap(), 10);

    // `reset` exists and is public, but is not exposed.
    match h.call_method::<_, ()>("reset", ()).await {
        Err(Error::Remote(RemoteError::NotExposed { method, typeid })) => {
            assert_eq!((method.as_str(), typeid.as_str()), ("reset", "get_pair"));
        }
        other => panic!("expected NotExposed, got {other:?}"),
    }
    let err = h.call_method::<_, ()>("fly", ()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Remote(RemoteError::UnknownMethod { method, typeid })
            if method == "fly" && typeid == "get_pair"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "typeid `get_pair` has no method `fly`");
    // Wrong argument types: a string where an i64 is expected, and a missing argument.
    let err = h.call_method::<_, ()>("set_x", ("ten",)).await.unwrap_err();
    assert!(
        matches!(err, Error::Remote(RemoteError::BadArguments { .. })),
        "{err:?}"
    );
    let err = h
        .call_method::<_, (i64, i64)>("add_async", (1,))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Remote(RemoteError::BadArguments { .. })),
        "{err:?}"
    );
    // Still usable afterwards.
    assert_eq!(pair.get_x().await.unwrap(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_constructor_instance_and_no_create_method() {
    let server = start(crate::common::Transport::Tcp).await;
    // (a) each create is a new object
    let a: PairProxy = server.create("get_pair", (1, 3)).await.unwrap();
    let b: PairProxy = server.create("get_pair", (2, 4)).await.unwrap();
    assert_ne!(a.handle().id(), b.handle().id());
    assert_eq!((a.sum().await.unwrap(), b.sum().await.unwrap()), (4, 6));

    // (b) one shared instance seen by every client
    let other = connect(&server).await;
    let mine: PairProxy = server.create("the_pair", ()).await.unwrap();
    let theirs: PairProxy = other.create("the_pair", ()).await.unwrap();
    assert_eq!(mine.handle().id(), theirs.handle().id());
    mine.set_x(100).await.unwrap();
    assert_eq!(theirs.get_x().await.unwrap(), 100);
    // It keeps its state even when nobody holds it.
    drop((mine, theirs));
    let again: PairProxy = other.create("the_pair", ()).await.unwrap();
    assert_eq!(again.get_x().await.unwrap(), 100);

    // (c) create_method = false
    let err = server
        .create::<PairProxy, _>("Pair", (1, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote(RemoteError::CreateNotAllowed { typeid }) if typeid == "Pair"),
        "{err:?}"
    );
    // Unknown typeid, wrong constructor arguments, and a proxy of the wrong type.
    let err = server.create::<PairProxy, _>("nope", ()).await.unwrap_err();
    assert!(
        matches!(err, Error::Remote(RemoteError::UnknownTypeid { .. })),
        "{err:?}"
    );
    let err = server
        .create::<PairProxy, _>("get_pair", ("not two numbers",))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Remote(RemoteError::BadArguments { .. })),
        "{err:?}"
    );
    let err = server
        .create::<StoreProxy, _>("get_pair", (1, 2))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote(RemoteError::TypeMismatch { expected, actual, .. })
            if expected == "Store" && actual == "Pair"),
        "{err:?}"
    );
    // An untyped handle works for any type.
    let h = server.create_handle("get_pair", (3, 3)).await.unwrap();
    assert_eq!(h.call_method::<_, i64>("sum", ()).await.unwrap(), 6);
    // A shared instance is made by the server: arguments would be ignored, so they are
    // refused.
    let refused = other.create::<PairProxy, _>("the_pair", (1, 2)).await;
    let err = refused.unwrap_err();
    assert!(err.to_string().contains("takes no arguments"), "{err}");
}

manager! {
    /// A typed manager for the test types.
    pub struct TestManager {
        /// A new pair.
        fn get_pair(x: i64, y: i64) -> PairProxy;
        fn store() -> StoreProxy;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_manager_has_creation_methods() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let m = TestManager::connect(server.address(), "test-key")
            .await
            .unwrap();
        let pair = m.get_pair(1, 3).await.unwrap();
        assert_eq!(pair.sum().await.unwrap(), 4);
        let store = m.store().await.unwrap();
        assert_eq!(store.incr("k".into()).await.unwrap(), 1);
        assert_eq!(store.get("k".into()).await.unwrap(), Some(1));
        assert_eq!(m.number_of_objects().await.unwrap(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_is_repr_and_referent_to_string_is_str() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let pair: PairProxy = server.create("get_pair", (1, 3)).await.unwrap();
        let repr = format!("{pair:?}");
        let expected = format!(
            "PairProxy {{ typeid: \"get_pair\", address: {}, id: {} }}",
            server.address(),
            pair.handle().id()
        );
        assert_eq!(repr, expected);
        assert_eq!(pair.referent_to_string().await.unwrap(), "Pair(1, 3)");
        let opaque: OpaqueProxy = server.create("opaque", ()).await.unwrap();
        assert_eq!(opaque.ping().await.unwrap(), 1);
        assert_eq!(
            opaque.referent_to_string().await.unwrap(),
            "<opaque object>"
        );
    }
}

#[test]
fn proxies_are_clone_send_sync() {
    fn check<P: Proxy + Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    check::<PairProxy>();
    check::<StoreProxy>();
    fn check_client<C: Clone + Send + Sync>() {}
    check_client::<managers::Client>();
    check_client::<managers::ProxyHandle>();
    check_client::<managers::Error>();
    fn send_sync<T: Send + Sync>() {}
    send_sync::<managers::Manager>();
    send_sync::<managers::Server>();
}

/// Every future a user awaits can be spawned on a multi-threaded runtime.
#[allow(dead_code, clippy::manual_async_fn)]
fn futures_are_send(pair: &PairProxy, client: &managers::Client, server: managers::Server) {
    fn send<T: Send>(_: T) {}
    send(pair.get_x());
    send(pair.add_async(1, 2));
    send(pair.referent_to_string());
    send(pair.handle().call_method::<_, i64>("sum", ()));
    send(client.create::<PairProxy, _>("get_pair", (1, 2)));
    send(client.debug_info());
    send(managers::Client::connect("127.0.0.1:1", "k"));
    send(managers::ServerBuilder::new().start());
    send(server.serve_forever());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_proxy_used_from_many_tasks() {
    let server = start(crate::common::Transport::Tcp).await;
    let store: StoreProxy = server.create("store", ()).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            for _ in 0..25 {
                store.incr("n".into()).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    assert_eq!(store.get("n".into()).await.unwrap(), Some(200));
}

/// One connection serves a typed manager of your own types and the SyncManager types at
/// once: `SyncManager::from_client` on the typed manager's client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_serves_a_typed_manager_and_the_sync_types() {
    let (builder, _dir) = crate::common::builder(crate::common::Transport::Unix);
    let manager = managers::sync::register(builder).start().await.unwrap();
    let board = TestManager::connect(manager.address(), "test-key")
        .await
        .unwrap();
    let sync = managers::sync::SyncManager::from_client(board.client().clone());
    let pair = board.get_pair(2, 5).await.unwrap();
    let queue = sync.queue::<i64>(0).await.unwrap();
    queue.put(pair.sum().await.unwrap()).await.unwrap();
    assert_eq!(queue.get().await.unwrap(), 7);
    // Both objects are held by the one connection.
    let rows = board.client().debug_info().await.unwrap();
    let holders: std::collections::BTreeSet<_> = rows
        .iter()
        .flat_map(|row| row.holders.iter().map(|(holder, _)| *holder))
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(holders.len(), 1, "{rows:?}");
}
