//! Panics in shared objects' code: caught and reported to the caller
//! ([`RemoteError::Panicked`](manager_core::RemoteError::Panicked)), and logged once through
//! `tracing` instead of being printed to stderr with a backtrace by the default panic
//! hook.
//!
//! The first server of a process installs a panic hook that handles panics raised while
//! the server runs user code (a method, a constructor, a `Display`, an undo or disconnect
//! hook) and hands every other panic to the hook that was there before, unchanged.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

thread_local! {
    /// This thread runs a shared object's code now.
    static IN_USER_CODE: Cell<bool> = const { Cell::new(false) };
}

/// Install the hook (once per process).
pub(crate) fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_USER_CODE.with(Cell::get) {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                tracing::warn!(
                    %location,
                    message = %manager_core::panic_message(info.payload()),
                    "a shared object's code panicked; the caller gets RemoteError::Panicked"
                );
            } else {
                previous(info);
            }
        }));
    });
}

/// Resets the flag however the code it marks ends, unwinding included.
struct Mark(bool);

impl Drop for Mark {
    fn drop(&mut self) {
        IN_USER_CODE.with(|flag| flag.set(self.0));
    }
}

fn mark() -> Mark {
    Mark(IN_USER_CODE.with(|flag| flag.replace(true)))
}

/// Run user code `f`, its panics logged by the hook.
pub(crate) fn user_code<R>(f: impl FnOnce() -> R) -> R {
    let _mark = mark();
    f()
}

/// A future running user code: each poll is [`user_code`].
pub(crate) struct UserCode<F>(pub(crate) F);

impl<F: Future + Unpin> Future for UserCode<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        user_code(|| Pin::new(&mut self.0).poll(cx))
    }
}

/// The error a caught panic of `method` becomes. The one place a panic payload turns into
/// [`RemoteError::Panicked`](manager_core::RemoteError::Panicked).
pub(crate) fn panicked(
    method: &str,
    payload: &(dyn std::any::Any + Send),
) -> manager_core::RemoteError {
    manager_core::RemoteError::Panicked {
        method: method.to_owned(),
        message: manager_core::panic_message(payload),
    }
}

/// Run user code `f` (its panics logged by the hook) and catch a panic as the error of
/// `method`.
pub(crate) fn catch<R>(
    method: &str,
    f: impl FnOnce() -> Result<R, manager_core::RemoteError>,
) -> Result<R, manager_core::RemoteError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| user_code(f)))
        .unwrap_or_else(|payload| Err(panicked(method, &*payload)))
}

/// Drive `future` (each poll user code, its panics logged by the hook) and catch a panic
/// as the error of `method`.
pub(crate) async fn catch_async<R>(
    method: &str,
    future: impl Future<Output = Result<R, manager_core::RemoteError>>,
) -> Result<R, manager_core::RemoteError> {
    let mut future = std::pin::pin!(future);
    let polled = std::future::poll_fn(|cx| user_code(|| future.as_mut().poll(cx)));
    futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(polled))
        .await
        .unwrap_or_else(|payload| Err(panicked(method, &*payload)))
}
