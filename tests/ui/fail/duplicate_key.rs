use managers::shared;

pub struct Counter {
    value: i64,
}

#[shared(name = "Counter", name = "OtherCounter")]
impl Counter {
    pub fn get(&self) -> i64 {
        self.value
    }
}

fn main() {}
