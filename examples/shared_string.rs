//! Share one string between a server process and a client process.
//!
//! The Rust version of the tutorial's first manager example: process A serves the string
//! `"hello World"` under the typeid `get_my_string`; process B connects, gets a proxy and
//! prints its `repr` (here: `Debug`), its `str` (here: `referent_to_string()`, the
//! referent's `Display` fetched from the server) and the results of method calls, typed
//! and by name (`_callmethod`).
//!
//! Python equivalent:
//! ```python
//! # process A
//! manager = BaseManager(address=('127.0.0.1', port), authkey=key)
//! manager.register('get_my_string', callable=lambda: my_string)
//! manager.get_server().serve_forever()
//! # process B
//! manager.register('get_my_string'); manager.connect()
//! proxy = manager.get_my_string()
//! print(repr(proxy)); print(str(proxy))
//! print(proxy.capitalize()); print(proxy._callmethod('capitalize'))
//! ```
//!
//! Run: `cargo run --example shared_string`.

#[path = "support/mod.rs"]
mod support;

use std::fmt;

use anyhow::Result;
use managers::{shared, Client, Registration, ServerBuilder};

/// A string living in the server (Python's `str` object behind an AutoProxy).
#[derive(Debug)]
pub struct SharedString(String);

#[shared]
impl SharedString {
    /// First character upper case, the rest lower case, like Python's `str.capitalize`.
    pub fn capitalize(&self) -> String {
        let mut chars = self.0.chars();
        match chars.next() {
            Some(first) => first
                .to_uppercase()
                .chain(chars.flat_map(char::to_lowercase))
                .collect(),
            None => String::new(),
        }
    }

    /// Python's `str.upper`.
    pub fn upper(&self) -> String {
        self.0.to_uppercase()
    }

    /// Python's `str.isdigit`: non-empty and only digits.
    pub fn isdigit(&self) -> bool {
        !self.0.is_empty() && self.0.chars().all(|c| c.is_ascii_digit())
    }

    /// The length in characters (Python's `len(s)`).
    pub fn len(&self) -> usize {
        self.0.chars().count()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What `str(proxy)` shows.
impl fmt::Display for SharedString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    support::server_and_client(server, client).await
}

/// Process A: share one string and serve it.
fn server() -> ServerBuilder {
    ServerBuilder::new()
        // Python: manager.register('get_my_string', callable=lambda: my_string)
        .register(Registration::instance(
            "get_my_string",
            SharedString("hello World".to_owned()),
        ))
}

/// Process B: connect and use the string through a proxy.
async fn client(address: String, key: String) -> Result<()> {
    let client = Client::connect(address, key).await?;
    let proxy: SharedStringProxy = client.create("get_my_string", ()).await?;

    println!("repr(proxy) = {proxy:?}");
    println!("str(proxy)  = {}", proxy.referent_to_string().await?);
    println!("proxy.capitalize() = {:?}", proxy.capitalize().await?);
    println!("proxy.upper()      = {:?}", proxy.upper().await?);
    println!("proxy.isdigit()    = {}", proxy.isdigit().await?);
    println!("proxy.len()        = {}", proxy.len().await?);

    // Python: proxy._callmethod('capitalize'): a call by name, checked by the server.
    let raw: String = proxy.handle().call_method("capitalize", ()).await?;
    println!("proxy.handle().call_method(\"capitalize\", ()) = {raw:?}");
    Ok(())
}
