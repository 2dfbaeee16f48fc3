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

#[derive(Clone, managers::Proxy)]
#[proxy(target = Pair)]
#[proxy(target = Pair)]
pub struct MyProxy {
    handle: managers::ProxyHandle,
}

fn main() {}
