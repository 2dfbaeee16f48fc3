use managers::shared;

pub struct Store {
    items: Vec<String>,
}

#[shared]
impl Store {
    pub fn drain_into(&mut self, out: &mut Vec<String>) {
        out.append(&mut self.items);
    }
}

fn main() {}
