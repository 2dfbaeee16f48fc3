//! A manager across machines, over TLS: the server proves who it is with a certificate,
//! clients prove who they are with certificates of their own (mutual TLS), and the authkey
//! handshake then runs inside TLS.
//!
//! The parent makes a CA for servers, one for clients, a server certificate (for
//! `localhost` and `127.0.0.1`) and a client certificate, writes them as PEM files to a
//! temporary directory (as an operator would deploy them), and starts four processes:
//!
//! - `server`: serves a shared counter with `ServerBuilder::tls` and a client CA;
//! - `worker`: trusts the server CA, presents its certificate, adds to the counter;
//! - `anonymous`: trusts the server CA but has no certificate: refused by the server;
//! - `plaintext`: no TLS at all: told at once that the server requires it.
//!
//! The same set-up with `managerd`:
//! ```text
//! MANAGERS_AUTHKEY=k managerd --address 0.0.0.0:50000 \
//!     --tls-cert server.pem --tls-key server.key --tls-client-ca clients-ca.pem
//! MANAGERS_AUTHKEY=k managerd describe --address host:50000 --tls-ca ca.pem \
//!     --tls-cert worker.pem --tls-key worker.key
//! ```
//!
//! Python's managers have no TLS; this is one of the things `managers` adds.
//!
//! Run: `cargo run --example tls`. Each client exits 0 only if it saw what it expected.

#[path = "../tests/support/certs.rs"]
mod certs;
#[path = "support/mod.rs"]
mod support;

use std::path::Path;

use anyhow::{bail, Result};
use managers::{
    shared, Client, ClientTls, Error, Registration, ServerBuilder, ServerTls, TlsError,
    TransportError,
};

/// A number clients add to.
#[derive(Debug, Default)]
pub struct Counter(u64);

#[shared]
impl Counter {
    /// Add `n`; returns the new value.
    pub fn add(&mut self, n: u64) -> u64 {
        self.0 += n;
        self.0
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    support::init_tracing();
    let args = support::args();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => parent().await,
        ["server", dir, key] => server(Path::new(dir), key).await,
        [role, dir, address, key] => client(role, Path::new(dir), address, key).await,
        _ => bail!("usage: tls [server DIR KEY | worker|anonymous|plaintext DIR ADDRESS KEY]"),
    }
}

async fn parent() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = certs::TestCa::new("servers CA");
    let clients_ca = certs::TestCa::new("clients CA");
    let server = ca.server(&["localhost", "127.0.0.1"]);
    let worker = clients_ca.client("worker-1");
    for (name, pem) in [
        ("ca.pem", ca.pem()),
        ("clients-ca.pem", clients_ca.pem()),
        ("server.pem", server.cert_pem),
        ("server.key", server.key_pem),
        ("worker.pem", worker.cert_pem),
        ("worker.key", worker.key_pem),
    ] {
        std::fs::write(dir.path().join(name), pem)?;
    }
    let path = dir.path().to_str().expect("a UTF-8 temp path");
    let key = support::random_key();
    let mut server = support::spawn("server", &["server", path, &key])?;
    let address = server.expect("ADDRESS ").await?;
    println!("[parent] TLS server listens on {address}");
    for role in ["worker", "anonymous", "plaintext"] {
        support::spawn(role, &[role, path, &address, &key])?
            .finish()
            .await?;
    }
    server.finish().await?;
    println!("[parent] every process behaved as expected");
    Ok(())
}

async fn server(dir: &Path, key: &str) -> Result<()> {
    let tls = ServerTls::from_pem_files(dir.join("server.pem"), dir.join("server.key"))?
        .client_ca_pem_file(dir.join("clients-ca.pem"))?;
    let server = ServerBuilder::new()
        .address("127.0.0.1:0")
        .authkey(key)
        .tls(tls)
        .register(Registration::instance("counter", Counter::default()))
        .bind()
        .await?;
    support::serve(server).await
}

async fn client(role: &str, dir: &Path, address: &str, key: &str) -> Result<()> {
    let trusting = ClientTls::new().ca_pem_file(dir.join("ca.pem"));
    let builder = match role {
        "worker" => Client::builder()
            .tls(trusting.identity_pem_files(dir.join("worker.pem"), dir.join("worker.key"))),
        "anonymous" => Client::builder().tls(trusting),
        "plaintext" => Client::builder(),
        _ => bail!("unknown role {role}"),
    };
    match (role, builder.connect(address, key).await) {
        ("worker", Ok(client)) => {
            let counter: CounterProxy = client.create("counter", ()).await?;
            println!("connected over TLS; counter = {}", counter.add(5).await?);
        }
        (
            "anonymous",
            Err(Error::Transport(TransportError::Tls(e @ TlsError::RefusedByPeer(_)))),
        ) => {
            println!("refused without a client certificate: {e}");
        }
        (
            "plaintext",
            Err(Error::Transport(TransportError::Tls(e @ TlsError::RequiredByServer))),
        ) => {
            println!("refused: {e}");
        }
        (role, Ok(_)) => bail!("{role} was let in"),
        (role, Err(e)) => bail!("{role} failed otherwise: {e}"),
    }
    Ok(())
}
