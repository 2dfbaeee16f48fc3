//! A proxy is an owned value: type parameters are fine, lifetimes are not.

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
pub struct MyProxy<'a> {
    handle: managers::ProxyHandle,
    label: &'a str,
}

fn main() {}
