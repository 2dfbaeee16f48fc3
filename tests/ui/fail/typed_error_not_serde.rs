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

#[shared(errors = typed, method_to_typeid = { job: Job })]
impl Board {
    pub fn submit(&self) -> Result<u64, Opaque> {
        Err(Opaque)
    }

    /// A `method_to_typeid` method: the error is reported at the error type too.
    pub fn job(&self) -> Result<u64, Opaque> {
        Err(Opaque)
    }
}

pub struct Job(u64);

impl From<u64> for Job {
    fn from(n: u64) -> Self {
        Job(n)
    }
}

#[shared]
impl Job {
    pub fn get(&self) -> u64 {
        self.0
    }
}

fn main() {}
