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
}

impl Calls {
    pub(crate) fn start(&mut self, id: RequestId, token: CancellationToken) {
        self.running.insert(id, token);
    }

    pub(crate) fn any_running(&self) -> bool {
        !self.running.is_empty()
    }

    /// Call `id` finished with `undo`: keep it until the client takes the result. If the
    /// client cancelled the call meanwhile, the undo is returned, to run now.
    pub(crate) fn finish(&mut self, id: RequestId, undo: Option<Undo>) -> Option<Undo> {
        let cancelled = self
            .running
            .remove(&id)
            .is_some_and(|token| token.is_cancelled());
        let undo = undo?;
        if cancelled {
            return Some(undo);
        }
        self.untaken.insert(id, undo);
        None
    }

    /// A call answered inline with an effect to keep until it is taken.
    pub(crate) fn keep(&mut self, id: RequestId, undo: Undo) {
        self.untaken.insert(id, undo);
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
        self.running.clear();
        self.untaken.drain().map(|(_, undo)| undo).collect()
    }
}
