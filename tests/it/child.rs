//! Child processes: this test binary re-executed in a role, so that tests can kill a real
//! client process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use managers::sync::{BarrierProxy, ConditionProxy, LockProxy, RLockProxy, SemaphoreProxy};
use managers::{Address, CallError, Client};

use crate::common::{BoardError, BoardProxy, CounterProxy, PairProxy, StoreProxy};

const ROLE: &str = "MANAGERS_IT_ROLE";
const ADDRESS: &str = "MANAGERS_IT_ADDRESS";
const COUNT: &str = "MANAGERS_IT_COUNT";
const BYTES: &str = "MANAGERS_IT_BYTES";

/// A running child process and the lines it prints.
pub struct ChildProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ChildProcess {
    /// Start this binary in `role` against the server at `address`.
    pub fn spawn(role: &str, address: &Address, count: usize) -> Self {
        Self::start(role, address, count, &[])
    }

    /// Start a role that receives `bytes` (a serialised proxy).
    pub fn spawn_with(role: &str, address: &Address, bytes: &[u8]) -> Self {
        Self::start(role, address, 0, bytes)
    }

    fn start(role: &str, address: &Address, count: usize, bytes: &[u8]) -> Self {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe)
            .args([
                "child::role",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, role)
            .env(ADDRESS, address.to_string())
            .env(COUNT, count.to_string())
            .env(BYTES, hex)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("child process starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Block until the child prints `prefix` (60 s at most); returns the rest of that line.
    pub fn wait_for(&mut self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                // libtest prints `test child::role ... ` in front of the first line.
                Ok(line) => {
                    if let Some(at) = line.find(prefix) {
                        return line[at..].to_owned();
                    }
                }
                Err(e) => {
                    let _ = self.child.kill();
                    panic!("child never printed {prefix:?}: {e}");
                }
            }
        }
    }

    /// SIGKILL the child and reap it.
    pub fn kill(mut self) {
        self.child.kill().expect("kill child");
        self.child.wait().expect("reap child");
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The entry point of child processes; does nothing in a normal test run.
#[test]
#[ignore = "a child-process role, started by other tests"]
fn role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let address = std::env::var(ADDRESS).expect("address");
    let count: usize = std::env::var(COUNT).expect("count").parse().expect("count");
    let hex = std::env::var(BYTES).unwrap_or_default();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let client = Client::connect(address, "test-key")
            .await
            .expect("child connects");
        match role.as_str() {
            // Create `count` pairs, say so, and wait to be killed.
            "hold" => {
                let mut held: Vec<PairProxy> = Vec::new();
                for i in 0..count {
                    held.push(client.create("get_pair", (i as i64, 0i64)).await.unwrap());
                }
                println!("HOLDING {}", held.len());
                std::future::pending::<()>().await;
            }
            // Take `count` references to the shared pair and wait to be killed.
            "hold_shared" => {
                let mut held: Vec<PairProxy> = Vec::new();
                for _ in 0..count {
                    held.push(client.create("the_pair", ()).await.unwrap());
                }
                println!("HOLDING {}", held.len());
                std::future::pending::<()>().await;
            }
            // Take a reference to the shared store, then block in a call that never ends.
            "stuck_in_call" => {
                let store: StoreProxy = client.create("shared_store", ()).await.unwrap();
                println!("CALLING");
                store.rendezvous(usize::MAX).await.unwrap();
                unreachable!("rendezvous of usize::MAX parties cannot complete");
            }
            // Receive a serialised proxy, adopt it, use it.
            "adopt_and_incr" => {
                let counter: CounterProxy = postcard::from_bytes(&bytes).expect("adopt");
                println!("INCR {}", counter.incr().await.unwrap());
                drop(counter);
                client.number_of_objects().await.unwrap(); // the decref went out
                println!("DONE");
            }
            // Match on a method's typed errors, in this other process.
            "typed_errors" => {
                let board: BoardProxy = client.create("board", ()).await.unwrap();
                println!("SUBMITTED {}", board.submit("job".into()).await.unwrap());
                if let Err(CallError::Method(BoardError::EmptyName)) =
                    board.submit(String::new()).await
                {
                    println!("EMPTY matched");
                }
                if let Err(CallError::Method(BoardError::NoSuchJob { id })) = board.take(3).await {
                    println!("MISSING {id}");
                }
            }
            // Receive a serialised proxy but never get to adopt it.
            "wait_then_adopt" => {
                println!("READY");
                std::future::pending::<()>().await;
                let _never: CounterProxy = postcard::from_bytes(&bytes).expect("adopt");
            }
            // Receive a lock, acquire it, say so, and wait to be killed holding it.
            "lock_acquire" => {
                let lock: LockProxy = postcard::from_bytes(&bytes).expect("adopt");
                lock.acquire().await.unwrap();
                println!("ACQUIRED");
                std::future::pending::<()>().await;
            }
            // Receive a re-entrant lock, acquire it twice, and wait to be killed.
            "rlock_acquire" => {
                let rlock: RLockProxy = postcard::from_bytes(&bytes).expect("adopt");
                rlock.acquire().await.unwrap();
                rlock.acquire().await.unwrap();
                assert!(rlock.is_owned().await.unwrap());
                println!("ACQUIRED 2");
                std::future::pending::<()>().await;
            }
            // Receive a semaphore, take every free permit, and wait to be killed.
            "semaphore_drain" => {
                let semaphore: SemaphoreProxy = postcard::from_bytes(&bytes).expect("adopt");
                let mut taken = 0;
                while semaphore.try_acquire().await.unwrap() {
                    taken += 1;
                }
                println!("ACQUIRED {taken}");
                std::future::pending::<()>().await;
            }
            // Receive a barrier and wait at it (the parent kills us there).
            "barrier_wait" => {
                let barrier: BarrierProxy = postcard::from_bytes(&bytes).expect("adopt");
                println!("WAITING");
                let result = barrier.wait().await;
                println!("WAITED {result:?}");
                std::future::pending::<()>().await;
            }
            // Receive a condition and a lock; hold the lock (a disconnect marker for the
            // parent), then wait on the condition (the parent kills us there).
            "condition_wait" => {
                let (condition, marker): (ConditionProxy, LockProxy) =
                    postcard::from_bytes(&bytes).expect("adopt");
                marker.acquire().await.unwrap();
                condition.acquire().await.unwrap();
                println!("ACQUIRED");
                let woken = condition.wait(None).await;
                println!("WOKEN {woken:?}");
                std::future::pending::<()>().await;
            }
            // Receive a queue and block in `get` on it (the parent kills us there).
            "queue_get" => {
                let queue: managers::sync::QueueProxy<i64> =
                    postcard::from_bytes(&bytes).expect("adopt");
                let (got, ()) = tokio::join!(queue.get(), async {
                    // Sent after the get on this connection: the get is on the server.
                    queue.qsize().await.unwrap();
                    println!("GETTING");
                });
                println!("GOT {got:?}");
                std::future::pending::<()>().await;
            }
            other => panic!("unknown role {other}"),
        }
    });
}
