//! The tokio runtime of `managers`: listeners, the authenticated connection, the server
//! with its registry and refcounted object table, clients and proxy handles.
//!
//! Users normally reach this through the `managers` facade crate, which re-exports it.
//!
//! How it works inside (the life of a call and of a reference, what is locked when, the
//! layers of its modules, and the thread-local and process-wide state it keeps, with why):
//! `docs/design.md` in the repository.
//!
//! # Cancel safety
//! Every async operation documents what dropping its future does on the wire. In short:
//! a dropped call abandons its reply but may still run on the server; a dropped
//! [`Server::serve_forever`] closes every connection.

mod auth;
mod client;
mod error;
#[doc(hidden)]
pub mod fuzz;
mod manager;
#[cfg(feature = "otel")]
mod otel;
pub mod python;
mod server;
mod transport;
pub mod value;

pub use auth::AuthKey;
pub use client::{
    Backoff, Call, CallFailure, Client, ClientBuilder, ConnectionState, HasProxy, LostReason,
    Pipeline, Proxy, ProxyHandle, ProxyOf,
};
pub use error::{CallError, Error, HandshakeError, Result, TlsError, TransportError};
pub use manager::Manager;
pub use manager_core::stats::{MethodCalls, ServerStats, TypeidObjects};
pub use manager_core::wire::{Holder, ObjectInfo};
pub use manager_core::{Address, AddressParseError, ObjectId, RemoteError, Token, TypedError};
pub use server::{
    Caller, CallerId, DisconnectHook, Registration, Server, ServerBuilder, ShutdownHandle,
    StatsHandle,
};
/// The rustls crate this crate uses, for [`ServerTls::from_rustls`] and
/// [`ClientTls::from_rustls`].
pub use tokio_rustls::rustls;
pub use transport::tls::{ClientTls, ServerTls};
pub use transport::DEFAULT_MAX_FRAME;
pub use value::{from_value, to_value, Opaque, Value, ValueError};

/// Helpers that `#[shared]` generated code calls. Not public API.
#[doc(hidden)]
pub mod generated {
    use std::fmt::Display;

    use manager_core::{CallResult, RemoteError, Returned, Shared};

    /// Share what a `method_to_typeid` method returned, as a new `T`.
    pub fn share_value<T: Shared + From<R>, R>(value: R) -> CallResult {
        Ok(Returned::Object {
            typeid: T::NAME,
            object: crate::server::objects::erase_boxed(T::from(value)),
        })
    }

    /// Share the `Ok` value of a fallible `method_to_typeid` method.
    pub fn share_result<T: Shared + From<R>, R, E: Display>(
        method: &str,
        result: Result<R, E>,
    ) -> CallResult {
        match result {
            Ok(value) => share_value::<T, R>(value),
            Err(e) => Err(RemoteError::Method {
                method: method.to_owned(),
                message: e.to_string(),
            }),
        }
    }

    /// The proxy a `#[derive(Proxy)]` proxy of `T` wraps, made from its handle: fails to
    /// compile unless it is a proxy of `T` too.
    pub fn inner_proxy<P: crate::Proxy<Target = T>, T: Shared>(handle: crate::ProxyHandle) -> P {
        P::from_handle(handle)
    }

    /// The return type of a method `#[shared]` reads as a plain value (not written
    /// `Result<..>`): a `Result` under another name (an alias, a renamed import) does not
    /// compile, so that the attribute, not the spelling, decides how errors travel.
    #[derive(Debug)]
    pub struct ReturnProbe<T>(std::marker::PhantomData<fn() -> T>);

    impl<T> Default for ReturnProbe<T> {
        fn default() -> Self {
            ReturnProbe(std::marker::PhantomData)
        }
    }

    impl<T, E> ReturnProbe<Result<T, E>> {
        /// Picked for a `Result` (an inherent method wins over the trait's).
        pub fn plain_value(&self)
        where
            E: ResultUnderAnotherName,
        {
        }
    }

    /// Picked for every other type.
    pub trait PlainValue {
        /// Nothing to check.
        fn plain_value(&self) {}
    }

    impl<T> PlainValue for ReturnProbe<T> {}

    /// Implemented by no type: naming a `Result` a method returns under another name.
    #[diagnostic::on_unimplemented(
        message = "this method returns a `Result` under another name, so `#[shared]` cannot \
                   see its error (error type `{Self}`)",
        label = "a `Result` behind an alias or a renamed import",
        note = "write `Result<T, E>` in the signature: `#[shared]` then sends the error as its \
                text (`errors = display`, the default) or as `E` itself (`errors = typed`); to \
                return a `Result` as a plain value, wrap it in a type of your own"
    )]
    pub trait ResultUnderAnotherName {}

    /// Fails to compile unless `T` is a shared type with a proxy.
    pub fn assert_shared<T: crate::HasProxy>() {}
}

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

/// A future that completes on SIGINT (Ctrl-C) or SIGTERM: pass it to
/// [`Server::serve_until`].
///
/// The signal handlers are installed when this function is called, not when the future is
/// first polled, so a signal that arrives in between is not lost (and does not kill the
/// process with the default action). Must be called inside a tokio runtime.
///
/// # Panics
/// If called outside a tokio runtime, or if the OS refuses to install the handlers.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt()).expect("install the SIGINT handler");
        let mut terminate = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
        async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
