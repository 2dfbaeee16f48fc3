use managers::shared;

pub struct Door {
    open: bool,
}

#[shared]
impl Door {
    pub fn handle(&mut self) {
        self.open = !self.open;
    }

    pub fn referent_to_string(&self) -> String {
        format!("door open: {}", self.open)
    }
}

fn main() {}
