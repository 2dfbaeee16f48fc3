//! A reply as the client keeps it: detached from the frame it came in, so that the reader
//! can reuse its buffers while callers take their replies later. Plain data, shared by the
//! I/O-free core (`core.rs`) and the connection (`connection.rs`).

use bytes::Bytes;
use manager_core::wire::{ObjectInfo, Reply};
use manager_core::Token;

use crate::{Error, TransportError};

/// A reply, detached from the frame it came in.
#[derive(Debug)]
pub(crate) enum OwnedReply {
    Value(Payload),
    /// A value whose effect the server undoes unless it is acknowledged: taking the reply
    /// acknowledges it (it is then a `Value`), dropping it untaken cancels it.
    Effect(Payload),
    Created(Token),
    Text(String),
    Count(u64),
    DebugInfo(Vec<ObjectInfo>),
    Description(Vec<manager_core::describe::TypeDescription>),
    Session(manager_core::wire::Session),
    Stats(manager_core::stats::ServerStats),
}

impl OwnedReply {
    pub(crate) fn from_frame(reply: Reply<'_>, frame: &Bytes) -> Self {
        match reply {
            Reply::Value(v) => OwnedReply::Value(Payload::new(v, frame)),
            Reply::Effect(v) => OwnedReply::Effect(Payload::new(v, frame)),
            Reply::Created(t) => OwnedReply::Created(t),
            Reply::Text(t) => OwnedReply::Text(t),
            Reply::Count(n) => OwnedReply::Count(n),
            Reply::DebugInfo(rows) => OwnedReply::DebugInfo(rows),
            Reply::Description(types) => OwnedReply::Description(types),
            Reply::Session(session) => OwnedReply::Session(session),
            Reply::Stats(stats) => OwnedReply::Stats(stats),
        }
    }

    /// A reply of a kind the request cannot get is a protocol violation.
    pub(crate) fn unexpected(&self) -> Error {
        Error::Transport(TransportError::Protocol(format!(
            "unexpected reply kind: {self:?}"
        )))
    }
}

/// An encoded result: small ones copied out of the frame they came in (the caller, on
/// another thread, then never touches the frame's reference count), larger ones a
/// zero-copy slice of it.
#[derive(Debug)]
pub(crate) enum Payload {
    Small {
        len: u8,
        bytes: [u8; Payload::SMALL],
    },
    Shared(Bytes),
}

impl Payload {
    const SMALL: usize = 30;

    /// `value`, a part of `frame`.
    pub(crate) fn new(value: &[u8], frame: &Bytes) -> Self {
        match value.len() {
            len @ 0..=Payload::SMALL => {
                let mut bytes = [0; Payload::SMALL];
                bytes[..len].copy_from_slice(value);
                Payload::Small {
                    len: len as u8,
                    bytes,
                }
            }
            _ => Payload::Shared(frame.slice_ref(value)),
        }
    }

    pub(crate) fn into_bytes(self) -> Bytes {
        match self {
            Payload::Shared(bytes) => bytes,
            small => Bytes::copy_from_slice(&small),
        }
    }
}

impl From<Bytes> for Payload {
    fn from(bytes: Bytes) -> Self {
        Payload::Shared(bytes)
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Payload::Small { len, bytes } => &bytes[..*len as usize],
            Payload::Shared(bytes) => bytes,
        }
    }
}
