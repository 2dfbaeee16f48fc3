//! The recommended shape for a type with `async` methods: state behind interior
//! mutability, every method on `&self`, so a method that waits holds no lock.

use std::sync::Mutex;

use managers::shared;

pub struct Board {
    jobs: Mutex<Vec<u64>>,
    done: tokio::sync::Notify,
}

#[shared]
impl Board {
    pub fn take(&self) -> Option<u64> {
        self.jobs.lock().unwrap().pop()
    }

    pub fn finish(&self) {
        self.done.notify_waiters();
    }

    pub async fn wait_done(&self) {
        self.done.notified().await;
    }
}

fn main() {}
