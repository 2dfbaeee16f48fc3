//! `--metrics-address`: the server's statistics in Prometheus's text format on
//! `GET /metrics`, encoded with `prometheus-client`.

use std::time::Duration;

use managers::{ServerStats, StatsHandle};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The largest request read, and how long a scraper may take to send it.
const MAX_REQUEST: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

type Labels = Vec<(String, String)>;

/// `stats` in Prometheus's text exposition format.
pub(crate) fn render(stats: &ServerStats) -> String {
    let mut registry = Registry::with_prefix("managers");
    let gauge = |registry: &mut Registry, name: &str, help: &str, value: u64| {
        let g = Gauge::<i64>::default();
        g.set(i64::try_from(value).unwrap_or(i64::MAX));
        registry.register(name, help, g);
    };
    gauge(
        &mut registry,
        "connections",
        "Connections open now",
        stats.connections,
    );
    gauge(
        &mut registry,
        "sessions_parked",
        "Sessions kept for their grace period after their connection dropped",
        stats.sessions_parked,
    );
    gauge(
        &mut registry,
        "calls_waiting",
        "Calls waiting on the server now",
        stats.calls_waiting,
    );
    let total = Counter::<u64>::default();
    total.inc_by(stats.connections_total);
    registry.register(
        "connections_opened",
        "Connections authenticated since the server started",
        total,
    );
    let objects = Family::<Labels, Gauge<i64>>::default();
    for o in &stats.objects {
        let labels = vec![("typeid".to_owned(), o.typeid.clone())];
        objects
            .get_or_create(&labels)
            .set(i64::try_from(o.objects).unwrap_or(i64::MAX));
    }
    registry.register("objects", "Live objects per typeid", objects);
    let calls = Family::<Labels, Counter<u64>>::default();
    let errors = Family::<Labels, Counter<u64>>::default();
    for c in &stats.calls {
        let labels = vec![
            ("typeid".to_owned(), c.typeid.clone()),
            ("method".to_owned(), c.method.clone()),
        ];
        calls.get_or_create(&labels).inc_by(c.calls);
        errors.get_or_create(&labels).inc_by(c.errors);
    }
    registry.register("calls", "Calls per typeid and method", calls);
    registry.register("call_errors", "Failed calls per typeid and method", errors);
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut text, &registry);
    text
}

/// Serve `GET /metrics` on `listener` until the process ends.
pub(crate) async fn serve(listener: TcpListener, stats: StatsHandle) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, stats)).await;
        });
    }
}

async fn answer(mut stream: TcpStream, stats: StatsHandle) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let (status, body) = match (line.starts_with(b"GET /metrics "), stats.stats()) {
        (true, Some(stats)) => ("200 OK", render(&stats)),
        (true, None) => ("503 Service Unavailable", "the server stopped\n".to_owned()),
        (false, _) => ("404 Not Found", "try GET /metrics\n".to_owned()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
