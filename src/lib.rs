//! # managers
//!
//! Share typed objects between processes and machines: the compiled counterpart of
//! Python's [`multiprocessing.managers`](https://docs.python.org/3/library/multiprocessing.html#managers).
//!
//! A *manager* is a server that owns shared objects. Other processes, on this host or
//! others, connect with an authentication key and call methods on those objects through
//! *proxies*. What Python checks at run time is checked here at compile time: a method that
//! is not exposed does not exist on the proxy, and arguments and results are typed.
//!
//! ```
//! use managers::{shared, Registration, ServerBuilder};
//!
//! /// A point that several processes update.
//! pub struct Pair {
//!     x: i64,
//!     y: i64,
//! }
//!
//! #[shared(exposed = [get_x, set_x, sum])]
//! impl Pair {
//!     pub fn new(x: i64, y: i64) -> Self {
//!         Pair { x, y }
//!     }
//!     /// The x coordinate.
//!     pub fn get_x(&self) -> i64 {
//!         self.x
//!     }
//!     pub fn set_x(&mut self, x: i64) {
//!         self.x = x;
//!     }
//!     pub fn sum(&self) -> i64 {
//!         self.x + self.y
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), managers::Error> {
//! // Python: manager.register('get_pair', Pair); manager.start()
//! let manager = ServerBuilder::new()
//!     .register(Registration::constructor("get_pair", |(x, y)| Pair::new(x, y)))
//!     .start()
//!     .await?;
//! // Python: pair = manager.get_pair(1, 3)
//! let pair: PairProxy = manager.create("get_pair", (1, 3)).await?;
//! pair.set_x(10).await?;
//! assert_eq!(pair.sum().await?, 13);
//! # Ok(()) }
//! ```
//!
//! The parts:
//! - [`#[shared]`](macro@shared) on an `impl` block generates the dispatch table and a proxy
//!   type (`PairProxy` above; Python's AutoProxy).
//! - [`ServerBuilder`] with [`Registration`]s configures a server: [`Server::serve_forever`]
//!   serves in this process (Python's `get_server().serve_forever()`),
//!   [`ServerBuilder::start`] runs one in the background and returns a connected
//!   [`Manager`] (Python's `start()`).
//! - [`Client::connect`] connects to a running manager (Python's `connect()`);
//!   [`Client::create`] creates objects by typeid; the [`manager!`] macro declares a
//!   manager type with typed creation methods (Python's `create_method`).
//! - [`ProxyHandle`] is one counted reference (Python's `BaseProxy`):
//!   [`ProxyHandle::call_method`] is `_callmethod`, [`ProxyHandle::referent_to_string`] is
//!   `str(proxy)`, and `Debug` of a proxy is its `repr`.
//!
//! # The `#[shared]` attribute
//! On an inherent `impl T` block:
//! - `exposed = [a, b]`: the methods clients may call. Default: every `pub fn` taking
//!   `&self` or `&mut self` whose name does not start with `_` (Python's "public methods").
//!   A method that is not exposed does not exist on the proxy: calling it does not compile.
//!   A raw call by name ([`ProxyHandle::call_method`]) is refused by the server with
//!   [`RemoteError::NotExposed`].
//! - `name = "Name"`: the shared type's name, [`Shared::NAME`](traits::Shared::NAME)
//!   (default: the type's name). It is not a typeid: a typeid is the name clients create
//!   objects by, given by a [`Registration`] (or a `manager!` method), and one type may be
//!   registered under several. The name is what [`Client::create`] checks a typed proxy
//!   against ([`RemoteError::TypeMismatch`]), and the typeid of the objects a
//!   `method_to_typeid` method shares.
//! - `proxy = Name`: the generated proxy's name (default: `TProxy`).
//! - `custom_proxy = MyProxy`: use a hand-written proxy (see
//!   [Hand-written proxies](#hand-written-proxies)) as the type's proxy (Python's
//!   `proxytype`). No proxy is generated, unless `proxy = Name` is given too: then the
//!   typed methods are generated as `Name`, for `MyProxy` to wrap.
//! - `method_to_typeid = { method: Type }`: the value `method` returns becomes a new shared
//!   object of `Type` (built with `Type: From<Return>`), and the proxy method returns
//!   `Type`'s proxy. `Type` must be a `#[shared]` type, and `method` an exposed one: both
//!   are checked at compile time.
//! - `get_value`: generate `get_value()` on the proxy, returning a copy of the object
//!   (Python's `_getvalue()`; needs `Serialize + Deserialize`).
//! - `async_holds_lock`: allow an `async` method to hold the object's lock while it waits
//!   (see [How a shared object is locked](#how-a-shared-object-is-locked)).
//! - `errors = typed`, `errors = display` (the default) or `errors = value`: how the `Err`
//!   of methods returning `Result<T, E>` reaches the caller (see
//!   [A method's errors](#a-methods-errors)).
//!   One method can say otherwise with its own `#[shared(errors = ..)]`.
//!
//! Exposed methods take `&self` (calls run concurrently) or `&mut self` (calls are
//! serialised), any number of `Serialize + Deserialize` arguments (borrowed ones too:
//! `&str`, `&[u8]`, `Cow<'_, str>`; a lifetime hidden in a path must be written, as in
//! `Cow<'_, str>`, because the proxy's [`Call`] holds the arguments), and return a
//! serialisable value, `()` or a `Result<T, E>` (see [A method's errors](#a-methods-errors)).
//! `async fn` methods are awaited
//! without blocking the server: each runs on the connection's task until its first wait,
//! and on a task of its own from there (an `async fn` that never waits costs no task). A
//! plain `fn` runs on the connection's task: keep it short, and make anything that waits an
//! `async fn` (and anything long on the CPU `spawn_blocking`). A panic in a method is caught
//! and reported as
//! [`RemoteError::Panicked`]; the server keeps serving.
//!
//! # Hand-written proxies
//! `#[derive(Proxy)]` makes a struct a proxy of the shared type `#[proxy(target = T)]` names
//! (Python's `proxytype`). The struct wraps one field: the generated, typed proxy of `T`
//! marked `#[proxy(inner)]` (recommended: every call stays type-checked), or a
//! [`ProxyHandle`] (raw calls by name, as Python's `_callmethod`). Any other field is filled
//! with `Default::default()` when a proxy is made from a handle. The derive implements
//! [`Proxy`] and serde (a custom proxy travels like a generated one); more on request:
//!
//! - `deref`: `Deref` to the wrapped proxy, so its methods are the wrapper's too (the
//!   wrapper's own methods of the same name win);
//! - `clone` and `debug`: `Clone` field by field and the wrapped proxy's `Debug`, with no
//!   bounds on the struct's type parameters (a typed wrapper such as
//!   `QueueProxy<T>` is `Clone` whatever `T` is).
//!
//! ```
//! use managers::shared;
//!
//! pub struct Pair {
//!     x: std::sync::atomic::AtomicI64,
//! }
//!
//! // `PairCalls` is generated; `MyPair` is what clients get.
//! #[shared(proxy = PairCalls, custom_proxy = MyPair)]
//! impl Pair {
//!     pub fn get_x(&self) -> i64 {
//!         self.x.load(std::sync::atomic::Ordering::SeqCst)
//!     }
//!
//!     pub fn set_x(&self, x: i64) {
//!         self.x.store(x, std::sync::atomic::Ordering::SeqCst)
//!     }
//! }
//!
//! #[derive(Clone, Debug, managers::Proxy)]
//! #[proxy(target = Pair, deref)]
//! pub struct MyPair {
//!     #[proxy(inner)]
//!     calls: PairCalls,
//! }
//!
//! impl MyPair {
//!     /// One convenience method; `get_x` and `set_x` come through `Deref`, typed.
//!     pub async fn double(&self) -> Result<i64, managers::Error> {
//!         let x = self.get_x().await?;
//!         self.set_x(2 * x).await?;
//!         Ok(2 * x)
//!     }
//! }
//! ```
//!
//! A type parameter is fine (`struct Typed<T> { #[proxy(inner)] calls: PairCalls, _t:
//! PhantomData<fn() -> T> }`); lifetimes are not, since a proxy is an owned value. A wrapped
//! proxy of another shared type than `target` does not compile.
//!
//! # A method's errors
//! A method whose return type is written `Result<..>` (`Result<T, E>`, or a path ending in
//! `Result`: `io::Result<T>`, `anyhow::Result<T>`) returns `T` to the caller on `Ok`. Its
//! `Err` reaches the caller in one of three ways, chosen in the attribute:
//!
//! - `errors = display` (the default; needs `E: Display`): the error travels as its text.
//!   The proxy method's error type is [`Error`], and the method's `Err(e)` arrives as
//!   [`Error::Remote`]`(`[`RemoteError::Method`]` { message, .. })` with `message =
//!   e.to_string()`. For errors that only make sense on the server (`io::Error`,
//!   `anyhow::Error`).
//! - `errors = typed` (needs `E: Serialize + Deserialize`, see [`TypedError`]): the error
//!   travels as a value. The proxy method's error type is [`CallError<E>`]:
//!   [`CallError::Method`]`(e)` is the method's own error, exactly as it returned it, and
//!   [`CallError::Rpc`]`(`[`Error`]`)` a failure of the call itself (the connection, a
//!   refusal by the server, a panic in the method). The return type must name `E`
//!   (`Result<T, E>`, not an alias that hides it).
//! - `errors = value` (needs `E: Serialize + Deserialize`): the `Result` is the method's
//!   value, as with tarpc: the proxy method returns `Result<Result<T, E>, Error>`, the
//!   method's error as `Ok(Err(e))`. The return type may then be spelled any way (an alias
//!   such as `type Outcome<T> = Result<T, MyError>` included); `managers::sync` does this.
//!
//! A `Result` under another name (an alias, a renamed import) is refused at compile time
//! unless the method says `errors = value`, so that how its error travels is always the
//! attribute's choice, never the spelling's.
//!
//! `errors = ..` on the impl block sets the rule for every method; `#[shared(errors = ..)]`
//! on one method overrides it:
//!
//! ```
//! use managers::{shared, CallError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize, thiserror::Error)]
//! pub enum BoardError {
//!     #[error("a job needs a name")]
//!     EmptyName,
//! }
//!
//! pub struct Board {
//!     jobs: std::sync::Mutex<Vec<String>>,
//! }
//!
//! #[shared(errors = typed)]
//! impl Board {
//!     pub fn submit(&self, name: String) -> Result<u64, BoardError> {
//!         if name.is_empty() {
//!             return Err(BoardError::EmptyName);
//!         }
//!         let mut jobs = self.jobs.lock().unwrap();
//!         jobs.push(name);
//!         Ok(jobs.len() as u64)
//!     }
//!
//!     /// Reads a file on the server: its `io::Error` travels as text.
//!     #[shared(errors = display)]
//!     pub fn load(&self, path: String) -> std::io::Result<usize> {
//!         let text = std::fs::read_to_string(path)?;
//!         let mut jobs = self.jobs.lock().unwrap();
//!         jobs.extend(text.lines().map(str::to_owned));
//!         Ok(jobs.len())
//!     }
//! }
//!
//! # async fn demo(board: BoardProxy) -> Result<(), managers::Error> {
//! match board.submit(String::new()).await {
//!     Ok(id) => println!("job {id}"),
//!     Err(CallError::Method(BoardError::EmptyName)) => println!("name the job"),
//!     Err(CallError::Rpc(e)) => return Err(e),
//! }
//! let count: usize = board.load("jobs.txt".into()).await?; // `Error` on failure
//! # let _ = count;
//! # Ok(()) }
//! ```
//!
//! A raw call by name ([`ProxyHandle::call_method`]) of a typed method sees
//! [`RemoteError::TypedMethod`], which carries the error's text (and the error, encoded);
//! [`ProxyHandle::call_method_typed`] decodes it. Python clients see the text.
//!
//! # How a shared object is locked
//! A type with a `&mut self` method is kept behind a read-write lock: `&self` methods take
//! the read lock (they run concurrently), `&mut self` methods the write lock (alone). An
//! `async fn` holds its lock across its awaits, so an `async fn(&self)` that waits keeps
//! every `&mut self` method of the object waiting, and an `async fn(&mut self)` keeps every
//! method waiting: other clients' calls stall, with no error. `#[shared]` refuses that
//! combination at compile time, with two ways out:
//!
//! - **Interior mutability** (recommended; what `managers::sync` does): keep the state in a
//!   `Mutex`, atomics or `tokio::sync` primitives and make every method take `&self`. The
//!   type then has no lock of its own, and a method that waits holds nothing:
//!
//!   ```
//!   use std::sync::Mutex;
//!   use managers::shared;
//!
//!   pub struct Board {
//!       jobs: Mutex<Vec<u64>>,
//!       done: tokio::sync::Notify,
//!   }
//!
//!   #[shared]
//!   impl Board {
//!       pub fn take(&self) -> Option<u64> { self.jobs.lock().unwrap().pop() }
//!       pub fn finish(&self) { self.done.notify_waiters() }
//!       pub async fn wait_done(&self) { self.done.notified().await }
//!   }
//!   ```
//! - **`#[shared(async_holds_lock)]`**, when holding the lock while waiting is the point
//!   (an operation that must see no other change until it completes).
//!
//! Plain `fn` methods hold their lock only while they run; a short `&mut self` method is
//! fine.
//!
//! # Effects that are never lost
//! A call dropped after the server granted it (under `tokio::time::timeout` or in a
//! `select!`), or whose client dies while the reply is on its way, keeps no lock and takes
//! no item: the `managers::sync` types register how to undo what they did with
//! [`Caller::undo_unless_taken`], the server keeps that until the client takes the result,
//! and undoes it if the client drops the call or disconnects first. Your own types can do
//! the same:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use managers::{shared, Caller};
//!
//! pub struct Tickets(Arc<Mutex<Vec<u32>>>);
//!
//! #[shared]
//! impl Tickets {
//!     /// Take a ticket; a caller that never receives it gives it back.
//!     pub fn take(&self) -> Option<u32> {
//!         let ticket = self.0.lock().unwrap().pop()?;
//!         let tickets = self.0.clone();
//!         Caller::undo_unless_taken(move || tickets.lock().unwrap().push(ticket));
//!         Some(ticket)
//!     }
//! }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), managers::Error> {
//! # let manager = managers::ServerBuilder::new()
//! #     .register(managers::Registration::instance("tickets", Tickets(Arc::new(Mutex::new(vec![1, 2])))))
//! #     .start()
//! #     .await?;
//! let tickets: TicketsProxy = manager.create("tickets", ()).await?;
//! assert_eq!(tickets.take().await?, Some(2));
//! # Ok(()) }
//! ```
//!
//! # Errors
//! Every proxy call returns `Result<T, `[`Error`]`>`. [`Error::Remote`] is a failure of that
//! one request (the connection is fine); [`Error::Transport`] and [`Error::Auth`] mean the
//! connection failed: every call pending on it gets the same error.
//!
//! # Many calls in flight
//! A proxy method returns a [`Call`]: a small future of the result, queued when first
//! polled. Calls on one connection are pipelined: any number can be in flight, each
//! completes on its own (join them, or keep them in a `FuturesUnordered`), and dropping one
//! cancels it on the server. For bulk work, a [`Pipeline`] is cheaper still: push calls,
//! take the results in push order; calls pushed together are sent together when the
//! pipeline is next polled (still before any later request on their connection), and a
//! batch of replies wakes it once (the figures: `docs/performance.md`).
//!
//! Calls that *wait on the server* (an `async` method that did not finish at once, or a call
//! waiting for its object's lock: a blocked `get`, a contended `lock()`) are bounded per
//! connection by [`ServerBuilder::max_calls_in_flight`] (1024 by default). One more such
//! call is stopped where it waits, as if cancelled, and fails at once with
//! [`RemoteError::Busy`] ([`Error::is_retryable`]); everything else on the connection goes
//! on being served, including the calls that finish the waiting ones. Raise the limit on
//! the server if your clients keep more calls waiting on purpose. Every limit, its default
//! and what happens when it is reached: `docs/limits.md`.
//!
//! ```
//! # use managers::{shared, Registration, ServerBuilder, Pipeline};
//! # #[derive(Default)]
//! # pub struct Counter(std::sync::atomic::AtomicU64);
//! # #[shared]
//! # impl Counter {
//! #     pub fn add(&self, n: u64) -> u64 {
//! #         self.0.fetch_add(n, std::sync::atomic::Ordering::SeqCst) + n
//! #     }
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), managers::Error> {
//! # let manager = ServerBuilder::new()
//! #     .register(Registration::constructor("counter", |()| Counter::default()))
//! #     .start()
//! #     .await?;
//! let counter: CounterProxy = manager.create("counter", ()).await?;
//! // At most 16 calls in flight; the results come back in order.
//! let mut pipeline = Pipeline::new();
//! let mut sent = 0;
//! let mut last = 0;
//! while sent < 16 {
//!     pipeline.push(counter.add(1));
//!     sent += 1;
//! }
//! while let Some(total) = pipeline.next().await {
//!     last = total?;
//!     if sent < 1000 {
//!         pipeline.push(counter.add(1));
//!         sent += 1;
//!     }
//! }
//! assert_eq!(last, 1000);
//! # Ok(()) }
//! ```
//!
//! # The standard shared types
//! [`sync`] holds Python's SyncManager set (locks, semaphores, conditions, events,
//! barriers, queues, dicts, lists, namespaces, values and arrays) with typed proxies, and
//! what a client that dies held is released. `managerd` serves them as a daemon; a server
//! of your own adds them with [`sync::register`].
//!
//! # Proxies that return, travel and nest
//! The tutorial's `Pair` hands out its `Item` wrapped as a shared `ItemWrapper`:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use managers::shared;
//!
//! #[derive(Default)]
//! pub struct Item { value: i64 }
//!
//! #[derive(Default)]
//! pub struct Pair { item: Arc<Mutex<Item>> }
//!
//! #[shared(method_to_typeid = { get_item: ItemWrapper })]
//! impl Pair {
//!     /// Shared as a new `ItemWrapper`; changes through it are seen by the pair.
//!     pub fn get_item(&self) -> Arc<Mutex<Item>> { self.item.clone() }
//! }
//!
//! pub struct ItemWrapper(Arc<Mutex<Item>>);
//! impl From<Arc<Mutex<Item>>> for ItemWrapper {
//!     fn from(item: Arc<Mutex<Item>>) -> Self { ItemWrapper(item) }
//! }
//!
//! #[shared]
//! impl ItemWrapper {
//!     pub fn set(&self, value: i64) { self.0.lock().unwrap().value = value }
//!     pub fn get(&self) -> i64 { self.0.lock().unwrap().value }
//! }
//! // `PairProxy::get_item(&self) -> Result<ItemWrapperProxy, Error>`
//! ```
//!
//! Proxies are `Serialize + Deserialize`, so they can be arguments and results of methods,
//! fields of shared objects (a registry of counters, a list of queues), or bytes sent to
//! another process by any channel. Serialising puts one new reference *in transit* on the
//! manager; deserialising *adopts* it, so the sender may drop its own proxy at once and the
//! object still cannot be freed before the receiver holds it. A hold that nobody adopts is
//! released after [`ServerBuilder::hold_timeout`] (60 s by default).
//!
//! - In a reply, the proxy adopts over the connection it arrived on.
//! - Inside the server (an argument of a method), it becomes a reference held by the
//!   server's objects: the object stays alive while a shared object keeps the proxy, and is
//!   freed when the last reference anywhere goes, including when the outer object is freed.
//! - Anywhere else (bytes from a pipe, a file, another manager), it adopts over a
//!   connection this process has open to that manager: connect a [`Client`] with that
//!   manager's key first (or deserialise inside [`Client::adopting`]). Without one,
//!   deserialising fails with a clear error. Each serialised proxy is adopted once.
//!
//! **Cycles.** Objects that hold proxies to each other keep each other alive: a cycle with
//! no outside holder is never freed (as in Python). Nothing deadlocks; break the cycle by
//! removing a proxy (for example a `clear()` method) while you still hold one. Calling
//! back into an object through a proxy from inside one of its own `&mut self` methods
//! waits for itself: keep such calls in `&self` methods.
//!
//! # Reference counting
//! Each live proxy is one reference. Cloning sends an incref, dropping a decref, on the
//! client's one connection in order with its calls; the object is dropped when its count
//! reaches zero. A connection that closes (or a client process that dies) releases every
//! reference it held. [`Client::number_of_objects`] and [`Client::debug_info`] show the
//! table, with every object's holders: each connection, the server's own objects, and
//! references in transit.

pub use manager_core::{Address, Codec, ObjectId, RemoteError, Token};
pub use manager_macros::shared;
pub use manager_macros::Proxy;
pub use manager_runtime::{from_value, to_value, Opaque, Value, ValueError};
pub use manager_runtime::{rustls, ClientTls, ServerTls, TlsError};
pub use manager_runtime::{
    shutdown_signal, AuthKey, Call, CallError, CallFailure, Caller, CallerId, Client,
    ClientBuilder, DisconnectHook, Error, HandshakeError, HasProxy, Holder, IntoAddress, Manager,
    ObjectInfo, Pipeline, Proxy, ProxyHandle, ProxyOf, Registration, Result, Server, ServerBuilder,
    ShutdownHandle, TransportError, TypedError, DEFAULT_MAX_FRAME,
};
pub use manager_runtime::{Backoff, ConnectionState, LostReason};
pub use manager_runtime::{MethodCalls, ServerStats, StatsHandle, TypeidObjects};

/// What a manager says about the types it serves: [`Client::describe`].
pub mod describe {
    pub use manager_core::describe::{
        ErrorsAs, MethodDescription, Param, Registered, ReturnDescription, Returns, TypeDescription,
    };
}

/// Serving stock CPython clients: see [`manager_runtime::python`].
pub mod python {
    pub use manager_runtime::python::*;
}

/// The traits generated code implements, for hand-written implementations.
pub mod traits {
    pub use manager_core::{
        finish, CallOutcome, CallResult, ExclusiveGuard, MethodInfo, Receiver, Returned, Shared,
        SharedGuard, Waiting,
    };
}

mod manager_macro;
pub mod process;
pub mod sync;

// `#[shared]` expands to `::managers::...` paths; this lets the `sync` types use it here.
extern crate self as managers;

/// The README's code blocks run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The only paths generated code names. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use manager_core::describe;
    pub use manager_core::{
        decode_args, encode_result, encode_typed_result, encode_value, unknown_method_index,
        wrong_receiver, CallOutcome, Codec, DisplayFallback, DisplayViaTrait, MethodInfo, Receiver,
        RemoteError, Shared, Unsupported, Waiting,
    };
    pub use manager_runtime::generated;
    pub use manager_runtime::{
        AuthKey, Call, CallError, Client, Error, HasProxy, IntoAddress, Proxy, ProxyHandle, ProxyOf,
    };
    pub use serde;
    pub use std::boxed::Box;
}
