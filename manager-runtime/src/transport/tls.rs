//! TLS over TCP (rustls, through tokio-rustls for the handshake): the configurations a
//! server and a client are given, the announcement that makes a plaintext peer fail fast,
//! and an established connection's two halves.
//!
//! # On the wire
//! A TLS server's first bytes on every TCP connection are one frame, `#TLS#` (a 4-byte
//! length, then those five bytes); standard TLS follows, and the authkey handshake runs
//! inside it. The server speaks first in the authkey handshake, so without the
//! announcement a plaintext client and a TLS server would each wait for the other: with
//! it, a plaintext client reads `#TLS#` where it expected a challenge and fails at once
//! ([`TlsError::RequiredByServer`]), and a TLS client that reads a challenge instead
//! fails at once too ([`TlsError::NotOfferedByServer`]). Unix sockets stay plaintext.
//!
//! # The halves
//! The connection's writers write without awaiting ([`TlsWriter::try_write`]), as on a
//! plain socket: one rustls connection, under a lock, is shared by the read half and the
//! write half, and both drive the TCP socket with non-blocking reads and writes. What
//! rustls has encrypted but the socket did not take stays in it ([`TlsWriter::backlogged`])
//! until the next write or [`TlsWriter::writable`].

use std::io::{self, Read, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types};

use pki_types::pem::PemObject;
use pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::TlsError;

pub(crate) use rustls::ServerConfig;

/// The body of the frame a TLS server sends first.
pub(crate) const ANNOUNCE: &[u8] = b"#TLS#";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn config_error(what: &str, e: impl std::fmt::Display) -> TlsError {
    TlsError::Config(format!("{what}: {e}"))
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| config_error(&format!("cannot read {}", path.display()), e))
}

/// Every certificate in PEM text; at least one.
fn certs_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_error(what, e))?;
    if certs.is_empty() {
        return Err(TlsError::Config(format!("{what}: no certificate found")));
    }
    Ok(certs)
}

fn key_from_pem(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| config_error(what, e))
}

fn roots_from(certs: Vec<CertificateDer<'static>>) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| config_error("invalid CA certificate", e))?;
    }
    Ok(roots)
}

/// A server's TLS set-up: its certificate chain and key, and, for mutual TLS, the CA its
/// clients' certificates must be signed by. Given to
/// [`ServerBuilder::tls`](crate::ServerBuilder::tls).
///
/// ```no_run
/// # fn demo() -> Result<(), manager_runtime::TlsError> {
/// use manager_runtime::ServerTls;
/// let tls = ServerTls::from_pem_files("server.pem", "server.key")?
///     // Mutual TLS: only clients with a certificate from this CA get in.
///     .client_ca_pem_file("clients-ca.pem")?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServerTls {
    /// Built once, when the set-up is made (so a key that does not fit its certificate is
    /// reported then).
    config: Arc<rustls::ServerConfig>,
    /// The chain and key it was made from (none for [`ServerTls::from_rustls`]).
    identity: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    /// Whether clients need certificates of their own.
    mutual: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field(
                "certificates",
                &self.identity.as_ref().map(|(c, _)| c.len()),
            )
            .field("client_certificates_required", &self.mutual)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// The server's certificate chain (leaf first) and private key, as PEM text.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let chain = certs_from_pem(cert_chain, "invalid server certificate")?;
        let key = key_from_pem(key, "invalid server key")?;
        Ok(ServerTls {
            config: server_config(&chain, &key, None)?,
            identity: Some((chain, Arc::new(key))),
            mutual: false,
        })
    }

    /// [`from_pem`](Self::from_pem), reading the two PEM files.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        Self::from_pem(&read_file(cert_chain.as_ref())?, &read_file(key.as_ref())?)
    }

    /// Require every client to present a certificate signed by one of the CA certificates
    /// in `ca` (PEM text): mutual TLS. A client without one, or with another, is refused in
    /// the TLS handshake. (For a set-up made with [`from_rustls`](Self::from_rustls), set
    /// the client verifier in that configuration instead.)
    pub fn client_ca_pem(mut self, ca: &[u8]) -> Result<Self, TlsError> {
        let Some((chain, key)) = &self.identity else {
            return Err(TlsError::Config(
                "client_ca_pem needs a set-up made from PEM; give your own rustls \
                 configuration its client verifier instead"
                    .into(),
            ));
        };
        let roots = roots_from(certs_from_pem(ca, "invalid client CA certificate")?)?;
        self.config = server_config(chain, key, Some(Arc::new(roots)))?;
        self.mutual = true;
        Ok(self)
    }

    /// [`client_ca_pem`](Self::client_ca_pem), reading a PEM file.
    pub fn client_ca_pem_file(self, ca: impl AsRef<Path>) -> Result<Self, TlsError> {
        let pem = read_file(ca.as_ref())?;
        self.client_ca_pem(&pem)
    }

    /// A rustls configuration of your own, used as it is (ALPN, versions, a custom client
    /// verifier).
    pub fn from_rustls(config: Arc<rustls::ServerConfig>) -> Self {
        ServerTls {
            config,
            identity: None,
            mutual: false,
        }
    }

    /// A client set-up trusting exactly this server's certificate: that of the manager's
    /// own client (`ServerBuilder::start`).
    pub(crate) fn pinned_client(&self) -> Result<ClientTls, TlsError> {
        let leaf = match (&self.identity, self.mutual) {
            (_, true) => Err("client certificates required (mutual TLS)"),
            (Some((chain, _)), false) => chain.first().ok_or("no certificate"),
            (None, false) => Err("a rustls configuration of its own"),
        };
        let leaf = leaf.map_err(|why| {
            TlsError::Config(format!(
                "ServerBuilder::start cannot connect its own client to a TLS server with \
                 {why}: bind() and serve it, and connect with ClientBuilder::tls"
            ))
        })?;
        let provider = provider();
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error("TLS versions", e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                leaf: leaf.clone(),
                provider,
            }))
            .with_no_client_auth();
        Ok(ClientTls::from_rustls(Arc::new(config)))
    }

    pub(crate) fn config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }
}

/// A server configuration for `chain` and `key`, requiring client certificates signed by
/// `client_roots` if given.
fn server_config(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    client_roots: Option<Arc<rustls::RootCertStore>>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("TLS versions", e))?;
    let builder = match client_roots {
        Some(roots) => {
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
                    .build()
                    .map_err(|e| config_error("client certificate verifier", e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain.to_vec(), key.clone_key())
        .map_err(|e| config_error("server certificate and key", e))?;
    // No session resumption: a manager connection lives long.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// How a client connects over TLS: the CA it trusts, the name it expects the server's
/// certificate to carry, and for mutual TLS its own certificate. Given to
/// [`ClientBuilder::tls`](crate::ClientBuilder::tls).
///
/// The server name defaults to the host of the address connected to (a DNS name or an IP
/// address); errors in the set-up (an unreadable file, invalid PEM) are reported when
/// connecting, as [`TlsError::Config`].
///
/// ```no_run
/// # async fn demo() -> Result<(), manager_runtime::Error> {
/// use manager_runtime::{Client, ClientTls};
/// let client = Client::builder()
///     .tls(ClientTls::new().ca_pem_file("ca.pem").server_name("manager.internal"))
///     .connect("10.0.0.5:50000", "abc")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct ClientTls {
    roots: Vec<CertificateDer<'static>>,
    system_roots: bool,
    server_name: Option<String>,
    identity: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    config: Option<Arc<rustls::ClientConfig>>,
    error: Option<TlsError>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("roots", &self.roots.len())
            .field("system_roots", &self.system_roots)
            .field("server_name", &self.server_name)
            .field("client_certificate", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// TLS trusting nothing yet: add a CA ([`ca_pem`](Self::ca_pem),
    /// [`ca_pem_file`](Self::ca_pem_file)) or the system's roots
    /// ([`system_roots`](Self::system_roots)).
    pub fn new() -> Self {
        Self::default()
    }

    fn fail(mut self, e: TlsError) -> Self {
        self.error.get_or_insert(e);
        self
    }

    /// Trust the CA certificates in `ca` (PEM text).
    pub fn ca_pem(mut self, ca: &[u8]) -> Self {
        match certs_from_pem(ca, "invalid CA certificate") {
            Ok(certs) => {
                self.roots.extend(certs);
                self
            }
            Err(e) => self.fail(e),
        }
    }

    /// Trust the CA certificates in a PEM file.
    pub fn ca_pem_file(self, ca: impl AsRef<Path>) -> Self {
        match read_file(ca.as_ref()) {
            Ok(pem) => self.ca_pem(&pem),
            Err(e) => self.fail(e),
        }
    }

    /// Trust the operating system's root certificates too.
    pub fn system_roots(mut self) -> Self {
        self.system_roots = true;
        self
    }

    /// The name the server's certificate must carry (default: the host of the address).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Present this certificate chain (leaf first) and key, as PEM text: for servers that
    /// require client certificates (mutual TLS).
    pub fn identity_pem(mut self, cert_chain: &[u8], key: &[u8]) -> Self {
        let chain = match certs_from_pem(cert_chain, "invalid client certificate") {
            Ok(chain) => chain,
            Err(e) => return self.fail(e),
        };
        match key_from_pem(key, "invalid client key") {
            Ok(key) => {
                self.identity = Some((chain, Arc::new(key)));
                self
            }
            Err(e) => self.fail(e),
        }
    }

    /// [`identity_pem`](Self::identity_pem), reading the two PEM files.
    pub fn identity_pem_files(self, cert_chain: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        match (read_file(cert_chain.as_ref()), read_file(key.as_ref())) {
            (Ok(chain), Ok(key)) => self.identity_pem(&chain, &key),
            (Err(e), _) | (_, Err(e)) => self.fail(e),
        }
    }

    /// A rustls configuration of your own, used as it is (the server name still comes from
    /// [`server_name`](Self::server_name) or the address).
    pub fn from_rustls(config: Arc<rustls::ClientConfig>) -> Self {
        ClientTls {
            config: Some(config),
            ..Self::default()
        }
    }

    pub(crate) fn config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if let Some(config) = &self.config {
            return Ok(config.clone());
        }
        let mut roots = roots_from(self.roots.clone())?;
        if self.system_roots {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                if let Some(e) = found.errors.first() {
                    return Err(config_error(
                        "cannot load the system's root certificates",
                        e,
                    ));
                }
            }
            // Certificates the system has that rustls cannot parse are skipped.
            roots.add_parsable_certificates(found.certs);
        }
        if roots.is_empty() {
            return Err(TlsError::Config(
                "no CA to trust: give one (ClientTls::ca_pem) or the system's roots".into(),
            ));
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error("TLS versions", e))?
            .with_root_certificates(roots);
        let config = match &self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| config_error("client certificate and key", e))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    /// The name to verify the server's certificate against, for a server at `host_port`.
    fn name_for(&self, host_port: &str) -> Result<ServerName<'static>, TlsError> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => {
                let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned()
            }
        };
        ServerName::try_from(name.clone())
            .map_err(|_| TlsError::Config(format!("{name:?} is not a valid server name")))
    }
}

/// Trusts one certificate, by its bytes (and checks that the server holds its key).
#[derive(Debug)]
struct Pinned {
    leaf: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match end_entity.as_ref() == self.leaf.as_ref() {
            true => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            false => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS failure a rustls error stands for.
fn classify(e: &rustls::Error) -> TlsError {
    match e {
        rustls::Error::InvalidCertificate(why) => TlsError::BadPeerCertificate(why.to_string()),
        rustls::Error::NoCertificatesPresented => {
            TlsError::BadPeerCertificate("the peer presented no certificate".into())
        }
        rustls::Error::AlertReceived(alert) => TlsError::RefusedByPeer(format!("{alert:?}")),
        other => TlsError::Protocol(other.to_string()),
    }
}

/// An I/O error carrying the TLS failure (see `TransportError`'s `From<io::Error>`).
fn tls_io_error(e: TlsError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The TLS failure inside an I/O error from the handshake, if it is one.
fn from_handshake(e: io::Error) -> crate::TransportError {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return crate::TransportError::Tls(classify(inner));
    }
    e.into()
}

/// Announce TLS, and make the server's side of the TLS handshake.
pub(crate) async fn accept(
    mut tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
) -> Result<(TlsReader, TlsWriter), crate::TransportError> {
    let mut announce = (ANNOUNCE.len() as u32).to_be_bytes().to_vec();
    announce.extend_from_slice(ANNOUNCE);
    tcp.write_all(&announce).await?;
    let stream = tokio_rustls::TlsAcceptor::from(config)
        .accept(tcp)
        .await
        .map_err(from_handshake)?;
    let (tcp, conn) = stream.into_inner();
    Ok(split(tcp, rustls::Connection::Server(conn)))
}

/// Read the server's announcement, and make the client's side of the TLS handshake with
/// the server at `host_port`.
pub(crate) async fn connect(
    mut tcp: TcpStream,
    tls: &ClientTls,
    host_port: &str,
) -> Result<(TlsReader, TlsWriter), crate::Error> {
    let config = tls.config().map_err(crate::TransportError::Tls)?;
    let name = tls
        .name_for(host_port)
        .map_err(crate::TransportError::Tls)?;
    let mut header = [0u8; 4];
    tcp.read_exact(&mut header)
        .await
        .map_err(crate::TransportError::from)?;
    let len = u32::from_be_bytes(header) as usize;
    let mut body = [0u8; ANNOUNCE.len()];
    if len != ANNOUNCE.len() {
        return Err(crate::TransportError::Tls(TlsError::NotOfferedByServer).into());
    }
    tcp.read_exact(&mut body)
        .await
        .map_err(crate::TransportError::from)?;
    if body != ANNOUNCE {
        return Err(crate::TransportError::Tls(TlsError::NotOfferedByServer).into());
    }
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(from_handshake)?;
    let (tcp, conn) = stream.into_inner();
    Ok(split(tcp, rustls::Connection::Client(conn)))
}

/// What the two halves share.
struct Shared {
    tcp: TcpStream,
    conn: Mutex<rustls::Connection>,
}

/// Non-blocking reads and writes of the TCP socket, for rustls.
struct SyncIo<'a>(&'a TcpStream);

impl Read for SyncIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for SyncIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, rustls::Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write the TLS records waiting in `conn`: true when none is left, false when the
    /// socket is full.
    fn push_records(&self, conn: &mut rustls::Connection) -> io::Result<bool> {
        while conn.wants_write() {
            match conn.write_tls(&mut SyncIo(&self.tcp)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

fn split(tcp: TcpStream, conn: rustls::Connection) -> (TlsReader, TlsWriter) {
    let shared = Arc::new(Shared {
        tcp,
        conn: Mutex::new(conn),
    });
    (
        TlsReader {
            shared: shared.clone(),
        },
        TlsWriter { shared },
    )
}

/// The read half of a TLS connection.
pub(crate) struct TlsReader {
    shared: Arc<Shared>,
}

impl AsyncRead for TlsReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let shared = &*self.shared;
        loop {
            {
                let mut conn = shared.lock();
                // Plaintext already decrypted (or the end of the stream) first.
                match conn.reader().read(buf.initialize_unfilled()) {
                    Ok(n) => {
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
                match conn.read_tls(&mut SyncIo(&shared.tcp)) {
                    Ok(_) => {
                        if let Err(e) = conn.process_new_packets() {
                            // Send the alert rustls made, if the socket takes it.
                            let _ = shared.push_records(&mut conn);
                            return Poll::Ready(Err(tls_io_error(classify(&e))));
                        }
                        // Records reading made (a key update's answer) go now, or before
                        // the next write.
                        shared.push_records(&mut conn)?;
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            ready!(shared.tcp.poll_read_ready(cx))?;
        }
    }
}

/// The write half of a TLS connection; dropping it sends the TLS close and shuts the
/// socket's write side.
pub(crate) struct TlsWriter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TlsWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsWriter").finish_non_exhaustive()
    }
}

impl TlsWriter {
    /// Take as much of `buf` as rustls accepts now, and write what the socket takes;
    /// `WouldBlock` when earlier records still wait for the socket.
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut conn = self.shared.lock();
        if !self.shared.push_records(&mut conn)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = conn.writer().write(buf)?;
        self.shared.push_records(&mut conn)?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Whether records wait for the socket: the writer must wait for
    /// [`writable`](Self::writable) before it is done.
    pub(crate) fn backlogged(&self) -> bool {
        self.shared.lock().wants_write()
    }

    /// Wait until the records waiting are written. (Not `poll_written` in a `poll_fn`: that
    /// registers in the socket's single writer-waker slot, which a caller's `poll_write`
    /// would overwrite; `TcpStream::writable` waits in a list of its own.)
    pub(crate) async fn writable(&self) -> io::Result<()> {
        loop {
            if self.shared.push_records(&mut self.shared.lock())? {
                return Ok(());
            }
            self.shared.tcp.writable().await?;
        }
    }

    fn poll_written(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.shared.push_records(&mut self.shared.lock())? {
                return Poll::Ready(Ok(()));
            }
            ready!(self.shared.tcp.poll_write_ready(cx))?;
        }
    }

    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            match self.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.shared.tcp.poll_write_ready(cx))?;
                }
                done => return Poll::Ready(done),
            }
        }
    }

    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_written(cx)
    }

    pub(crate) fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.lock().send_close_notify();
        ready!(self.poll_written(cx))?;
        Poll::Ready(socket2::SockRef::from(&self.shared.tcp).shutdown(std::net::Shutdown::Write))
    }
}

impl Drop for TlsWriter {
    fn drop(&mut self) {
        let mut conn = self.shared.lock();
        conn.send_close_notify();
        let _ = self.shared.push_records(&mut conn);
        let _ = socket2::SockRef::from(&self.shared.tcp).shutdown(std::net::Shutdown::Write);
    }
}
