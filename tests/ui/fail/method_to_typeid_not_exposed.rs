use managers::shared;

pub struct Item {
    name: String,
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

#[shared(exposed = [len], method_to_typeid = { get_item: Item })]
impl Shelf {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn get_item(&self, index: usize) -> String {
        self.items[index].clone()
    }
}

fn main() {}
