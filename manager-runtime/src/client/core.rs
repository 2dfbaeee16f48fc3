//! The client connection's bookkeeping, as plain state machines: no socket, no lock, no
//! timer, no task. [`Requests`] is the table of calls in flight and the accounting of
//! batches of replies; [`WriteSchedule`] says who writes the queued frames and when.
//! `connection.rs` keeps each behind a lock and carries out what their methods return
//! (wake these callers, write now, wake the writer task, send a cancel), and the unit tests
//! at the end drive every transition without any I/O.
//!
//! The rules they encode (why each exists, measured: `docs/performance.md`):
//! - every request's frame is written by exactly one party: the caller that queued it when
//!   nobody else has undertaken to ([`Push::Write`]), or the writer task;
//! - while replies of the latest batch are delivered and not taken yet, new requests are
//!   held back ([`Push::HeldBack`]), and the caller that takes the batch's last reply
//!   writes them ([`Taken::write`]); in a batch of [`SPLIT_BATCH`] replies or more, the
//!   caller that takes half of them writes too;
//! - frames whose writer might not come back (held back for a batch, or left by a caller
//!   that yields) are *watched*: the writer task writes them at its next watch tick
//!   ([`WriteSchedule::watch_tick`]) and stops holding back for that batch.

use std::task::Waker;

use manager_core::wire::RequestId;
use rustc_hash::FxHashMap;

use super::connection::OwnedReply;
use crate::{Error, Result, TransportError};

/// Batches of replies at least this large release the requests held back for them in two
/// halves, so that client and server work at the same time.
pub(crate) const SPLIT_BATCH: usize = 32;

/// Where one call's reply waits for its caller.
enum Slot {
    /// No reply yet; the waker of the caller's task, once it polled.
    Waiting(Option<Waker>),
    /// The reply came (or the connection failed) and the caller has not taken it yet.
    /// `batch` is the reader batch it came in (0: not counted in any batch).
    Delivered {
        batch: u64,
        reply: Result<OwnedReply>,
    },
}

/// The calls in flight on one connection, and the batches their replies came in.
pub(crate) struct Requests {
    /// By request id (ids are this side's own, so a fast hash is safe).
    calls: FxHashMap<RequestId, Slot>,
    /// The reader's latest batch of replies.
    batch: u64,
    /// Replies of that batch not taken yet. While some are, requests are held back.
    untaken: usize,
    /// In a large batch, half its size: held-back requests are also written when this many
    /// replies are left to take (0: only at the end).
    half: usize,
    /// Set once the connection failed; every later call gets this error at once.
    closed: Option<Error>,
    /// The most calls in flight at once (`ClientBuilder::max_calls_in_flight`).
    max_in_flight: usize,
    /// Callers waiting for room to start their call.
    room: Vec<Waker>,
    /// Counts every call opened, taken or forgotten: the writer task's watch waits while
    /// this moves (callers are still at work).
    progress: u64,
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
    /// The reply (or the connection's error). `write`: this caller took the last reply of
    /// a batch (or half of a large one), so the requests held back for it are its to
    /// release (see [`WriteSchedule::release_held_back`]).
    Ready {
        reply: Result<OwnedReply>,
        write: bool,
    },
}

/// What [`Requests::forget`] found for a call dropped before it took its reply.
pub(crate) enum Forgotten {
    /// The reply had not come: tell the server to stop the call.
    Cancel,
    /// The reply had come: it is dropped unseen (a new object in it must be released, an
    /// effect in it undone). `write` as in [`Taken::Ready`].
    Delivered {
        reply: Result<OwnedReply>,
        write: bool,
    },
}

impl Requests {
    /// An empty table that keeps at most `max_in_flight` calls in flight.
    pub(crate) fn new(max_in_flight: usize) -> Self {
        Requests {
            calls: FxHashMap::default(),
            batch: 1,
            untaken: 0,
            half: 0,
            closed: None,
            max_in_flight: max_in_flight.max(1),
            room: Vec::new(),
            progress: 0,
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

    /// Whether requests are held back now (replies of the latest batch are untaken).
    pub(crate) fn holding_back(&self) -> bool {
        self.untaken > 0
    }

    /// The connection's failure, once it failed.
    pub(crate) fn closed(&self) -> Option<&Error> {
        self.closed.as_ref()
    }

    /// Make the reply slot of call `id`, with the waker of the poll that made it if any.
    pub(crate) fn open(&mut self, id: RequestId, waker: Option<Waker>) {
        self.progress += 1;
        self.calls.insert(id, Slot::Waiting(waker));
    }

    /// A count that moves whenever a call starts or ends (see the writer task's watch).
    pub(crate) fn progress(&self) -> u64 {
        self.progress
    }

    /// Put a batch of replies in their slots, as the reader's next batch.
    pub(crate) fn deliver(
        &mut self,
        replies: impl IntoIterator<Item = (RequestId, Result<OwnedReply>)>,
        out: &mut Delivered,
    ) {
        let batch = self.batch + 1;
        let mut delivered = 0;
        for (id, reply) in replies {
            match self.calls.get_mut(&id) {
                Some(slot @ Slot::Waiting(_)) => {
                    let Slot::Waiting(waker) =
                        std::mem::replace(slot, Slot::Delivered { batch, reply })
                    else {
                        unreachable!("matched above")
                    };
                    delivered += 1;
                    out.wakers.extend(waker);
                }
                _ => out.unwanted.push(reply),
            }
        }
        if delivered > 0 {
            self.batch = batch;
            self.untaken = delivered;
            self.half = if delivered >= SPLIT_BATCH {
                delivered / 2
            } else {
                0
            };
        }
    }

    /// Take the reply of call `id` if it is delivered; if not, leave `waker` in its slot
    /// (keeping the one there if it would wake the same task).
    pub(crate) fn take(&mut self, id: RequestId, waker: Option<&Waker>) -> Taken {
        match self.calls.remove(&id) {
            Some(Slot::Waiting(old)) => {
                let kept = match (old, waker) {
                    (Some(w), Some(new)) if w.will_wake(new) => Some(w),
                    (_, Some(new)) => Some(new.clone()),
                    (w, None) => w,
                };
                self.calls.insert(id, Slot::Waiting(kept));
                Taken::Pending
            }
            Some(Slot::Delivered { batch, reply }) => {
                self.progress += 1;
                Taken::Ready {
                    reply,
                    write: self.count_taken(batch),
                }
            }
            None => Taken::Ready {
                reply: Err(self.closed_error()),
                write: false,
            },
        }
    }

    /// Forget call `id`, whose caller dropped it before taking its reply.
    pub(crate) fn forget(&mut self, id: RequestId) -> Forgotten {
        self.progress += 1;
        match self.calls.remove(&id) {
            Some(Slot::Delivered { batch, reply }) => Forgotten::Delivered {
                reply,
                write: self.count_taken(batch),
            },
            _ => Forgotten::Cancel,
        }
    }

    /// Fail every waiting call, and all later ones, with `error`; returns the callers to
    /// wake. Stops holding requests back.
    pub(crate) fn close(&mut self, error: Error) -> Vec<Waker> {
        let mut wakers = std::mem::take(&mut self.room);
        self.closed.get_or_insert(error.clone());
        self.abandon_batch();
        for slot in self.calls.values_mut() {
            if let Slot::Waiting(waker) = slot {
                wakers.extend(waker.take());
                *slot = Slot::Delivered {
                    batch: 0,
                    reply: Err(error.clone()),
                };
            }
        }
        wakers
    }

    /// Stop holding requests back for the current batch (its untaken replies may never be
    /// taken).
    pub(crate) fn abandon_batch(&mut self) {
        self.batch += 1;
        self.untaken = 0;
    }

    /// Count a delivered reply of `batch` as taken; true when the requests held back must
    /// be written now: after the batch's last reply, and in a large batch also after half
    /// of them (the server then works on those while the rest are taken).
    fn count_taken(&mut self, batch: u64) -> bool {
        if batch == self.batch && self.untaken > 0 {
            self.untaken -= 1;
            self.untaken == 0 || self.untaken == self.half
        } else {
            false
        }
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
    /// Someone (a caller, or the writer task) has undertaken to write the queued frames.
    scheduled: bool,
    /// The queued frames are held back for the caller that takes the last reply of a
    /// batch.
    held_back: bool,
    /// The writer task watches the queued frames: whatever is still queued at its next
    /// tick it writes, and it stops holding requests back for a batch of replies.
    watching: bool,
    /// Frames were left to the watch again since it started: it goes on for another tick
    /// (so a busy connection wakes the writer task once per tick, not once per batch).
    watch_again: bool,
    /// The writer task is asked to write the queued frames now.
    wanted: bool,
    /// The connection was dropped: the writer task writes what is left and stops.
    shutdown: bool,
}

/// What the caller that queued a frame must do ([`WriteSchedule::push`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Push {
    /// Nothing: someone else writes it.
    Nothing,
    /// Held back for a batch of replies; the watch covers it (nothing to do).
    HeldBack,
    /// Held back, and the watch must be started: wake the writer task.
    HeldBackWakeWriter,
    /// See to the write (now, or through the writer task).
    Write,
}

/// What the writer task does at a tick of its watch ([`WriteSchedule::watch_tick`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Tick {
    /// Watch for another tick.
    pub(crate) again: bool,
    /// Stop holding requests back for the current batch of replies.
    pub(crate) abandon_batch: bool,
}

impl WriteSchedule {
    /// A frame was queued; `hold_back`: replies of the latest batch are untaken.
    pub(crate) fn push(&mut self, hold_back: bool) -> Push {
        if self.scheduled {
            return Push::Nothing;
        }
        if hold_back {
            // The first frame held back for a batch starts the watch; the others ride on it.
            if !std::mem::replace(&mut self.held_back, true) && self.start_watch() {
                return Push::HeldBackWakeWriter;
            }
            return Push::HeldBack;
        }
        self.scheduled = true;
        Push::Write
    }

    /// Ask the writer task's watch for another tick; true when it is not running yet (the
    /// writer task must then be woken to start it).
    pub(crate) fn start_watch(&mut self) -> bool {
        if self.watching {
            self.watch_again = true;
            false
        } else {
            self.watching = true;
            true
        }
    }

    /// Whether the writer task's watch is running.
    pub(crate) fn watching(&self) -> bool {
        self.watching
    }

    /// The last reply of a batch was taken: true when the taker must now write the frames
    /// held back for it.
    pub(crate) fn release_held_back(&mut self) -> bool {
        std::mem::take(&mut self.held_back) && !std::mem::replace(&mut self.scheduled, true)
    }

    /// Everything queued was written.
    pub(crate) fn flushed(&mut self) {
        self.scheduled = false;
        self.held_back = false;
    }

    /// The connection failed: nothing queued will be written any more.
    pub(crate) fn fail(&mut self) {
        self.held_back = false;
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

    /// A tick of the writer task's watch; `queued`: frames are queued. Whatever is still
    /// queued is the writer task's to write now (it was left to a caller that did not come
    /// back in time).
    pub(crate) fn watch_tick(&mut self, queued: bool) -> Tick {
        let again = std::mem::take(&mut self.watch_again);
        if !again {
            self.watching = false;
        }
        let abandon_batch = std::mem::take(&mut self.held_back);
        if queued {
            self.scheduled = true;
            self.wanted = true;
        }
        Tick {
            again,
            abandon_batch,
        }
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

    fn count(taken: Taken) -> (Option<u64>, bool) {
        match taken {
            Taken::Ready {
                reply: Ok(OwnedReply::Count(n)),
                write,
            } => (Some(n), write),
            Taken::Ready { write, .. } => (None, write),
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
        // The only reply of its batch: its taker releases what was held back.
        assert_eq!(count(requests.take(1, None)), (Some(7), true));
        assert_eq!(requests.in_flight(), 0);
        // A slot that is gone gives the connection's error (here: closed by the peer).
        assert!(matches!(
            requests.take(1, None),
            Taken::Ready {
                reply: Err(Error::Transport(TransportError::Closed)),
                write: false
            }
        ));
    }

    #[test]
    fn replies_of_a_batch_hold_requests_back_until_the_last_is_taken() {
        // (replies in the batch, order taken, which takes release the held-back frames)
        let table: [(u64, &[u64], &[bool]); 4] = [
            (1, &[1], &[true]),
            (3, &[1, 2, 3], &[false, false, true]),
            (3, &[3, 1, 2], &[false, false, true]),
            // A batch of SPLIT_BATCH: released at half, and at the end.
            (32, &[0; 0], &[]),
        ];
        for (n, order, writes) in table.iter().take(3) {
            let mut requests = Requests::default();
            for id in 1..=*n {
                requests.open(id, None);
            }
            let mut out = Delivered::default();
            requests.deliver((1..=*n).map(|id| (id, value(id as u8))), &mut out);
            assert!(requests.holding_back());
            let got: Vec<bool> = order
                .iter()
                .map(|id| count(requests.take(*id, None)).1)
                .collect();
            assert_eq!(&got, writes, "batch of {n} taken in {order:?}");
            assert!(!requests.holding_back());
        }
        let n = table[3].0;
        let mut requests = Requests::default();
        for id in 1..=n {
            requests.open(id, None);
        }
        requests.deliver((1..=n).map(|id| (id, value(1))), &mut Delivered::default());
        let writes: Vec<u64> = (1..=n)
            .filter(|id| count(requests.take(*id, None)).1)
            .collect();
        assert_eq!(writes, [16, 32], "half way and at the end");
    }

    #[test]
    fn replies_nobody_waits_for_are_given_back() {
        let mut requests = Requests::default();
        requests.open(1, None);
        let mut out = Delivered::default();
        requests.deliver([(1, value(1)), (2, value(2))], &mut out);
        assert_eq!(out.unwanted.len(), 1, "no slot for call 2");
        // Only the delivered one counts in the batch.
        assert_eq!(count(requests.take(1, None)), (Some(1), true));
    }

    #[test]
    fn a_dropped_call_is_cancelled_or_its_reply_dropped() {
        let mut requests = Requests::default();
        requests.open(1, None);
        requests.open(2, None);
        assert!(matches!(requests.forget(1), Forgotten::Cancel));
        requests.deliver([(2, value(2))], &mut Delivered::default());
        assert!(matches!(
            requests.forget(2),
            Forgotten::Delivered {
                reply: Ok(_),
                write: true
            }
        ));
        assert_eq!(requests.in_flight(), 0);
    }

    #[test]
    fn closing_fails_every_waiting_call_and_stops_holding_back() {
        let mut requests = Requests::default();
        let (woken, w) = waker();
        requests.open(1, Some(w));
        requests.open(2, None);
        requests.open(3, None);
        requests.deliver([(3, value(3))], &mut Delivered::default());
        assert!(requests.holding_back());
        let wakers = requests.close(Error::Transport(TransportError::ClosedLocally));
        assert_eq!(wakers.len(), 1);
        wakers.into_iter().for_each(Waker::wake);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert!(!requests.holding_back());
        assert!(requests.closed().is_some());
        assert!(matches!(
            requests.take(1, None),
            Taken::Ready {
                reply: Err(Error::Transport(TransportError::ClosedLocally)),
                write: false
            }
        ));
        // The delivered reply stays; it no longer counts in a batch.
        assert_eq!(count(requests.take(3, None)), (Some(3), false));
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
        assert_eq!(count(requests.take(1, None)), (Some(1), true));
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
        // (hold back?, expected) for frames pushed one after another, none written between.
        let table: [(&[bool], &[Push]); 4] = [
            (&[false, false], &[Write, Nothing]),
            (&[true, true], &[HeldBackWakeWriter, HeldBack]),
            // No longer held back (the batch was taken meanwhile): its caller writes, the
            // frame held back before it included.
            (&[true, false], &[HeldBackWakeWriter, Write]),
            (&[false, true], &[Write, Nothing]),
        ];
        for (holds, expected) in table {
            let mut schedule = WriteSchedule::default();
            let got: Vec<Push> = holds.iter().map(|h| schedule.push(*h)).collect();
            assert_eq!(got, expected, "{holds:?}");
        }
    }

    #[test]
    fn held_back_frames_are_released_once() {
        let mut schedule = WriteSchedule::default();
        assert_eq!(schedule.push(true), Push::HeldBackWakeWriter);
        assert!(
            schedule.release_held_back(),
            "the taker of the last reply writes"
        );
        assert!(!schedule.release_held_back(), "once");
        assert_eq!(
            schedule.push(false),
            Push::Nothing,
            "scheduled until flushed"
        );
        schedule.flushed();
        assert_eq!(schedule.push(false), Push::Write);
    }

    #[test]
    fn the_watch_writes_what_its_writer_left_and_goes_on_while_asked() {
        let mut schedule = WriteSchedule::default();
        assert_eq!(schedule.push(true), Push::HeldBackWakeWriter);
        assert!(schedule.watching());
        // Left to the watch again during this tick: it goes on.
        assert!(!schedule.start_watch());
        let tick = schedule.watch_tick(true);
        assert_eq!(
            tick,
            Tick {
                again: true,
                abandon_batch: true
            }
        );
        assert!(
            schedule.take_wanted(),
            "the writer task writes what is queued"
        );
        // Nothing left to it since: the watch stops.
        let tick = schedule.watch_tick(false);
        assert!(!tick.again && !tick.abandon_batch);
        assert!(!schedule.watching());
        assert!(
            schedule.start_watch(),
            "a new watch needs the writer task woken"
        );
    }

    #[test]
    fn a_failed_connection_holds_nothing_back_and_a_dropped_one_writes_what_is_left() {
        let mut schedule = WriteSchedule::default();
        schedule.push(true);
        schedule.fail();
        assert!(!schedule.release_held_back());
        schedule.shut_down();
        assert!(schedule.is_shut_down());
        assert!(schedule.take_wanted());
    }
}
