//! The contract both ends of a `managers` connection agree on, with no I/O.
//!
//! This crate holds what a server and a client must share byte for byte and nothing that
//! touches a socket, a clock or the OS random generator (the model is `quinn-proto`):
//!
//! - [`ObjectId`], [`Token`] and [`Address`]: how a shared object is named;
//! - [`wire`]: the versioned request and response messages;
//! - [`Codec`]: the format-neutral seam every payload goes through (postcard today);
//! - [`handshake`]: the mutual HMAC-SHA256 challenge-response, as a state machine;
//! - [`ledger`]: the reference counts of the object table and of each connection;
//! - [`pickle`]: Python pickles as data, for CPython clients (decoded without running them);
//! - [`Shared`] and friends: the traits that `#[shared]` generated code implements.
//!
//! Users normally reach all of this through the `managers` facade crate.

mod codec;
pub mod describe;
mod error;
pub mod handshake;
mod id;
pub mod ledger;
pub mod pickle;
mod shared;
pub mod stats;
pub mod wire;

pub use codec::{Codec, CodecError};
pub use error::RemoteError;
pub use id::{Address, AddressParseError, ObjectId, Token};
#[doc(hidden)]
pub use shared::{
    decode_args, encode_result, encode_typed_result, encode_value, unknown_method_index,
    wrong_receiver, TypedError,
};
pub use shared::{
    finish, panic_message, CallFuture, CallOutcome, CallResult, DisplayFallback, DisplayViaTrait,
    ExclusiveGuard, MethodInfo, Receiver, Returned, Shared, SharedGuard, Unsupported, Waiting,
};
