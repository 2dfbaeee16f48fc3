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

// `Item` has no `From<String>`: the manager could not build one from the result.
#[shared(method_to_typeid = { get_item: Item })]
impl Shelf {
    pub fn get_item(&self, index: usize) -> String {
        self.items[index].clone()
    }
}

fn main() {}
