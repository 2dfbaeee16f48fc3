//! OpenTelemetry across the wire (feature `otel`, on in the tests): a call has a span on
//! the client (target `managers::client`) whose context travels in its request, and the
//! server's span of the call (target `managers::call`) is its child, in the same trace:
//! the user's span, the client's span of the call, the server's. Its own binary: it
//! installs a global subscriber with an in-memory exporter.

use managers::{shared, Registration, ServerBuilder};
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

/// A counter.
#[derive(Debug, Default)]
pub struct Counter(u64);

#[shared]
impl Counter {
    /// Add one; the new value.
    pub fn incr(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_span_of_a_call_is_a_child_of_the_callers() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new(
            "info,managers::call=debug,managers::client=debug",
        ))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let manager = ServerBuilder::new()
        .register(Registration::constructor("counter", |()| {
            Counter::default()
        }))
        .start()
        .await
        .unwrap();
    let counter: CounterProxy = manager.create("counter", ()).await.unwrap();
    // A call outside any span of the user's.
    assert_eq!(counter.incr().await.unwrap(), 1);
    let work = tracing::info_span!("client work");
    let value = async { counter.incr().await.unwrap() }
        .instrument(work)
        .await;
    assert_eq!(value, 2);
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let work = spans
        .iter()
        .find(|s| s.name == "client work")
        .expect("the user's span");
    let calls: Vec<_> = spans.iter().filter(|s| s.name == "call").collect();
    assert_eq!(calls.len(), 4, "two calls, each on both sides: {spans:#?}");
    // The client's span of the second call, inside the user's.
    let client = calls
        .iter()
        .find(|s| s.parent_span_id == work.span_context.span_id())
        .expect("the client's span of the call");
    assert!(!client.parent_span_is_remote);
    // The server's span of it: a child of the client's, from another process, same trace.
    let server = calls
        .iter()
        .find(|s| s.parent_span_id == client.span_context.span_id())
        .expect("the server's span of the call");
    assert!(
        server.parent_span_is_remote,
        "its parent is in another process"
    );
    assert_eq!(server.span_context.trace_id(), work.span_context.trace_id());
    // The first call: its client span is a root, and the server's span its child.
    let first = calls
        .iter()
        .find(|s| {
            s.parent_span_id == SpanId::INVALID
                && s.span_context.trace_id() != work.span_context.trace_id()
        })
        .expect("the first call's client span, a root");
    assert!(calls
        .iter()
        .any(|s| s.parent_span_id == first.span_context.span_id() && s.parent_span_is_remote));
}
