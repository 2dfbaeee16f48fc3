//! A custom proxy that wraps the generated, typed one: `#[shared(proxy = PairCalls,
//! custom_proxy = MyPair)]` still generates the typed methods (as `PairCalls`) and makes
//! `MyPair` the type's proxy. `MyPair` adds one convenience method and reaches every other
//! method through `Deref`, all type-checked; no call by name anywhere. A generic custom
//! proxy (`Labelled<T>`) derives `Clone` and `Debug` without bounds on `T`.

use std::marker::PhantomData;

use managers::{shared, Error, HasProxy, Proxy, Registration, ServerBuilder};

/// The tutorial's pair.
pub struct Pair {
    x: std::sync::atomic::AtomicI64,
}

#[shared(proxy = PairCalls, custom_proxy = MyPair)]
impl Pair {
    /// The x coordinate.
    pub fn get_x(&self) -> i64 {
        self.x.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Set the x coordinate.
    pub fn set_x(&self, x: i64) {
        self.x.store(x, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The proxy users get: the generated calls, plus `square`.
#[derive(Clone, Debug, managers::Proxy)]
#[proxy(target = Pair, deref)]
pub struct MyPair {
    #[proxy(inner)]
    calls: PairCalls,
}

impl MyPair {
    /// The square of x, through the typed `get_x`.
    pub async fn square(&self) -> Result<i64, Error> {
        let x = self.get_x().await?;
        Ok(x * x)
    }
}

/// Not `Clone` or `Debug` itself: the derive's `clone` and `debug` need neither.
pub struct Unit;

/// A generic custom proxy: `T` only marks what it is for.
#[derive(managers::Proxy)]
#[proxy(target = Pair, clone, debug)]
pub struct Labelled<T> {
    #[proxy(inner)]
    calls: PairCalls,
    _for: PhantomData<fn() -> T>,
}

impl<T> Labelled<T> {
    pub async fn x(&self) -> Result<i64, Error> {
        self.calls.get_x().await
    }
}

/// `MyPair` is the proxy `HasProxy` names for `Pair`.
fn is_the_proxy<T: HasProxy<Proxy = MyPair>>() {}

async fn run() -> Result<(), Error> {
    let manager = ServerBuilder::new()
        .register(Registration::constructor("get_pair", |(x,): (i64,)| Pair {
            x: x.into(),
        }))
        .start()
        .await?;
    let pair: MyPair = manager.create("get_pair", (3,)).await?;
    assert_eq!(pair.square().await?, 9);
    pair.set_x(4).await?; // through `Deref` to `PairCalls`
    assert_eq!(pair.get_x().await?, 4);
    is_the_proxy::<Pair>();

    // A generic proxy over the same object, from the same handle.
    let labelled = Labelled::<Unit>::from_handle(pair.handle().clone());
    let copy = labelled.clone();
    assert_eq!(copy.x().await?, 4);
    assert!(format!("{copy:?}").contains("get_pair"), "{copy:?}");
    // Custom proxies travel like generated ones.
    let bytes = postcard::to_allocvec(&pair).unwrap();
    let again: MyPair = manager.client().adopting(|| postcard::from_bytes(&bytes)).unwrap();
    assert_eq!(again.get_x().await?, 4);
    drop((pair, labelled, copy, again));
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
