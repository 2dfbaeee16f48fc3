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

use anyhow::{bail, Result};
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
    support::init_tracing();
    let args = support::args();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => parent().await,
        ["server", key] => server(key).await,
        ["client", address, key] => client(address, key).await,
        _ => bail!("usage: shared_string [server KEY | client ADDRESS KEY]"),
    }
}

/// Start the server, run the client against it, stop the server.
async fn parent() -> Result<()> {
    let key = support::random_key();
    let mut server = support::spawn("server", &["server", &key])?;
    let address = server.expect("ADDRESS ").await?;
    println!("[parent] server listens on {address}");

    support::spawn("client", &["client", &address, &key])?
        .finish()
        .await?;

    println!("[parent] client done; closing the server's stdin");
    server.finish().await?;
    println!("[parent] all processes exited 0");
    Ok(())
}

/// Process A: share one string and serve it.
async fn server(key: &str) -> Result<()> {
    let server = ServerBuilder::new()
        .authkey(key)
        // Python: manager.register('get_my_string', callable=lambda: my_string)
        .register(Registration::instance(
            "get_my_string",
            SharedString("hello World".to_owned()),
        ))
        .bind()
        .await?;
    support::serve(server).await
}

/// Process B: connect and use the string through a proxy.
async fn client(address: &str, key: &str) -> Result<()> {
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
