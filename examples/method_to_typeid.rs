//! `method_to_typeid`: a method that hands out a proxy instead of a copy.
//!
//! The tutorial's `Pair` holds an `Item`. `#[shared(method_to_typeid = { get_item:
//! ItemWrapper })]` makes `get_item` share what it returns as a *new* object of the shared
//! type `ItemWrapper` (built with `ItemWrapper::from(item)`, the tutorial's one-argument
//! constructor), and the proxy's `get_item()` returns an `ItemWrapperProxy`. Both wrappers
//! wrap the pair's one item, so a change through either is seen through the other and by
//! the pair itself on the server. Unlike Python, the server need not register
//! `ItemWrapper`: the typeid comes with the type.
//!
//! Without the mapping, `get_item` would return its value by copy (as in Python), and the
//! returned type would have to be `Serialize + Deserialize`.
//!
//! Python equivalent:
//! ```python
//! manager.register('ItemWrapper', ItemWrapper)
//! manager.register('get_pair', callable=lambda: pair,
//!                  method_to_typeid={'get_item': 'ItemWrapper'})
//! # client
//! proxy1 = manager.get_pair().get_item()
//! proxy1._callmethod('set_wrapped_item', (7,))
//! proxy2 = manager.get_pair().get_item()
//! proxy2.set_wrapped_item(11)
//! print(proxy1.get_wrapped_item())   # 11
//! ```
//!
//! Run: `cargo run --example method_to_typeid`.

#[path = "support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};

use anyhow::{ensure, Result};
use managers::{manager, shared, Registration, ServerBuilder};

/// The tutorial's `Item`: plain data, never shared on its own.
#[derive(Debug)]
pub struct Item {
    item: String,
}

impl Item {
    fn new() -> Self {
        Item {
            item: "initialized".to_owned(),
        }
    }

    fn change(&mut self, new_item: String) {
        self.item = new_item;
    }

    fn retrieve(&self) -> String {
        self.item.clone()
    }
}

/// The tutorial's `Pair`, holding an item that wrappers share with it.
#[derive(Debug)]
pub struct Pair {
    x: i64,
    y: i64,
    i: Arc<Mutex<Item>>,
}

#[shared(method_to_typeid = { get_item: ItemWrapper })]
impl Pair {
    /// A pair with a fresh item.
    pub fn new(x: i64, y: i64) -> Self {
        Pair {
            x,
            y,
            i: Arc::new(Mutex::new(Item::new())),
        }
    }

    /// The item, shared as a new `ItemWrapper` object (the client gets its proxy).
    pub fn get_item(&self) -> Arc<Mutex<Item>> {
        self.i.clone()
    }

    /// What the pair itself sees as its item, returned by value.
    pub fn item_value(&self) -> String {
        self.i.lock().unwrap().retrieve()
    }

    /// The x value.
    pub fn get_x(&self) -> i64 {
        self.x
    }

    /// The y value.
    pub fn get_y(&self) -> i64 {
        self.y
    }
}

/// The tutorial's `ItemWrapper`: the shared object `get_item` returns a proxy of.
#[derive(Debug)]
pub struct ItemWrapper {
    item: Arc<Mutex<Item>>,
}

/// The one-argument "constructor" `method_to_typeid` calls with `get_item`'s result.
impl From<Arc<Mutex<Item>>> for ItemWrapper {
    fn from(item: Arc<Mutex<Item>>) -> Self {
        ItemWrapper { item }
    }
}

#[shared]
impl ItemWrapper {
    /// Change the wrapped item.
    pub fn set_wrapped_item(&self, new_item: String) {
        self.item.lock().unwrap().change(new_item);
    }

    /// The wrapped item.
    pub fn get_wrapped_item(&self) -> String {
        self.item.lock().unwrap().retrieve()
    }
}

manager! {
    /// The client's view (Python: `mgr.register('get_pair')`).
    pub struct PairManager {
        /// The one shared pair.
        fn get_pair() -> PairProxy;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    support::server_role_and_client(server, client).await
}

async fn server(key: String) -> Result<()> {
    let pair = Pair::new(15, 6);
    // Keep a handle on the pair's item to show what the server sees after the client ran.
    let item = pair.i.clone();
    let server = ServerBuilder::new()
        .authkey(key)
        // Python: manager.register('get_pair', callable=lambda: pair,
        //                          method_to_typeid={'get_item': 'ItemWrapper'})
        .register(Registration::instance("get_pair", pair))
        .bind()
        .await?;
    support::serve(server).await?;
    println!(
        "after the changes in the client process, the server's pair sees item as {:?}",
        item.lock().unwrap().retrieve()
    );
    Ok(())
}

async fn client(address: String, key: String) -> Result<()> {
    let manager = PairManager::connect(address, key).await?;
    let pair = manager.get_pair().await?;
    println!(
        "pair.get_x() = {}, pair.get_y() = {}",
        pair.get_x().await?,
        pair.get_y().await?
    );

    // A proxy, not a copy: an `ItemWrapperProxy` for a new `ItemWrapper` on the server.
    let proxy1 = pair.get_item().await?;
    println!("proxy1 = {proxy1:?}");
    println!("proxy1 sees item as {:?}", proxy1.get_wrapped_item().await?);
    let old = proxy1.get_wrapped_item().await?;
    // The tutorial changes it by name here (`_callmethod`); so do we.
    proxy1
        .handle()
        .call_method::<_, ()>("set_wrapped_item", ("7".to_owned(),))
        .await?;
    println!(
        "proxy1 changes item from {old:?} to {:?}",
        proxy1.get_wrapped_item().await?
    );

    // Python: proxy2 = mgr.get_pair().get_item()
    let proxy2 = manager.get_pair().await?.get_item().await?;
    println!("proxy2 = {proxy2:?}");
    ensure!(
        proxy1.handle().id() != proxy2.handle().id(),
        "each get_item() call should share a new wrapper object"
    );
    println!("proxy2 sees item as {:?}", proxy2.get_wrapped_item().await?);
    let old = proxy2.get_wrapped_item().await?;
    proxy2.set_wrapped_item("11".to_owned()).await?;
    println!(
        "proxy2 changes item from {old:?} to {:?}",
        proxy2.get_wrapped_item().await?
    );

    // Two wrappers, one item: proxy1 sees proxy2's change, and so does the pair itself.
    let seen = proxy1.get_wrapped_item().await?;
    println!("proxy1 sees item as {seen:?}");
    ensure!(
        seen == "11",
        "proxy1 should see proxy2's change, saw {seen:?}"
    );
    let in_pair = pair.item_value().await?;
    println!("pair.item_value() = {in_pair:?} (the server-side pair sees the change)");
    ensure!(
        in_pair == "11",
        "the pair should see the change, saw {in_pair:?}"
    );

    println!("debug_info():");
    for row in manager.debug_info().await? {
        println!(
            "  typeid {:?}, id {}, refcount {}",
            row.typeid, row.id, row.refcount
        );
    }
    Ok(())
}
