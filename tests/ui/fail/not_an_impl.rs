use managers::shared;

#[shared]
pub struct Store {
    items: Vec<String>,
}

fn main() {}
