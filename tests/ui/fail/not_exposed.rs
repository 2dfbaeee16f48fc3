use managers::shared;

pub struct Counter {
    value: i64,
}

#[shared(exposed = [get])]
impl Counter {
    pub fn get(&self) -> i64 {
        self.value
    }

    pub fn set_to_zero(&mut self) {
        self.value = 0;
    }
}

async fn call(counter: CounterProxy) {
    let _ = counter.set_to_zero().await;
}

fn main() {
    let _ = call;
}
