use managers::shared;

pub struct Store {
    items: Vec<String>,
}

#[shared]
impl Store {
    pub fn push<T: ToString>(&mut self, item: T) {
        self.items.push(item.to_string());
    }
}

fn main() {}
