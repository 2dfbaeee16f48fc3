//! The tokio runtime of `managers`: listeners, the authenticated connection, the server
//! with its registry and refcounted object table, clients and proxy handles.
//!
//! Users normally reach this through the `managers` facade crate, which re-exports it.
//!
//! # Cancel safety
//! Every async operation documents what dropping its future does on the wire. In short:
//! a dropped call abandons its reply but may still run on the server; a dropped
//! [`Server::serve_forever`] closes every connection.

mod auth;
mod client;
mod error;
mod manager;
mod server;
mod transport;

pub use auth::AuthKey;
pub use client::{Client, ClientBuilder, Proxy, ProxyHandle};
pub use error::{Error, HandshakeError, Result, TransportError};
pub use manager::Manager;
pub use manager_core::wire::ObjectInfo;
pub use manager_core::{Address, AddressParseError, ObjectId, RemoteError, Token};
pub use server::{Registration, Server, ServerBuilder, ShutdownHandle};
pub use transport::DEFAULT_MAX_FRAME;

/// Anything that names a manager address: `&str`/`String` (parsed as `host:port`,
/// `unix:PATH` or a path), an [`Address`], or a `SocketAddr`.
pub trait IntoAddress {
    /// Convert, or say why the text is not an address.
    fn into_address(self) -> std::result::Result<Address, AddressParseError>;
}

impl IntoAddress for Address {
    fn into_address(self) -> std::result::Result<Address, AddressParseError> {
        Ok(self)
    }
}

impl IntoAddress for &Address {
    fn into_address(self) -> std::result::Result<Address, AddressParseError> {
        Ok(self.clone())
    }
}

impl IntoAddress for &str {
    fn into_address(self) -> std::result::Result<Address, AddressParseError> {
        self.parse()
    }
}

impl IntoAddress for String {
    fn into_address(self) -> std::result::Result<Address, AddressParseError> {
        self.parse()
    }
}

impl IntoAddress for &String {
    fn into_address(self) -> std::result::Result<Address, AddressParseError> {
        self.parse()
    }
}

impl IntoAddress for std::net::SocketAddr {
    fn into_address(self) -> std::result::Result<Address, AddressParseError> {
        Ok(Address::from(self))
    }
}

impl IntoAddress for &std::path::Path {
    fn into_address(self) -> std::result::Result<Address, AddressParseError> {
        Ok(Address::Unix(self.to_path_buf()))
    }
}

impl IntoAddress for std::path::PathBuf {
    fn into_address(self) -> std::result::Result<Address, AddressParseError> {
        Ok(Address::Unix(self))
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM: pass it to [`Server::serve_until`].
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
