//! An `async fn(&self)` next to a `&mut self` method holds the object's lock while it
//! waits: refused unless the type says `async_holds_lock`.

use managers::shared;

pub struct Board {
    jobs: Vec<u64>,
}

#[shared]
impl Board {
    pub fn take(&mut self) -> Option<u64> {
        self.jobs.pop()
    }

    pub async fn wait_done(&self, id: u64) -> bool {
        tokio::task::yield_now().await;
        self.jobs.contains(&id)
    }
}

fn main() {}
