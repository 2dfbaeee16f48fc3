//! `async fn` methods, with `&self` and `&mut self`, awaited by the server; this type holds
//! its lock while it waits, and says so (`async_holds_lock`).

use std::time::Duration;

use managers::{shared, Error, Registration, RemoteError, ServerBuilder};

/// A queue whose methods wait.
pub struct Queue {
    items: Vec<String>,
}

#[shared(async_holds_lock)]
impl Queue {
    /// Waits, then doubles.
    pub async fn slow_double(&self, x: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        x * 2
    }

    /// Waits, then pushes; returns the new length.
    pub async fn push(&mut self, item: String) -> usize {
        tokio::task::yield_now().await;
        self.items.push(item);
        self.items.len()
    }

    /// An async fallible method.
    pub async fn pop(&mut self) -> Result<String, String> {
        tokio::task::yield_now().await;
        self.items.pop().ok_or_else(|| "empty".to_owned())
    }

    /// An async method with no result.
    pub async fn clear(&mut self) {
        self.items.clear();
    }

    /// A plain method next to async ones.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// A plain method next to async ones.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

async fn run() -> Result<(), Error> {
    let manager = ServerBuilder::new()
        .register(Registration::constructor("Queue", |(): ()| Queue {
            items: Vec::new(),
        }))
        .start()
        .await?;
    let queue: QueueProxy = manager.create("Queue", ()).await?;

    assert_eq!(queue.slow_double(21).await?, 42);
    assert_eq!(queue.push("a".to_owned()).await?, 1);
    assert_eq!(queue.push("b".to_owned()).await?, 2);
    assert_eq!(queue.len().await?, 2);
    assert_eq!(queue.pop().await?, "b");
    queue.clear().await?;
    assert!(queue.is_empty().await?);
    assert!(matches!(
        queue.pop().await,
        Err(Error::Remote(RemoteError::Method { .. }))
    ));

    drop(queue);
    manager.shutdown();
    Ok(())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run()).unwrap();
}
