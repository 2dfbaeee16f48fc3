//! The messages of an authenticated connection.
//!
//! Every frame after the handshake is one [`ClientMessage`] (client to server) or one
//! [`ServerMessage`] (server to client), encoded with postcard and length-prefixed by the
//! transport. Both are versioned enums: a new protocol revision adds a variant (`V2`), it
//! never changes `V1`. (Before the first release, `V1`'s inner enums still grow at their
//! end, as `Request::Ack`, `Reply::Effect` and `RemoteError::Busy` did. A peer that meets
//! one it does not know closes the connection with a protocol error.) No `skip_serializing_if`, `flatten` or `untagged` anywhere: postcard
//! is not self-describing and those attributes would silently mis-decode.
//!
//! Payloads (`args`, reply values) are opaque bytes produced by the connection's
//! [`Codec`](crate::Codec); messages borrow them from the frame, so decoding a call copies
//! nothing.

use serde::{Deserialize, Serialize};

use crate::{ObjectId, RemoteError, Token};

/// Identifies one request on one connection; the reply carries the same id.
pub type RequestId = u64;

/// A frame sent by a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage<'a> {
    /// Protocol revision 1.
    #[serde(borrow)]
    V1(Request<'a>),
}

/// What a client can ask of a server (protocol revision 1).
///
/// `Incref` and `Decref` have no reply: they ride the connection in order with the calls,
/// so a reference is never released before a call sent earlier on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request<'a> {
    /// Call `method` on `object` with codec-encoded `args` (a tuple of the parameters).
    Call {
        /// Echoed in the reply.
        id: RequestId,
        /// The object called.
        object: ObjectId,
        /// The method's name.
        method: &'a str,
        /// The codec-encoded argument tuple.
        #[serde(with = "serde_bytes")]
        args: &'a [u8],
    },
    /// Create (or, for a shared-instance registration, obtain) an object of `typeid`. The
    /// reply's token carries one reference, held by this connection.
    Create {
        /// Echoed in the reply.
        id: RequestId,
        /// The registered typeid.
        typeid: &'a str,
        /// The codec-encoded constructor arguments.
        #[serde(with = "serde_bytes")]
        args: &'a [u8],
        /// The `Shared::NAME` of the Rust type the client's proxy is for, checked by the
        /// server; `None` skips the check (untyped handles).
        expected: Option<&'a str>,
    },
    /// Take one more reference to `object` (a proxy was cloned).
    Incref {
        /// The object.
        object: ObjectId,
    },
    /// Release one reference to `object` (a proxy was dropped).
    Decref {
        /// The object.
        object: ObjectId,
    },
    /// Fetch the `Display` text of `object` (Python's `str(proxy)`).
    Display {
        /// Echoed in the reply.
        id: RequestId,
        /// The object.
        object: ObjectId,
    },
    /// How many objects the server holds.
    NumberOfObjects {
        /// Echoed in the reply.
        id: RequestId,
    },
    /// Typeid, id and refcount of every object.
    DebugInfo {
        /// Echoed in the reply.
        id: RequestId,
    },
    /// Put one reference to `object` in transit under `hold`: a proxy was serialised to
    /// travel. The server keeps the reference until a connection (or an object of the
    /// server) adopts the hold, or until the hold expires.
    Hold {
        /// The object.
        object: ObjectId,
        /// A random, unguessable id for this hand-off.
        hold: HoldId,
    },
    /// The caller gave up on request `id` (its future was dropped): stop the call if it is
    /// still running (a blocked `get` then takes nothing). No reply.
    Cancel {
        /// The request to stop.
        id: RequestId,
    },
    /// Take over the reference in transit under `hold` (a proxy was deserialised). If the
    /// `Hold` has not arrived yet (it travels on another connection), the server waits for
    /// it until the hold expiry.
    Adopt {
        /// The object.
        object: ObjectId,
        /// The hold to take over.
        hold: HoldId,
    },
    /// The caller took the result of request `id`, a [`Reply::Effect`]: the server may
    /// forget how to undo it. No reply. (A `Cancel` of such a request undoes it instead.)
    Ack {
        /// The request whose result was taken.
        id: RequestId,
    },
    /// Stop the server (Python's `shutdown`), if it lets clients: the reply comes first.
    /// [`crate::RemoteError::ShutdownNotAllowed`]
    /// otherwise.
    Shutdown {
        /// Echoed in the reply.
        id: RequestId,
    },
    /// Describe every registered typeid: its type's exposed methods and the registration.
    Describe {
        /// Echoed in the reply.
        id: RequestId,
    },
    /// Check the client's idea of `typeid`'s methods (name and fingerprint each) against
    /// the server's: an empty value, or `RemoteError::SchemaMismatch`.
    CheckSchema {
        /// Echoed in the reply.
        id: RequestId,
        /// The typeid.
        typeid: &'a str,
        /// The client's methods: name and `describe::method_fingerprint`.
        methods: Vec<(String, u64)>,
    },
    /// [`Request::Call`] with a deadline: the server stops waiting on the caller's behalf
    /// `timeout_ms` milliseconds after it read the request. A call still waiting then (a
    /// blocked `get`, a contended lock, an `async fn`) is withdrawn as a `Cancel` would
    /// withdraw it, and answered [`RemoteError::DeadlineExceeded`].
    CallWithin {
        /// Echoed in the reply.
        id: RequestId,
        /// The object called.
        object: ObjectId,
        /// The method's name.
        method: &'a str,
        /// The codec-encoded argument tuple.
        #[serde(with = "serde_bytes")]
        args: &'a [u8],
        /// How long the server may wait, in milliseconds from reading the request.
        timeout_ms: u64,
    },
    /// The first request of a connection (optional: a connection without it is a session
    /// that is never resumed): start a session, or resume one whose connection dropped.
    /// The reply is [`Reply::Session`].
    Hello {
        /// Echoed in the reply.
        id: RequestId,
        /// The session to resume, if any.
        resume: Option<Resume>,
    },
    /// The client is done with its session (it closes the connection on purpose): release
    /// it when the connection ends, without the grace period kept for a connection that
    /// dropped. No reply.
    Goodbye,
    /// The server's statistics: [`Reply::Stats`].
    Stats {
        /// Echoed in the reply.
        id: RequestId,
    },
    /// [`Request::Call`] (with a deadline, as [`Request::CallWithin`], if `timeout_ms` is
    /// set) made inside a traced span of the client: the server's span of the call gets
    /// `trace` as its parent, so one call can be followed across processes.
    CallTraced {
        /// Echoed in the reply.
        id: RequestId,
        /// The object called.
        object: ObjectId,
        /// The method's name.
        method: &'a str,
        /// The codec-encoded argument tuple.
        #[serde(with = "serde_bytes")]
        args: &'a [u8],
        /// The deadline, as for [`Request::CallWithin`].
        timeout_ms: Option<u64>,
        /// The caller's span.
        trace: TraceParent,
    },
    /// The client's idea of `typeid`'s methods, sent as it adopts a proxy of that typeid
    /// (deserialised, so not made by a `Create` that checked it): if it differs from the
    /// server's, every later call of this connection on an object of `typeid` is refused
    /// with `RemoteError::SchemaMismatch` instead of being mis-decoded. No reply.
    ExpectSchema {
        /// The typeid.
        typeid: &'a str,
        /// The client's methods: name and `describe::method_fingerprint`.
        methods: Vec<(String, u64)>,
    },
}

/// A span in another process, as W3C Trace Context's `traceparent` carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceParent {
    /// The trace.
    pub trace_id: [u8; 16],
    /// The span, in that trace.
    pub span_id: [u8; 8],
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

/// Identifies one client session on one server instance: 16 random bytes.
pub type SessionId = [u8; 16];

/// What a client that lost its connection sends to take its session back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The session.
    pub session: SessionId,
    /// The server instance it was opened on ([`Session::epoch`]).
    pub epoch: u64,
    /// Every object the client holds references to through the session, and how many:
    /// the server makes the session's references exactly these (reference changes sent as
    /// the connection dropped may or may not have arrived).
    pub refs: Vec<(ObjectId, u64)>,
}

/// The server's answer to [`Request::Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The session (the one resumed, or a new one).
    pub id: SessionId,
    /// This server instance: random for each start of a manager.
    pub epoch: u64,
    /// How long the server keeps a session whose connection dropped, in milliseconds; 0:
    /// it does not (the session ends with its connection).
    pub grace_ms: u64,
    /// Whether the session asked for was resumed. False for a new session, and when the
    /// one asked for is gone: its grace period passed, or the server is another instance
    /// (`epoch` differs from the one the client knew).
    pub resumed: bool,
}

/// Identifies one proxy hand-off: 16 random bytes.
pub type HoldId = [u8; 16];

/// A frame sent by a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMessage<'a> {
    /// Protocol revision 1.
    #[serde(borrow)]
    V1(Response<'a>),
}

/// The answer to one request (protocol revision 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response<'a> {
    /// The id of the request answered.
    pub id: RequestId,
    /// The outcome.
    #[serde(borrow)]
    pub result: Result<Reply<'a>, RemoteError>,
}

/// A successful outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply<'a> {
    /// The codec-encoded return value of a call.
    Value(#[serde(with = "serde_bytes")] &'a [u8]),
    /// A new reference to an object, held by the requesting connection.
    Created(Token),
    /// A `Display` text.
    Text(String),
    /// A count.
    Count(u64),
    /// One row per object.
    DebugInfo(Vec<ObjectInfo>),
    /// The codec-encoded return value of a call whose effect (a lock acquired, an item
    /// taken) the server undoes unless the caller acknowledges it with `Ack`: the caller
    /// sends `Ack` when it takes the result, `Cancel` if it drops it.
    Effect(#[serde(with = "serde_bytes")] &'a [u8]),
    /// The server's typeids, described (sorted by typeid).
    Description(Vec<crate::describe::TypeDescription>),
    /// The session of this connection ([`Request::Hello`]).
    Session(Session),
    /// The server's statistics ([`Request::Stats`]).
    Stats(crate::stats::ServerStats),
}

/// One row of `debug_info()`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// The typeid the object was created under.
    pub typeid: String,
    /// The object's id.
    pub id: ObjectId,
    /// How many references exist in total (the sum over `holders`).
    pub refcount: u64,
    /// Who holds those references, and how many each.
    pub holders: Vec<(Holder, u64)>,
}

/// Who holds a reference to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Holder {
    /// A client connection (numbered by the server in accept order).
    Connection(u64),
    /// Proxies stored inside other shared objects of the same server.
    Objects,
    /// Proxies serialised and not adopted yet.
    InTransit,
    /// CPython clients (counted together, as CPython's own server does).
    Python,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::Connection(n) => write!(f, "connection #{n}"),
            Holder::Objects => f.write_str("shared objects"),
            Holder::InTransit => f.write_str("in transit"),
            Holder::Python => f.write_str("Python clients"),
        }
    }
}

/// Encode a message into a frame body (no length prefix).
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(message)
}

/// Encode a message, handing each encoded piece to `append` in order (for buffers that copy
/// a slice faster than they take bytes one at a time).
pub fn encode_with<T: Serialize + ?Sized>(
    message: &T,
    append: impl FnMut(&[u8]),
) -> Result<(), postcard::Error> {
    struct Pieces<F>(F);
    impl<F: FnMut(&[u8])> postcard::ser_flavors::Flavor for Pieces<F> {
        type Output = ();
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            (self.0)(data);
            Ok(())
        }
        fn try_push(&mut self, data: u8) -> postcard::Result<()> {
            (self.0)(&[data]);
            Ok(())
        }
        fn finalize(self) -> postcard::Result<()> {
            Ok(())
        }
    }
    postcard::serialize_with_flavor(message, Pieces(append))
}

/// Decode a frame body; the message borrows from `frame`. Trailing bytes are an error.
pub fn decode<'a, T: Deserialize<'a>>(frame: &'a [u8]) -> Result<T, postcard::Error> {
    match postcard::take_from_bytes(frame)? {
        (message, []) => Ok(message),
        _ => Err(postcard::Error::DeserializeBadEncoding),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Address;

    fn round_trip_client(m: ClientMessage<'_>) {
        let bytes = encode(&m).unwrap();
        assert_eq!(decode::<ClientMessage<'_>>(&bytes).unwrap(), m);
    }

    fn round_trip_server(m: ServerMessage<'_>) {
        let bytes = encode(&m).unwrap();
        assert_eq!(decode::<ServerMessage<'_>>(&bytes).unwrap(), m);
    }

    #[test]
    fn every_client_message_round_trips() {
        let o = ObjectId(7);
        for r in [
            Request::Call {
                id: 1,
                object: o,
                method: "get_x",
                args: &[1, 2, 3],
            },
            Request::Create {
                id: 2,
                typeid: "Pair",
                args: &[],
                expected: Some("Pair"),
            },
            Request::Create {
                id: 2,
                typeid: "Pair",
                args: &[9],
                expected: None,
            },
            Request::Incref { object: o },
            Request::Decref { object: o },
            Request::Display { id: 3, object: o },
            Request::NumberOfObjects { id: 4 },
            Request::DebugInfo { id: 5 },
            Request::Hold {
                object: o,
                hold: [1; 16],
            },
            Request::Adopt {
                object: o,
                hold: [2; 16],
            },
            Request::Cancel { id: 6 },
            Request::Ack { id: 7 },
            Request::Hello {
                id: 8,
                resume: Some(Resume {
                    session: [9; 16],
                    epoch: 10,
                    refs: vec![(ObjectId(11), 2)],
                }),
            },
            Request::Hello {
                id: 12,
                resume: None,
            },
            Request::Goodbye,
            Request::Stats { id: 13 },
            Request::ExpectSchema {
                typeid: "Pair",
                methods: vec![("sum".into(), 19)],
            },
            Request::CallTraced {
                id: 14,
                object: ObjectId(15),
                method: "sum",
                args: &[1],
                timeout_ms: Some(16),
                trace: TraceParent {
                    trace_id: [17; 16],
                    span_id: [18; 8],
                    flags: 1,
                },
            },
        ] {
            round_trip_client(ClientMessage::V1(r));
        }
    }

    #[test]
    fn every_server_message_round_trips() {
        let token = Token {
            typeid: "Pair".into(),
            address: Address::Tcp("127.0.0.1:1".into()),
            id: ObjectId(3),
            epoch: 7,
        };
        let info = ObjectInfo {
            typeid: "Pair".into(),
            id: ObjectId(3),
            refcount: 3,
            holders: vec![
                (Holder::Connection(1), 1),
                (Holder::Objects, 1),
                (Holder::InTransit, 1),
            ],
        };
        for result in [
            Ok(Reply::Value(&[0, 255])),
            Ok(Reply::Created(token)),
            Ok(Reply::Text("hello".into())),
            Ok(Reply::Count(9)),
            Ok(Reply::DebugInfo(vec![info])),
            Ok(Reply::Effect(&[1, 2])),
            Ok(Reply::Stats(crate::stats::ServerStats {
                connections: 1,
                calls: vec![crate::stats::MethodCalls {
                    typeid: "Pair".into(),
                    method: "sum".into(),
                    calls: 2,
                    errors: 1,
                }],
                ..Default::default()
            })),
            Ok(Reply::Session(Session {
                id: [3; 16],
                epoch: 4,
                grace_ms: 5,
                resumed: true,
            })),
            Err(RemoteError::Busy { limit: 4 }),
            Err(RemoteError::UnknownObject { id: ObjectId(1) }),
            Err(RemoteError::Panicked {
                method: "boom".into(),
                message: "oops".into(),
            }),
            Err(RemoteError::ShuttingDown),
        ] {
            round_trip_server(ServerMessage::V1(Response { id: 42, result }));
        }
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        let bytes = encode(&ClientMessage::V1(Request::Call {
            id: 1,
            object: ObjectId(1),
            method: "m",
            args: &[1, 2],
        }))
        .unwrap();
        for cut in 0..bytes.len() {
            assert!(decode::<ClientMessage<'_>>(&bytes[..cut]).is_err());
        }
        assert!(decode::<ClientMessage<'_>>(&[9, 9, 9, 9]).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode::<ClientMessage<'_>>(&long).is_err());
    }
}
