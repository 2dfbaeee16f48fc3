//! A `Result` under another name (an alias, a renamed import) is refused: the attribute, not
//! the spelling of the return type, decides how a method's error travels.

use managers::shared;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct BoardError;

type BoardResult<T> = Result<T, BoardError>;
use std::result::Result as Res;

pub struct Board;

#[shared]
impl Board {
    pub fn submit(&self) -> BoardResult<u64> {
        Ok(0)
    }

    pub fn renamed(&self) -> Res<u64, String> {
        Ok(0)
    }
}

fn main() {}
