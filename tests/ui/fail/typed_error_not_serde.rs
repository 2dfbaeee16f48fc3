//! `errors = typed` needs an error type serde can encode and decode.

use managers::shared;

#[derive(Debug)]
pub struct Opaque;

impl std::fmt::Display for Opaque {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("opaque")
    }
}

pub struct Board;

#[shared(errors = typed)]
impl Board {
    pub fn submit(&self) -> Result<u64, Opaque> {
        Err(Opaque)
    }
}

fn main() {}
