//! Effects a caller must take: a method that acquires or takes something (a lock, a
//! permit, a queue's item) registers how to undo it ([`Caller::undo_unless_taken`]); the
//! server keeps that undo until the client says it took the result (`Ack`), and runs it if
//! the client drops the call instead (`Cancel`) or its connection closes first. So a call
//! cancelled at any point, or a client that dies while the reply is on its way, leaves no
//! lock held and no item lost.
//!
//! [`Caller::undo_unless_taken`]: crate::Caller::undo_unless_taken

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use manager_core::wire::RequestId;
use tokio_util::sync::CancellationToken;

/// What undoes a call's effect.
pub(crate) type Undo = Box<dyn FnOnce() + Send>;

scoped_tls::scoped_thread_local! {
    /// Where the method running on this thread registers its undo.
    static SLOT: Mutex<Option<Undo>>
}

/// Register `undo` for the method running now (dropped outside one).
pub(crate) fn register(undo: Undo) {
    if !SLOT.is_set() {
        return;
    }
    SLOT.with(|slot| {
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        // Several effects in one call are undone newest first.
        *slot = Some(match slot.take() {
            Some(earlier) => Box::new(move || {
                undo();
                earlier();
            }),
            None => undo,
        });
    });
}

/// Run `f`, collecting the undo it registers.
pub(crate) fn collect<R>(f: impl FnOnce() -> R) -> (R, Option<Undo>) {
    let slot = Mutex::new(None);
    let out = SLOT.set(&slot, f);
    (out, slot.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// Drive `future`, collecting the undo it registers in any of its polls.
pub(crate) async fn collect_async<F: Future>(future: F) -> (F::Output, Option<Undo>) {
    let slot = Mutex::new(None);
    let mut future = std::pin::pin!(future);
    let out = std::future::poll_fn(|cx| SLOT.set(&slot, || future.as_mut().poll(cx))).await;
    (out, slot.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// One connection's calls in progress: those running (to cancel them) and those finished
/// whose effect the client has not taken yet (to undo it if it never does).
#[derive(Default)]
pub(crate) struct Calls {
    running: HashMap<RequestId, CancellationToken>,
    untaken: HashMap<RequestId, Undo>,
    /// The connection closed: an effect that comes now is undone at once.
    closed: bool,
}

/// Run `undo`, catching a panic (it is the user's code; the connection's other undos and
/// its cleanup must still run).
pub(crate) fn run(undo: Undo) {
    let undo = || super::panics::user_code(undo);
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(undo)).is_err() {
        tracing::warn!("an undo (Caller::undo_unless_taken) panicked");
    }
}

impl Calls {
    pub(crate) fn start(&mut self, id: RequestId, token: CancellationToken) {
        self.running.insert(id, token);
    }

    pub(crate) fn any_running(&self) -> bool {
        !self.running.is_empty()
    }

    /// Call `id` finished with `undo`: keep it until the client takes the result. If the
    /// call was cancelled meanwhile (by its client, or as its connection closed), the undo
    /// is returned, to run now.
    pub(crate) fn finish(&mut self, id: RequestId, undo: Option<Undo>) -> Option<Undo> {
        let cancelled = self
            .running
            .remove(&id)
            .is_some_and(|token| token.is_cancelled());
        let undo = undo?;
        if cancelled || self.closed {
            return Some(undo);
        }
        self.untaken.insert(id, undo);
        None
    }

    /// A call answered inline with an effect to keep until it is taken; returned, to run
    /// now, if the connection closed already.
    pub(crate) fn keep(&mut self, id: RequestId, undo: Undo) -> Option<Undo> {
        if self.closed {
            return Some(undo);
        }
        self.untaken.insert(id, undo);
        None
    }

    /// How many effects wait to be taken.
    pub(crate) fn untaken(&self) -> usize {
        self.untaken.len()
    }

    /// The client dropped call `id`: stop it if it runs; returns the undo of its effect if
    /// it finished with one.
    pub(crate) fn cancel(&mut self, id: RequestId) -> Option<Undo> {
        if let Some(token) = self.running.get(&id) {
            token.cancel();
            return None;
        }
        self.untaken.remove(&id)
    }

    /// The client took the result of call `id`: its effect stands.
    pub(crate) fn taken(&mut self, id: RequestId) -> Option<Undo> {
        self.untaken.remove(&id)
    }

    /// The connection closed: every effect not taken, to undo.
    pub(crate) fn close(&mut self) -> Vec<Undo> {
        self.closed = true;
        self.running.clear();
        self.untaken.drain().map(|(_, undo)| undo).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn counting(n: &Arc<AtomicUsize>) -> Undo {
        let n = n.clone();
        Box::new(move || {
            n.fetch_add(1, Ordering::SeqCst);
        })
    }

    #[test]
    fn an_effect_that_arrives_after_the_close_is_undone_at_once() {
        let undone = Arc::new(AtomicUsize::new(0));
        let mut calls = Calls::default();
        calls.start(1, CancellationToken::new());
        assert!(calls.keep(2, counting(&undone)).is_none());
        // The connection closes while call 1 is finishing.
        calls.close().into_iter().for_each(run);
        assert_eq!(undone.load(Ordering::SeqCst), 1);
        if let Some(undo) = calls.finish(1, Some(counting(&undone))) {
            run(undo);
        }
        assert!(calls.keep(3, counting(&undone)).map(run).is_some());
        assert_eq!(undone.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn taken_effects_stand_and_cancelled_ones_are_undone_once() {
        let undone = Arc::new(AtomicUsize::new(0));
        let mut calls = Calls::default();
        let token = CancellationToken::new();
        calls.start(1, token.clone());
        // Cancelled while running: the task sees it as it finishes.
        assert!(calls.cancel(1).is_none());
        assert!(token.is_cancelled());
        if let Some(undo) = calls.finish(1, Some(counting(&undone))) {
            run(undo);
        }
        assert!(calls.keep(2, counting(&undone)).is_none());
        drop(calls.taken(2));
        assert!(calls.cancel(2).is_none(), "taken: nothing to undo");
        assert!(calls.keep(3, counting(&undone)).is_none());
        if let Some(undo) = calls.cancel(3) {
            run(undo);
        }
        assert!(calls.cancel(3).is_none(), "at most once");
        assert_eq!(undone.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_panicking_undo_is_caught() {
        run(Box::new(|| panic!("undo failed")));
    }
}
