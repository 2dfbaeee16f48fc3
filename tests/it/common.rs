//! Shared types and helpers for the integration tests.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use managers::sync::SyncError;
use managers::{shared, Client, Holder, Manager, ObjectId, Proxy, Registration, ServerBuilder};
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::Notify;

/// Which socket a test runs over.
#[derive(Debug, Clone, Copy)]
pub enum Transport {
    Tcp,
    Unix,
}

pub const TRANSPORTS: [Transport; 2] = [Transport::Tcp, Transport::Unix];

/// A server running in the background, and what keeps its socket path alive.
pub struct Running {
    pub manager: Manager,
    pub _dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for Running {
    type Target = Manager;
    fn deref(&self) -> &Manager {
        &self.manager
    }
}

impl From<Manager> for Running {
    fn from(manager: Manager) -> Self {
        Running {
            manager,
            _dir: None,
        }
    }
}

/// A builder bound to a fresh address of `transport`, with every test type registered.
pub fn builder(transport: Transport) -> (ServerBuilder, Option<tempfile::TempDir>) {
    let (builder, dir) = fresh_address(transport);
    (register_all(builder), dir)
}

/// A bare builder bound to a fresh address of `transport`.
fn fresh_address(transport: Transport) -> (ServerBuilder, Option<tempfile::TempDir>) {
    match transport {
        Transport::Tcp => (ServerBuilder::new().address("127.0.0.1:0"), None),
        Transport::Unix => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("manager.sock");
            (ServerBuilder::new().address(path), Some(dir))
        }
    }
}

/// Start a background server on `transport` with only the SyncManager types
/// (`managers::sync::register`), as `managerd` serves them.
pub async fn start_sync(transport: Transport) -> Running {
    let (builder, dir) = fresh_address(transport);
    let builder = builder
        .authkey("test-key")
        .shutdown_timeout(Duration::from_secs(2));
    Running {
        manager: managers::sync::register(builder)
            .start()
            .await
            .expect("sync server starts"),
        _dir: dir,
    }
}

/// A SyncManager client on a new connection to `running`.
pub async fn sync_client(running: &Running) -> managers::sync::SyncManager {
    managers::sync::SyncManager::from_client(connect(running).await)
}

pub fn register_all(builder: ServerBuilder) -> ServerBuilder {
    // `RUST_LOG=debug cargo test` shows the server's logs.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    builder
        .authkey("test-key")
        .shutdown_timeout(Duration::from_secs(2))
        .register(Registration::constructor("get_pair", |(x, y)| {
            Pair::new(x, y)
        }))
        .register(Registration::constructor("Pair", |(x, y)| Pair::new(x, y)).create_method(false))
        .register(Registration::instance("the_pair", Pair::new(7, 8)))
        .register(Registration::constructor("store", |()| Store::default()))
        .register(Registration::instance("shared_store", Store::default()))
        .register(Registration::constructor("opaque", |()| Opaque))
        .register(Registration::constructor("grumpy", |()| Grumpy))
        .register(Registration::constructor("item_pair", |()| {
            ItemPair::default()
        }))
        .register(Registration::constructor("counter", |(n,)| Counter { n }))
        .register(Registration::constructor("registry", |()| {
            Registry::default()
        }))
        .register(Registration::constructor("square", |(x,)| Square { x }))
        .register(Registration::constructor("board", |()| Board::default()))
        .register(Registration::constructor("bad_pair", |(x,): (i64,)| {
            assert!(x >= 0, "negative x");
            Pair::new(x, 0)
        }))
}

/// Start a background server on `transport`.
pub async fn start(transport: Transport) -> Running {
    let (builder, dir) = builder(transport);
    Running {
        manager: builder.start().await.expect("server starts"),
        _dir: dir,
    }
}

/// Another connection to the same server.
pub async fn connect(running: &Running) -> Client {
    Client::connect(running.address(), "test-key")
        .await
        .expect("second client connects")
}

// ---- What the server holds, and waiting for what it does asynchronously ----

/// Holders of object `id`, as `debug_info` reports them.
pub async fn holders(client: &Client, id: ObjectId) -> Vec<(Holder, u64)> {
    client
        .debug_info()
        .await
        .unwrap()
        .into_iter()
        .find(|row| row.id == id)
        .map(|row| row.holders)
        .unwrap_or_default()
}

/// Poll `check` until it returns `Ok`, for at most 10 s, failing with its last `Err`: the
/// server frees objects and releases references asynchronously (after a hold expires, or
/// once it notices a dead client's closed socket, which happens in another process).
pub async fn eventually_ok(mut check: impl AsyncFnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(message) = check().await {
        assert!(Instant::now() < deadline, "{message}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Poll `check` until it holds, for at most 10 s (see [`eventually_ok`]).
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    eventually_ok(async || {
        if check().await {
            Ok(())
        } else {
            Err(format!("timed out waiting until {what}"))
        }
    })
    .await
}

/// Wait (10 s at most) until the server holds `n` objects: freeing after a hold expires or
/// a process dies happens asynchronously on the server.
pub async fn objects_become(client: &Client, n: u64) {
    eventually_ok(async || {
        let now = client.number_of_objects().await.unwrap();
        if now == n {
            Ok(())
        } else {
            Err(format!("still {now} objects, expected {n}"))
        }
    })
    .await
}

// ---- For the SyncManager tests, where nothing is timed ----

/// For calls that must time out: nobody puts, gets, sets, notifies or marks a task done,
/// or the lock is held.
pub const SHORT: Duration = Duration::from_millis(50);

/// Await `future`, failing the test if it has not completed after 20 s (a hang guard, not
/// a timed assertion).
pub async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(20), future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not complete within 20 s"),
    }
}

/// Wait until `check` holds (20 s at most): for example, a blocked call has reached the
/// server when the object's state says so. Each check is a round trip; the pause only
/// paces the polling.
pub async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    bounded(what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// The same object as `proxy`, through the connection `to` (a handoff, as between
/// processes). The proxy type may differ from the sender's: the handle is all that travels.
pub fn share_as<P: Proxy + Serialize, Q: Proxy + DeserializeOwned>(proxy: &P, to: &Client) -> Q {
    let bytes = postcard::to_stdvec(proxy).expect("serialise proxy");
    to.adopting(|| postcard::from_bytes(&bytes))
        .expect("adopt proxy")
}

/// [`share_as`] with the sender's proxy type.
pub fn share<P: Proxy + Serialize + DeserializeOwned>(proxy: &P, to: &Client) -> P {
    share_as(proxy, to)
}

/// Fail unless `result` is an error that `want` accepts.
#[track_caller]
pub fn assert_err<T: std::fmt::Debug>(result: Result<T, SyncError>, want: fn(&SyncError) -> bool) {
    match result {
        Err(e) if want(&e) => {}
        other => panic!("unexpected {other:?}"),
    }
}

/// The tutorial's Pair, with a few extra methods to exercise every call shape.
#[derive(Debug)]
pub struct Pair {
    x: i64,
    y: i64,
}

#[shared(async_holds_lock, exposed = [get_x, set_x, sum, add_async, checked_div, boom, boom_async, echo, swap, big, big_async])]
impl Pair {
    pub fn new(x: i64, y: i64) -> Self {
        Pair { x, y }
    }

    /// The x coordinate.
    pub fn get_x(&self) -> i64 {
        self.x
    }

    /// Set x.
    pub fn set_x(&mut self, x: i64) {
        self.x = x;
    }

    pub fn sum(&self) -> i64 {
        self.x + self.y
    }

    /// Add to both coordinates, asynchronously.
    pub async fn add_async(&mut self, dx: i64, dy: i64) -> (i64, i64) {
        tokio::task::yield_now().await;
        self.x += dx;
        self.y += dy;
        (self.x, self.y)
    }

    /// x / d, or an error naming the problem.
    pub fn checked_div(&self, d: i64) -> Result<i64, String> {
        if d == 0 {
            return Err(format!("cannot divide {} by zero", self.x));
        }
        Ok(self.x / d)
    }

    pub fn boom(&self, message: String) -> i64 {
        panic!("{message}")
    }

    pub async fn boom_async(&mut self) -> i64 {
        tokio::task::yield_now().await;
        panic!("async kaboom")
    }

    pub fn echo(&self, bytes: Vec<u8>, text: &str) -> (Vec<u8>, String) {
        (bytes, text.to_owned())
    }

    /// `n` bytes of result from a small request.
    pub fn big(&self, n: usize) -> Vec<u8> {
        vec![7; n]
    }

    /// The same from an async method (its reply is written by a spawned task).
    pub async fn big_async(&self, n: usize) -> Vec<u8> {
        tokio::task::yield_now().await;
        vec![7; n]
    }

    pub fn swap(&mut self) {
        std::mem::swap(&mut self.x, &mut self.y);
    }

    /// Public but not exposed (reached only by the raw-call test, which must be refused).
    #[allow(dead_code)]
    pub fn reset(&mut self) {
        self.x = 0;
        self.y = 0;
    }
}

impl std::fmt::Display for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pair({}, {})", self.x, self.y)
    }
}

/// A keyed counter with methods that prove concurrency and exclusion.
#[derive(Default)]
pub struct Store {
    map: HashMap<String, u64>,
    arrived: AtomicUsize,
    all_here: Notify,
    in_mut: AtomicBool,
    overlaps: AtomicUsize,
    waiting: AtomicUsize,
}

// These test types hold their lock across awaits on purpose (the locking is
// what the tests check).
#[shared(async_holds_lock)]
impl Store {
    pub fn incr(&mut self, key: String) -> u64 {
        let v = self.map.entry(key).or_insert(0);
        *v += 1;
        *v
    }

    pub fn get(&self, key: String) -> Option<u64> {
        self.map.get(&key).copied()
    }

    /// Returns only once `parties` calls are inside at the same time: a `&self` method
    /// that would deadlock if calls were serialised.
    pub async fn rendezvous(&self, parties: usize) -> usize {
        let n = self.arrived.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= parties {
            self.all_here.notify_waiters();
        } else {
            loop {
                let notified = self.all_here.notified();
                if self.arrived.load(Ordering::SeqCst) >= parties {
                    break;
                }
                notified.await;
            }
        }
        n
    }

    /// How many `rendezvous` calls have arrived so far.
    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }

    /// A `&mut self` method that yields in the middle and records any overlap.
    pub async fn exclusive(&mut self) -> usize {
        if self.in_mut.swap(true, Ordering::SeqCst) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        self.in_mut.store(false, Ordering::SeqCst);
        self.overlaps.load(Ordering::SeqCst)
    }

    /// Never returns.
    pub async fn forever(&self) {
        std::future::pending::<()>().await
    }

    /// Never returns; counted in `waiting` while it runs (a cancelled call stops counting).
    pub async fn wait_counted(&self) {
        struct Counted<'a>(&'a AtomicUsize);
        impl Drop for Counted<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _counted = Counted(&self.waiting);
        std::future::pending::<()>().await
    }

    /// How many `wait_counted` calls are running.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    pub fn _private_by_convention(&self) {}
}

/// A type whose `Display` panics.
pub struct Grumpy;

impl std::fmt::Display for Grumpy {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("no text for you")
    }
}

#[shared]
impl Grumpy {
    pub fn ping(&self) -> u8 {
        2
    }
}

/// A type without `Display`.
pub struct Opaque;

#[shared]
impl Opaque {
    pub fn ping(&self) -> u8 {
        1
    }
}

// ---- Types for proxies that return, travel and nest (issue: method_to_typeid & co) ----

/// The tutorial's Item: plain data, shared by reference between a Pair and its wrappers.
#[derive(Debug, Default)]
pub struct Item {
    pub value: i64,
}

/// A pair that holds an item and hands out shared wrappers of it.
#[derive(Default)]
pub struct ItemPair {
    item: std::sync::Arc<std::sync::Mutex<Item>>,
}

#[shared(method_to_typeid = { get_item: ItemWrapper, try_item: ItemWrapper, make_square: Square })]
impl ItemPair {
    /// `x`, shared as a new `Square` (whose proxy is hand-written).
    pub fn make_square(&self, x: i64) -> i64 {
        x
    }

    /// The item, shared as a new `ItemWrapper` object.
    pub fn get_item(&self) -> std::sync::Arc<std::sync::Mutex<Item>> {
        self.item.clone()
    }

    /// The item, or an error when `allowed` is false.
    pub fn try_item(
        &self,
        allowed: bool,
    ) -> Result<std::sync::Arc<std::sync::Mutex<Item>>, String> {
        if allowed {
            Ok(self.item.clone())
        } else {
            Err("no item for you".into())
        }
    }

    /// What the server-side pair sees.
    pub fn item_value(&self) -> i64 {
        self.item.lock().unwrap().value
    }
}

/// The tutorial's wrapper around the pair's item.
pub struct ItemWrapper(std::sync::Arc<std::sync::Mutex<Item>>);

impl From<std::sync::Arc<std::sync::Mutex<Item>>> for ItemWrapper {
    fn from(item: std::sync::Arc<std::sync::Mutex<Item>>) -> Self {
        ItemWrapper(item)
    }
}

#[shared]
impl ItemWrapper {
    pub fn get(&self) -> i64 {
        self.0.lock().unwrap().value
    }

    pub fn set(&self, value: i64) {
        self.0.lock().unwrap().value = value;
    }
}

/// A counter, the unit of the nesting tests.
#[derive(Default, serde::Serialize, serde::Deserialize, Debug, PartialEq)]
pub struct Counter {
    pub n: i64,
}

#[shared(get_value)]
impl Counter {
    pub fn incr(&mut self) -> i64 {
        self.n += 1;
        self.n
    }

    pub fn get(&self) -> i64 {
        self.n
    }
}

/// How many `Registry::hold_for` calls hold their registry's lock, in this process (the
/// tests' servers run in it).
pub static REGISTRIES_HELD: AtomicUsize = AtomicUsize::new(0);

/// A shared object holding proxies of other shared objects.
#[derive(Default)]
pub struct Registry {
    counters: HashMap<String, CounterProxy>,
    registries: HashMap<String, RegistryProxy>,
}

// These test types hold their lock across awaits on purpose (the locking is
// what the tests check).
#[shared(async_holds_lock)]
impl Registry {
    pub fn put(&mut self, name: String, counter: CounterProxy) {
        self.counters.insert(name, counter);
    }

    pub fn get(&self, name: String) -> Option<CounterProxy> {
        self.counters.get(&name).cloned()
    }

    pub fn remove(&mut self, name: String) -> bool {
        self.counters.remove(&name).is_some()
    }

    pub fn link(&mut self, name: String, other: RegistryProxy) {
        self.registries.insert(name, other);
    }

    pub fn clear(&mut self) {
        self.counters.clear();
        self.registries.clear();
    }

    /// Increment every counter through its proxy, from inside the server.
    pub async fn incr_all(&self) -> Vec<i64> {
        let mut out = Vec::new();
        let mut names: Vec<_> = self.counters.keys().cloned().collect();
        names.sort();
        for name in names {
            out.push(self.counters[&name].incr().await.expect("inner call"));
        }
        out
    }

    /// Hold this object's lock for `ms` milliseconds (calls behind it wait that long),
    /// counted in [`REGISTRIES_HELD`] meanwhile.
    pub async fn hold_for(&mut self, ms: u64) {
        REGISTRIES_HELD.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        REGISTRIES_HELD.fetch_sub(1, Ordering::SeqCst);
    }

    /// Pass a counter proxy through this object and back (argument in, result out).
    pub fn bounce(&self, counter: CounterProxy) -> CounterProxy {
        counter
    }
}

/// A type whose proxy is hand-written (`custom_proxy`).
pub struct Square {
    x: i64,
}

impl From<i64> for Square {
    fn from(x: i64) -> Self {
        Square { x }
    }
}

#[shared(custom_proxy = SquareProxy)]
impl Square {
    pub fn get_x(&self) -> i64 {
        self.x
    }
}

/// The tutorial's `MyProxy`: `get_x` comes back squared, through a raw call.
#[derive(Clone, Debug, managers::Proxy)]
#[proxy(target = Square)]
pub struct SquareProxy {
    handle: managers::ProxyHandle,
}

impl SquareProxy {
    pub async fn get_x(&self) -> Result<i64, managers::Error> {
        let x: i64 = self.handle.call_method("get_x", ()).await?;
        Ok(x * x)
    }
}

/// The error of a [`Board`] job: travels typed (`errors = typed`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, thiserror::Error)]
pub enum BoardError {
    #[error("a job needs a name")]
    EmptyName,
    #[error("no job {id}")]
    NoSuchJob { id: u64 },
}

/// A job board whose methods return their own error type typed.
#[derive(Default)]
pub struct Board {
    jobs: std::sync::Mutex<Vec<String>>,
}

#[shared(errors = typed, method_to_typeid = { job: ItemWrapper })]
impl Board {
    /// Post a job; its id.
    pub fn submit(&self, name: String) -> Result<u64, BoardError> {
        if name.is_empty() {
            return Err(BoardError::EmptyName);
        }
        let mut jobs = self.jobs.lock().unwrap();
        jobs.push(name);
        Ok(jobs.len() as u64 - 1)
    }

    /// Wait a little, then fail typed (an `async` method's error travels the same way).
    pub async fn take(&self, id: u64) -> Result<String, BoardError> {
        tokio::task::yield_now().await;
        let jobs = self.jobs.lock().unwrap();
        jobs.get(id as usize)
            .cloned()
            .ok_or(BoardError::NoSuchJob { id })
    }

    /// A job's name length, shared as a new `ItemWrapper`.
    pub fn job(&self, id: u64) -> Result<std::sync::Arc<std::sync::Mutex<Item>>, BoardError> {
        let jobs = self.jobs.lock().unwrap();
        let name = jobs.get(id as usize).ok_or(BoardError::NoSuchJob { id })?;
        Ok(std::sync::Arc::new(std::sync::Mutex::new(Item {
            value: name.len() as i64,
        })))
    }

    /// Submit on `other` from inside the server (a proxy held there, so a local call): its
    /// typed error comes back typed.
    pub async fn submit_via(&self, other: BoardProxy, name: String) -> Result<u64, BoardError> {
        match other.submit(name).await {
            Ok(id) => Ok(id),
            Err(managers::CallError::Method(e)) => Err(e),
            Err(managers::CallError::Rpc(e)) => panic!("the local call failed: {e}"),
        }
    }

    /// Its error travels as text, by its own choice.
    #[shared(errors = display)]
    pub fn parse(&self, text: String) -> Result<u64, std::num::ParseIntError> {
        text.parse()
    }
}
