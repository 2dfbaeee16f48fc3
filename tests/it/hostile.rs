//! Input a careless or hostile client can send: numbers from the wire are validated or
//! saturated, never a panic on the server (each caught panic costs a stack trace).

use std::time::Duration;

use managers::sync::{SyncError, SEMAPHORE_MAX_VALUE};
use managers::RemoteError;

use crate::common::*;

/// A timeout too long to be a point in time waits forever instead of overflowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_of_duration_max_waits_instead_of_panicking() {
    for transport in TRANSPORTS {
        let running = start_sync(transport).await;
        let m = sync_client(&running).await;
        let q = m.queue::<u8>(0).await.unwrap();
        let getter = q.clone();
        let get = tokio::spawn(async move { getter.get_with(true, Some(Duration::MAX)).await });
        let event = m.event().await.unwrap();
        let waiter = event.clone();
        let wait = tokio::spawn(async move { waiter.wait(Some(Duration::MAX)).await });
        let barrier = m.barrier(2, None).await.unwrap();
        let party = barrier.clone();
        let arrive = tokio::spawn(async move { party.wait_timeout(Duration::MAX).await });
        q.put(7).await.unwrap();
        event.set().await.unwrap();
        bounded("barrier", barrier.wait()).await.unwrap();
        assert_eq!(bounded("get", get).await.unwrap().unwrap(), 7);
        assert!(bounded("event wait", wait).await.unwrap().unwrap());
        bounded("barrier wait", arrive).await.unwrap().unwrap();
    }
}

/// Server timeouts and limits configured as "never" or "unlimited" (`Duration::MAX`,
/// `usize::MAX`, 0 hand-offs) serve normally: they used to overflow a deadline in the
/// connection's read loop (a panic that also left the client's lock held for good), or
/// exceed tokio's semaphore maximum, or close a connection at its first acquire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_server_settings_serve_and_release_dead_clients_locks() {
    let (builder, _dir) = builder(Transport::Unix);
    let builder = managers::sync::register(builder)
        .hold_timeout(Duration::MAX)
        .stalled_frame_timeout(Some(Duration::MAX))
        .idle_timeout(Some(Duration::MAX))
        .handshake_timeout(Duration::MAX)
        .max_calls_in_flight(usize::MAX)
        .max_connections(usize::MAX)
        .max_pending_handoffs(0);
    let running = Running::from(builder.start().await.expect("server starts"));
    let holder = sync_client(&running).await;
    let other = connect(&running).await;
    let lock = holder.lock().await.unwrap();
    let acquired = bounded("acquire", lock.acquire_timeout(Duration::from_secs(5))).await;
    assert!(acquired.unwrap());
    // Proxies as an argument and between connections: holds and adoptions, each with a
    // deadline.
    let condition = holder.condition_with_lock(&lock).await.unwrap();
    let theirs: managers::sync::LockProxy = share(&lock, &other);
    drop((condition, lock, holder));
    // The holder is gone: its lock is released, and the other client takes it.
    let taken = bounded(
        "acquire after the holder left",
        theirs.acquire_timeout(Duration::from_secs(10)),
    )
    .await;
    assert!(taken.unwrap());
}

/// A semaphore value over tokio's maximum is refused with a typed error, at creation and
/// on release; the value at the maximum stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphore_values_over_the_maximum_are_refused_not_panicked() {
    let running = start_sync(Transport::Unix).await;
    let m = sync_client(&running).await;
    for value in [SEMAPHORE_MAX_VALUE + 1, 1 << 62, usize::MAX] {
        match m.semaphore(value).await {
            Err(managers::Error::Remote(RemoteError::Method { message, .. })) => {
                assert!(message.contains("over the maximum"), "{message}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(m.bounded_semaphore(value).await.is_err());
    }
    let sem = m.semaphore(SEMAPHORE_MAX_VALUE).await.unwrap();
    assert_err(sem.release().await, |e| matches!(e, SyncError::Invalid(_)));
    sem.acquire().await.unwrap();
    sem.release().await.unwrap();
    assert_eq!(sem.value().await.unwrap(), SEMAPHORE_MAX_VALUE);
}

/// Object ids cannot be guessed from the ones a client has seen: not a counter, and not
/// the same from one server to the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_ids_are_random_per_server() {
    let first = start(Transport::Unix).await;
    let second = start(Transport::Unix).await;
    let mut ids = Vec::new();
    for _ in 0..200 {
        let c: CounterProxy = first.create("counter", (0,)).await.unwrap();
        ids.push(c.handle().id().0);
    }
    let close = ids
        .windows(2)
        .filter(|w| w[0].abs_diff(w[1]) < 1 << 20)
        .count();
    assert_eq!(close, 0, "ids in a guessable sequence: {:?}", &ids[..5]);
    let other: CounterProxy = second.create("counter", (0,)).await.unwrap();
    assert!(!ids.contains(&other.handle().id().0));
}

/// A client that forges a proxy argument for another client's object, naming a hand-off
/// that is in transit for a different object, gets nothing: the call is refused, and the
/// victim's object, held only by a proxy stored in a shared object, lives on. (It used to
/// be stored as a proxy holding nothing, whose removal released the victim's reference.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_proxy_argument_cannot_release_another_clients_object() {
    let server = start(Transport::Tcp).await;
    let victim = connect(&server).await;
    let vault: RegistryProxy = victim.create("registry", ()).await.unwrap();
    let secret: CounterProxy = victim.create("counter", (41,)).await.unwrap();
    let target = secret.handle().token().clone();
    vault.put("mine".into(), secret).await.unwrap();

    let attacker = connect(&server).await;
    let bait: CounterProxy = attacker.create("counter", (0,)).await.unwrap();
    let trap: RegistryProxy = attacker.create("registry", ()).await.unwrap();
    // Serialising its own proxy puts a reference in transit under a fresh hold id...
    let bytes = postcard::to_stdvec(&bait).unwrap();
    let (_, hold): (managers::Token, [u8; 16]) = postcard::from_bytes(&bytes).unwrap();
    // ...which the forged proxy names, with the victim's token.
    let forged = postcard::to_stdvec(&("stolen".to_string(), (target.clone(), hold))).unwrap();
    let refused = trap.handle().call_encoded("put", &forged).await;
    assert!(refused.is_err(), "the forged proxy was stored: {refused:?}");
    let _ = trap.remove("stolen".into()).await.unwrap();
    let mine = vault
        .get("mine".into())
        .await
        .unwrap()
        .expect("still stored");
    assert_eq!(
        mine.incr().await.unwrap(),
        42,
        "the victim's object is alive"
    );
}

/// A connection can take references only to objects it holds: a `Hold` or an `Incref`
/// naming another client's object is ignored, and so is a `Hold` for the connection's own
/// adoption that nobody sent: none of them can keep that object alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_to_an_object_the_connection_does_not_hold_keep_nothing_alive() {
    use manager_core::wire::{ClientMessage, Request};
    let server = start(Transport::Tcp).await;
    let victim = connect(&server).await;
    let before = victim.number_of_objects().await.unwrap();
    let counter: CounterProxy = victim.create("counter", (1,)).await.unwrap();
    let object = counter.handle().id();
    let mut raw = crate::raw::Raw::authenticated(server.address(), b"test-key").await;
    for i in 0..100u8 {
        raw.send(&ClientMessage::V1(Request::Hold {
            object,
            hold: [i; 16],
        }))
        .await;
        raw.send(&ClientMessage::V1(Request::Incref { object }))
            .await;
        // An adoption of a hold nobody sent, then that hold from the adopter itself.
        let hold = [i; 16].map(|b| b ^ 0xff);
        raw.send(&ClientMessage::V1(Request::Adopt { object, hold }))
            .await;
        raw.send(&ClientMessage::V1(Request::Hold { object, hold }))
            .await;
    }
    // Anything the raw connection sent is read before this (one connection, in order).
    raw.send(&ClientMessage::V1(Request::NumberOfObjects { id: 1 }))
        .await;
    raw.recv(|_| ()).await;
    let rows = holders(&victim, object).await;
    assert!(
        rows.iter()
            .all(|(h, _)| !matches!(h, managers::Holder::InTransit)),
        "{rows:?}"
    );
    drop(counter);
    objects_become(&victim, before).await;
}
