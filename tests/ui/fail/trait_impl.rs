use managers::shared;

pub struct Store {
    items: Vec<String>,
}

pub trait Len {
    fn len(&self) -> usize;
}

#[shared]
impl Len for Store {
    fn len(&self) -> usize {
        self.items.len()
    }
}

fn main() {}
