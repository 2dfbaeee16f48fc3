use managers::shared;

pub struct Point {
    x: i64,
    y: i64,
}

pub struct Plane {
    points: Vec<(i64, i64)>,
}

#[shared]
impl Plane {
    pub fn add(&mut self, point: Point) {
        self.points.push((point.x, point.y));
    }
}

fn main() {}
