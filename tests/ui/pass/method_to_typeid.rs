//! `method_to_typeid = { get_item: ItemWrapper }`: the tutorial's Pair hands out its item as
//! a new shared `ItemWrapper`, built on the server with `ItemWrapper: From<Ret>`, and the
//! proxy method returns the wrapper's proxy instead of a copy.

use std::sync::{Arc, Mutex};

use managers::{shared, Error, HasProxy, Proxy, Registration, RemoteError, ServerBuilder};

/// Plain data, shared by reference between the pair and its wrappers.
#[derive(Debug, Default)]
pub struct Item {
    value: i64,
}

/// A pair that holds an item.
#[derive(Default)]
pub struct Pair {
    item: Arc<Mutex<Item>>,
}

#[shared(method_to_typeid = { get_item: ItemWrapper, try_item: ItemWrapper })]
impl Pair {
    /// The item, shared as a new `ItemWrapper` object.
    pub fn get_item(&self) -> Arc<Mutex<Item>> {
        self.item.clone()
    }

    /// A fallible mapped method: `Ok` is shared, `Err` reaches the caller as a remote error.
    pub fn try_item(&self, allowed: bool) -> Result<Arc<Mutex<Item>>, String> {
        if allowed {
            Ok(self.item.clone())
        } else {
            Err("no item for you".to_owned())
        }
    }

    /// Not mapped: a copy, as usual.
    pub fn item_value(&self) -> i64 {
        self.item.lock().unwrap().value
    }
}

/// The tutorial's wrapper: its "constructor" takes what `get_item` returns.
pub struct ItemWrapper(Arc<Mutex<Item>>);

impl From<Arc<Mutex<Item>>> for ItemWrapper {
    fn from(item: Arc<Mutex<Item>>) -> Self {
        ItemWrapper(item)
    }
}

#[shared]
impl ItemWrapper {
    /// The wrapped item's value.
    pub fn get(&self) -> i64 {
        self.0.lock().unwrap().value
    }

    /// Set the wrapped item's value.
    pub fn set(&self, value: i64) {
        self.0.lock().unwrap().value = value;
    }
}

/// The mapped methods' signatures, checked by the compiler: they return the target's proxy.
async fn typed(pair: &PairProxy) -> Result<(ItemWrapperProxy, ItemWrapperProxy), Error> {
    let item: ItemWrapperProxy = pair.get_item().await?;
    let other: ItemWrapperProxy = pair.try_item(true).await?;
    Ok((item, other))
}

/// `HasProxy` names the generated proxy, which targets the wrapper.
fn has_proxy<T: HasProxy<Proxy = P>, P: Proxy<Target = T>>() {}

async fn run() -> Result<(), Error> {
    let manager = ServerBuilder::new()
        .register(Registration::constructor("Pair", |(): ()| Pair::default()))
        .start()
        .await?;
    let pair: PairProxy = manager.create("Pair", ()).await?;

    let (item, other) = typed(&pair).await?;
    item.set(7).await?;
    // The wrapper shares the pair's item: both see the change.
    assert_eq!(pair.item_value().await?, 7);
    assert_eq!(other.get().await?, 7);

    match pair.try_item(false).await {
        Err(Error::Remote(RemoteError::Method { method, message })) => {
            assert_eq!(method, "try_item");
            assert_eq!(message, "no item for you");
        }
        other => panic!("expected a method error, got {other:?}"),
    }

    drop((item, other, pair));
    manager.shutdown();
    Ok(())
}

fn main() {
    has_proxy::<ItemWrapper, ItemWrapperProxy>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run()).unwrap();
}
