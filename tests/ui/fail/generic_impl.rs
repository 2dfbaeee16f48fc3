use managers::shared;

pub struct Store<T> {
    items: Vec<T>,
}

#[shared]
impl<T: Clone> Store<T> {
    pub fn first(&self) -> Option<T> {
        self.items.first().cloned()
    }
}

fn main() {}
