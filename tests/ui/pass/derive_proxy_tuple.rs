//! `#[derive(Proxy)]` on a tuple struct: the handle may be any field; the others are filled
//! with `Default::default()` when a proxy is made from a handle.

use managers::{shared, Error, Proxy, Registration, ServerBuilder};

/// A shared counter.
pub struct Counter {
    n: u32,
}

#[shared]
impl Counter {
    /// The count.
    pub fn get(&self) -> u32 {
        self.n
    }
}

/// A hand-written proxy that counts the calls it made; the handle is the second field.
#[derive(Clone, managers::Proxy)]
#[proxy(target = Counter)]
struct CountingProxy(
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    managers::ProxyHandle,
);

impl CountingProxy {
    async fn get(&self) -> Result<u32, Error> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.1.call_method("get", ()).await
    }

    fn calls(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Proxies travel: the derive implements serde too.
fn serde_traits<T: serde::Serialize + serde::de::DeserializeOwned>() {}

async fn run() -> Result<(), Error> {
    let manager = ServerBuilder::new()
        .register(Registration::constructor("Counter", |(n,): (u32,)| {
            Counter { n }
        }))
        .start()
        .await?;
    let counter: CountingProxy = manager.create("Counter", (5u32,)).await?;
    // The other field starts at its default.
    assert_eq!(counter.calls(), 0);
    assert_eq!(counter.get().await?, 5);
    assert_eq!(counter.calls(), 1);
    // `handle()` returns the tuple field.
    assert_eq!(counter.handle().id(), counter.1.id());

    drop(counter);
    manager.shutdown();
    Ok(())
}

fn main() {
    serde_traits::<CountingProxy>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run()).unwrap();
}
