//! What a server reports about itself: connections, objects, calls
//! ([`Request::Stats`](crate::wire::Request::Stats)).

use serde::{Deserialize, Serialize};

/// A server's counters at one moment.
///
/// Call counts are exact for every call whose reply went out before the statistics were
/// taken: a connection adds its calls to the server's counts before it writes their
/// replies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStats {
    /// Connections open now (Rust and Python clients, authenticated).
    pub connections: u64,
    /// Connections authenticated since the server started.
    pub connections_total: u64,
    /// Sessions whose connection dropped, kept for their grace period.
    pub sessions_parked: u64,
    /// Calls waiting on the server now: a blocked `get`, a contended lock, an `async fn`
    /// that awaits.
    pub calls_waiting: u64,
    /// Live objects per typeid, sorted by typeid.
    pub objects: Vec<TypeidObjects>,
    /// Calls per typeid and method since the server started, sorted by typeid then method.
    pub calls: Vec<MethodCalls>,
}

/// How many objects of one typeid are alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeidObjects {
    /// The typeid.
    pub typeid: String,
    /// Live objects created under it.
    pub objects: u64,
}

/// The calls of one method of one typeid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodCalls {
    /// The typeid the objects called were created under.
    pub typeid: String,
    /// The method.
    pub method: String,
    /// Calls made (answered or not yet).
    pub calls: u64,
    /// Calls that failed: the method's error, a panic, arguments that did not decode, a
    /// deadline, a refusal.
    pub errors: u64,
}

impl ServerStats {
    /// The calls of `method` of `typeid`, if any were made.
    pub fn calls_of(&self, typeid: &str, method: &str) -> Option<&MethodCalls> {
        self.calls
            .iter()
            .find(|c| c.typeid == typeid && c.method == method)
    }

    /// The live objects of `typeid` (0 if none).
    pub fn objects_of(&self, typeid: &str) -> u64 {
        self.objects
            .iter()
            .find(|o| o.typeid == typeid)
            .map_or(0, |o| o.objects)
    }
}
