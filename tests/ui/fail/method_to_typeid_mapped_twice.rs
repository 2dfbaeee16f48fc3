use managers::shared;

pub struct Item {
    name: String,
}

impl From<String> for Item {
    fn from(name: String) -> Self {
        Item { name }
    }
}

#[shared]
impl Item {
    pub fn name(&self) -> String {
        self.name.clone()
    }
}

pub struct Shelf {
    items: Vec<String>,
}

#[shared(method_to_typeid = { get_item: Item, get_item: Item })]
impl Shelf {
    pub fn get_item(&self, index: usize) -> String {
        self.items[index].clone()
    }
}

fn main() {}
