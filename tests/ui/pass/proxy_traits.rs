//! The generated proxy is `Clone + Send + Sync + Debug + 'static` and implements
//! `managers::Proxy` for its shared type.

use std::fmt::Debug;

use managers::{shared, Proxy};

/// A shared value.
pub struct Value {
    n: u64,
}

#[shared]
impl Value {
    /// The value.
    pub fn get(&self) -> u64 {
        self.n
    }
}

fn assert_proxy<P>()
where
    P: Proxy<Target = Value> + Clone + Send + Sync + Debug + 'static,
{
}

/// Proxies can move between tasks.
fn assert_send_future<F: std::future::Future + Send>(_: F) {}

fn use_in_spawned_task(proxy: ValueProxy) {
    assert_send_future(async move { proxy.get().await });
}

fn main() {
    assert_proxy::<ValueProxy>();
    assert_eq!(Value { n: 3 }.get(), 3);
    let _ = use_in_spawned_task;
}
