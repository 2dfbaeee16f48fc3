use managers::shared;

pub struct Store {
    items: Vec<String>,
}

#[shared]
impl Store {
    pub fn first(&self) -> Option<&String> {
        self.items.first()
    }

    pub fn all(&self) -> &[String] {
        &self.items
    }

    pub fn last_len(&self) -> Result<(usize, &str), String> {
        let last = self.items.last().ok_or("empty")?;
        Ok((last.len(), last))
    }
}

fn main() {}
