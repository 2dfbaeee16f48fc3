//! `get_value`: a proxy method returning a copy of the whole object (Python's
//! `_getvalue()`), for types that are `Serialize + Deserialize`.

use managers::{shared, Error, Registration, ServerBuilder};

/// A point that can be copied to the caller whole.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    x: i64,
    y: i64,
}

#[shared(get_value)]
impl Point {
    /// Move the point.
    pub fn shift(&mut self, dx: i64, dy: i64) {
        self.x += dx;
        self.y += dy;
    }
}

/// The generated method's signature, checked by the compiler.
async fn copy(point: &PointProxy) -> Result<Point, Error> {
    point.get_value().await
}

async fn run() -> Result<(), Error> {
    let manager = ServerBuilder::new()
        .register(Registration::constructor("Point", |(x, y): (i64, i64)| {
            Point { x, y }
        }))
        .start()
        .await?;
    let point: PointProxy = manager.create("Point", (1, 2)).await?;
    point.shift(10, 20).await?;
    assert_eq!(copy(&point).await?, Point { x: 11, y: 22 });

    drop(point);
    manager.shutdown();
    Ok(())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run()).unwrap();
}
