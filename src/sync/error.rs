use serde::{Deserialize, Serialize};

/// What a SyncManager operation can fail with.
///
/// The first variants are the conditions Python raises as exceptions (`queue.Empty`,
/// `RuntimeError` on releasing an unowned lock, `BrokenBarrierError`, ...); they travel
/// from the server as values, so the client gets them typed. [`SyncError::Manager`] is
/// anything else: the connection failed, or the object is gone.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SyncError {
    /// `get` on an empty queue did not get an item (non-blocking, or timed out).
    #[error("the queue is empty")]
    Empty,
    /// `put` on a full queue could not add the item (non-blocking, or timed out).
    #[error("the queue is full")]
    Full,
    /// A release of a lock that this holder does not hold.
    #[error("cannot release a lock that is not held by this holder")]
    NotOwner,
    /// A release of a lock that is not locked.
    #[error("release of an unlocked lock")]
    NotLocked,
    /// A bounded semaphore was released more times than it was acquired.
    #[error("semaphore released too many times")]
    TooManyReleases,
    /// The barrier is broken (a party timed out, aborted or disconnected), or was reset
    /// while waiting.
    #[error("the barrier is broken")]
    BrokenBarrier,
    /// `task_done` was called more times than items were put.
    #[error("task_done() called too many times")]
    TooManyTaskDone,
    /// A key or attribute that is not there (Python's `KeyError` / `AttributeError`), or a
    /// value `index`/`remove` did not find (`ValueError`).
    #[error("not found: {0}")]
    NotFound(String),
    /// An index out of range (Python's `IndexError`), or a `pop` from an empty container.
    #[error("index out of range: {0}")]
    OutOfRange(String),
    /// A value could not be converted to or from the stored form, or another invalid
    /// argument.
    #[error("invalid value: {0}")]
    Invalid(String),
    /// The manager failed: transport, authentication, or a remote error.
    #[error(transparent)]
    #[serde(skip)]
    Manager(#[from] crate::Error),
}

impl SyncError {
    /// Whether the manager refused the operation for want of capacity (too many calls
    /// waiting on this connection, [`crate::RemoteError::Busy`]): it did not happen, and
    /// may be tried again as it is.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SyncError::Manager(e) if e.is_retryable())
    }
}

/// The server-side outcome of a SyncManager operation. Not named `Result`, so that
/// `#[shared]` sends it to the client as a value (typed) rather than as a remote error.
pub(crate) type Outcome<T> = std::result::Result<T, SyncError>;

/// Flatten a proxy call's result.
pub(crate) fn flatten<T>(r: Result<Outcome<T>, crate::Error>) -> Result<T, SyncError> {
    r.map_err(SyncError::Manager)?
}
