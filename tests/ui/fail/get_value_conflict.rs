use managers::shared;

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Point {
    x: i64,
}

#[shared(get_value)]
impl Point {
    pub fn get_value(&self) -> i64 {
        self.x
    }
}

fn main() {}
