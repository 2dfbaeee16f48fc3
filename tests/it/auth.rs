//! Authentication: keys, the typed error, and mutual verification.

use manager_core::handshake::{self, ServerHandshake};
use managers::{AuthKey, Client, Error, HandshakeError, ServerBuilder};

use crate::common::{start, PairProxy, TRANSPORTS};
use crate::raw::Raw;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_a_typed_error_and_others_keep_working() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let err = Client::connect(server.address(), "not-the-key")
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Auth(HandshakeError::Rejected)),
            "{transport:?}: {err:?}"
        );
        assert!(err.is_transport());
        let pair: PairProxy = server.create("get_pair", (1, 1)).await.unwrap();
        assert_eq!(pair.sum().await.unwrap(), 2);
        let again = Client::connect(server.address(), "test-key").await.unwrap();
        assert_eq!(again.number_of_objects().await.unwrap(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_the_server_makes_a_random_one() {
    let a = ServerBuilder::new().start().await.unwrap();
    let b = ServerBuilder::new().start().await.unwrap();
    assert_eq!(a.authkey().as_bytes().len(), 32);
    assert_ne!(a.authkey(), b.authkey());
    Client::connect(a.address(), a.authkey().clone())
        .await
        .unwrap();
    let err = Client::connect(a.address(), b.authkey().clone())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth(_)), "{err:?}");
    assert_eq!(format!("{:?}", a.authkey()), "AuthKey(<32 bytes redacted>)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_verifies_the_server_too() {
    // A fake server that welcomes any digest and then cannot answer the client's challenge.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = managers::Address::from(listener.local_addr().unwrap());
    let fake = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut raw = Raw { stream };
        let (_, challenge) = ServerHandshake::new(b"impostor", [1; 32]);
        raw.write_frame(&challenge).await;
        let _digest = raw.read_frame().await.unwrap();
        raw.write_frame(handshake::WELCOME).await;
        let _their_challenge = raw.read_frame().await.unwrap();
        raw.write_frame(b"{sha256}0123456789abcdef0123456789abcdef")
            .await;
        raw.read_frame().await
    });
    let err = Client::connect(address, AuthKey::from("real-key"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Auth(HandshakeError::BadDigest)),
        "{err:?}"
    );
    // The client told the impostor it failed.
    assert_eq!(fake.await.unwrap().as_deref(), Some(handshake::FAILURE));
}
