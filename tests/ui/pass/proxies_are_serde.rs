//! Generated proxies implement `Serialize + Deserialize`: a proxy can be an argument and a
//! result of an exposed method, so shared objects can hold proxies of other shared objects.

use std::collections::HashMap;

use managers::{shared, Error, Registration, ServerBuilder};

/// A shared counter.
#[derive(Default)]
pub struct Counter {
    n: i64,
}

#[shared]
impl Counter {
    /// Count one.
    pub fn incr(&mut self) -> i64 {
        self.n += 1;
        self.n
    }
}

/// A shared object holding proxies of counters, and of other registries.
#[derive(Default)]
pub struct Registry {
    counters: HashMap<String, CounterProxy>,
    links: Vec<RegistryProxy>,
}

#[shared]
impl Registry {
    /// A proxy as an argument.
    pub fn put(&mut self, name: String, c: CounterProxy) {
        self.counters.insert(name, c);
    }

    /// A proxy inside the result.
    pub fn get(&self, name: String) -> Option<CounterProxy> {
        self.counters.get(&name).cloned()
    }

    /// A proxy of the type's own kind.
    pub fn link(&mut self, other: RegistryProxy) -> usize {
        self.links.push(other);
        self.links.len()
    }
}

fn serde_traits<T: serde::Serialize + serde::de::DeserializeOwned>() {}

async fn run() -> Result<(), Error> {
    let manager = ServerBuilder::new()
        .register(Registration::constructor("Counter", |(): ()| {
            Counter::default()
        }))
        .register(Registration::constructor("Registry", |(): ()| {
            Registry::default()
        }))
        .start()
        .await?;
    let counter: CounterProxy = manager.create("Counter", ()).await?;
    let registry: RegistryProxy = manager.create("Registry", ()).await?;

    registry.put("a".to_owned(), counter.clone()).await?;
    let back: CounterProxy = registry.get("a".to_owned()).await?.expect("stored");
    assert_eq!(back.incr().await?, 1);
    assert_eq!(counter.incr().await?, 2);
    assert!(registry.get("b".to_owned()).await?.is_none());

    drop((counter, back, registry));
    manager.shutdown();
    Ok(())
}

fn main() {
    serde_traits::<CounterProxy>();
    serde_traits::<RegistryProxy>();
    serde_traits::<Option<CounterProxy>>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run()).unwrap();
}
