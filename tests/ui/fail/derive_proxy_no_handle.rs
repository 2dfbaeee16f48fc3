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
pub struct MyProxy {
    name: String,
}

fn main() {}
