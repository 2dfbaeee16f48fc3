//! Running servers: serve_forever, start/shutdown, connect, addresses.

use std::time::Duration;

use managers::{Address, Client, Error, ServerBuilder};

use crate::common::{builder, register_all, PairProxy, Transport, TRANSPORTS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_forever_until_shutdown() {
    for transport in TRANSPORTS {
        let (builder, _dir) = builder(transport);
        let server = builder.bind().await.unwrap();
        let address = server.address().clone();
        match (&address, transport) {
            (Address::Tcp(a), Transport::Tcp) => assert!(!a.ends_with(":0"), "{a}"),
            (Address::Unix(p), Transport::Unix) => assert!(p.exists()),
            other => panic!("unexpected address {other:?}"),
        }
        let stop = server.shutdown_handle();
        let serving = tokio::spawn(server.serve_forever());
        let client = Client::connect(&address, "test-key").await.unwrap();
        let pair: PairProxy = client.create("get_pair", (2, 3)).await.unwrap();
        assert_eq!(pair.sum().await.unwrap(), 5);
        stop.shutdown();
        serving.await.unwrap().unwrap();
        // The connection is gone, and so is the listener.
        assert!(pair.sum().await.unwrap_err().is_transport());
        assert!(Client::connect(&address, "test-key").await.is_err());
        if let Address::Unix(p) = &address {
            assert!(!p.exists(), "socket file removed on shutdown");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_until_a_signal() {
    let server = register_all(ServerBuilder::new()).bind().await.unwrap();
    let address = server.address().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_until(async move {
        let _ = rx.await;
    }));
    Client::connect(&address, "test-key").await.unwrap();
    tx.send(()).unwrap();
    serving.await.unwrap().unwrap();
    assert!(Client::connect(&address, "test-key").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_then_shutdown_or_drop() {
    let manager = register_all(ServerBuilder::new()).start().await.unwrap();
    let address = manager.address().clone();
    let remote = Client::connect(&address, "test-key").await.unwrap();
    let pair: PairProxy = remote.create("get_pair", (1, 1)).await.unwrap();
    assert!(manager.shutdown(), "stopped within the shutdown timeout");
    let err = pair.get_x().await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");

    let manager = register_all(ServerBuilder::new()).start().await.unwrap();
    let address = manager.address().clone();
    drop(manager);
    assert!(Client::connect(&address, "test-key").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_addresses_are_typed_errors() {
    let err = ServerBuilder::new()
        .address("no port")
        .bind()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Address(_)), "{err:?}");
    let err = Client::connect("nonsense", "k").await.unwrap_err();
    assert!(matches!(err, Error::Address(_)), "{err:?}");
    // Nobody listens on a port we just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = Client::connect(port, "k").await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    // A second server cannot take a bound address.
    let first = ServerBuilder::new().bind().await.unwrap();
    let err = ServerBuilder::new()
        .address(first.address())
        .bind()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_call_stuck_in_a_method_still_finishes() {
    let manager = register_all(ServerBuilder::new())
        .shutdown_timeout(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let store: crate::common::StoreProxy = manager.create("store", ()).await.unwrap();
    let stuck = tokio::spawn(async move { store.forever().await });
    // A later call on the same connection has been read after `forever` started.
    manager.number_of_objects().await.unwrap();
    assert!(manager.shutdown());
    let err = stuck.await.unwrap().unwrap_err();
    assert!(err.is_transport(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_up_by_a_client_that_does_not_read() {
    use manager_core::wire::{ClientMessage, Request};
    // A long shutdown timeout: the test fails if shutdown has to wait for it.
    let server = register_all(ServerBuilder::new().address("127.0.0.1:0"))
        .shutdown_timeout(Duration::from_secs(60))
        .max_frame_length(64 << 20)
        .bind()
        .await
        .unwrap();
    let address = server.address().clone();
    let stop = server.shutdown_handle();
    let serving = tokio::spawn(server.serve_forever());
    let client = Client::connect(&address, "test-key").await.unwrap();
    let pair: PairProxy = client.create("get_pair", (0, 0)).await.unwrap();
    // A raw client asks for one reply far larger than the sockets can hold, and never
    // reads it: the server can only wait to write the rest.
    let mut raw = crate::raw::Raw::authenticated(&address, b"test-key").await;
    let args = postcard::to_stdvec(&(40_000_000usize,)).unwrap();
    let call = Request::Call {
        id: 1,
        object: pair.handle().id(),
        method: "big",
        args: &args,
    };
    raw.send(&ClientMessage::V1(call)).await;
    // The reply has started to arrive: the server is writing it, and cannot finish.
    raw.stream.peek(&mut [0u8; 1]).await.unwrap();
    stop.shutdown();
    tokio::time::timeout(Duration::from_secs(20), serving)
        .await
        .expect("shutdown waited for a client that does not read")
        .unwrap()
        .unwrap();
    drop(raw);
}

/// A client that cannot connect is told which address it dialled.
#[tokio::test]
async fn a_refused_connection_names_the_address() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let err = Client::connect(address.as_str(), "k").await.unwrap_err();
    assert!(err.is_transport(), "{err:?}");
    assert!(err.to_string().contains(&address), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nobody.sock");
    let err = Client::connect(missing.as_path(), "k").await.unwrap_err();
    assert!(err.to_string().contains("nobody.sock"), "{err}");
}

/// A client's shutdown request is refused by default; a server that allows it stops.
#[tokio::test]
async fn a_client_may_stop_the_server_only_if_allowed() {
    let (refusing, _dir) = builder(Transport::Unix);
    let refusing = refusing.authkey("k").start().await.unwrap();
    let err = refusing.client().request_shutdown().await.unwrap_err();
    assert!(
        matches!(
            err.as_remote(),
            Some(managers::RemoteError::ShutdownNotAllowed)
        ),
        "{err:?}"
    );
    assert_eq!(refusing.number_of_objects().await.unwrap(), 0);

    let (allowing, _dir) = builder(Transport::Unix);
    let allowing = allowing
        .authkey("k")
        .client_shutdown(true)
        .start()
        .await
        .unwrap();
    let other = Client::connect(allowing.address(), "k").await.unwrap();
    other.request_shutdown().await.unwrap();
    crate::common::until("the server to stop", async || {
        Client::connect(allowing.address(), "k").await.is_err()
    })
    .await;
}
