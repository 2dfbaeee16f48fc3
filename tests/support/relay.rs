//! A TCP relay for tests: forwards connections to a server, and cuts them on demand
//! (both sockets closed, as a reset or a dead link does) or refuses new ones for a while.

#![allow(dead_code, unreachable_pub)] // each includer uses part of it, from its own module

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A TCP relay to a server that can cut its connections.
pub struct Relay {
    pub address: String,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    refuse: Arc<AtomicBool>,
    accept: AbortHandle,
}

impl Relay {
    pub async fn start(upstream: impl ToString) -> Relay {
        let upstream = upstream.to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let refuse = Arc::new(AtomicBool::new(false));
        let (l, r) = (links.clone(), refuse.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if r.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                l.lock().unwrap().push(link.abort_handle());
            }
        })
        .abort_handle();
        Relay {
            address,
            links,
            refuse,
            accept,
        }
    }

    /// Close every connection going through the relay, both sides.
    pub fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// Refuse (accept and close) new connections, or stop refusing them.
    pub fn refuse(&self, refuse: bool) {
        self.refuse.store(refuse, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
