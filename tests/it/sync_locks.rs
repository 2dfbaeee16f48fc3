//! The SyncManager's locks, semaphores, conditions, events and barriers (CPython's
//! `test_lock`, `test_rlock`, `test_semaphore`, `test_bounded_semaphore`, `test_condition`,
//! `test_event`, `test_barrier*` for managers), across clients and killed client processes.
//!
//! Nothing here is timed: a short timeout is used only where the call must time out (the
//! lock is held, nobody notifies), and `bounded` is a safety net around what must complete.

use managers::sync::{
    BarrierProxy, ConditionProxy, LockProxy, SemaphoreProxy, SyncError, SyncManager,
};
use managers::Client;
use serde::Serialize;

use crate::child::ChildProcess;
use crate::common::{
    assert_err, bounded, share, start_sync, sync_client, until, Running, Transport, SHORT,
    TRANSPORTS,
};

/// `n` more SyncManager clients of `server`.
async fn clients(server: &Running, n: usize) -> Vec<SyncManager> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(sync_client(server).await);
    }
    out
}

/// Two SyncManager clients of `server`.
async fn two_clients(server: &Running) -> (SyncManager, SyncManager) {
    (sync_client(server).await, sync_client(server).await)
}

fn not_locked(e: &SyncError) -> bool {
    matches!(e, SyncError::NotLocked)
}
fn not_owner(e: &SyncError) -> bool {
    matches!(e, SyncError::NotOwner)
}
fn too_many(e: &SyncError) -> bool {
    matches!(e, SyncError::TooManyReleases)
}
fn broken(e: &SyncError) -> bool {
    matches!(e, SyncError::BrokenBarrier)
}

// ---- Lock ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_acquire_release_locked_and_timeouts() {
    for transport in TRANSPORTS {
        let server = start_sync(transport).await;
        let (a, b) = two_clients(&server).await;
        let lock = a.lock().await.unwrap();
        let theirs = share(&lock, &b);

        assert!(!lock.locked().await.unwrap(), "{transport:?}");
        assert!(lock.try_acquire().await.unwrap());
        assert!(lock.locked().await.unwrap());
        assert!(theirs.locked().await.unwrap(), "one lock, seen by both");
        assert!(!theirs.try_acquire().await.unwrap());
        assert!(!theirs.acquire_timeout(SHORT).await.unwrap());
        assert!(
            !lock.try_acquire().await.unwrap(),
            "a Lock is not re-entrant"
        );
        lock.release().await.unwrap();
        assert!(!lock.locked().await.unwrap());
        assert_err(lock.release().await, not_locked);

        assert!(theirs.acquire_timeout(SHORT).await.unwrap());
        // As in Python, any holder may release a Lock.
        lock.release().await.unwrap();
        assert!(!theirs.locked().await.unwrap());
        lock.acquire().await.unwrap();
        assert!(theirs.locked().await.unwrap());
        lock.release().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_guard_releases_on_drop_and_on_unlock() {
    let server = start_sync(Transport::Tcp).await;
    let (a, b) = two_clients(&server).await;
    let lock = a.lock().await.unwrap();
    let theirs = share(&lock, &b);

    let guard = lock.lock().await.unwrap();
    assert!(lock.locked().await.unwrap());
    assert!(!theirs.try_acquire().await.unwrap());
    drop(guard);
    // The detached release is ordered before any later call on the same connection.
    assert!(lock.try_acquire().await.unwrap());
    lock.release().await.unwrap();

    let guard = lock.lock().await.unwrap();
    // Another client waiting for it gets it when the guard goes.
    let (acquired, ()) = tokio::join!(
        bounded("acquire after the guard", theirs.acquire()),
        async { drop(guard) }
    );
    acquired.unwrap();
    assert!(lock.locked().await.unwrap());
    theirs.release().await.unwrap();

    let guard = lock.lock().await.unwrap();
    guard.unlock().await.unwrap();
    assert!(!lock.locked().await.unwrap());
    // Unlocking a guard whose lock someone else released reports it.
    let guard = lock.lock().await.unwrap();
    theirs.release().await.unwrap();
    assert_err(guard.unlock().await, not_locked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_acquire_leaves_its_connection_free() {
    let server = start_sync(Transport::Tcp).await;
    let (a, b) = two_clients(&server).await;
    let lock = a.lock().await.unwrap();
    lock.acquire().await.unwrap();
    let theirs = share(&lock, &b);
    let event = b.event().await.unwrap();
    let (acquired, ()) = bounded("a blocked acquire and calls beside it", async {
        tokio::join!(theirs.acquire(), async {
            // B's acquire was sent first and waits on the server; B's connection keeps
            // serving calls on the same lock and on other objects.
            assert!(theirs.locked().await.unwrap());
            assert!(!theirs.try_acquire().await.unwrap());
            assert!(!theirs.acquire_timeout(SHORT).await.unwrap());
            event.set().await.unwrap();
            assert!(event.is_set().await.unwrap());
            let other = b.lock().await.unwrap();
            assert!(other.try_acquire().await.unwrap());
            lock.release().await.unwrap();
        })
    })
    .await;
    acquired.unwrap();
    assert!(lock.locked().await.unwrap());
    assert!(!lock.try_acquire().await.unwrap(), "B holds it now");
}

// ---- RLock -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rlock_is_reentrant_and_only_its_holder_releases_it() {
    let server = start_sync(Transport::Tcp).await;
    let (a, b) = two_clients(&server).await;
    let rlock = a.rlock().await.unwrap();
    let clone = rlock.clone(); // another holder on the same connection, like another thread
    let theirs = share(&rlock, &b);

    assert!(!rlock.is_owned().await.unwrap());
    assert_err(rlock.release().await, not_owner);
    rlock.acquire().await.unwrap();
    assert!(rlock.try_acquire().await.unwrap(), "re-entrant");
    assert!(rlock.acquire_timeout(SHORT).await.unwrap(), "re-entrant");
    assert!(rlock.is_owned().await.unwrap());
    assert!(!clone.is_owned().await.unwrap());
    assert!(!theirs.is_owned().await.unwrap());
    assert!(!clone.try_acquire().await.unwrap());
    assert!(!theirs.try_acquire().await.unwrap());
    assert!(!theirs.acquire_timeout(SHORT).await.unwrap());
    assert_err(clone.release().await, not_owner);
    assert_err(theirs.release().await, not_owner);

    // Three acquires: free only after the third release.
    rlock.release().await.unwrap();
    rlock.release().await.unwrap();
    assert!(rlock.is_owned().await.unwrap());
    assert!(!theirs.try_acquire().await.unwrap());
    let (acquired, released) = tokio::join!(
        bounded("the other holder's acquire", theirs.acquire()),
        rlock.release()
    );
    acquired.unwrap();
    released.unwrap();
    assert!(!rlock.is_owned().await.unwrap());
    assert!(theirs.is_owned().await.unwrap());
    assert_err(rlock.release().await, not_owner);
    theirs.release().await.unwrap();
    assert!(clone.try_acquire().await.unwrap());
    clone.release().await.unwrap();
}

// ---- Semaphore, BoundedSemaphore -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphore_counts_permits() {
    let server = start_sync(Transport::Tcp).await;
    let (a, b) = two_clients(&server).await;
    let sem = a.semaphore(2).await.unwrap();
    let theirs = share(&sem, &b);

    assert_eq!(sem.value().await.unwrap(), 2);
    sem.acquire().await.unwrap();
    assert_eq!(theirs.value().await.unwrap(), 1);
    assert!(theirs.try_acquire().await.unwrap());
    assert_eq!(sem.value().await.unwrap(), 0);
    assert!(!sem.try_acquire().await.unwrap());
    assert!(!sem.acquire_timeout(SHORT).await.unwrap());

    // A waiting acquire gets the permit another client returns.
    let (acquired, released) = tokio::join!(
        bounded("acquire of a returned permit", sem.acquire()),
        theirs.release()
    );
    acquired.unwrap();
    released.unwrap();
    assert_eq!(sem.value().await.unwrap(), 0);
    sem.release().await.unwrap();
    theirs.release().await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 2);
    // An unbounded semaphore may be released above its initial value, as in Python.
    sem.release().await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 3);

    let empty = a.semaphore(0).await.unwrap();
    assert!(!empty.try_acquire().await.unwrap());
    assert!(!empty.acquire_timeout(SHORT).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semaphore_guard_returns_its_permit() {
    let server = start_sync(Transport::Tcp).await;
    let a = sync_client(&server).await;
    let sem = a.semaphore(1).await.unwrap();
    let guard = sem.guard().await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 0);
    drop(guard);
    assert_eq!(
        sem.value().await.unwrap(),
        1,
        "ordered after the detached release"
    );
    let guard = sem.guard().await.unwrap();
    guard.unlock().await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 1);

    let bounded_sem = a.bounded_semaphore(1).await.unwrap();
    let guard = bounded_sem.guard().await.unwrap();
    assert_eq!(bounded_sem.value().await.unwrap(), 0);
    guard.unlock().await.unwrap();
    assert_eq!(bounded_sem.value().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_semaphore_refuses_to_be_released_too_often() {
    let server = start_sync(Transport::Tcp).await;
    let (a, b) = two_clients(&server).await;
    let sem = a.bounded_semaphore(2).await.unwrap();
    let theirs = share(&sem, &b);

    assert_err(sem.release().await, too_many);
    assert_eq!(sem.value().await.unwrap(), 2);
    sem.acquire().await.unwrap();
    sem.release().await.unwrap();
    assert_err(sem.release().await, too_many);

    sem.acquire().await.unwrap();
    assert!(sem.try_acquire().await.unwrap());
    assert!(!theirs.acquire_timeout(SHORT).await.unwrap());
    assert_eq!(sem.value().await.unwrap(), 0);
    // Any client may release, up to the bound.
    theirs.release().await.unwrap();
    sem.release().await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 2);
    assert_err(theirs.release().await, too_many);
    assert_eq!(theirs.value().await.unwrap(), 2);

    // Concurrent over-releases: exactly the missing permits are accepted.
    sem.acquire().await.unwrap();
    let (x, y) = tokio::join!(sem.release(), theirs.release());
    assert_eq!(
        [x.is_ok(), y.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{x:?} {y:?}"
    );
    assert_eq!(sem.value().await.unwrap(), 2);
}

// ---- Condition -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn condition_lock_wait_timeout_and_ownership() {
    let server = start_sync(Transport::Tcp).await;
    let (a, b) = two_clients(&server).await;
    let cond = a.condition().await.unwrap();
    let clone = cond.clone(); // another holder
    let theirs = share(&cond, &b);

    // Everything but acquire needs the lock.
    assert_err(cond.release().await, not_owner);
    assert_err(cond.wait(Some(SHORT)).await, not_owner);
    assert_err(cond.wait(None).await, not_owner);
    assert_err(cond.notify(1).await, not_owner);
    assert_err(cond.notify_all().await, not_owner);
    assert_err(cond.wait_for(|| async { Ok(false) }, None).await, not_owner);

    cond.acquire().await.unwrap();
    assert!(
        cond.acquire_timeout(SHORT).await.unwrap(),
        "its lock is re-entrant"
    );
    assert!(!theirs.acquire_timeout(SHORT).await.unwrap());
    assert_err(clone.notify(1).await, not_owner);
    assert_err(theirs.release().await, not_owner);
    // Nobody notifies: the wait times out, and the lock is held again afterwards, at the
    // same depth.
    assert!(!cond.wait(Some(SHORT)).await.unwrap());
    assert!(!theirs.acquire_timeout(SHORT).await.unwrap());
    cond.notify(1).await.unwrap(); // no waiters: nothing happens
    cond.notify_all().await.unwrap();
    cond.release().await.unwrap();
    assert!(!theirs.acquire_timeout(SHORT).await.unwrap(), "held twice");
    cond.release().await.unwrap();
    assert_err(cond.release().await, not_owner);
    assert!(theirs.acquire_timeout(SHORT).await.unwrap());
    theirs.release().await.unwrap();
}

/// A waiter on its own connection: acquire, say so on `ready`, wait, count the wake-up on
/// `woke` while still holding the lock, release. Returns what `wait` returned.
fn spawn_waiter(
    client: &Client,
    cond: &ConditionProxy,
    ready: &SemaphoreProxy,
    woke: &SemaphoreProxy,
) -> tokio::task::JoinHandle<bool> {
    let (cond, ready, woke) = (
        share(cond, client),
        share(ready, client),
        share(woke, client),
    );
    tokio::spawn(async move {
        cond.acquire().await.unwrap();
        ready.release().await.unwrap();
        let notified = cond.wait(None).await.unwrap();
        woke.release().await.unwrap();
        cond.release().await.unwrap();
        notified
    })
}

/// Start a waiter and return once it waits: it said it holds the lock, and the lock became
/// free again, which only its `wait` does.
async fn start_waiter(
    client: &Client,
    cond: &ConditionProxy,
    ready: &SemaphoreProxy,
    woke: &SemaphoreProxy,
) -> tokio::task::JoinHandle<bool> {
    let waiter = spawn_waiter(client, cond, ready, woke);
    bounded("the waiter acquires", ready.acquire())
        .await
        .unwrap();
    bounded("the waiter waits", cond.acquire()).await.unwrap();
    cond.release().await.unwrap();
    waiter
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_wakes_exactly_n_waiters() {
    let server = start_sync(Transport::Tcp).await;
    let main = sync_client(&server).await;
    let others = clients(&server, 3).await;
    let cond = main.condition().await.unwrap();
    let ready = main.semaphore(0).await.unwrap();
    let woke = main.semaphore(0).await.unwrap();
    let mut waiters = Vec::new();
    for client in &others {
        // One at a time, so they queue in this order.
        waiters.push(start_waiter(client, &cond, &ready, &woke).await);
    }
    let third = waiters.pop().unwrap();

    cond.acquire().await.unwrap();
    cond.notify(2).await.unwrap();
    cond.release().await.unwrap();
    for waiter in waiters {
        assert!(bounded("a notified waiter", waiter).await.unwrap());
    }
    assert_eq!(woke.value().await.unwrap(), 2);
    // The third still waits: give it the lock for a while; had it been notified, it would
    // take the lock and count itself before this wait times out and re-acquires.
    cond.acquire().await.unwrap();
    assert!(!cond.wait(Some(SHORT)).await.unwrap());
    assert_eq!(
        woke.value().await.unwrap(),
        2,
        "notify(2) woke a third waiter"
    );
    assert!(!third.is_finished());
    cond.notify(1).await.unwrap();
    cond.release().await.unwrap();
    assert!(bounded("the third waiter", third).await.unwrap());
    assert_eq!(woke.value().await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_all_wakes_every_waiter() {
    let server = start_sync(Transport::Tcp).await;
    let main = sync_client(&server).await;
    let others = clients(&server, 3).await;
    let cond = main.condition().await.unwrap();
    let ready = main.semaphore(0).await.unwrap();
    let woke = main.semaphore(0).await.unwrap();
    let mut waiters = Vec::new();
    for client in &others {
        waiters.push(spawn_waiter(client, &cond, &ready, &woke));
    }
    // All three have held the lock; once it is free, every one of them waits.
    for _ in 0..3 {
        bounded("a waiter acquires", ready.acquire()).await.unwrap();
    }
    bounded("every waiter waits", cond.acquire()).await.unwrap();
    cond.notify_all().await.unwrap();
    cond.release().await.unwrap();
    for waiter in waiters {
        assert!(bounded("a notified waiter", waiter).await.unwrap());
    }
    assert_eq!(woke.value().await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_rechecks_its_predicate() {
    let server = start_sync(Transport::Tcp).await;
    let (a, b) = two_clients(&server).await;
    let cond = a.condition().await.unwrap();
    let event = a.event().await.unwrap();
    let counter = a.semaphore(0).await.unwrap(); // a shared counter: its value
    let ready = a.semaphore(0).await.unwrap();

    // Already true: no wait. Never true: times out, holding the lock again.
    cond.acquire().await.unwrap();
    assert!(cond.wait_for(|| async { Ok(true) }, None).await.unwrap());
    let e = &event;
    let never = || async move { Ok(e.is_set().await?) };
    assert!(!cond.wait_for(never, Some(SHORT)).await.unwrap());
    let theirs = share(&cond, &b);
    assert!(!theirs.acquire_timeout(SHORT).await.unwrap());
    cond.release().await.unwrap();

    // A waiter on another connection until the counter reaches 3 and the event is set.
    let waiter = {
        let (cond, counter, event, ready) = (
            theirs,
            share(&counter, &b),
            share(&event, &b),
            share(&ready, &b),
        );
        tokio::spawn(async move {
            cond.acquire().await.unwrap();
            ready.release().await.unwrap();
            let (c, e) = (&counter, &event);
            let done = cond
                .wait_for(
                    || async move { Ok(c.value().await? >= 3 && e.is_set().await?) },
                    None,
                )
                .await
                .unwrap();
            // Still under the lock: what the predicate saw is what it is.
            let seen = (
                counter.value().await.unwrap(),
                event.is_set().await.unwrap(),
            );
            cond.release().await.unwrap();
            (done, seen)
        })
    };
    bounded("the waiter acquires", ready.acquire())
        .await
        .unwrap();
    // Each step under the lock, with a notification; only the last makes it true.
    for _ in 0..3 {
        bounded("the waiter waits", cond.acquire()).await.unwrap();
        counter.release().await.unwrap();
        cond.notify_all().await.unwrap();
        cond.release().await.unwrap();
    }
    bounded("the waiter waits", cond.acquire()).await.unwrap();
    assert!(!waiter.is_finished(), "the event is not set yet");
    event.set().await.unwrap();
    cond.notify(1).await.unwrap();
    cond.release().await.unwrap();
    let (done, seen) = bounded("the waiter", waiter).await.unwrap();
    assert!(done);
    assert_eq!(seen, (3, true));
}

// ---- Event -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_set_clear_and_wait() {
    for transport in TRANSPORTS {
        let server = start_sync(transport).await;
        let (a, b) = two_clients(&server).await;
        let event = a.event().await.unwrap();
        let theirs = share(&event, &b);

        assert!(!event.is_set().await.unwrap(), "{transport:?}");
        assert!(!event.wait(Some(SHORT)).await.unwrap());
        event.set().await.unwrap();
        assert!(theirs.is_set().await.unwrap());
        assert!(theirs.wait(Some(SHORT)).await.unwrap());
        assert!(theirs.wait(None).await.unwrap());
        event.set().await.unwrap(); // idempotent
        theirs.clear().await.unwrap();
        assert!(!event.is_set().await.unwrap());
        assert!(!event.wait(Some(SHORT)).await.unwrap());

        // Waiters on other connections wake when this one sets it.
        let others = clients(&server, 2).await;
        let waiters: Vec<_> = others
            .iter()
            .map(|client| {
                let event = share(&event, client);
                tokio::spawn(async move { event.wait(None).await.unwrap() })
            })
            .collect();
        event.set().await.unwrap();
        for waiter in waiters {
            assert!(bounded("an event waiter", waiter).await.unwrap());
        }
    }
}

// ---- Barrier ---------------------------------------------------------------------------

/// Wait at `barrier` from a task.
fn spawn_wait(barrier: &BarrierProxy) -> tokio::task::JoinHandle<Result<usize, SyncError>> {
    let barrier = barrier.clone();
    tokio::spawn(async move { barrier.wait().await })
}

/// Until `n` parties wait at `barrier` (their calls reached the server).
async fn waiting(barrier: &BarrierProxy, n: usize) {
    until(&format!("{n} parties wait"), async || {
        barrier.n_waiting().await.unwrap() == n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrier_parties_get_distinct_indexes_round_after_round() {
    let server = start_sync(Transport::Tcp).await;
    let parties = clients(&server, 3).await;
    let barrier = parties[0].barrier(3, None).await.unwrap();
    let proxies: Vec<BarrierProxy> = parties.iter().map(|c| share(&barrier, c)).collect();
    assert_eq!(barrier.parties().await.unwrap(), 3);
    assert_eq!(barrier.n_waiting().await.unwrap(), 0);
    assert!(!barrier.broken().await.unwrap());
    for round in 0..3 {
        let first = spawn_wait(&proxies[0]);
        waiting(&barrier, 1).await;
        let second = spawn_wait(&proxies[1]);
        waiting(&barrier, 2).await;
        let third = bounded("the last party", proxies[2].wait()).await.unwrap();
        let mut indexes = vec![
            bounded("a party", first).await.unwrap().unwrap(),
            bounded("a party", second).await.unwrap().unwrap(),
            third,
        ];
        indexes.sort();
        assert_eq!(indexes, [0, 1, 2], "round {round}");
        assert_eq!(barrier.n_waiting().await.unwrap(), 0);
        assert!(!barrier.broken().await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barrier_wait_that_times_out_breaks_it_for_everyone() {
    let server = start_sync(Transport::Tcp).await;
    let parties = clients(&server, 3).await;
    let barrier = parties[0].barrier(3, None).await.unwrap();
    let proxies: Vec<BarrierProxy> = parties.iter().map(|c| share(&barrier, c)).collect();

    let first = spawn_wait(&proxies[0]);
    waiting(&barrier, 1).await;
    assert_err(proxies[1].wait_timeout(SHORT).await, broken);
    assert_err(bounded("the first party", first).await.unwrap(), broken);
    assert!(barrier.broken().await.unwrap());
    assert_eq!(barrier.n_waiting().await.unwrap(), 0);
    assert_err(proxies[2].wait().await, broken);

    barrier.reset().await.unwrap();
    assert!(!barrier.broken().await.unwrap());
    let (x, y, z) = bounded("three parties after the reset", async {
        tokio::join!(proxies[0].wait(), proxies[1].wait(), proxies[2].wait())
    })
    .await;
    let mut indexes = [x.unwrap(), y.unwrap(), z.unwrap()];
    indexes.sort();
    assert_eq!(indexes, [0, 1, 2]);

    // The barrier's own default timeout breaks it the same way.
    let hasty = parties[0].barrier(2, Some(SHORT)).await.unwrap();
    assert_err(hasty.wait().await, broken);
    assert!(hasty.broken().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrier_abort_and_reset() {
    let server = start_sync(Transport::Tcp).await;
    let parties = clients(&server, 2).await;
    let barrier = parties[0].barrier(2, None).await.unwrap();
    let other = share(&barrier, &parties[1]);

    // Abort: the waiter and later waits are broken until a reset.
    let first = spawn_wait(&barrier);
    waiting(&other, 1).await;
    other.abort().await.unwrap();
    assert_err(bounded("the aborted party", first).await.unwrap(), broken);
    assert!(barrier.broken().await.unwrap());
    assert_err(other.wait().await, broken);
    other.reset().await.unwrap();
    assert!(!barrier.broken().await.unwrap());

    // Reset while a party waits: it is broken out, the barrier is not broken.
    let first = spawn_wait(&barrier);
    waiting(&other, 1).await;
    other.reset().await.unwrap();
    assert_err(bounded("the reset party", first).await.unwrap(), broken);
    assert!(!barrier.broken().await.unwrap());
    assert_eq!(barrier.n_waiting().await.unwrap(), 0);
    let (x, y) = bounded("two parties after the reset", async {
        tokio::join!(barrier.wait(), other.wait())
    })
    .await;
    let mut indexes = [x.unwrap(), y.unwrap()];
    indexes.sort();
    assert_eq!(indexes, [0, 1]);
}

// ---- Killed client processes -----------------------------------------------------------

/// A child process in `role` holding `value` (a proxy, or a tuple of proxies).
fn spawn_child(role: &str, server: &Running, value: &impl Serialize) -> ChildProcess {
    let bytes = postcard::to_stdvec(value).expect("serialise proxies");
    ChildProcess::spawn_with(role, server.address(), &bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lock_holder_releases_the_lock() {
    for transport in TRANSPORTS {
        let server = start_sync(transport).await;
        let a = sync_client(&server).await;
        let lock: LockProxy = a.lock().await.unwrap();
        let mut child = spawn_child("lock_acquire", &server, &lock);
        child.wait_for("ACQUIRED");
        assert!(lock.locked().await.unwrap(), "{transport:?}");
        assert!(!lock.try_acquire().await.unwrap());
        // Our acquire is on its way (sent first) when the child dies holding the lock.
        let (acquired, ()) = tokio::join!(
            bounded("acquire of a dead client's lock", lock.acquire()),
            async { child.kill() }
        );
        acquired.unwrap();
        assert!(lock.locked().await.unwrap());
        lock.release().await.unwrap();
    }
}

/// A lock whose holder died is free at once; the one release that may still come for it
/// (a parent releasing what its child acquired, as CPython's own tests do) is accepted,
/// not an error, and only that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_on_behalf_of_a_dead_holder_is_accepted_once() {
    let server = start_sync(Transport::Unix).await;
    let a = sync_client(&server).await;
    let lock: LockProxy = a.lock().await.unwrap();
    let mut child = spawn_child("lock_acquire", &server, &lock);
    child.wait_for("ACQUIRED");
    child.kill();
    until("the dead holder's lock is free", async || {
        !lock.locked().await.unwrap()
    })
    .await;
    lock.release().await.unwrap();
    assert_err(lock.release().await, not_locked);
    // Acquired again since: a stray release is an error again.
    let mut child = spawn_child("lock_acquire", &server, &lock);
    child.wait_for("ACQUIRED");
    child.kill();
    until("the second holder's lock is free", async || {
        !lock.locked().await.unwrap()
    })
    .await;
    assert!(lock.try_acquire().await.unwrap());
    lock.release().await.unwrap();
    assert_err(lock.release().await, not_locked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_rlock_holder_releases_every_level() {
    let server = start_sync(Transport::Tcp).await;
    let a = sync_client(&server).await;
    let rlock = a.rlock().await.unwrap();
    let mut child = spawn_child("rlock_acquire", &server, &rlock);
    assert_eq!(child.wait_for("ACQUIRED "), "ACQUIRED 2");
    assert!(!rlock.try_acquire().await.unwrap());
    let (acquired, ()) = tokio::join!(
        bounded("acquire of a dead client's rlock", rlock.acquire()),
        async { child.kill() }
    );
    acquired.unwrap();
    assert!(rlock.is_owned().await.unwrap());
    rlock.release().await.unwrap();
    assert!(!rlock.is_owned().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_semaphore_holder_returns_its_permits() {
    let server = start_sync(Transport::Tcp).await;
    let a = sync_client(&server).await;
    let sem = a.bounded_semaphore(2).await.unwrap();
    let mut child = spawn_child("semaphore_drain", &server, &sem);
    assert_eq!(child.wait_for("ACQUIRED "), "ACQUIRED 2");
    assert_eq!(sem.value().await.unwrap(), 0);
    let (acquired, ()) = tokio::join!(
        bounded("acquire of a dead client's permit", sem.acquire()),
        async { child.kill() }
    );
    acquired.unwrap();
    // Both of its permits came back; we hold one.
    assert_eq!(sem.value().await.unwrap(), 1);
    sem.release().await.unwrap();
    // Releases made on the dead holder's behalf (a parent releasing what its child
    // acquired, as Python programs do) are taken without raising the value twice; past
    // them, one more release is too many.
    sem.release().await.unwrap();
    sem.release().await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 2);
    assert_err(sem.release().await, too_many);

    let plain = a.semaphore(1).await.unwrap();
    let mut child = spawn_child("semaphore_drain", &server, &plain);
    assert_eq!(child.wait_for("ACQUIRED "), "ACQUIRED 1");
    let (acquired, ()) = tokio::join!(
        bounded("acquire of a dead client's permit", plain.acquire()),
        async { child.kill() }
    );
    acquired.unwrap();
    assert_eq!(plain.value().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_killed_at_a_barrier_breaks_it() {
    let server = start_sync(Transport::Tcp).await;
    let parties = clients(&server, 2).await;
    let barrier = parties[0].barrier(4, None).await.unwrap();
    let waiters: Vec<_> = parties
        .iter()
        .map(|c| spawn_wait(&share(&barrier, c)))
        .collect();
    waiting(&barrier, 2).await;
    let mut child = spawn_child("barrier_wait", &server, &barrier);
    child.wait_for("WAITING");
    waiting(&barrier, 3).await;
    child.kill();
    for waiter in waiters {
        assert_err(bounded("a live party", waiter).await.unwrap(), broken);
    }
    assert!(barrier.broken().await.unwrap());
    assert_err(barrier.wait().await, broken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_killed_in_condition_wait_consumes_no_notification() {
    let server = start_sync(Transport::Tcp).await;
    let main = sync_client(&server).await;
    let cond = main.condition().await.unwrap();
    // The child holds this lock while it waits: when it is free again, the server has
    // undone everything the dead child did (newest first: its wait, then this lock).
    let marker = main.lock().await.unwrap();
    let mut child = spawn_child("condition_wait", &server, &(&cond, &marker));
    child.wait_for("ACQUIRED");
    // The child's wait is queued once the condition's lock is free again.
    bounded("the child waits", cond.acquire()).await.unwrap();
    cond.release().await.unwrap();

    // A live waiter, queued after the dead one.
    let other = sync_client(&server).await;
    let ready = main.semaphore(0).await.unwrap();
    let woke = main.semaphore(0).await.unwrap();
    let live = start_waiter(&other, &cond, &ready, &woke).await;

    child.kill();
    bounded("the dead child's marker lock", marker.acquire())
        .await
        .unwrap();
    cond.acquire().await.unwrap();
    cond.notify(1).await.unwrap();
    cond.release().await.unwrap();
    assert!(bounded("the live waiter", live).await.unwrap());
    assert_eq!(woke.value().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_over_a_given_rlock_shares_its_holder() {
    let server = crate::common::start_sync(crate::common::Transport::Tcp).await;
    let m = crate::common::sync_client(&server).await;
    let base = m.number_of_objects().await.unwrap();
    let rlock = m.rlock().await.unwrap();
    let cond = m.condition_with_rlock(&rlock).await.unwrap();
    // Held through the lock's proxy, waited on through the condition's: one holder.
    rlock.acquire().await.unwrap();
    assert!(!cond.wait(Some(SHORT)).await.unwrap());
    assert!(
        rlock.is_owned().await.unwrap(),
        "the wait gave the lock back"
    );
    // Another holder notifies: it must take the same lock first.
    let other = cond.clone();
    let waiter = tokio::spawn({
        let cond = cond.clone();
        let rlock = rlock.clone();
        async move {
            rlock.acquire().await.unwrap();
            let cond = cond.same_holder_as(&rlock);
            let woken = cond.wait(None).await.unwrap();
            rlock.release().await.unwrap();
            woken
        }
    });
    rlock.release().await.unwrap();
    // `other` gets the lock only once the waiter is waiting (it released it).
    bounded("the waiter is notified", async {
        loop {
            other.acquire().await.unwrap();
            other.notify(1).await.unwrap();
            other.release().await.unwrap();
            if waiter.is_finished() {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waiter.await.unwrap(), "notified, not timed out");
    drop((rlock, cond, other));
    assert_eq!(m.number_of_objects().await.unwrap(), base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_over_a_given_lock_uses_that_lock() {
    let server = crate::common::start_sync(crate::common::Transport::Tcp).await;
    let m = crate::common::sync_client(&server).await;
    let lock = m.lock().await.unwrap();
    let cond = m.condition_with_lock(&lock).await.unwrap();
    assert!(matches!(
        cond.wait(Some(SHORT)).await,
        Err(SyncError::NotOwner)
    ));
    lock.acquire().await.unwrap();
    assert!(!cond.wait(Some(SHORT)).await.unwrap());
    assert!(lock.locked().await.unwrap(), "held again after the wait");
    cond.notify(1).await.unwrap();
    // Releasing through the condition releases the given lock.
    cond.release().await.unwrap();
    assert!(!lock.locked().await.unwrap());
    // A lock of another manager is refused.
    let elsewhere = crate::common::start_sync(crate::common::Transport::Tcp).await;
    let m2 = crate::common::sync_client(&elsewhere).await;
    let foreign = m2.lock().await.unwrap();
    assert!(m.condition_with_lock(&foreign).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rlock_and_condition_guards_release_one_level() {
    let server = crate::common::start_sync(crate::common::Transport::Tcp).await;
    let m = crate::common::sync_client(&server).await;
    let rlock = m.rlock().await.unwrap();
    let outer = rlock.lock().await.unwrap();
    let inner = rlock.lock().await.unwrap();
    drop(inner);
    assert!(rlock.is_owned().await.unwrap(), "one level left");
    outer.unlock().await.unwrap();
    assert!(!rlock.is_owned().await.unwrap());
    let other = rlock.clone();
    assert!(
        other.try_acquire().await.unwrap(),
        "free for another holder"
    );
    let cond = m.condition().await.unwrap();
    {
        let _held = cond.lock().await.unwrap();
        cond.notify_all().await.unwrap();
    }
    assert!(
        cond.clone().acquire_timeout(SHORT).await.unwrap(),
        "the guard released it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_of_ones_own_serves_sync_types_next_to_its_own() {
    // What a user's own server binary does: the SyncManager set plus their types.
    let (builder, _dir) = crate::common::builder(Transport::Tcp);
    let server = Running::from(
        managers::sync::register(builder)
            .start()
            .await
            .expect("server starts"),
    );
    let m = SyncManager::from_client(server.client().clone());
    let pair: crate::common::PairProxy = m.create("get_pair", (2, 3)).await.unwrap();
    let lock = m.lock().await.unwrap();
    let _held = lock.lock().await.unwrap();
    assert_eq!(pair.sum().await.unwrap(), 5);
    assert!(lock.locked().await.unwrap());
}
