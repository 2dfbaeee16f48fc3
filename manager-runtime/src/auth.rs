//! The authentication key, and the handshake driven over a framed connection.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use manager_core::handshake::{
    ClientHandshake, HandshakeError, ServerHandshake, Step, MAX_MESSAGE_LEN, NONCE_LEN,
};
use tokio::io::AsyncWrite;
use tokio_util::codec::{FramedWrite, LengthDelimitedCodec};

use crate::transport::Reader;
use crate::{Error, TransportError};

/// The shared secret of a manager and its clients (Python's `authkey`).
///
/// Any bytes work. [`AuthKey::random`] makes 32 bytes from the OS generator, which is what a
/// server uses when none is given. `Debug` never shows the bytes.
///
/// ```
/// use manager_runtime::AuthKey;
/// let key = AuthKey::from("secret");
/// assert_eq!(key.as_bytes(), b"secret");
/// assert_eq!(format!("{key:?}"), "AuthKey(<6 bytes redacted>)");
/// assert_eq!(AuthKey::random().as_bytes().len(), 32);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKey(Arc<[u8]>);

impl AuthKey {
    /// 32 random bytes from the operating system.
    pub fn random() -> Self {
        Self(Arc::from(nonce()))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthKey(<{} bytes redacted>)", self.0.len())
    }
}

impl From<&[u8]> for AuthKey {
    fn from(b: &[u8]) -> Self {
        Self(Arc::from(b))
    }
}

impl<const N: usize> From<&[u8; N]> for AuthKey {
    fn from(b: &[u8; N]) -> Self {
        Self(Arc::from(&b[..]))
    }
}

impl From<Vec<u8>> for AuthKey {
    fn from(b: Vec<u8>) -> Self {
        Self(Arc::from(b))
    }
}

impl From<&str> for AuthKey {
    fn from(s: &str) -> Self {
        Self(Arc::from(s.as_bytes()))
    }
}

impl From<String> for AuthKey {
    fn from(s: String) -> Self {
        Self::from(s.into_bytes())
    }
}

fn nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    // The OS generator failing is not something a manager can work around.
    getrandom::getrandom(&mut n).expect("the operating system random generator failed");
    n
}

/// A framed writer over a write half.
pub(crate) type Framed<W> = FramedWrite<W, LengthDelimitedCodec>;

async fn recv(reader: &mut Reader) -> Result<Bytes, Error> {
    match reader.next().await {
        Some(Ok(frame)) => Ok(frame.freeze()),
        Some(Err(e)) => Err(Error::Transport(e.into())),
        None => Err(Error::Transport(TransportError::Closed)),
    }
}

async fn send<W: AsyncWrite + Unpin>(
    writer: &mut Framed<W>,
    message: Vec<u8>,
) -> Result<(), Error> {
    writer.send(Bytes::from(message)).await.map_err(Error::from)
}

/// Run a step's sends; returns whether the handshake is finished.
async fn apply<W: AsyncWrite + Unpin>(writer: &mut Framed<W>, step: Step) -> Result<bool, Error> {
    match step {
        Step::Send(m) => send(writer, m).await.map(|_| false),
        Step::SendAndFinish(m) => send(writer, m).await.map(|_| true),
        Step::Finished => Ok(true),
    }
}

async fn fail<W: AsyncWrite + Unpin>(writer: &mut Framed<W>, e: HandshakeError) -> Error {
    if let Some(reply) = e.reply() {
        let _ = send(writer, reply.to_vec()).await;
    }
    Error::Auth(e)
}

/// Exchange handshake messages until `receive` says the handshake is over. Frames are
/// capped at the handshake's size until it succeeds, then restored to `max_frame`, so an
/// unauthenticated peer cannot make us buffer a large frame.
async fn drive<W: AsyncWrite + Unpin>(
    reader: &mut Reader,
    writer: &mut Framed<W>,
    max_frame: usize,
    first: Option<Vec<u8>>,
    mut receive: impl FnMut(&[u8]) -> Result<Step, HandshakeError>,
) -> Result<(), Error> {
    reader.decoder_mut().set_max_frame_length(MAX_MESSAGE_LEN);
    if let Some(first) = first {
        send(writer, first).await?;
    }
    loop {
        let message = recv(reader).await?;
        match receive(&message) {
            Ok(step) => {
                if apply(writer, step).await? {
                    break;
                }
            }
            Err(e) => return Err(fail(writer, e).await),
        }
    }
    reader.decoder_mut().set_max_frame_length(max_frame);
    Ok(())
}

/// Authenticate a freshly accepted connection (the server challenges first).
pub(crate) async fn accept<W: AsyncWrite + Unpin>(
    reader: &mut Reader,
    writer: &mut Framed<W>,
    key: &AuthKey,
    max_frame: usize,
    python_clients: bool,
) -> Result<(), Error> {
    let (mut machine, first) = ServerHandshake::new(key.as_bytes(), nonce());
    if python_clients {
        machine = machine.with_python_clients();
    }
    drive(reader, writer, max_frame, Some(first), |m| {
        machine.receive(m)
    })
    .await
}

/// Authenticate to a server, and make sure it knows the key too.
pub(crate) async fn connect<W: AsyncWrite + Unpin>(
    reader: &mut Reader,
    writer: &mut Framed<W>,
    key: &AuthKey,
    max_frame: usize,
) -> Result<(), Error> {
    let mut machine = ClientHandshake::new(key.as_bytes(), nonce());
    let mut tls_announced = false;
    let outcome = drive(reader, writer, max_frame, None, |m| {
        tls_announced = m == crate::transport::tls::ANNOUNCE;
        machine.receive(m)
    })
    .await;
    match outcome {
        // A TLS server announced TLS where a plaintext one challenges.
        Err(Error::Auth(HandshakeError::Protocol(_))) if tls_announced => Err(Error::Transport(
            TransportError::Tls(crate::TlsError::RequiredByServer),
        )),
        outcome => outcome,
    }
}
