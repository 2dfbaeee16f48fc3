//! `custom_proxy = MyProxy`: the tutorial's hand-written proxy that squares `get_x`
//! (Python's `proxytype=MyProxy`). No proxy is generated; `MyProxy` is the type's proxy.

use managers::{shared, Error, HasProxy, Proxy, Registration, ServerBuilder};

/// The tutorial's pair.
pub struct Pair {
    x: i64,
}

#[shared(custom_proxy = MyProxy)]
impl Pair {
    /// The x coordinate.
    pub fn get_x(&self) -> i64 {
        self.x
    }

    /// Set the x coordinate.
    pub fn set_x(&mut self, x: i64) {
        self.x = x;
    }
}

/// Nothing was generated under the default name, so this one is free.
#[allow(dead_code)]
struct PairProxy;

/// A proxy that returns the square of `get_x`.
#[derive(Clone, managers::Proxy)]
#[proxy(target = Pair)]
pub struct MyProxy {
    handle: managers::ProxyHandle,
}

impl MyProxy {
    pub async fn get_x(&self) -> Result<i64, managers::Error> {
        let x: i64 = self.handle.call_method("get_x", ()).await?;
        Ok(x * x)
    }

    pub async fn set_x(&self, x: i64) -> Result<(), managers::Error> {
        self.handle.call_method("set_x", (x,)).await
    }
}

/// `MyProxy` is the proxy `HasProxy` names for `Pair`.
fn is_the_proxy<T: HasProxy<Proxy = MyProxy>>() {}

/// And it implements `Proxy` for `Pair`.
fn targets<P: Proxy<Target = Pair>>() {}

async fn run() -> Result<(), Error> {
    let manager = ServerBuilder::new()
        .register(Registration::constructor("get_pair", |(x,): (i64,)| Pair {
            x,
        }))
        .start()
        .await?;
    let pair: MyProxy = manager.create("get_pair", (3,)).await?;
    assert_eq!(pair.get_x().await?, 9);
    pair.set_x(-4).await?;
    assert_eq!(pair.get_x().await?, 16);
    // The token names the registered typeid, as in Python.
    assert_eq!(pair.handle().typeid(), "get_pair");

    drop(pair);
    manager.shutdown();
    Ok(())
}

fn main() {
    is_the_proxy::<Pair>();
    targets::<MyProxy>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run()).unwrap();
}
