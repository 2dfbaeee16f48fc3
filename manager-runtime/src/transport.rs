//! Sockets: TCP and Unix listeners and streams, behind one type, plus the frame codec.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;

use manager_core::Address;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_util::codec::LengthDelimitedCodec;

/// The read half of a connection.
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

/// Whether `buf` (what a frame reader has buffered) holds a whole frame: when it does not,
/// the next frame has to wait for the socket.
pub(crate) fn holds_frame(buf: &[u8]) -> bool {
    match buf.get(..4) {
        Some(len) => {
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            buf.len() - 4 >= len
        }
        None => false,
    }
}

pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Bind `address`; returns the listener and the address actually bound.
    pub(crate) async fn bind(address: &Address) -> io::Result<(Self, Address)> {
        match address {
            Address::Tcp(a) => {
                let l = TcpListener::bind(a.as_str()).await?;
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

    /// Accept one connection; returns its halves and a peer description for logs.
    pub(crate) async fn accept(&self) -> io::Result<(ReadHalf, SocketWriter, String)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                s.set_nodelay(true)?;
                let (r, w) = s.into_split();
                Ok((Box::pin(r), SocketWriter::Tcp(w), peer.to_string()))
            }
            Listener::Unix(l, p) => {
                let (s, _) = l.accept().await?;
                let (r, w) = s.into_split();
                Ok((
                    Box::pin(r),
                    SocketWriter::Unix(w),
                    format!("unix:{}", p.display()),
                ))
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

/// Connect to `address`.
pub(crate) async fn connect(address: &Address) -> io::Result<(ReadHalf, SocketWriter)> {
    match address {
        Address::Tcp(a) => {
            let s = TcpStream::connect(a.as_str()).await?;
            s.set_nodelay(true)?;
            let (r, w) = s.into_split();
            Ok((Box::pin(r), SocketWriter::Tcp(w)))
        }
        Address::Unix(p) => {
            let s = UnixStream::connect(p).await?;
            let (r, w) = s.into_split();
            Ok((Box::pin(r), SocketWriter::Unix(w)))
        }
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
}

impl SocketWriter {
    /// Write what the socket takes right now, without waiting.
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            SocketWriter::Tcp(w) => w.try_write(buf),
            SocketWriter::Unix(w) => w.try_write(buf),
        }
    }

    /// Wait until the socket may take more.
    pub(crate) async fn writable(&self) -> io::Result<()> {
        match self {
            SocketWriter::Tcp(w) => w.writable().await,
            SocketWriter::Unix(w) => w.writable().await,
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
        }
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            SocketWriter::Tcp(w) => Pin::new(w).poll_flush(cx),
            SocketWriter::Unix(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            SocketWriter::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            SocketWriter::Unix(w) => Pin::new(w).poll_shutdown(cx),
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
    fn holds_frame_sees_only_whole_frames() {
        assert!(!holds_frame(&[]));
        assert!(!holds_frame(&[0, 0, 0]));
        assert!(holds_frame(&[0, 0, 0, 0]));
        assert!(!holds_frame(&[0, 0, 0, 2, b'a']));
        assert!(holds_frame(&[0, 0, 0, 2, b'a', b'b']));
        assert!(holds_frame(&[0, 0, 0, 1, b'a', 0, 0]));
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
