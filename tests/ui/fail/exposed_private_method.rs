use managers::shared;

pub struct Counter {
    value: i64,
}

#[shared(exposed = [get, secret])]
impl Counter {
    pub fn get(&self) -> i64 {
        self.value
    }

    fn secret(&self) -> i64 {
        self.value * 2
    }
}

fn main() {}
