//! `exposed`: only the listed methods can be called from other processes.
//!
//! `Pair` has public `get_x`, `set_x` and `set_y`, but `#[shared(exposed = [get_x])]`
//! exposes only `get_x`. The proxy has no `set_x` at all, so `pair.set_x(7)` does not
//! compile: the mistake the Python tutorial's script makes at run time is caught at
//! compile time. A call by name (Python's `_callmethod('set_x', (7,))`) still reaches the
//! server, which refuses it with `RemoteError::NotExposed`; the connection stays usable.
//!
//! Python equivalent:
//! ```python
//! manager.register('get_pair', callable=lambda: pair, exposed=['get_x'])
//! # client
//! p = manager.get_pair()
//! p.set_x(7)   # AttributeError: 'AutoProxy[get_pair]' object has no attribute 'set_x'
//! p._callmethod('set_x', (7,))   # RemoteError: method 'set_x' of ... is not exposed
//! ```
//!
//! Run: `cargo run --example exposed`.

#[path = "support/mod.rs"]
mod support;

use anyhow::{bail, Result};
use managers::{shared, Client, Registration, RemoteError, ServerBuilder};

/// Two values; only `x` can be read remotely, and nothing can be written.
#[derive(Debug)]
pub struct Pair {
    x: i32,
    y: i32,
}

#[shared(exposed = [get_x])]
impl Pair {
    /// A pair of `x` and `y`.
    pub fn new(x: i32, y: i32) -> Self {
        Pair { x, y }
    }

    /// Exposed: clients may call it.
    pub fn get_x(&self) -> i32 {
        self.x
    }

    /// Public, but not exposed: only code in the server process can call it.
    pub fn set_x(&mut self, x: i32) {
        self.x = x;
    }

    /// Public, but not exposed.
    pub fn set_y(&mut self, y: i32) {
        self.y = y;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    support::server_and_client(server, client).await
}

fn server() -> ServerBuilder {
    // The server's own code may use every public method.
    let mut pair = Pair::new(0, 0);
    pair.set_x(5);
    pair.set_y(6);
    ServerBuilder::new()
        // Python: manager.register('get_pair', callable=lambda: pair, exposed=['get_x'])
        .register(Registration::instance("get_pair", pair))
}

async fn client(address: String, key: String) -> Result<()> {
    let client = Client::connect(address, key).await?;
    let pair: PairProxy = client.create("get_pair", ()).await?;
    println!("pair.get_x() = {}", pair.get_x().await?);

    // `pair.set_x(7)` would not compile: no method named `set_x` found for `PairProxy`.
    // A call by name is checked by the server instead.
    match pair.handle().call_method::<_, ()>("set_x", (7,)).await {
        Err(managers::Error::Remote(e @ RemoteError::NotExposed { .. })) => {
            println!("call_method(\"set_x\", (7,)) refused: {e}");
        }
        Ok(()) => bail!("the server ran a method that is not exposed"),
        Err(e) => bail!("expected a NotExposed error, got: {e}"),
    }

    // Only that request failed; the connection and the proxy still work.
    println!("pair.get_x() = {} (unchanged)", pair.get_x().await?);
    Ok(())
}
