//! The client's own bounds (`ClientBuilder::max_calls_in_flight`, `max_queued_bytes`):
//! calls beyond them wait for room instead of piling up, and proxies' reference changes are
//! coalesced while the queue is full, without losing or reordering a reference.

use futures_util::future::join_all;
use managers::sync::{QueueProxy, SyncManager};
use managers::{Client, Pipeline};

use crate::common::{
    bounded, builder, holders, objects_become, CounterProxy, Running, Transport, TRANSPORTS,
};

/// A server whose connections may each keep only `limit` calls waiting (one more is
/// refused `Busy`), with the SyncManager types.
async fn strict_server(transport: Transport, limit: usize) -> Running {
    let (builder, dir) = builder(transport);
    Running {
        manager: managers::sync::register(builder)
            .max_calls_in_flight(limit)
            .start()
            .await
            .expect("server starts"),
        _dir: dir,
    }
}

async fn client(running: &Running, calls: usize, bytes: usize) -> Client {
    Client::builder()
        .max_calls_in_flight(calls)
        .max_queued_bytes(bytes)
        .connect(running.address(), "test-key")
        .await
        .expect("client connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_bound_wait_on_the_client_instead_of_being_refused() {
    for transport in TRANSPORTS {
        // The server refuses a third waiting call on a connection; the client never sends
        // one: its third `get` waits for room until the first ends.
        let running = strict_server(transport, 2).await;
        let getter = SyncManager::from_client(client(&running, 2, 1 << 20).await);
        let q: QueueProxy<u64> = getter.queue(0).await.unwrap();
        let gets: Vec<_> = (0..5)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move { q.get().await })
            })
            .collect();
        let putter = SyncManager::from_client(crate::common::connect(&running).await);
        let put_q: QueueProxy<u64> = crate::common::share(&q, putter.client());
        for i in 0..5 {
            put_q.put(i).await.unwrap();
        }
        let mut got: Vec<u64> = bounded("five gets", join_all(gets))
            .await
            .into_iter()
            .map(|r| r.expect("task").expect("never Busy: the client waited"))
            .collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2, 3, 4], "{transport:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_beyond_the_bound_sends_its_calls_as_room_comes() {
    for transport in TRANSPORTS {
        let running = strict_server(transport, 2).await;
        let getter = SyncManager::from_client(client(&running, 2, 1 << 20).await);
        let q: QueueProxy<u64> = getter.queue(0).await.unwrap();
        let putter = SyncManager::from_client(crate::common::connect(&running).await);
        let put_q: QueueProxy<u64> = crate::common::share(&q, putter.client());
        let puts = tokio::spawn(async move {
            for i in 0..6 {
                put_q.put(i).await.unwrap();
            }
        });
        // Six waiting gets through one pipeline: two at a time on the wire, in order.
        let mut pipeline = Pipeline::new();
        let handle = managers::Proxy::handle(&q);
        for _ in 0..6 {
            pipeline.push(
                handle.call_method::<_, Result<managers::Value, managers::sync::SyncError>>(
                    "get",
                    (true, None::<std::time::Duration>),
                ),
            );
        }
        let mut got = Vec::new();
        while let Some(item) = bounded("a pipeline of gets", pipeline.next()).await {
            got.push(item.expect("never Busy").expect("an item"));
        }
        puts.await.unwrap();
        assert_eq!(got.len(), 6, "{transport:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_through_a_tiny_bound_all_complete_in_order() {
    let running = crate::common::start(Transport::Unix).await;
    let client = client(&running, 3, 64).await;
    let counter: CounterProxy = client.create("counter", (0,)).await.unwrap();
    let mut pipeline = Pipeline::new();
    for _ in 0..500 {
        pipeline.push(counter.incr());
    }
    let mut last = 0;
    while let Some(n) = pipeline.next().await {
        let n = n.unwrap();
        assert_eq!(n, last + 1, "results in order");
        last = n;
    }
    // The same as separate futures.
    let all = join_all((0..500).map(|_| counter.incr())).await;
    assert!(all.iter().all(Result::is_ok));
    assert_eq!(counter.get().await.unwrap(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_changes_coalesced_while_the_queue_is_full_lose_nothing() {
    for transport in TRANSPORTS {
        let running = crate::common::start(transport).await;
        // One byte: the queue is full whenever anything is queued, so most clones and
        // drops below are coalesced.
        let client = client(&running, 1 << 10, 1).await;
        let counter: CounterProxy = client.create("counter", (0,)).await.unwrap();
        let id = counter.handle().id();
        let mut clones: Vec<CounterProxy> = (0..1000).map(|_| counter.clone()).collect();
        clones.truncate(10);
        // Calls through the clones still work, in order with the reference changes.
        for c in &clones {
            c.incr().await.unwrap();
        }
        let held = holders(&client, id).await;
        let total: u64 = held.iter().map(|(_, n)| n).sum();
        assert_eq!(
            total, 11,
            "{transport:?}: the original and ten clones, {held:?}"
        );
        drop(clones);
        drop(counter);
        objects_become(&client, 0).await;
    }
}
