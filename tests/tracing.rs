//! Every call has a `tracing` span on the server (target `managers::call`, level `debug`):
//! typeid, object, method and connection, closed by an event with the outcome and the
//! duration. Its own binary: it installs a global subscriber that captures the output.

use std::io::Write;
use std::sync::{Arc, Mutex};

use managers::{shared, Registration, ServerBuilder};

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A divider.
#[derive(Debug)]
pub struct Divider;

#[shared]
impl Divider {
    /// `a / b`.
    pub fn div(&self, a: i64, b: i64) -> Result<i64, String> {
        a.checked_div(b)
            .ok_or_else(|| "division by zero".to_owned())
    }

    /// The same, after a yield (its span follows it onto its task).
    pub async fn div_later(&self, a: i64, b: i64) -> Result<i64, String> {
        tokio::task::yield_now().await;
        self.div(a, b)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_traced_with_their_outcome_and_duration() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("managers::call=debug,managers::client=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let manager = ServerBuilder::new()
        .register(Registration::constructor("divider", |(): ()| Divider))
        .start()
        .await
        .unwrap();
    let divider: DividerProxy = manager.create("divider", ()).await.unwrap();
    let id = divider.handle().id();
    assert_eq!(divider.div(7, 2).await.unwrap(), 3);
    assert!(divider.div(1, 0).await.is_err());
    assert_eq!(divider.div_later(9, 3).await.unwrap(), 3);
    // The events are written as the calls end, before their replies go out.
    let text = captured.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("call done") && l.contains("managers::call"))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    // And the client's side of each.
    let client: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("call done") && l.contains("managers::client"))
        .collect();
    assert_eq!(client.len(), 3, "{text}");
    // Each in the call's span on the client side.
    for line in &client {
        assert!(line.contains("call{") && line.contains("divider"), "{line}");
    }
    assert!(
        client[1].contains("outcome=\"error\"") && client[1].contains("division by zero"),
        "{}",
        client[1]
    );
    for (line, method, outcome) in [
        (lines[0], "div", "ok"),
        (lines[1], "div", "error"),
        (lines[2], "div_later", "ok"),
    ] {
        assert!(line.contains("typeid=divider"), "{line}");
        assert!(line.contains(&format!("object={id}")), "{line}");
        assert!(
            line.contains(&format!("method=\"{method}\""))
                || line.contains(&format!("method={method}")),
            "{line}"
        );
        assert!(line.contains("connection="), "{line}");
        assert!(line.contains(&format!("outcome=\"{outcome}\"")), "{line}");
        assert!(line.contains("micros="), "{line}");
    }
    assert!(lines[1].contains("division by zero"), "{}", lines[1]);
    drop(divider);
    manager.shutdown();
}
