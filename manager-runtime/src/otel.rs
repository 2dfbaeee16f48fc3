//! OpenTelemetry context across processes (cargo feature `otel`): a call made inside a
//! span that OpenTelemetry records (through `tracing-opentelemetry`) carries that span's
//! context to the server (`Request::CallTraced`), whose span of the call (target
//! `managers::call`, level `debug`) gets it as its parent.

use manager_core::wire::TraceParent;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The OpenTelemetry context of the current span, if it has a valid one.
pub(crate) fn current_parent() -> Option<TraceParent> {
    let span = tracing::Span::current();
    if span.is_none() {
        return None;
    }
    let context = span.context();
    let otel = context.span();
    let parent = otel.span_context();
    parent.is_valid().then(|| TraceParent {
        trace_id: parent.trace_id().to_bytes(),
        span_id: parent.span_id().to_bytes(),
        flags: parent.trace_flags().to_u8(),
    })
}

/// Make the span of another process, `parent`, the parent of `span`.
pub(crate) fn set_parent(span: &tracing::Span, parent: &TraceParent) {
    let remote = SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.span_id),
        TraceFlags::new(parent.flags),
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}
