//! Methods whose arguments borrow: the proxy's `Call` holds the borrows for its lifetime.
use std::borrow::Cow;

use managers::{shared, Pipeline};

pub struct Words {
    words: Vec<String>,
}

#[shared]
impl Words {
    pub fn count(&self, word: &str) -> usize {
        self.words.iter().filter(|w| *w == word).count()
    }

    pub fn count_bytes(&self, word: &[u8], also: Option<&str>) -> usize {
        self.count(std::str::from_utf8(word).unwrap_or("")) + also.map_or(0, |w| self.count(w))
    }

    pub fn count_cow(&self, word: Cow<'_, str>) -> usize {
        self.count(&word)
    }
}

async fn use_proxy(words: &WordsProxy) -> Result<usize, managers::Error> {
    let word = String::from("a");
    let mut n = words.count(&word).await?;
    n += words.count_bytes(word.as_bytes(), Some(&word)).await?;
    n += words.count_cow(Cow::Borrowed(word.as_str())).await?;
    let mut pipeline = Pipeline::new();
    pipeline.push(words.count(&word));
    pipeline.push(words.count_cow(Cow::Owned(word.clone())));
    while let Some(more) = pipeline.next().await {
        n += more?;
    }
    Ok(n)
}

fn main() {
    let _ = use_proxy;
}
