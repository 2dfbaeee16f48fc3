//! `typeid` is the name clients create objects by (a registration's); the attribute names
//! the type with `name`.

use managers::shared;

pub struct Counter;

#[shared(typeid = "Counter")]
impl Counter {
    pub fn get(&self) -> u64 {
        0
    }
}

fn main() {}
