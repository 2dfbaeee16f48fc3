//! `name = "..."` and `proxy = Name` rename the shared type and the generated proxy.

use managers::traits::Shared;
use managers::{shared, Proxy};

/// A thing with a custom name and proxy name.
pub struct Thing {
    value: u8,
}

#[shared(name = "renamed.Thing", proxy = RemoteThing)]
impl Thing {
    /// The value.
    pub fn value(&self) -> u8 {
        self.value
    }
}

/// Names the renamed proxy in a signature: this only compiles if `RemoteThing` exists.
async fn read(thing: &RemoteThing) -> Result<u8, managers::Error> {
    thing.value().await
}

/// The renamed proxy still targets `Thing`.
fn target_of<P: Proxy<Target = Thing>>() {}

fn main() {
    assert_eq!(<Thing as Shared>::NAME, "renamed.Thing");
    assert_eq!(Thing { value: 7 }.value(), 7);
    target_of::<RemoteThing>();
    let _ = read;
}
