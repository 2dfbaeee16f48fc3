//! The proxy a custom proxy wraps must be a proxy of the same shared type.

use managers::shared;

pub struct Pair {
    x: i64,
}

#[shared]
impl Pair {
    pub fn get_x(&self) -> i64 {
        self.x
    }
}

pub struct Other;

#[shared]
impl Other {
    pub fn ping(&self) {}
}

#[derive(Clone, managers::Proxy)]
#[proxy(target = Pair)]
pub struct MyProxy {
    #[proxy(inner)]
    calls: OtherProxy,
}

#[derive(Clone, managers::Proxy)]
#[proxy(target = Pair)]
pub struct TwoInner {
    #[proxy(inner)]
    calls: PairProxy,
    #[proxy(inner)]
    handle: managers::ProxyHandle,
}

fn main() {}
