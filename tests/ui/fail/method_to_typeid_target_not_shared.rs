use managers::shared;

/// Not a `#[shared]` type: it cannot be returned as a proxy.
pub struct Item {
    name: String,
}

impl From<String> for Item {
    fn from(name: String) -> Self {
        Item { name }
    }
}

pub struct Shelf {
    items: Vec<String>,
}

#[shared(method_to_typeid = { get_item: Item })]
impl Shelf {
    pub fn get_item(&self, index: usize) -> String {
        self.items[index].clone()
    }
}

fn main() {
    let _ = Item::from(String::new()).name;
}
