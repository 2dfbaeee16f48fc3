use managers::shared;

pub struct Store {
    items: Vec<String>,
}

#[shared(exposed = [len, new])]
impl Store {
    pub fn new() -> Self {
        Store { items: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }
}

fn main() {}
