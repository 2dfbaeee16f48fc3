//! The floor: the least a client/server over the same socket can do for one call: a u32
//! length prefix, a postcard-encoded request enum, a HashMap mutation, a reply. It lives
//! here, not in the library.

use std::collections::HashMap;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};

/// A floor request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    Incr(String),
    Get(String),
    Set(String, u64),
    Echo(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// A floor reply.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Count(u64),
    Value(Option<u64>),
    Done,
    Echo(#[serde(with = "serde_bytes")] Vec<u8>),
}

pub(crate) async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Result<bool> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > 64 * 1024 * 1024 {
        bail!("frame too large");
    }
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    Ok(true)
}

pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> Result<()> {
    w.write_all(&(body.len() as u32).to_be_bytes()).await?;
    w.write_all(body).await?;
    Ok(())
}

/// Serve one connection: requests in, replies out, in order; flush when no request is
/// buffered (so pipelined requests share system calls, as the library's writer does).
pub(crate) async fn serve_connection<S>(
    stream: S,
    store: std::sync::Arc<std::sync::Mutex<HashMap<String, u64>>>,
) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (r, w) = tokio::io::split(stream);
    let mut r = BufReader::new(r);
    let mut w = BufWriter::new(w);
    let mut buf = Vec::new();
    loop {
        if !read_frame(&mut r, &mut buf).await? {
            return Ok(());
        }
        let reply = match postcard::from_bytes::<Request>(&buf)? {
            Request::Incr(k) => {
                let mut map = store.lock().unwrap();
                let v = map.entry(k).or_insert(0);
                *v += 1;
                Reply::Count(*v)
            }
            Request::Get(k) => Reply::Value(store.lock().unwrap().get(&k).copied()),
            Request::Set(k, v) => {
                store.lock().unwrap().insert(k, v);
                Reply::Done
            }
            Request::Echo(b) => Reply::Echo(b),
        };
        let out = postcard::to_stdvec(&reply)?;
        write_frame(&mut w, &out).await?;
        if r.buffer().is_empty() {
            w.flush().await?;
        }
    }
}

/// A floor client: one call at a time, or `depth` in flight (replies come in order).
pub(crate) struct FloorClient<S> {
    r: BufReader<tokio::io::ReadHalf<S>>,
    w: BufWriter<tokio::io::WriteHalf<S>>,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> FloorClient<S> {
    pub(crate) fn new(stream: S) -> Self {
        let (r, w) = tokio::io::split(stream);
        FloorClient {
            r: BufReader::new(r),
            w: BufWriter::new(w),
            buf: Vec::new(),
        }
    }

    pub(crate) async fn send(&mut self, request: &Request) -> Result<()> {
        let body = postcard::to_stdvec(request)?;
        write_frame(&mut self.w, &body).await
    }

    pub(crate) async fn flush(&mut self) -> Result<()> {
        Ok(self.w.flush().await?)
    }

    /// Whether a reply is already buffered (no need to flush before reading it).
    pub(crate) fn has_buffered_reply(&self) -> bool {
        !self.r.buffer().is_empty()
    }

    pub(crate) async fn recv(&mut self) -> Result<Reply> {
        if !read_frame(&mut self.r, &mut self.buf).await? {
            bail!("floor server closed");
        }
        Ok(postcard::from_bytes(&self.buf)?)
    }

    pub(crate) async fn call(&mut self, request: &Request) -> Result<Reply> {
        self.send(request).await?;
        self.flush().await?;
        self.recv().await
    }
}
