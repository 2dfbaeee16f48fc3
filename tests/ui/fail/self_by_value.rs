use managers::shared;

pub struct Store {
    items: Vec<String>,
}

#[shared(exposed = [into_items])]
impl Store {
    pub fn into_items(self) -> Vec<String> {
        self.items
    }
}

fn main() {}
