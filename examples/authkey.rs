//! Authentication keys: only clients that know the server's key get in.
//!
//! The server shares a vault with the key `b"MySecretKey"`. One client process connects
//! with that key and reads it; another tries `b"WrongKey"` and is refused during the
//! handshake with [`managers::Error::Auth`], before any request is read. The key itself is
//! never sent: both sides prove they know it with HMAC challenges, as in Python.
//!
//! Python equivalent:
//! ```python
//! manager = BaseManager(address=('127.0.0.1', port), authkey=b'MySecretKey')
//! manager.register('get_vault', callable=lambda: vault); manager.start()
//! # in another process
//! m = BaseManager(address=('127.0.0.1', port), authkey=b'MySecretKey')
//! m.register('get_vault'); m.connect()      # a wrong key raises AuthenticationError
//! proxy = m.get_vault(); print(proxy.read())
//! ```
//!
//! Run: `cargo run --example authkey`. Each client exits 0 only if it saw what the parent
//! told it to expect.

#[path = "support/mod.rs"]
mod support;

use std::fmt;

use anyhow::{bail, Result};
use managers::{process, shared, Client, Registration, ServerBuilder};

/// The server's key (Python: `authkey=b'MySecretKey'`).
const SERVER_KEY: &str = "MySecretKey";
/// What the intruder tries.
const WRONG_KEY: &str = "WrongKey";

/// What the key protects.
#[derive(Debug)]
pub struct Vault {
    secret: String,
}

#[shared]
impl Vault {
    /// The secret text.
    pub fn read(&self) -> String {
        self.secret.clone()
    }
}

impl fmt::Display for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a vault holding {} bytes", self.secret.len())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    // The server process: started below by `process::start` (Python's `manager.start()`).
    process::serve_if_child(server).await?;
    support::init_tracing();
    let args = support::args();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => parent().await,
        ["client", address, key, expect @ ("accepted" | "refused")] => {
            client(address, key, expect == "accepted").await
        }
        _ => bail!("usage: authkey [client ADDRESS KEY accepted|refused]"),
    }
}

async fn parent() -> Result<()> {
    let server = process::start("127.0.0.1:0", SERVER_KEY).await?;
    let address = server.address().to_string();
    println!("[parent] server listens on {address} with key {SERVER_KEY:?}");

    for (role, key, expect) in [
        ("client", SERVER_KEY, "accepted"),
        ("intruder", WRONG_KEY, "refused"),
    ] {
        println!("[parent] starting {role} with key {key:?}; it should be {expect}");
        support::spawn(role, &["client", &address, key, expect])?
            .finish()
            .await?;
    }

    support::stop(server).await?;
    println!("[parent] both clients behaved as expected");
    Ok(())
}

fn server() -> ServerBuilder {
    ServerBuilder::new().register(Registration::instance(
        "get_vault",
        Vault {
            secret: "educative".to_owned(),
        },
    ))
}

/// Connect with `key`; succeed only if being accepted (or refused) was what we expected.
async fn client(address: &str, key: &str, should_be_accepted: bool) -> Result<()> {
    match Client::connect(address, key).await {
        Ok(client) => {
            println!("connected");
            let proxy: VaultProxy = client.create("get_vault", ()).await?;
            println!("repr(proxy) = {proxy:?}");
            println!("str(proxy) = {}", proxy.referent_to_string().await?);
            println!("proxy.read() = {:?}", proxy.read().await?);
            if !should_be_accepted {
                bail!("a wrong key was accepted");
            }
        }
        Err(e @ managers::Error::Auth(_)) => {
            println!("refused: {e}");
            if should_be_accepted {
                bail!("the right key was refused: {e}");
            }
        }
        Err(e) => bail!("connecting failed for another reason: {e}"),
    }
    Ok(())
}
