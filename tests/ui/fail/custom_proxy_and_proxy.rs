use managers::shared;

pub struct Pair {
    x: i64,
}

#[derive(Clone, managers::Proxy)]
#[proxy(target = Pair)]
pub struct MyProxy {
    handle: managers::ProxyHandle,
}

#[shared(proxy = PairProxy, custom_proxy = MyProxy)]
impl Pair {
    pub fn get_x(&self) -> i64 {
        self.x
    }
}

fn main() {}
