use managers::shared;

pub struct Item {
    name: String,
}

impl From<()> for Item {
    fn from((): ()) -> Self {
        Item {
            name: String::new(),
        }
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

#[shared(method_to_typeid = { clear: Item })]
impl Shelf {
    pub fn clear(&mut self) {
        self.items.clear();
    }
}

fn main() {}
