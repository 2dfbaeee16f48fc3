//! What every connection of one server shares: its limits, its registry of typeids, its
//! object table and the books beside it ([`ServerState`]), and object creation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use manager_core::ledger::Owner;
use manager_core::{Address, Codec, ObjectId, RemoteError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::caller::{ConnId, Hooks};
use super::registry::{Creator, Registration};
use super::{admission, memory, objects, sessions, stats, throttle};
use crate::client::handoff::{self, AdoptContext};
use crate::transport::DEFAULT_MAX_FRAME;
use crate::AuthKey;
use tracing::{info, warn};

/// Limits a server enforces; see [`ServerBuilder`](super::ServerBuilder) for each.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_frame: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_handshakes: usize,
    pub(crate) max_calls_in_flight: usize,
    pub(crate) hold_timeout: Duration,
    pub(crate) stalled_frame_timeout: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_pending_handoffs: usize,
    pub(crate) release_memory: bool,
    pub(crate) python_clients: bool,
    pub(crate) client_shutdown: bool,
    pub(crate) session_grace: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(5),
            max_connections: 1024,
            max_handshakes: 256,
            max_calls_in_flight: 1024,
            hold_timeout: Duration::from_secs(60),
            stalled_frame_timeout: Some(Duration::from_secs(30)),
            idle_timeout: None,
            max_pending_handoffs: objects::DEFAULT_MAX_PENDING,
            release_memory: true,
            python_clients: false,
            client_shutdown: false,
            session_grace: None,
        }
    }
}

/// What every connection task of one server shares.
pub(crate) struct ServerState {
    pub(crate) address: Address,
    pub(crate) authkey: AuthKey,
    pub(crate) limits: Limits,
    pub(super) registry: HashMap<String, Registration>,
    /// The shared types objects of this server may share without a registration
    /// (`method_to_typeid` results), by name: their typeid is their name.
    shared_types: HashMap<&'static str, &'static [manager_core::MethodInfo]>,
    pub(crate) objects: objects::ObjectTable,
    /// Cancelled to shut the server down; each connection holds a child token.
    pub(crate) cancel: CancellationToken,
    /// Every task the server spawned, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// Numbers connections for the object table's holder bookkeeping.
    next_connection: AtomicU64,
    /// Numbers the proxies held inside the server, each an owner of its own.
    next_proxy: AtomicU64,
    /// What to undo when a connection closes.
    pub(crate) hooks: Arc<Hooks>,
    /// Connections still in the handshake.
    pub(crate) handshakes: Arc<admission::Handshakes>,
    /// Warnings peers can cause at will, throttled.
    pub(crate) warnings: throttle::Warnings,
    /// Gives memory back after a burst of connections.
    pub(super) reclaim: Arc<memory::Reclaim>,
    /// TLS for TCP connections, if required.
    pub(crate) tls: Option<Arc<crate::transport::tls::ServerConfig>>,
    /// This server instance: random, carried in its tokens and sessions.
    pub(crate) epoch: u64,
    /// Client sessions that can be resumed after their connection drops.
    pub(crate) sessions: Arc<sessions::Sessions>,
    /// Connections, waiting calls, calls per typeid and method.
    pub(crate) stats: Arc<stats::Stats>,
}

impl ServerState {
    /// The state of a server bound to `address`, serving `registrations`.
    pub(super) fn new(
        address: Address,
        authkey: AuthKey,
        limits: Limits,
        registrations: Vec<Registration>,
        tls: Option<Arc<crate::transport::tls::ServerConfig>>,
    ) -> Arc<Self> {
        let mut registry = HashMap::new();
        let objects = objects::ObjectTable::new(limits.max_pending_handoffs);
        for mut reg in registrations {
            if let Creator::Instance { id, .. } = &mut reg.creator {
                *id = objects.allocate_id();
            }
            if registry.insert(reg.typeid.clone(), reg).is_some() {
                warn!("a typeid was registered twice; the later registration wins");
            }
        }
        let mut shared_types = HashMap::new();
        for reg in registry.values() {
            manager_core::describe::shared_types(reg.methods, &mut shared_types);
        }
        let handshakes = Arc::new(admission::Handshakes::new(
            limits.max_handshakes,
            (limits.handshake_timeout / 50)
                .clamp(Duration::from_millis(10), Duration::from_secs(1)),
        ));
        let reclaim = Arc::new(memory::Reclaim::new(limits.release_memory));
        Arc::new(ServerState {
            address,
            authkey,
            limits,
            registry,
            shared_types,
            objects,
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            next_connection: AtomicU64::new(0),
            next_proxy: AtomicU64::new(0),
            hooks: Arc::default(),
            warnings: throttle::Warnings::default(),
            reclaim,
            handshakes,
            tls,
            epoch: random_epoch(),
            sessions: Arc::default(),
            stats: Arc::default(),
        })
    }

    /// Release everything connection (or session) `conn` holds: run its disconnect hooks
    /// (locks it held are released) and drop its references.
    pub(crate) fn release_connection(&self, conn: ConnId) {
        self.hooks.closed(conn);
        let released = self.objects.release_connection(conn);
        if !released.is_empty() {
            info!(
                objects = released.len(),
                "freed objects of a closed connection"
            );
        }
    }

    /// The server's statistics now.
    pub(crate) fn stats(&self) -> manager_core::stats::ServerStats {
        self.stats.snapshot(&self.objects, self.sessions.parked())
    }

    /// Whether `methods` (a client's idea of `typeid`: name and fingerprint of each) fit
    /// the server's type behind `typeid`.
    pub(crate) fn schema_of(
        &self,
        typeid: &str,
        methods: &[(String, u64)],
    ) -> std::result::Result<(), manager_core::RemoteError> {
        let Some(server_methods) = self.methods_of(typeid) else {
            return Err(manager_core::RemoteError::UnknownTypeid {
                typeid: typeid.to_owned(),
            });
        };
        let differences = manager_core::describe::compare(
            methods.iter().map(|(n, f)| (n.as_str(), *f)),
            server_methods,
        );
        match differences.is_empty() {
            true => Ok(()),
            false => Err(manager_core::RemoteError::SchemaMismatch {
                typeid: typeid.to_owned(),
                differences,
            }),
        }
    }

    /// The methods of the type behind `typeid`: a registration's, or a type objects share
    /// through `method_to_typeid` (whose typeid is its name).
    pub(crate) fn methods_of(&self, typeid: &str) -> Option<&'static [manager_core::MethodInfo]> {
        match self.registry.get(typeid) {
            Some(registration) => Some(registration.methods),
            None => self.shared_types.get(typeid).copied(),
        }
    }

    pub(crate) fn next_connection_id(&self) -> ConnId {
        self.next_connection.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A new owner for a proxy held inside the server.
    pub(crate) fn proxy_owner(&self) -> Owner {
        Owner::Proxy(self.next_proxy.fetch_add(1, Ordering::Relaxed))
    }

    /// Create (or take a reference to) an object of `typeid`, held by `holder`; proxies
    /// among the arguments are adopted in `context` (the server's: they become
    /// references held by the new object).
    pub(crate) fn create(
        &self,
        typeid: &str,
        args: &[u8],
        codec: Codec,
        expected: Option<&str>,
        holder: Owner,
        context: &AdoptContext,
    ) -> Result<ObjectId, RemoteError> {
        if !self.registration(typeid)?.create_method {
            return Err(RemoteError::CreateNotAllowed {
                typeid: typeid.to_owned(),
            });
        }
        self.construct(typeid, args, codec, expected, holder, context)
    }

    fn registration(&self, typeid: &str) -> Result<&Registration, RemoteError> {
        self.registry
            .get(typeid)
            .ok_or_else(|| RemoteError::UnknownTypeid {
                typeid: typeid.to_owned(),
            })
    }

    /// Whether `typeid` is a shared instance (every create returns the same object).
    pub(crate) fn is_instance(&self, typeid: &str) -> bool {
        self.registry
            .get(typeid)
            .is_some_and(|r| matches!(r.creator, Creator::Instance { .. }))
    }

    /// [`ServerState::create`] without the `create_method` check: the server's own
    /// objects (an `Iterator` a method returns to a Python client).
    pub(crate) fn construct(
        &self,
        typeid: &str,
        args: &[u8],
        codec: Codec,
        expected: Option<&str>,
        holder: Owner,
        context: &AdoptContext,
    ) -> Result<ObjectId, RemoteError> {
        let reg = self.registration(typeid)?;
        if let Some(expected) = expected {
            if expected != reg.kind {
                return Err(RemoteError::TypeMismatch {
                    typeid: typeid.to_owned(),
                    expected: expected.to_owned(),
                    actual: reg.kind.to_owned(),
                });
            }
        }
        match &reg.creator {
            Creator::Constructor(construct) => {
                // Proxies among the arguments become references held by the new object.
                let object = handoff::with_context(context, || construct(args, codec))?;
                Ok(self.objects.insert(typeid, object, holder))
            }
            Creator::Instance { id, object } => {
                // A shared instance is made once, by the server: arguments would be
                // ignored, so they are refused (`()` encodes as nothing).
                if !args.is_empty() {
                    return Err(RemoteError::BadArguments {
                        method: "<create>".to_owned(),
                        typeid: typeid.to_owned(),
                        reason: "a shared instance takes no arguments: create it with ()"
                            .to_owned(),
                    });
                }
                self.objects
                    .insert_or_incref(*id, typeid, object.clone(), holder);
                Ok(*id)
            }
        }
    }
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// A random server instance number (never 0).
fn random_epoch() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).expect("the operating system random generator failed");
    u64::from_le_bytes(bytes).max(1)
}
