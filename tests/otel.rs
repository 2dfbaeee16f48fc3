//! OpenTelemetry across the wire (feature `otel`, on in the tests): a call made inside a
//! client span that OpenTelemetry records carries that span's context in its request, and
//! the server's span of the call (target `managers::call`) is its child, in the same trace.
//! Its own binary: it installs a global subscriber with an in-memory exporter.

use managers::{shared, Registration, ServerBuilder};
use opentelemetry::trace::TracerProvider as _;
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
            "info,managers::call=debug",
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
    // A call outside any span carries no context: its server span is a root.
    assert_eq!(counter.incr().await.unwrap(), 1);
    let work = tracing::info_span!("client work");
    let value = async { counter.incr().await.unwrap() }
        .instrument(work)
        .await;
    assert_eq!(value, 2);
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let client = spans
        .iter()
        .find(|s| s.name == "client work")
        .expect("the client's span");
    let calls: Vec<_> = spans.iter().filter(|s| s.name == "call").collect();
    assert_eq!(calls.len(), 2, "{spans:#?}");
    let child: Vec<_> = calls
        .iter()
        .filter(|s| s.parent_span_id == client.span_context.span_id())
        .collect();
    assert_eq!(
        child.len(),
        1,
        "one call made inside the client's span: {calls:#?}"
    );
    assert_eq!(
        child[0].span_context.trace_id(),
        client.span_context.trace_id(),
        "the same trace"
    );
    assert!(
        child[0].parent_span_is_remote,
        "its parent is in another process"
    );
    let root = calls
        .iter()
        .find(|s| s.parent_span_id != client.span_context.span_id())
        .expect("the call outside the span");
    assert_ne!(root.span_context.trace_id(), client.span_context.trace_id());
}
