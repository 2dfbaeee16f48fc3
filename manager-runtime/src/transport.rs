//! Sockets: TCP and Unix listeners and streams, behind one type, plus the frame codec.
//! (A read-only registration of Unix sockets was tried and measured against this one:
//! `docs/performance.md`, design notes.)

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use manager_core::Address;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_util::codec::LengthDelimitedCodec;

pub(crate) mod tls;

/// The read half of a connection.
/// The longest timeout a server or client keeps (about a hundred years): a longer one,
/// `Duration::MAX` for "never" for one, is cut to it, so that no deadline computed from it
/// overflows.
pub(crate) const MAX_TIMEOUT: std::time::Duration =
    std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// The read side of a connection, framed for the handshake.
pub(crate) type Reader =
    tokio_util::codec::FramedRead<ReadHalf, tokio_util::codec::LengthDelimitedCodec>;

pub(crate) type ReadHalf = Pin<Box<dyn AsyncRead + Send>>;

/// The default largest frame either side accepts: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// The frame codec: a 4-byte big-endian length, then the body; larger bodies are refused.
pub(crate) fn frame_codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame)
        .new_codec()
}

/// A buffer frames are appended to: the client's queue of requests, the server's write
/// buffer.
pub(crate) trait FrameBuf: std::ops::DerefMut<Target = [u8]> {
    /// Append `bytes`.
    fn append(&mut self, bytes: &[u8]);
    /// Cut the buffer back to `len` bytes.
    fn cut(&mut self, len: usize);
}

impl FrameBuf for Vec<u8> {
    fn append(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn cut(&mut self, len: usize) {
        self.truncate(len);
    }
}

impl FrameBuf for bytes::BytesMut {
    fn append(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn cut(&mut self, len: usize) {
        self.truncate(len);
    }
}

/// Why [`push_frame`] appended nothing.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The message did not encode.
    Encode(postcard::Error),
    /// The encoded message, of this many bytes, is over the frame limit.
    TooLarge(usize),
}

/// Append `message` to `buf` as one frame (a 4-byte big-endian length, then the body),
/// encoded in place. On an error `buf` is left as it was.
pub(crate) fn push_frame<B: FrameBuf, T: serde::Serialize>(
    buf: &mut B,
    message: &T,
    max_frame: usize,
) -> Result<(), FrameError> {
    let start = buf.len();
    buf.append(&[0; 4]);
    if let Err(e) = manager_core::wire::encode_with(message, |piece| buf.append(piece)) {
        buf.cut(start);
        return Err(FrameError::Encode(e));
    }
    let len = buf.len() - start - 4;
    // The length prefix has four bytes, whatever the configured limit.
    if len > max_frame.min(u32::MAX as usize) {
        buf.cut(start);
        return Err(FrameError::TooLarge(len));
    }
    buf[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// How much a [`FrameReader`] asks the socket for at least, per read.
const READ_AHEAD: usize = 16 * 1024;

/// How much a frame's buffer grows by at least, past what arrived already.
const GROW_BY: usize = 64 * 1024;

/// The slowest a frame may arrive, in bytes per second, once it has started (see
/// `FrameReader::with_timeouts`).
const MIN_RATE: u64 = 64 * 1024;

/// Reads length-prefixed frames, every whole frame one read brought at once, as one
/// buffer: no allocation or reference count per frame (iterate them with [`frames`]).
pub(crate) struct FrameReader {
    io: ReadHalf,
    buf: BytesMut,
    max: usize,
    /// How long the peer may send nothing in the middle of a frame; `None`: forever.
    stalled: Option<Duration>,
    /// How long the peer may send nothing between frames; `None`: forever.
    idle: Option<Duration>,
    /// When the first bytes of the frame being read arrived.
    frame_started: Option<tokio::time::Instant>,
}

impl FrameReader {
    /// Take over from the frame reader the handshake used, with what it buffered.
    pub(crate) fn new(framed: Reader, max: usize) -> Self {
        let parts = framed.into_parts();
        FrameReader {
            io: parts.io,
            buf: parts.read_buf,
            max,
            stalled: None,
            idle: None,
            frame_started: None,
        }
    }

    /// Give up on a peer that sends nothing for `stalled` in the middle of a frame, or sends
    /// a frame slower than `stalled` plus its length at 64 KiB/s
    /// ([`TransportError::Stalled`](crate::TransportError::Stalled)), or that sends nothing
    /// for `idle` between frames ([`TransportError::Idle`](crate::TransportError::Idle)).
    pub(crate) fn with_timeouts(
        mut self,
        stalled: Option<Duration>,
        idle: Option<Duration>,
    ) -> Self {
        self.stalled = stalled;
        self.idle = idle;
        self
    }

    /// Change the idle timeout (none while the peer has calls running: it waits for them).
    pub(crate) fn set_idle(&mut self, idle: Option<Duration>) {
        self.idle = idle;
    }

    /// The first byte of the next frame's payload, without consuming it, waiting for the
    /// socket until it has come; `None` at a clean end of the stream or for an empty frame.
    pub(crate) async fn peek_payload_byte(&mut self) -> Result<Option<u8>, crate::TransportError> {
        loop {
            if self.buf.len() >= 4 {
                let header: [u8; 4] = self.buf[..4].try_into().unwrap_or_default();
                if u32::from_be_bytes(header) == 0 {
                    return Ok(None);
                }
                if let Some(&first) = self.buf.get(4) {
                    return Ok(Some(first));
                }
            }
            self.buf.reserve(READ_AHEAD);
            let read = self.io.read_buf(&mut self.buf);
            let n = match self.idle.or(self.stalled) {
                Some(limit) => tokio::time::timeout(limit, read)
                    .await
                    .map_err(|_| crate::TransportError::Idle)?,
                None => read.await,
            }?;
            if n == 0 {
                return match self.buf.is_empty() {
                    true => Ok(None),
                    false => Err(crate::TransportError::Closed),
                };
            }
        }
    }

    /// Every whole frame buffered, length prefixes included, waiting for the socket until
    /// there is one; `None` at a clean end of the stream. Frames before an oversized one
    /// still come out; the error comes with the next call.
    pub(crate) async fn next_batch(&mut self) -> Result<Option<Bytes>, crate::TransportError> {
        loop {
            let (whole, missing) = scan(&self.buf, self.max)?;
            if whole > 0 {
                let batch = self.buf.split_to(whole).freeze();
                // What is left is the start of the next frame, from now on.
                self.frame_started = None;
                return Ok(Some(batch));
            }
            // Room for what the frame still needs, but never much more than has arrived: a
            // peer that announces a large frame and sends nothing gets no large buffer.
            let room = missing.min(self.buf.len().max(GROW_BY)).max(READ_AHEAD);
            self.buf.reserve(room);
            let now = tokio::time::Instant::now();
            let (deadline, error) = match self.buf.is_empty() {
                true => (self.idle.map(|d| now + d), crate::TransportError::Idle),
                false => {
                    // Each read within `stalled` of the last one, and the whole frame within
                    // `stalled` plus what it needs at `MIN_RATE` (a peer trickling a byte at
                    // a time cannot hold the connection for ever).
                    let started = *self.frame_started.get_or_insert(now);
                    let whole = (self.buf.len() + missing) as u64;
                    let deadline = self.stalled.map(|d| {
                        let allowance = d + Duration::from_millis(whole * 1000 / MIN_RATE);
                        (now + d).min(started + allowance)
                    });
                    (deadline, crate::TransportError::Stalled)
                }
            };
            let read = self.io.read_buf(&mut self.buf);
            let n = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, read)
                    .await
                    .map_err(|_| error)??,
                None => read.await?,
            };
            if n == 0 {
                return match self.buf.is_empty() {
                    true => Ok(None),
                    // The peer went away in the middle of a frame.
                    false => Err(crate::TransportError::Closed),
                };
            }
        }
    }
}

/// How many bytes at the start of `buf` are whole frames, and how many more the frame after
/// them still needs; an error when the first frame is over `max`.
pub(crate) fn scan(buf: &[u8], max: usize) -> Result<(usize, usize), crate::TransportError> {
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        let Some(header) = rest.first_chunk::<4>() else {
            return Ok((pos, 4 - rest.len()));
        };
        let len = u32::from_be_bytes(*header) as usize;
        if len > max {
            return match pos {
                0 => Err(crate::TransportError::FrameTooLarge),
                _ => Ok((pos, 0)),
            };
        }
        if rest.len() - 4 < len {
            return Ok((pos, 4 + len - rest.len()));
        }
        pos += 4 + len;
    }
}

/// The bodies of the frames in a batch from [`FrameReader::next_batch`].
pub(crate) fn frames(batch: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    std::iter::from_fn(move || next_frame(batch, &mut pos))
}

/// The body of the frame at `*pos` in a batch from [`FrameReader::next_batch`], moving
/// `pos` past it.
pub(crate) fn next_frame<'b>(batch: &'b [u8], pos: &mut usize) -> Option<&'b [u8]> {
    let (header, tail) = batch.get(*pos..)?.split_first_chunk::<4>()?;
    let body = tail.get(..u32::from_be_bytes(*header) as usize)?;
    *pos += 4 + body.len();
    Some(body)
}

pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// A TCP listener on the first address `host_port` resolves to that binds.
async fn bind_tcp(host_port: &str, backlog: u32) -> io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(host_port).await? {
        let socket = match addr {
            std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        // As `TcpListener::bind` does: a restarted server can bind its port again at once.
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(backlog)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        )
    }))
}

impl Listener {
    /// Bind `address` with room for `backlog` connections waiting to be accepted (a TCP
    /// listener's default is 128; a Unix one's is the system's maximum); returns the
    /// listener and the address actually bound.
    pub(crate) async fn bind(address: &Address, backlog: usize) -> io::Result<(Self, Address)> {
        match address {
            Address::Tcp(a) => {
                let l = bind_tcp(a, u32::try_from(backlog).unwrap_or(u32::MAX)).await?;
                let local = l.local_addr()?;
                Ok((Listener::Tcp(l), Address::from(local)))
            }
            Address::Unix(p) => {
                let l = UnixListener::bind(p)?;
                Ok((Listener::Unix(l, p.clone()), Address::Unix(p.clone())))
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "unsupported address kind",
            )),
        }
    }

    /// Accept one connection; returns it and a peer description for logs.
    pub(crate) async fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                s.set_nodelay(true)?;
                Ok((Stream::Tcp(s), peer.to_string()))
            }
            Listener::Unix(l, p) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::Unix(s), format!("unix:{}", p.display())))
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An accepted or connected socket, before any TLS.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Its halves, plaintext.
    pub(crate) fn split(self) -> (ReadHalf, SocketWriter) {
        match self {
            Stream::Tcp(s) => {
                let (r, w) = s.into_split();
                (Box::pin(r), SocketWriter::Tcp(w))
            }
            Stream::Unix(s) => {
                let (r, w) = s.into_split();
                (Box::pin(r), SocketWriter::Unix(w))
            }
        }
    }

    /// A server's side: TLS with `config` over TCP (after announcing it), plaintext
    /// without, and always on Unix sockets.
    pub(crate) async fn accept_tls(
        self,
        config: Option<&std::sync::Arc<tls::ServerConfig>>,
    ) -> Result<(ReadHalf, SocketWriter), crate::TransportError> {
        match (self, config) {
            (Stream::Tcp(s), Some(config)) => {
                let (r, w) = tls::accept(s, config.clone()).await?;
                Ok((Box::pin(r), SocketWriter::Tls(w)))
            }
            (stream, _) => Ok(stream.split()),
        }
    }

    /// A client's side: TLS as `tls` says over TCP to `address`, plaintext without, and
    /// always on Unix sockets.
    pub(crate) async fn connect_tls(
        self,
        tls: Option<&tls::ClientTls>,
        address: &Address,
    ) -> Result<(ReadHalf, SocketWriter), crate::Error> {
        match (self, tls, address) {
            (Stream::Tcp(s), Some(tls), Address::Tcp(host_port)) => {
                let (r, w) = tls::connect(s, tls, host_port).await?;
                Ok((Box::pin(r), SocketWriter::Tls(w)))
            }
            (stream, _, _) => Ok(stream.split()),
        }
    }
}

/// Connect to `address`.
pub(crate) async fn connect(address: &Address) -> io::Result<Stream> {
    match address {
        Address::Tcp(a) => {
            let s = TcpStream::connect(a.as_str()).await?;
            s.set_nodelay(true)?;
            Ok(Stream::Tcp(s))
        }
        Address::Unix(p) => Ok(Stream::Unix(UnixStream::connect(p).await?)),
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "unsupported address kind",
        )),
    }
}

/// A connection's write half, concrete so that writers need not await
/// ([`SocketWriter::try_write`]).
#[derive(Debug)]
pub(crate) enum SocketWriter {
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    Unix(tokio::net::unix::OwnedWriteHalf),
    Tls(tls::TlsWriter),
}

impl SocketWriter {
    /// Acknowledge the peer's next segments at once (Linux `TCP_QUICKACK`, which the
    /// kernel turns off again by itself). A CPython client writes its last handshake
    /// message and its first request back to back; with Nagle on its side and delayed
    /// acknowledgement on ours, that request waited 40 ms for an ACK
    /// (`../shared/python/PROTOCOL.md` §10.10). Set before the reads up to that request;
    /// after it, each reply carries the acknowledgement of its request. Nothing for Unix
    /// sockets and elsewhere.
    pub(crate) fn quickack(&self) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if let SocketWriter::Tcp(w) = self {
            let _ = socket2::SockRef::from(w.as_ref()).set_tcp_quickack(true);
        }
    }

    /// Write what the socket takes right now, without waiting.
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            SocketWriter::Tcp(w) => w.try_write(buf),
            SocketWriter::Unix(w) => w.try_write(buf),
            SocketWriter::Tls(w) => w.try_write(buf),
        }
    }

    /// Whether bytes taken by [`try_write`](Self::try_write) still wait to be written
    /// (TLS records the socket did not take): then the writer is not done until
    /// [`writable`](Self::writable) returns.
    pub(crate) fn backlogged(&self) -> bool {
        match self {
            SocketWriter::Tls(w) => w.backlogged(),
            SocketWriter::Tcp(_) | SocketWriter::Unix(_) => false,
        }
    }

    /// Wait until the socket may take more (for TLS: until what waits is written).
    pub(crate) async fn writable(&self) -> io::Result<()> {
        match self {
            SocketWriter::Tcp(w) => w.writable().await,
            SocketWriter::Unix(w) => w.writable().await,
            SocketWriter::Tls(w) => w.writable().await,
        }
    }
}

impl AsyncWrite for SocketWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            SocketWriter::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            SocketWriter::Unix(w) => Pin::new(w).poll_write(cx, buf),
            SocketWriter::Tls(w) => w.poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            SocketWriter::Tcp(w) => Pin::new(w).poll_flush(cx),
            SocketWriter::Unix(w) => Pin::new(w).poll_flush(cx),
            SocketWriter::Tls(w) => w.poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            SocketWriter::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            SocketWriter::Unix(w) => Pin::new(w).poll_shutdown(cx),
            SocketWriter::Tls(w) => w.poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes, BytesMut};
    use tokio_util::codec::{Decoder, Encoder};

    use super::*;
    use crate::TransportError;

    #[test]
    fn frames_round_trip_and_split_anywhere() {
        let mut codec = frame_codec(1024);
        let mut wire = BytesMut::new();
        codec
            .encode(Bytes::from_static(b"hello"), &mut wire)
            .unwrap();
        codec.encode(Bytes::from_static(b""), &mut wire).unwrap();
        codec
            .encode(Bytes::from_static(b"world!"), &mut wire)
            .unwrap();
        assert_eq!(&wire[..4], &[0, 0, 0, 5]);
        // Feed one byte at a time: frames only come out whole.
        let mut input = BytesMut::new();
        let mut out = Vec::new();
        for b in wire.iter() {
            input.put_u8(*b);
            while let Some(frame) = codec.decode(&mut input).unwrap() {
                out.push(frame.freeze());
            }
        }
        assert_eq!(out, vec![&b"hello"[..], &b""[..], &b"world!"[..]]);
    }

    #[test]
    fn pushed_frames_decode_and_errors_leave_the_buffer_alone() {
        let mut buf = Vec::new();
        push_frame(&mut buf, &(1u8, "ab"), 64).unwrap();
        let mut bytes = BytesMut::new();
        push_frame(&mut bytes, &(1u8, "ab"), 64).unwrap();
        assert_eq!(buf, &bytes[..]);
        assert!(matches!(
            push_frame(&mut buf, &vec![0u8; 100], 64),
            Err(FrameError::TooLarge(101))
        ));
        let mut codec = frame_codec(64);
        let mut input = BytesMut::from(&buf[..]);
        let frame = codec.decode(&mut input).unwrap().unwrap();
        assert_eq!(&frame[..], &[1, 2, b'a', b'b']);
        assert!(input.is_empty(), "the refused frame left nothing behind");
    }

    #[test]
    fn scan_sees_whole_frames_and_what_the_next_one_lacks() {
        assert_eq!(scan(&[], 8).unwrap(), (0, 4));
        assert_eq!(scan(&[0, 0, 0], 8).unwrap(), (0, 1));
        assert_eq!(scan(&[0, 0, 0, 0], 8).unwrap(), (4, 4));
        assert_eq!(scan(&[0, 0, 0, 2, b'a'], 8).unwrap(), (0, 1));
        assert_eq!(scan(&[0, 0, 0, 2, b'a', b'b'], 8).unwrap(), (6, 4));
        assert_eq!(scan(&[0, 0, 0, 1, b'a', 0, 0], 8).unwrap(), (5, 2));
        // An oversized frame: an error, but only once the frames before it are taken.
        assert!(matches!(
            scan(&[0, 0, 0, 9], 8),
            Err(crate::TransportError::FrameTooLarge)
        ));
        assert_eq!(scan(&[0, 0, 0, 1, b'a', 0, 0, 0, 9], 8).unwrap(), (5, 0));
        let batch = [0, 0, 0, 1, b'a', 0, 0, 0, 0, 0, 0, 0, 2, b'b', b'c'];
        let bodies: Vec<&[u8]> = frames(&batch).collect();
        assert_eq!(bodies, [&b"a"[..], &b""[..], &b"bc"[..]]);
    }

    #[test]
    fn oversized_frame_is_a_typed_error() {
        let mut codec = frame_codec(8);
        let mut input = BytesMut::from(&[0u8, 0, 0, 9][..]);
        let err = codec.decode(&mut input).unwrap_err();
        assert!(matches!(
            TransportError::from(err),
            TransportError::FrameTooLarge
        ));
    }

    #[test]
    fn truncated_frame_waits_then_eof_is_an_error() {
        let mut codec = frame_codec(64);
        let mut input = BytesMut::from(&[0u8, 0, 0, 5, b'a', b'b'][..]);
        assert!(codec.decode(&mut input).unwrap().is_none());
        assert!(codec.decode_eof(&mut input).is_err());
    }
}
