//! `errors = typed` on a method needs a `Result<T, E>` with its error type written out, on
//! an exposed method; `errors` takes `typed` or `display`.

use managers::shared;

pub struct Board;

#[shared(errors = typed)]
impl Board {
    /// The alias hides the error type.
    pub fn parse(&self, text: String) -> std::io::Result<u64> {
        Ok(text.len() as u64)
    }

    #[shared(errors = typed)]
    pub fn len(&self) -> u64 {
        0
    }

    #[shared(errors = typed)]
    fn private(&self) -> Result<u64, String> {
        Ok(0)
    }

    #[shared(errors = maybe)]
    pub fn other(&self) -> Result<u64, String> {
        Ok(0)
    }

    #[shared(exposed = [len])]
    pub fn wrong_key(&self) -> Result<u64, String> {
        Ok(0)
    }
}

pub struct Counter;

#[shared(errors = typed)]
impl Counter {
    pub fn get(&self) -> u64 {
        0
    }
}

fn main() {}
