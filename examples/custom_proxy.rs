//! A custom proxy type (Python's `proxytype=MyProxy`).
//!
//! The tutorial's `MyProxy` returns the square of `get_x`. Here it is a struct around the
//! generated, typed `PairProxy`, with `#[derive(managers::Proxy)]` naming the shared type
//! it calls and `deref` making the wrapped proxy's methods its own: `MyProxy` defines only
//! what it changes (`get_x`, squared) and every other method (`get_y`, `set_x`) is still
//! typed and checked at compile time, with no call by name. The client's `manager!`
//! declares `get_pair` as returning `MyProxy`, so `manager.get_pair(3, 4)` gives the
//! squaring proxy. Wrapping the same handle in a plain `PairProxy` shows the same object
//! unsquared: both are references to one object on the server.
//!
//! A type can also make a hand-written proxy *its* proxy, so that `method_to_typeid` and
//! proxies passed as arguments use it: `#[shared(custom_proxy = MyProxy)]` (then no proxy
//! is generated, unless `proxy = PairCalls` names one for `MyProxy` to wrap).
//!
//! Python equivalent:
//! ```python
//! class MyProxy(BaseProxy):
//!     _exposed_ = ('get_x', 'get_y', 'set_x')
//!     def get_x(self):
//!         x = self._callmethod('get_x')
//!         return x * x
//!     def get_y(self):
//!         return self._callmethod('get_y')
//! manager.register('get_pair', proxytype=MyProxy)   # client
//! print(manager.get_pair(3, 4).get_x())              # 9
//! ```
//!
//! Run: `cargo run --example custom_proxy`.

#[path = "support/mod.rs"]
mod support;

use anyhow::{ensure, Result};
use managers::{manager, shared, Error, Proxy, Registration, ServerBuilder};

/// The tutorial's pair.
#[derive(Debug)]
pub struct Pair {
    x: i64,
    y: i64,
}

#[shared]
impl Pair {
    /// A new pair (not exposed: it takes no `self`).
    pub fn new(x: i64, y: i64) -> Self {
        Pair { x, y }
    }

    /// The x value.
    pub fn get_x(&self) -> i64 {
        self.x
    }

    /// The y value.
    pub fn get_y(&self) -> i64 {
        self.y
    }

    /// Replace x.
    pub fn set_x(&mut self, x: i64) {
        self.x = x;
    }
}

/// The tutorial's `MyProxy`: `get_x` comes back squared; every other method is
/// `PairProxy`'s (through `Deref`).
#[derive(Clone, Debug, managers::Proxy)]
#[proxy(target = Pair, deref)]
pub struct MyProxy {
    #[proxy(inner)]
    pair: PairProxy,
}

impl MyProxy {
    /// The square of the pair's x, through the typed `get_x` of the wrapped proxy.
    pub async fn get_x(&self) -> Result<i64, Error> {
        let x = self.pair.get_x().await?;
        Ok(x * x)
    }
}

manager! {
    /// The client's view (Python: `manager.register('get_pair', proxytype=MyProxy)`).
    pub struct PairManager {
        /// A new `Pair(x, y)` on the server, seen through `MyProxy`.
        fn get_pair(x: i64, y: i64) -> MyProxy;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    support::server_and_client(server, client).await
}

fn server() -> ServerBuilder {
    ServerBuilder::new()
        // Python: manager.register('get_pair', Pair). The proxy type is the client's choice.
        .register(Registration::constructor(
            "get_pair",
            |(x, y): (i64, i64)| Pair::new(x, y),
        ))
}

async fn client(address: String, key: String) -> Result<()> {
    let manager = PairManager::connect(address, key).await?;
    let mine: MyProxy = manager.get_pair(3, 4).await?;
    println!("mine = {mine:?}");

    // The generated proxy on the same object: another reference, not another object.
    let plain = PairProxy::from_handle(mine.handle().clone());
    ensure!(plain.handle().id() == mine.handle().id(), "one object");

    let (x, squared) = (plain.get_x().await?, mine.get_x().await?);
    println!("get_x = {x} through PairProxy, {squared} through MyProxy");
    ensure!(
        (x, squared) == (3, 9),
        "expected 3 and 9, got {x} and {squared}"
    );

    plain.set_x(5).await?;
    let (x, squared) = (plain.get_x().await?, mine.get_x().await?);
    println!("after plain.set_x(5): get_x = {x} through PairProxy, {squared} through MyProxy");
    ensure!(
        (x, squared) == (5, 25),
        "expected 5 and 25, got {x} and {squared}"
    );

    // Methods MyProxy does not define are the wrapped proxy's, typed.
    let y = mine.get_y().await?;
    println!("mine.get_y() = {y}");

    // Also by typeid, without the typed manager.
    let other: MyProxy = manager.create("get_pair", (1, 2)).await?;
    println!(
        "client.create::<MyProxy, _>(\"get_pair\", (1, 2)).get_x() = {}",
        other.get_x().await?
    );
    println!(
        "number_of_objects() = {}",
        manager.number_of_objects().await?
    );
    Ok(())
}
