//! Registering a constructor: every `get_pair(x, y)` creates a new object on the server.
//!
//! Where `Registration::instance` shares one object (Python's `callable=lambda: pair`),
//! `Registration::constructor` registers a class: each create call runs the constructor with
//! the client's arguments. The client declares a typed manager with `manager!`, so
//! `manager.get_pair(1, 3)` is a checked `async fn` returning a `PairProxy` (Python's
//! `create_method`). Two calls give two distinct objects, which `number_of_objects()` and
//! `debug_info()` (Python's `_number_of_objects()` / `_debug_info()`) list.
//!
//! Python equivalent:
//! ```python
//! manager.register('get_pair', Pair)          # server
//! manager.register('get_pair'); manager.connect()   # client
//! a = manager.get_pair(1, 3); b = manager.get_pair(2, 4)
//! print(a, b, manager._number_of_objects(), manager._debug_info())
//! ```
//!
//! Run: `cargo run --example class_registration`.

#[path = "support/mod.rs"]
mod support;

use std::fmt;

use anyhow::{ensure, Result};
use managers::{manager, shared, Registration, ServerBuilder};

/// Two numbers; every method is public, so every method is exposed.
#[derive(Debug)]
pub struct Pair {
    x: i32,
    y: i32,
}

#[shared]
impl Pair {
    /// A new pair (not exposed: it takes no `self`).
    pub fn new(x: i32, y: i32) -> Self {
        Pair { x, y }
    }

    /// The x value.
    pub fn get_x(&self) -> i32 {
        self.x
    }

    /// The y value.
    pub fn get_y(&self) -> i32 {
        self.y
    }

    /// Replace x.
    pub fn set_x(&mut self, x: i32) {
        self.x = x;
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pair({}, {})", self.x, self.y)
    }
}

manager! {
    /// The client's view of the server (Python: `manager.register('get_pair')`).
    pub struct PairManager {
        /// A new `Pair(x, y)` on the server.
        fn get_pair(x: i32, y: i32) -> PairProxy;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    support::server_and_client(server, client).await
}

fn server() -> ServerBuilder {
    ServerBuilder::new()
        // Python: manager.register('get_pair', Pair)
        .register(Registration::constructor(
            "get_pair",
            |(x, y): (i32, i32)| Pair::new(x, y),
        ))
}

async fn client(address: String, key: String) -> Result<()> {
    let manager = PairManager::connect(address, key).await?;
    let a = manager.get_pair(1, 3).await?;
    let b = manager.get_pair(2, 4).await?;
    println!("a = {a:?}");
    println!("b = {b:?}");
    println!(
        "str(a) = {}, str(b) = {}",
        a.referent_to_string().await?,
        b.referent_to_string().await?
    );
    ensure!(
        a.handle().id() != b.handle().id(),
        "two creates gave one object"
    );

    a.set_x(10).await?;
    println!(
        "after a.set_x(10): a.get_x() = {}, b.get_x() = {}",
        a.get_x().await?,
        b.get_x().await?
    );

    let count = manager.number_of_objects().await?;
    println!("number_of_objects() = {count}");
    ensure!(count == 2, "expected 2 objects, the server holds {count}");
    println!("debug_info():");
    for row in manager.debug_info().await? {
        println!(
            "  typeid {:?}, id {}, refcount {}",
            row.typeid, row.id, row.refcount
        );
    }

    // Dropping the last proxy of `a` releases it; the release travels on the same
    // connection before the next request, so the count is already 1.
    drop(a);
    let count = manager.number_of_objects().await?;
    println!("after drop(a): number_of_objects() = {count}");
    ensure!(
        count == 1,
        "expected 1 object after the drop, the server holds {count}"
    );
    Ok(())
}
