//! A server running in the background of this process (Python's `BaseManager.start()`).

use std::ops::Deref;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use manager_core::Address;
use tokio::sync::oneshot;
use tracing::warn;

use crate::{AuthKey, Client, Error, Result, ServerBuilder, ShutdownHandle};

/// A manager server running on a thread of this process, with a client connected to it.
///
/// Derefs to that [`Client`]. [`Manager::shutdown`] stops the server and waits for it up to
/// the builder's `shutdown_timeout`; dropping the manager does the same.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), manager_runtime::Error> {
/// use manager_runtime::ServerBuilder;
/// let manager = ServerBuilder::new().start().await?;
/// assert_eq!(manager.number_of_objects().await?, 0);
/// assert!(manager.shutdown());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Manager {
    client: Client,
    authkey: AuthKey,
    stop: ShutdownHandle,
    /// Signalled by the server thread when it has stopped (in a mutex only to make
    /// `Manager` `Sync`; it is used once, from `&mut self`).
    stopped: std::sync::Mutex<std_mpsc::Receiver<()>>,
    thread: Option<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl ServerBuilder {
    /// Run the server in the background of this process, on a thread of its own, and
    /// return a [`Manager`](crate::Manager) connected to it (Python's `BaseManager.start()`).
    ///
    /// Cancel safe: the server thread starts at the first poll, and dropping the future
    /// before it returned the [`Manager`](crate::Manager) shuts that server down (its
    /// thread stops on its own, without being waited for).
    pub async fn start(self) -> Result<Manager> {
        start(self).await
    }
}

async fn start(builder: ServerBuilder) -> Result<Manager> {
    let shutdown_timeout = builder.shutdown_timeout_value();
    // The manager's own client trusts exactly the server's certificate.
    let mut connect = Client::builder();
    if let Some(tls) = builder.tls_value() {
        connect = connect.tls(tls.pinned_client().map_err(crate::TransportError::Tls)?);
    }
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stopped_tx, stopped) = std_mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("manager-server".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("manager-server-worker")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(Error::from(e)));
                    return;
                }
            };
            runtime.block_on(async move {
                match builder.bind().await {
                    Ok(server) => {
                        let info = (
                            server.address().clone(),
                            server.authkey().clone(),
                            server.shutdown_handle(),
                        );
                        if ready_tx.send(Ok(info)).is_err() {
                            // The `start` future was dropped: nobody can reach this server.
                            return;
                        }
                        if let Err(e) = server.serve_forever().await {
                            warn!(error = %e, "background manager stopped with an error");
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
            runtime.shutdown_timeout(Duration::from_millis(100));
            let _ = stopped_tx.send(());
        })?;
    let (address, authkey, stop) = ready_rx
        .await
        .map_err(|_| Error::Transport(crate::TransportError::ClosedLocally))??;
    // Stops the server if this future is dropped (or fails) before the manager exists.
    let stop = StopOnDrop(Some(stop));
    let client = connect.connect(address, authkey.clone()).await?;
    Ok(Manager {
        client,
        authkey,
        stop: stop.disarm(),
        stopped: std::sync::Mutex::new(stopped),
        thread: Some(thread),
        shutdown_timeout,
    })
}

/// Shuts a server down when dropped, unless disarmed.
struct StopOnDrop(Option<ShutdownHandle>);

impl StopOnDrop {
    fn disarm(mut self) -> ShutdownHandle {
        self.0.take().expect("armed until disarmed")
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            stop.shutdown();
        }
    }
}

impl Manager {
    /// The connected client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The address the server listens on.
    pub fn address(&self) -> &Address {
        self.client.address()
    }

    /// The server's key (random unless the builder set one); give it to other processes
    /// that should connect.
    pub fn authkey(&self) -> &AuthKey {
        &self.authkey
    }

    /// Stop the server; returns whether it stopped within the shutdown timeout. Can be
    /// called once; dropping the manager does it too. This blocks the calling thread for
    /// at most the shutdown timeout.
    pub fn shutdown(mut self) -> bool {
        self.stop_now()
    }

    fn stop_now(&mut self) -> bool {
        let Some(thread) = self.thread.take() else {
            return true;
        };
        self.stop.shutdown();
        // The server waits up to `shutdown_timeout` for calls; allow a little on top for
        // the thread to wind down.
        let limit = self.shutdown_timeout + Duration::from_millis(500);
        let stopped = self.stopped.get_mut().unwrap_or_else(|e| e.into_inner());
        match stopped.recv_timeout(limit) {
            Ok(()) | Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
                true
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                warn!("background manager did not stop within the shutdown timeout");
                false
            }
        }
    }
}

impl Deref for Manager {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.stop_now();
    }
}
