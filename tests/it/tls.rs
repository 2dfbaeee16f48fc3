//! TLS over real TCP sockets, with certificates made at run time: a trusted CA, a wrong CA,
//! a wrong server name, mutual TLS with and without a client certificate, plaintext and
//! TLS peers meeting each other, and large and pipelined traffic through the TLS halves.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use managers::{
    Address, Client, ClientBuilder, ClientTls, Error, HandshakeError, Pipeline, ServerTls,
    ShutdownHandle, TlsError, TransportError,
};

use crate::certs::TestCa;
use crate::common::{builder, start, PairProxy, Running, Transport};

/// A handshake timeout far above what any of these handshakes takes: an error that is not
/// `HandshakeTimeout` came at once, not after waiting.
const PATIENT: Duration = Duration::from_secs(60);

/// A CA, and a TLS server whose certificate it signed for `localhost` and `127.0.0.1`.
struct Fixture {
    ca: TestCa,
    server: Serving,
}

/// A bound server served by a task of the test's runtime (`start` cannot serve a server
/// that requires client certificates: its own client would need one); stopped when
/// dropped.
struct Serving {
    address: Address,
    stop: ShutdownHandle,
}

impl Serving {
    fn address(&self) -> &Address {
        &self.address
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.shutdown();
    }
}

fn server_tls(ca: &TestCa) -> ServerTls {
    let leaf = ca.server(&["localhost", "127.0.0.1"]);
    ServerTls::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).expect("server TLS")
}

async fn tls_server(tls: ServerTls) -> Serving {
    let (builder, _) = builder(Transport::Tcp);
    let server = builder.tls(tls).bind().await.expect("TLS server binds");
    let serving = Serving {
        address: server.address().clone(),
        stop: server.shutdown_handle(),
    };
    tokio::spawn(server.serve_forever());
    serving
}

async fn fixture() -> Fixture {
    let ca = TestCa::new("test CA");
    let server = tls_server(server_tls(&ca)).await;
    Fixture { ca, server }
}

fn client(tls: ClientTls) -> ClientBuilder {
    Client::builder().handshake_timeout(PATIENT).tls(tls)
}

fn tls_error(result: Result<Client, Error>) -> TlsError {
    match result {
        Err(Error::Transport(TransportError::Tls(e))) => e,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_the_ca_calls_through_tls() {
    let f = fixture().await;
    let tls = ClientTls::new().ca_pem(f.ca.pem().as_bytes());
    // By IP address: the server name defaults to the address's host.
    let first = client(tls)
        .connect(f.server.address(), "test-key")
        .await
        .expect("TLS client connects");
    let pair: PairProxy = first.create("get_pair", (1, 2)).await.unwrap();
    assert_eq!(pair.sum().await.unwrap(), 3);
    // Larger than rustls's buffers both ways: the halves write and read in pieces.
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let (back, text) = pair.echo(bytes.clone(), "tls").await.unwrap();
    assert_eq!((back, text.as_str()), (bytes, "tls"));
    assert_eq!(pair.big_async(5_000_000).await.unwrap().len(), 5_000_000);
    // Many calls in flight at once.
    let mut pipeline = Pipeline::new();
    for i in 0..2000 {
        pipeline.push(pair.set_x(i));
    }
    while let Some(done) = pipeline.next().await {
        done.unwrap();
    }
    assert_eq!(pair.get_x().await.unwrap(), 1999);
    // By DNS name.
    let address = f.server.address().to_string();
    let port = address.rsplit_once(':').unwrap().1;
    let by_name = client(ClientTls::new().ca_pem(f.ca.pem().as_bytes()))
        .connect(format!("localhost:{port}"), "test-key")
        .await
        .expect("by name");
    assert_eq!(by_name.number_of_objects().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_or_name_is_refused_and_the_server_keeps_serving() {
    let f = fixture().await;
    let other = TestCa::new("another CA");
    let err = tls_error(
        client(ClientTls::new().ca_pem(other.pem().as_bytes()))
            .connect(f.server.address(), "test-key")
            .await,
    );
    assert!(
        matches!(&err, TlsError::BadPeerCertificate(why) if why.contains("UnknownIssuer") || why.contains("unknown issuer")),
        "{err:?}"
    );
    let err = tls_error(
        client(
            ClientTls::new()
                .ca_pem(f.ca.pem().as_bytes())
                .server_name("manager.example"),
        )
        .connect(f.server.address(), "test-key")
        .await,
    );
    assert!(
        matches!(&err, TlsError::BadPeerCertificate(why) if why.contains("not valid for name")),
        "{err:?}"
    );
    // A wrong authkey inside TLS is still the authentication error.
    let err = client(ClientTls::new().ca_pem(f.ca.pem().as_bytes()))
        .connect(f.server.address(), "wrong-key")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Auth(HandshakeError::Rejected)),
        "{err:?}"
    );
    let good = client(ClientTls::new().ca_pem(f.ca.pem().as_bytes()))
        .connect(f.server.address(), "test-key")
        .await
        .unwrap();
    let pair: PairProxy = good.create("get_pair", (5, 1)).await.unwrap();
    assert_eq!(pair.sum().await.unwrap(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_and_tls_peers_fail_fast_with_typed_errors() {
    let f = fixture().await;
    // A plaintext client to a TLS server.
    let err = tls_error(
        Client::builder()
            .handshake_timeout(PATIENT)
            .connect(f.server.address(), "test-key")
            .await,
    );
    assert_eq!(err, TlsError::RequiredByServer);
    // A TLS client to a plaintext server.
    let plain = start(Transport::Tcp).await;
    let err = tls_error(
        client(ClientTls::new().ca_pem(f.ca.pem().as_bytes()))
            .connect(plain.address(), "test-key")
            .await,
    );
    assert_eq!(err, TlsError::NotOfferedByServer);
    // Set-up errors are typed too.
    let err = tls_error(
        client(ClientTls::new().ca_pem(b"not a certificate"))
            .connect(f.server.address(), "test-key")
            .await,
    );
    assert!(matches!(err, TlsError::Config(_)), "{err:?}");
    let err = tls_error(
        client(ClientTls::new())
            .connect(f.server.address(), "test-key")
            .await,
    );
    assert!(matches!(err, TlsError::Config(_)), "{err:?}");
    let err = ServerTls::from_pem(f.ca.pem().as_bytes(), b"no key here").unwrap_err();
    assert!(matches!(err, TlsError::Config(_)), "{err:?}");
    // Garbage where the ClientHello should be: the server closes that connection.
    let mut raw = tokio::net::TcpStream::connect(f.server.address().to_string())
        .await
        .unwrap();
    let mut announce = [0u8; 9];
    raw.read_exact(&mut announce).await.unwrap();
    assert_eq!(&announce, b"\0\0\0\x05#TLS#");
    raw.write_all(&[0xff; 64]).await.unwrap();
    let mut rest = Vec::new();
    let _ = raw.read_to_end(&mut rest).await;
    // Both servers still serve their own kind of client.
    let ok = client(ClientTls::new().ca_pem(f.ca.pem().as_bytes()))
        .connect(f.server.address(), "test-key")
        .await
        .unwrap();
    let pair: PairProxy = ok.create("get_pair", (1, 1)).await.unwrap();
    assert_eq!(pair.sum().await.unwrap(), 2);
    let ok = Client::connect(plain.address(), "test-key").await.unwrap();
    let pair: PairProxy = ok.create("get_pair", (2, 1)).await.unwrap();
    assert_eq!(pair.sum().await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_clients_with_a_certificate_from_its_ca() {
    let ca = TestCa::new("server CA");
    let clients_ca = TestCa::new("clients CA");
    let tls = server_tls(&ca)
        .client_ca_pem(clients_ca.pem().as_bytes())
        .unwrap();
    let server = tls_server(tls).await;
    let trusting = || ClientTls::new().ca_pem(ca.pem().as_bytes());

    let worker = clients_ca.client("worker-1");
    let with_cert =
        client(trusting().identity_pem(worker.cert_pem.as_bytes(), worker.key_pem.as_bytes()))
            .connect(server.address(), "test-key")
            .await
            .expect("a client with a certificate from the clients' CA");
    let pair: PairProxy = with_cert.create("get_pair", (4, 5)).await.unwrap();
    assert_eq!(pair.sum().await.unwrap(), 9);

    let err = tls_error(
        client(trusting())
            .connect(server.address(), "test-key")
            .await,
    );
    assert!(matches!(err, TlsError::RefusedByPeer(_)), "{err:?}");

    let stranger = ca.client("stranger");
    let err = tls_error(
        client(trusting().identity_pem(stranger.cert_pem.as_bytes(), stranger.key_pem.as_bytes()))
            .connect(server.address(), "test-key")
            .await,
    );
    assert!(matches!(err, TlsError::RefusedByPeer(_)), "{err:?}");
    // The admitted client was not disturbed.
    assert_eq!(pair.sum().await.unwrap(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_connects_its_own_client_and_unix_sockets_stay_plaintext() {
    let ca = TestCa::new("test CA");
    let (builder_tcp, _) = builder(Transport::Tcp);
    let manager = builder_tcp.tls(server_tls(&ca)).start().await.unwrap();
    let pair: PairProxy = manager.create("get_pair", (2, 2)).await.unwrap();
    assert_eq!(pair.sum().await.unwrap(), 4);
    // Others still need TLS.
    let err = tls_error(Client::connect(manager.address(), "test-key").await);
    assert_eq!(err, TlsError::RequiredByServer);

    let (builder_unix, dir) = builder(Transport::Unix);
    let unix = Running {
        manager: builder_unix.tls(server_tls(&ca)).start().await.unwrap(),
        _dir: dir,
    };
    let plain = Client::connect(unix.address(), "test-key").await.unwrap();
    assert_eq!(plain.number_of_objects().await.unwrap(), 0);
    // Mutual TLS: `start` cannot make its own client a certificate, and says so.
    let (builder_mtls, _) = builder(Transport::Tcp);
    let tls = server_tls(&ca).client_ca_pem(ca.pem().as_bytes()).unwrap();
    let err = builder_mtls.tls(tls).start().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport(TransportError::Tls(TlsError::Config(_)))
        ),
        "{err:?}"
    );
}
