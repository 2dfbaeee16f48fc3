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
