//! Misbehaving peers: each gets a typed error or a closed connection, and the server keeps
//! serving everyone else.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use manager_core::handshake;
use manager_core::wire::{ClientMessage, Reply, Request, ServerMessage};
use managers::{ObjectId, RemoteError, ServerBuilder};

use crate::common::{register_all, start, PairProxy, Running, Transport};
use crate::raw::Raw;

/// A normal client still gets served.
async fn still_serving(server: &Running) {
    let pair: PairProxy = server.create("get_pair", (20, 22)).await.unwrap();
    assert_eq!(pair.sum().await.unwrap(), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_object_is_a_remote_error_on_a_live_connection() {
    let server = start(Transport::Tcp).await;
    let mut raw = Raw::authenticated(server.address(), b"test-key").await;
    let call = Request::Call {
        id: 7,
        object: ObjectId(999_999),
        method: "get_x",
        args: &[],
    };
    raw.send(&ClientMessage::V1(call)).await;
    raw.recv(|m| {
        let ServerMessage::V1(r) = m;
        assert_eq!(r.id, 7);
        assert_eq!(
            r.result,
            Err(RemoteError::UnknownObject {
                id: ObjectId(999_999)
            })
        );
    })
    .await;
    // A decref of something this connection does not hold is refused without effect.
    let pair: PairProxy = server.create("get_pair", (1, 1)).await.unwrap();
    raw.send(&ClientMessage::V1(Request::Decref {
        object: pair.handle().id(),
    }))
    .await;
    raw.send(&ClientMessage::V1(Request::NumberOfObjects { id: 8 }))
        .await;
    raw.recv(|m| {
        let ServerMessage::V1(r) = m;
        assert_eq!((r.id, r.result), (8, Ok(Reply::Count(1))));
    })
    .await;
    assert_eq!(pair.sum().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frame_closes_only_that_connection() {
    let server = start(Transport::Tcp).await;
    let mut raw = Raw::authenticated(server.address(), b"test-key").await;
    raw.write_frame(&[0xff, 0xfe, 0x00, 0x13, 0x37]).await;
    assert!(raw.is_closed_by_server().await);
    still_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_before_a_garbage_frame_still_get_their_replies() {
    let server = start(Transport::Tcp).await;
    let mut raw = Raw::authenticated(server.address(), b"test-key").await;
    // One write: a good request, then garbage. The server reads both at once, answers
    // the first, then closes the connection.
    let good =
        manager_core::wire::encode(&ClientMessage::V1(Request::NumberOfObjects { id: 5 })).unwrap();
    let garbage = [0xff, 0xfe, 0x00, 0x13, 0x37];
    let mut bytes = Vec::new();
    for body in [&good[..], &garbage[..]] {
        bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
        bytes.extend_from_slice(body);
    }
    raw.stream_write_raw(&bytes).await;
    raw.recv(|m| {
        let ServerMessage::V1(r) = m;
        assert_eq!((r.id, r.result), (5, Ok(Reply::Count(0))));
    })
    .await;
    assert!(raw.is_closed_by_server().await);
    still_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_are_refused_before_and_after_the_handshake() {
    let server = Running::from(
        register_all(ServerBuilder::new())
            .max_frame_length(1024)
            .start()
            .await
            .unwrap(),
    );
    // Before authenticating, anything larger than a handshake message is refused.
    let mut raw = Raw::connect(server.address()).await;
    let _challenge = raw.read_frame().await.unwrap();
    raw.stream_write_header(1 << 20).await;
    assert!(raw.is_closed_by_server().await);
    // After, the configured maximum applies.
    let mut raw = Raw::authenticated(server.address(), b"test-key").await;
    raw.write_frame(&vec![0; 1000]).await; // within the limit: garbage, but read whole
    assert!(raw.is_closed_by_server().await);
    let mut raw = Raw::authenticated(server.address(), b"test-key").await;
    raw.stream_write_header(4096).await;
    assert!(raw.is_closed_by_server().await);
    still_serving(&server).await;
    // A large argument through a real client gets a transport error, not a hang; only that
    // client's connection is closed.
    let other = crate::common::connect(&server).await;
    let pair: PairProxy = other.create("get_pair", (1, 1)).await.unwrap();
    let err = pair.echo(vec![0; 4096], "").await.unwrap_err();
    assert!(err.is_transport(), "{err:?}");
    still_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_then_eof() {
    let server = start(Transport::Tcp).await;
    let mut raw = Raw::authenticated(server.address(), b"test-key").await;
    raw.stream_write_header(100).await;
    raw.stream_write_raw(&[1, 2, 3]).await;
    raw.shutdown_write().await;
    assert!(raw.is_closed_by_server().await);
    still_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let server = Running::from(
        register_all(ServerBuilder::new())
            .handshake_timeout(Duration::from_millis(200))
            .start()
            .await
            .unwrap(),
    );
    let mut raw = Raw::connect(server.address()).await;
    let challenge = raw.read_frame().await.unwrap();
    assert!(challenge.starts_with(handshake::CHALLENGE));
    // Say nothing: the server gives up and closes.
    assert!(raw.is_closed_by_server().await);
    still_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_digest_gets_failure_and_a_closed_connection() {
    let server = start(Transport::Tcp).await;
    let mut raw = Raw::connect(server.address()).await;
    let _challenge = raw.read_frame().await.unwrap();
    raw.write_frame(b"{sha256}not-a-digest").await;
    assert_eq!(raw.read_frame().await.as_deref(), Some(handshake::FAILURE));
    assert!(raw.is_closed_by_server().await);
    // A payload before authenticating is never decoded: the connection just closes.
    let mut raw = Raw::connect(server.address()).await;
    let _challenge = raw.read_frame().await.unwrap();
    raw.send(&ClientMessage::V1(Request::NumberOfObjects { id: 1 }))
        .await;
    assert!(raw.is_closed_by_server().await);
    still_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_over_the_frame_limit_is_a_remote_error_not_a_dead_connection() {
    let server = Running::from(
        register_all(ServerBuilder::new())
            .max_frame_length(4096)
            .start()
            .await
            .unwrap(),
    );
    let pair: PairProxy = server.create("get_pair", (1, 2)).await.unwrap();
    for big in [pair.big(10_000).await, pair.big_async(10_000).await] {
        let err = big.unwrap_err();
        assert!(
            matches!(&err, managers::Error::Remote(RemoteError::Encode { reason, .. })
                if reason.contains("maximum frame length")),
            "{err:?}"
        );
    }
    // Only those requests failed: the connection and its references are intact.
    assert_eq!(pair.big(100).await.unwrap().len(), 100);
    assert_eq!(pair.sum().await.unwrap(), 3);
    // A request over the client's own limit is refused before it is sent.
    let client = managers::Client::builder()
        .max_frame_length(1024)
        .connect(server.address(), "test-key")
        .await
        .unwrap();
    let small: PairProxy = client.create("get_pair", (1, 1)).await.unwrap();
    let err = small.echo(vec![0; 2000], "").await.unwrap_err();
    assert!(matches!(err, managers::Error::Codec(_)), "{err:?}");
    assert_eq!(small.sum().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_display_that_panics_is_a_remote_error() {
    let server = start(Transport::Tcp).await;
    let grumpy: crate::common::GrumpyProxy = server.create("grumpy", ()).await.unwrap();
    let err = grumpy.referent_to_string().await.unwrap_err();
    assert!(
        matches!(&err, managers::Error::Remote(RemoteError::Panicked { message, .. })
            if message == "no text for you"),
        "{err:?}"
    );
    assert_eq!(grumpy.ping().await.unwrap(), 2);
}

/// A call on an object that was released gets `UnknownObject`, on the connection that
/// released it and on one that called it before (the server remembers each connection's
/// last object; that must never outlive the object).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_object_is_unknown_to_every_connection_that_called_it() {
    let server = start(Transport::Tcp).await;
    let get_x = |id: u64, object: ObjectId| {
        ClientMessage::V1(Request::Call {
            id,
            object,
            method: "get_x",
            args: &[],
        })
    };
    let expect = |raw_id: u64, want: Result<i64, RemoteError>| {
        move |m: ServerMessage<'_>| {
            let ServerMessage::V1(r) = m;
            assert_eq!(r.id, raw_id);
            let got = r.result.map(|reply| match reply {
                Reply::Value(v) => postcard::from_bytes::<i64>(v).unwrap(),
                other => panic!("unexpected reply {other:?}"),
            });
            assert_eq!(got, want);
        }
    };
    // Released by the connection that calls it.
    let mut raw = Raw::authenticated(server.address(), b"test-key").await;
    let args = postcard::to_stdvec(&(5i64, 6i64)).unwrap();
    raw.send(&ClientMessage::V1(Request::Create {
        id: 1,
        typeid: "get_pair",
        args: &args,
        expected: None,
    }))
    .await;
    let object = raw
        .recv(|m| {
            let ServerMessage::V1(r) = m;
            match r.result {
                Ok(Reply::Created(token)) => token.id,
                other => panic!("create failed: {other:?}"),
            }
        })
        .await;
    raw.send(&get_x(2, object)).await;
    raw.recv(expect(2, Ok(5))).await;
    raw.send(&ClientMessage::V1(Request::Decref { object }))
        .await;
    raw.send(&get_x(3, object)).await;
    raw.recv(expect(3, Err(RemoteError::UnknownObject { id: object })))
        .await;
    // Released by another connection.
    let pair: PairProxy = server.create("get_pair", (7, 8)).await.unwrap();
    let object = pair.handle().id();
    raw.send(&get_x(4, object)).await;
    raw.recv(expect(4, Ok(7))).await;
    drop(pair);
    crate::common::objects_become(server.client(), 0).await;
    raw.send(&get_x(5, object)).await;
    raw.recv(expect(5, Err(RemoteError::UnknownObject { id: object })))
        .await;
    still_serving(&server).await;
}

/// A logged-in client that stops in the middle of a frame is closed after the stalled-frame
/// timeout (it used to hold its connection slot forever); one that trickles a frame slowly
/// is not; a quiet client between frames is kept, unless an idle timeout is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalled_mid_frame_is_closed_and_a_quiet_one_is_kept() {
    let server = Running::from(
        register_all(ServerBuilder::new())
            .stalled_frame_timeout(Some(Duration::from_millis(300)))
            .start()
            .await
            .unwrap(),
    );
    let mut stalled = Raw::authenticated(server.address(), b"test-key").await;
    stalled.stream_write_header(100).await;
    stalled.stream_write_raw(&[1, 2, 3]).await;
    let mut quiet = Raw::authenticated(server.address(), b"test-key").await;
    assert!(stalled.is_closed_by_server().await);
    // The quiet one was silent as long, between frames: it is still served.
    quiet
        .send(&ClientMessage::V1(Request::NumberOfObjects { id: 9 }))
        .await;
    quiet
        .recv(|m| {
            let ServerMessage::V1(response) = m;
            assert_eq!(response.id, 9);
            assert!(matches!(response.result, Ok(Reply::Count(_))));
        })
        .await;
    // A frame sent in pieces, each within the timeout, is read whole.
    let request =
        manager_core::wire::encode(&ClientMessage::V1(Request::NumberOfObjects { id: 10 }))
            .unwrap();
    let mut framed = (request.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&request);
    for piece in framed.chunks(framed.len().div_ceil(3)) {
        quiet.stream_write_raw(piece).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    quiet
        .recv(|m| {
            let ServerMessage::V1(response) = m;
            assert_eq!(response.id, 10);
        })
        .await;
    still_serving(&server).await;

    // A frame trickled a byte at a time, each within the timeout but far below 64 KiB/s,
    // is cut off once its whole allowance has passed.
    let mut trickle = Raw::authenticated(server.address(), b"test-key").await;
    trickle.stream_write_header(100).await;
    let mut sent = 0;
    while sent < 100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if trickle.stream.write_all(&[0]).await.is_err() {
            break;
        }
        sent += 1;
    }
    assert!(sent < 50, "{sent} bytes of the frame were taken");
    assert!(trickle.is_closed_by_server().await);

    // With an idle timeout, a client that says nothing at all is closed too.
    let server = Running::from(
        register_all(ServerBuilder::new())
            .idle_timeout(Some(Duration::from_millis(300)))
            .start()
            .await
            .unwrap(),
    );
    let mut idle = Raw::authenticated(server.address(), b"test-key").await;
    assert!(idle.is_closed_by_server().await);
    // But not one waiting for a call that takes longer than the idle timeout.
    let client = crate::common::connect(&server).await;
    let registry: crate::common::RegistryProxy = client.create("registry", ()).await.unwrap();
    registry.hold_for(900).await.expect("served to the end");
}
