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
pub enum MyProxy {
    Remote(managers::ProxyHandle),
    Local,
}

fn main() {}
