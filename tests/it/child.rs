//! Child processes: this test binary re-executed in a role, so that tests can kill a real
//! client process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use managers::{Address, Client};

use crate::common::{PairProxy, StoreProxy};

const ROLE: &str = "MANAGERS_IT_ROLE";
const ADDRESS: &str = "MANAGERS_IT_ADDRESS";
const COUNT: &str = "MANAGERS_IT_COUNT";

/// A running child process and the lines it prints.
pub struct ChildProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ChildProcess {
    /// Start this binary in `role` against the server at `address`.
    pub fn spawn(role: &str, address: &Address, count: usize) -> Self {
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
            // Take a reference to the shared store, then block in a call that never ends.
            "stuck_in_call" => {
                let store: StoreProxy = client.create("shared_store", ()).await.unwrap();
                println!("CALLING");
                store.rendezvous(usize::MAX).await.unwrap();
                unreachable!("rendezvous of usize::MAX parties cannot complete");
            }
            other => panic!("unknown role {other}"),
        }
    });
}
