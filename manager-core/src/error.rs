use serde::{Deserialize, Serialize};

/// A failure the server reports for one request; the connection stays usable.
///
/// These travel on the wire, so the enum is append-only: new variants go at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// No typeid of that name is registered on the server.
    #[error("typeid `{typeid}` is not registered on this manager")]
    UnknownTypeid {
        /// The typeid asked for.
        typeid: String,
    },
    /// The typeid exists but was registered with `create_method = false`.
    #[error("typeid `{typeid}` cannot be created by clients (registered without create method)")]
    CreateNotAllowed {
        /// The typeid asked for.
        typeid: String,
    },
    /// The object id is not (or no longer) in the server's object table.
    #[error("no shared object with id {id} on this manager")]
    UnknownObject {
        /// The id asked for.
        id: crate::ObjectId,
    },
    /// The method exists on the type but is not in its `exposed` list.
    #[error("method `{method}` of typeid `{typeid}` is not exposed")]
    NotExposed {
        /// The method asked for.
        method: String,
        /// The object's typeid.
        typeid: String,
    },
    /// The type has no method of that name at all.
    #[error("typeid `{typeid}` has no method `{method}`")]
    UnknownMethod {
        /// The method asked for.
        method: String,
        /// The object's typeid.
        typeid: String,
    },
    /// The arguments did not decode as the method's parameter types.
    #[error("bad arguments for `{method}` of typeid `{typeid}`: {reason}")]
    BadArguments {
        /// The method called.
        method: String,
        /// The object's typeid.
        typeid: String,
        /// What the decoder said.
        reason: String,
    },
    /// The method returned `Err(e)`; this is `e.to_string()`.
    #[error("`{method}` returned an error: {message}")]
    Method {
        /// The method called.
        method: String,
        /// The `Display` text of the method's error.
        message: String,
    },
    /// The method panicked; the panic was caught at the dispatch boundary.
    #[error("`{method}` panicked: {message}")]
    Panicked {
        /// The method called.
        method: String,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// The typeid creates objects of another shared type than the client's proxy is for.
    #[error("typeid `{typeid}` creates a `{actual}`, not the expected `{expected}`")]
    TypeMismatch {
        /// The typeid asked for.
        typeid: String,
        /// The name (`Shared::NAME`) of the type the client's proxy is for.
        expected: String,
        /// The name of the type registered under `typeid`.
        actual: String,
    },
    /// The server could not encode the method's result.
    #[error("could not encode the result of `{method}`: {reason}")]
    Encode {
        /// The method called.
        method: String,
        /// What the encoder said.
        reason: String,
    },
    /// The request itself was not valid (for example a decref of a reference the
    /// connection does not hold).
    #[error("invalid request: {0}")]
    Protocol(String),
    /// The server is shutting down and refuses new work.
    #[error("the manager is shutting down")]
    ShuttingDown,
    /// The call had to wait on the server (an `async` method, or a lock held by another
    /// call) while its connection already had `limit` calls waiting, the server's
    /// `max_calls_in_flight`. It was stopped at its first wait, exactly as if its caller
    /// had dropped it there: the shared types of `managers::sync` took nothing and hold
    /// nothing for it. The connection stays usable: retry once some of its waiting calls
    /// finish, or raise the limit on the server.
    #[error("too many calls waiting on this connection (limit {limit}); this one was not run to completion, retry later")]
    Busy {
        /// The server's limit of waiting calls per connection.
        limit: u64,
    },
    /// A client asked the server to shut down, and the server does not allow clients to.
    #[error("this server does not let clients shut it down")]
    ShutdownNotAllowed,
    /// The method returned `Err(e)` and its error type is typed (`#[shared(errors =
    /// typed)]`): `e` travels encoded, and a typed proxy method returns it as
    /// `CallError::Method(e)`. Raw calls by name see this variant.
    #[error("`{method}` returned an error: {message}")]
    TypedMethod {
        /// The method called.
        method: String,
        /// The `Display` text of the method's error (its type name if it has none).
        message: String,
        /// The error, encoded with the connection's codec.
        encoded: Vec<u8>,
    },
    /// The client's idea of the shared type behind `typeid` differs from the server's: it
    /// was built from another version of the type. Checked once per connection and typeid
    /// when a typed proxy is created, before any call could be mis-decoded. A client whose
    /// type lacks methods the server's has is compatible; one with a method the server
    /// lacks, or declares otherwise, is not.
    #[error("the client's `{typeid}` differs from the server's: {}", differences.join("; "))]
    SchemaMismatch {
        /// The typeid checked.
        typeid: String,
        /// One line per method that differs.
        differences: Vec<String>,
    },
    /// The call's deadline passed while it waited on the server, which withdrew it (see
    /// `Request::CallWithin`): nothing it would have done was done.
    #[error("the call's deadline of {timeout_ms} ms passed on the server; it was withdrawn")]
    DeadlineExceeded {
        /// The deadline the call carried, in milliseconds.
        timeout_ms: u64,
    },
}

impl RemoteError {
    /// Whether the same request may simply be sent again later: the server refused it
    /// for want of capacity ([`RemoteError::Busy`]), not because of what it asked.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RemoteError::Busy { .. })
    }

    /// The method's own error text, when the method ran and returned `Err`
    /// ([`RemoteError::Method`] or [`RemoteError::TypedMethod`]).
    pub fn method_message(&self) -> Option<&str> {
        match self {
            RemoteError::Method { message, .. } | RemoteError::TypedMethod { message, .. } => {
                Some(message)
            }
            _ => None,
        }
    }

    /// The same error naming `typeid` as the object's typeid: generated code knows only its
    /// type's name (`Shared::NAME`), the server knows the typeid the object was created by.
    pub fn with_typeid(self, typeid: &str) -> Self {
        match self {
            RemoteError::NotExposed { method, .. } => RemoteError::NotExposed {
                method,
                typeid: typeid.to_owned(),
            },
            RemoteError::UnknownMethod { method, .. } => RemoteError::UnknownMethod {
                method,
                typeid: typeid.to_owned(),
            },
            RemoteError::BadArguments { method, reason, .. } => RemoteError::BadArguments {
                method,
                typeid: typeid.to_owned(),
                reason,
            },
            other => other,
        }
    }
}
