use std::borrow::Cow;

use managers::shared;

pub struct Words;

#[shared]
impl Words {
    // The lifetime hidden in `Cow<str>` cannot be named by the proxy: write `Cow<'_, str>`.
    pub fn count(&self, word: Cow<str>) -> usize {
        word.len()
    }
}

fn main() {}
