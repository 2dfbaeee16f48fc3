//! The client connection's bookkeeping, as plain state machines: no socket, no lock, no
//! timer, no task. [`Requests`] is the table of calls in flight; [`WriteSchedule`] says who
//! writes the queued frames and when. `connection.rs` keeps each behind a lock and carries
//! out what their methods return (wake these callers, wake the writer task, write after one
//! yield, send a cancel), and the unit tests at the end drive every transition without any
//! I/O.
//!
//! The rules they encode (why each exists, measured: `docs/design.md`):
//! - a frame queued inside a tokio task is the writer task's to write: the first one queued
//!   since its last write wakes it ([`Push::WakeWriter`]), the others ride on that wake
//!   ([`Push::Nothing`]); the writer task always runs, so none is stranded;
//! - a frame queued outside any task (`block_on`) is its own caller's to write: the caller
//!   yields once, so the other futures polled with it queue theirs, and then writes whatever
//!   is queued ([`Push::YieldThenWrite`]). It never undertakes to write anyone else's
//!   frame, so a call future kept and never polled again can leave only its own frame
//!   unwritten (any later write on the connection takes it along).
//!
//! No timer and no watch are involved: nothing waits for a caller that might not come back.

use std::task::Waker;

use manager_core::wire::RequestId;
use rustc_hash::FxHashMap;

use super::reply::OwnedReply;
use crate::{Error, Result, TransportError};

/// Where one call's reply waits for its caller.
enum Slot {
    /// No reply yet; the waker of the caller's task, once it polled.
    Waiting(Option<Waker>),
    /// The reply came (or the connection failed) and the caller has not taken it yet.
    Delivered(Result<OwnedReply>),
}

/// The calls in flight on one connection.
pub(crate) struct Requests {
    /// By request id (ids are this side's own, so a fast hash is safe).
    calls: FxHashMap<RequestId, Slot>,
    /// Set once the connection failed; every later call gets this error at once.
    closed: Option<Error>,
    /// The most calls in flight at once (`ClientBuilder::max_calls_in_flight`).
    max_in_flight: usize,
    /// Callers waiting for room to start their call.
    room: Vec<Waker>,
}

/// The default bound of calls in flight on one connection.
pub(crate) const MAX_IN_FLIGHT: usize = 64 * 1024;

impl Default for Requests {
    fn default() -> Self {
        Requests::new(MAX_IN_FLIGHT)
    }
}

/// What [`Requests::deliver`] did with a batch of replies.
#[derive(Default)]
pub(crate) struct Delivered {
    /// The callers to wake (once the lock is released).
    pub(crate) wakers: Vec<Waker>,
    /// Replies nobody waits for any more (their calls were dropped, or sent without a
    /// reply slot): a new object among them must be released.
    pub(crate) unwanted: Vec<Result<OwnedReply>>,
}

/// What [`Requests::take`] found.
pub(crate) enum Taken {
    /// No reply yet; the waker given is in the slot.
    Pending,
    /// The reply (or the connection's error).
    Ready(Result<OwnedReply>),
}

/// What [`Requests::forget`] found for a call dropped before it took its reply.
pub(crate) enum Forgotten {
    /// The reply had not come: tell the server to stop the call.
    Cancel,
    /// The reply had come: it is dropped unseen (a new object in it must be released, an
    /// effect in it undone).
    Delivered(Result<OwnedReply>),
}

impl Requests {
    /// An empty table that keeps at most `max_in_flight` calls in flight.
    pub(crate) fn new(max_in_flight: usize) -> Self {
        Requests {
            calls: FxHashMap::default(),
            closed: None,
            max_in_flight: max_in_flight.max(1),
            room: Vec::new(),
        }
    }

    /// How many calls are in flight.
    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether another call may start: fewer than the bound are in flight.
    pub(crate) fn has_room(&self) -> bool {
        self.calls.len() < self.max_in_flight
    }

    /// A caller found no room ([`has_room`](Self::has_room) false, or too many bytes queued):
    /// `waker` is woken once a call in flight ends, or the queue drains
    /// ([`room_made`](Self::room_made)).
    pub(crate) fn wait_for_room(&mut self, waker: &Waker) {
        if !self.room.iter().any(|w| w.will_wake(waker)) {
            self.room.push(waker.clone());
        }
    }

    /// Whether a caller waits for room.
    pub(crate) fn room_wanted(&self) -> bool {
        !self.room.is_empty()
    }

    /// Room was made (a call ended, or the queue drained): the callers waiting for it, to
    /// wake (they try again; one that finds none waits again).
    pub(crate) fn room_made(&mut self) -> Vec<Waker> {
        if self.has_room() || self.closed.is_some() {
            std::mem::take(&mut self.room)
        } else {
            Vec::new()
        }
    }

    /// The connection's failure, once it failed.
    pub(crate) fn closed(&self) -> Option<&Error> {
        self.closed.as_ref()
    }

    /// Make the reply slot of call `id`, with the waker of the poll that made it if any.
    pub(crate) fn open(&mut self, id: RequestId, waker: Option<Waker>) {
        self.calls.insert(id, Slot::Waiting(waker));
    }

    /// Put a batch of replies in their slots.
    pub(crate) fn deliver(
        &mut self,
        replies: impl IntoIterator<Item = (RequestId, Result<OwnedReply>)>,
        out: &mut Delivered,
    ) {
        for (id, reply) in replies {
            match self.calls.get_mut(&id) {
                Some(slot @ Slot::Waiting(_)) => {
                    let Slot::Waiting(waker) = std::mem::replace(slot, Slot::Delivered(reply))
                    else {
                        unreachable!("matched above")
                    };
                    out.wakers.extend(waker);
                }
                _ => out.unwanted.push(reply),
            }
        }
    }

    /// Take the reply of call `id` if it is delivered; if not, leave `waker` in its slot
    /// (keeping the one there if it would wake the same task).
    pub(crate) fn take(&mut self, id: RequestId, waker: Option<&Waker>) -> Taken {
        match self.calls.get_mut(&id) {
            Some(Slot::Waiting(old)) => {
                if let Some(new) = waker {
                    if !old.as_ref().is_some_and(|w| w.will_wake(new)) {
                        *old = Some(new.clone());
                    }
                }
                Taken::Pending
            }
            Some(Slot::Delivered(_)) => match self.calls.remove(&id) {
                Some(Slot::Delivered(reply)) => Taken::Ready(reply),
                _ => unreachable!("matched above"),
            },
            None => Taken::Ready(Err(self.closed_error())),
        }
    }

    /// Forget call `id`, whose caller dropped it before taking its reply.
    pub(crate) fn forget(&mut self, id: RequestId) -> Forgotten {
        match self.calls.remove(&id) {
            Some(Slot::Delivered(reply)) => Forgotten::Delivered(reply),
            _ => Forgotten::Cancel,
        }
    }

    /// Fail every waiting call, and all later ones, with `error`; returns the callers to
    /// wake.
    pub(crate) fn close(&mut self, error: Error) -> Vec<Waker> {
        let mut wakers = std::mem::take(&mut self.room);
        self.closed.get_or_insert(error.clone());
        for slot in self.calls.values_mut() {
            if let Slot::Waiting(waker) = slot {
                wakers.extend(waker.take());
                *slot = Slot::Delivered(Err(error.clone()));
            }
        }
        wakers
    }

    /// The error of a call whose slot is gone: the connection's failure.
    fn closed_error(&self) -> Error {
        self.closed
            .clone()
            .unwrap_or(Error::Transport(TransportError::Closed))
    }

    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.len()
    }
}

/// Who writes the frames queued on one connection, and when.
#[derive(Default, Debug, PartialEq, Eq, Clone)]
pub(crate) struct WriteSchedule {
    /// The writer task was woken for the queued frames and has not written them yet.
    scheduled: bool,
    /// The writer task is asked to write the queued frames now.
    wanted: bool,
    /// The connection was dropped: the writer task writes what is left and stops.
    shutdown: bool,
}

/// What the caller that queued a frame must do ([`WriteSchedule::push`]).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Push {
    /// Nothing: the writer task was woken for frames queued before it and writes this one
    /// too.
    Nothing,
    /// Wake the writer task (the caller is inside a tokio task: it runs once the caller's
    /// task yields, or at once on another worker).
    WakeWriter,
    /// The caller is outside any task and no other call is in flight on the connection
    /// (nothing to batch with): write now.
    WriteNow,
    /// The caller is outside any task and other calls are in flight: yield once, so that
    /// the futures polled with it queue theirs, then write what is queued.
    YieldThenWrite,
}

impl WriteSchedule {
    /// A frame was queued by a caller inside a tokio task (`in_task`) or outside any;
    /// `in_flight`: other calls are in flight on the connection.
    pub(crate) fn push(&mut self, in_task: bool, in_flight: bool) -> Push {
        if !in_task {
            // Never undertaken for others: a caller that does not come back strands only
            // its own frame, and only while other calls are in flight.
            return if in_flight {
                Push::YieldThenWrite
            } else {
                Push::WriteNow
            };
        }
        if std::mem::replace(&mut self.scheduled, true) {
            Push::Nothing
        } else {
            Push::WakeWriter
        }
    }

    /// Everything queued was written.
    pub(crate) fn flushed(&mut self) {
        self.scheduled = false;
    }

    /// Ask the writer task to write now.
    pub(crate) fn want_write(&mut self) {
        self.wanted = true;
    }

    /// The connection was dropped.
    pub(crate) fn shut_down(&mut self) {
        self.shutdown = true;
    }

    /// Whether the connection was dropped.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shutdown
    }

    /// The writer task woke: whether it must write (asked to, or shutting down).
    pub(crate) fn take_wanted(&mut self) -> bool {
        std::mem::take(&mut self.wanted) || self.shutdown
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    use super::*;

    /// A waker that counts its wakes.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Counter>, Waker) {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        (counter.clone(), Waker::from(counter))
    }

    fn value(n: u8) -> Result<OwnedReply> {
        Ok(OwnedReply::Count(u64::from(n)))
    }

    fn count(taken: Taken) -> Option<u64> {
        match taken {
            Taken::Ready(Ok(OwnedReply::Count(n))) => Some(n),
            Taken::Ready(_) => None,
            Taken::Pending => panic!("pending"),
        }
    }

    #[test]
    fn a_reply_wakes_its_caller_and_is_taken_once() {
        let mut requests = Requests::default();
        let (woken, w) = waker();
        requests.open(1, Some(w.clone()));
        assert!(matches!(requests.take(1, Some(&w)), Taken::Pending));
        let mut out = Delivered::default();
        requests.deliver([(1, value(7))], &mut out);
        assert_eq!(out.wakers.len(), 1);
        out.wakers.drain(..).for_each(Waker::wake);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert_eq!(count(requests.take(1, None)), Some(7));
        assert_eq!(requests.in_flight(), 0);
        // A slot that is gone gives the connection's error (here: closed by the peer).
        assert!(matches!(
            requests.take(1, None),
            Taken::Ready(Err(Error::Transport(TransportError::Closed)))
        ));
    }

    #[test]
    fn replies_are_taken_in_any_order() {
        // (replies delivered, order taken)
        let table: [(u64, &[u64]); 3] = [(1, &[1]), (3, &[1, 2, 3]), (3, &[3, 1, 2])];
        for (n, order) in table {
            let mut requests = Requests::default();
            for id in 1..=n {
                requests.open(id, None);
            }
            let mut out = Delivered::default();
            requests.deliver((1..=n).map(|id| (id, value(id as u8))), &mut out);
            let got: Vec<Option<u64>> = order
                .iter()
                .map(|id| count(requests.take(*id, None)))
                .collect();
            let expected: Vec<Option<u64>> = order.iter().map(|id| Some(*id)).collect();
            assert_eq!(got, expected, "{n} replies taken in {order:?}");
            assert_eq!(requests.in_flight(), 0);
        }
    }

    #[test]
    fn replies_nobody_waits_for_are_given_back() {
        let mut requests = Requests::default();
        requests.open(1, None);
        let mut out = Delivered::default();
        requests.deliver([(1, value(1)), (2, value(2))], &mut out);
        assert_eq!(out.unwanted.len(), 1, "no slot for call 2");
        assert_eq!(count(requests.take(1, None)), Some(1));
    }

    #[test]
    fn a_dropped_call_is_cancelled_or_its_reply_dropped() {
        let mut requests = Requests::default();
        requests.open(1, None);
        requests.open(2, None);
        assert!(matches!(requests.forget(1), Forgotten::Cancel));
        requests.deliver([(2, value(2))], &mut Delivered::default());
        assert!(matches!(requests.forget(2), Forgotten::Delivered(Ok(_))));
        assert_eq!(requests.in_flight(), 0);
        // A reply for a forgotten call is given back, not kept.
        let mut out = Delivered::default();
        requests.deliver([(1, value(1))], &mut out);
        assert_eq!(out.unwanted.len(), 1);
    }

    #[test]
    fn closing_fails_every_waiting_call() {
        let mut requests = Requests::default();
        let (woken, w) = waker();
        requests.open(1, Some(w));
        requests.open(2, None);
        requests.open(3, None);
        requests.deliver([(3, value(3))], &mut Delivered::default());
        let wakers = requests.close(Error::Transport(TransportError::ClosedLocally));
        assert_eq!(wakers.len(), 1);
        wakers.into_iter().for_each(Waker::wake);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert!(requests.closed().is_some());
        assert!(matches!(
            requests.take(1, None),
            Taken::Ready(Err(Error::Transport(TransportError::ClosedLocally)))
        ));
        // The delivered reply stays.
        assert_eq!(count(requests.take(3, None)), Some(3));
        // Later calls get the error too.
        assert!(matches!(
            requests.take(9, None),
            Taken::Ready(Err(Error::Transport(TransportError::ClosedLocally)))
        ));
    }

    #[test]
    fn a_poll_with_another_waker_replaces_the_one_in_the_slot() {
        let mut requests = Requests::default();
        let (first, w1) = waker();
        let (second, w2) = waker();
        requests.open(1, Some(w1));
        assert!(matches!(requests.take(1, Some(&w2)), Taken::Pending));
        let mut out = Delivered::default();
        requests.deliver([(1, value(1))], &mut out);
        out.wakers.into_iter().for_each(Waker::wake);
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn calls_beyond_the_bound_wait_for_room_and_are_woken_as_calls_end() {
        let mut requests = Requests::new(2);
        requests.open(1, None);
        assert!(requests.has_room());
        requests.open(2, None);
        assert!(!requests.has_room());
        let (woken, w) = waker();
        requests.wait_for_room(&w);
        requests.wait_for_room(&w); // the same task waits once
        assert!(requests.room_wanted());
        assert!(requests.room_made().is_empty(), "no room yet");
        requests.deliver([(1, value(1))], &mut Delivered::default());
        assert_eq!(count(requests.take(1, None)), Some(1));
        let wakers = requests.room_made();
        assert_eq!(wakers.len(), 1);
        wakers.into_iter().for_each(Waker::wake);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert!(!requests.room_wanted());
        // A dropped call makes room too, and a closed connection wakes every waiter.
        requests.open(3, None);
        requests.wait_for_room(&w);
        assert!(matches!(requests.forget(3), Forgotten::Cancel));
        assert_eq!(requests.room_made().len(), 1);
        requests.open(4, None);
        requests.wait_for_room(&w);
        assert_eq!(
            requests
                .close(Error::Transport(TransportError::Closed))
                .len(),
            1
        );
    }

    #[test]
    fn the_write_schedule_gives_each_frame_one_writer() {
        use Push::*;
        // ((queued inside a task?, other calls in flight?), expected) for frames queued one
        // after another, none written between.
        type Pushes<'a> = &'a [(bool, bool)];
        let table: [(Pushes<'_>, &[Push]); 7] = [
            // Inside tasks: the first wakes the writer task, the rest ride on that wake,
            // whatever is in flight.
            (
                &[(true, false), (true, true), (true, false)],
                &[WakeWriter, Nothing, Nothing],
            ),
            // Outside any task each caller writes for itself: at once when nothing else
            // is in flight, after one yield when something is (to batch with it).
            (&[(false, false)], &[WriteNow]),
            (
                &[(false, true), (false, true)],
                &[YieldThenWrite, YieldThenWrite],
            ),
            // Mixed: a caller outside a task never takes the writer task's place ...
            (
                &[(false, true), (true, true), (true, true)],
                &[YieldThenWrite, WakeWriter, Nothing],
            ),
            // ... nor relies on it.
            (
                &[(true, true), (false, true)],
                &[WakeWriter, YieldThenWrite],
            ),
            (&[(true, true), (false, false)], &[WakeWriter, WriteNow]),
            (
                &[(true, true), (false, true), (true, true)],
                &[WakeWriter, YieldThenWrite, Nothing],
            ),
        ];
        for (pushes, expected) in table {
            let mut schedule = WriteSchedule::default();
            let got: Vec<Push> = pushes
                .iter()
                .map(|(in_task, in_flight)| schedule.push(*in_task, *in_flight))
                .collect();
            assert_eq!(got, expected, "{pushes:?}");
        }
    }

    #[test]
    fn the_writer_task_is_woken_again_once_it_wrote() {
        let mut schedule = WriteSchedule::default();
        assert_eq!(schedule.push(true, false), Push::WakeWriter);
        assert_eq!(
            schedule.push(true, true),
            Push::Nothing,
            "woken until it writes"
        );
        schedule.want_write();
        assert!(schedule.take_wanted());
        assert!(!schedule.take_wanted(), "once");
        schedule.flushed();
        assert_eq!(schedule.push(true, true), Push::WakeWriter);
    }

    #[test]
    fn a_dropped_connection_has_the_writer_task_write_what_is_left() {
        let mut schedule = WriteSchedule::default();
        assert!(!schedule.take_wanted());
        schedule.shut_down();
        assert!(schedule.is_shut_down());
        assert!(schedule.take_wanted());
    }
}
