//! A panic in a shared object's method reaches its caller as `RemoteError::Panicked` and
//! is logged once through `tracing`, not printed by the default panic hook (with a
//! backtrace under `RUST_BACKTRACE`); panics elsewhere in the process still reach the
//! hook that was installed before. Its own test binary: it replaces the process's panic
//! hook.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use managers::{shared, RemoteError, ServerBuilder};

/// A shared type whose methods panic.
#[derive(Debug, Default)]
pub struct Fragile;

#[shared]
impl Fragile {
    /// Panics.
    pub fn break_now(&self) -> u8 {
        panic!("plain kaboom")
    }

    /// Panics after waiting.
    pub async fn break_later(&self) -> u8 {
        tokio::task::yield_now().await;
        panic!("async kaboom")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_panic_is_reported_to_its_caller_not_printed() {
    let printed = Arc::new(AtomicUsize::new(0));
    let counter = printed.clone();
    std::panic::set_hook(Box::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    let manager = ServerBuilder::new()
        .register(managers::Registration::constructor("fragile", |()| Fragile))
        .start()
        .await
        .unwrap();
    let fragile: FragileProxy = manager.client().create("fragile", ()).await.unwrap();
    for result in [fragile.break_now().await, fragile.break_later().await] {
        let err = result.unwrap_err();
        assert!(
            matches!(err.as_remote(), Some(RemoteError::Panicked { .. })),
            "{err:?}"
        );
    }
    assert_eq!(
        printed.load(Ordering::SeqCst),
        0,
        "the hook printed a method's panic"
    );
    // A panic outside shared objects' code still reaches the hook installed before.
    let outside = std::panic::catch_unwind(|| panic!("not a method"));
    assert!(outside.is_err());
    assert_eq!(printed.load(Ordering::SeqCst), 1);
    assert!(manager.shutdown());
}
