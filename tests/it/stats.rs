//! Server statistics counted exactly for a known sequence of calls: per typeid and
//! method, failures, waiting calls, objects and connections.

use std::time::Duration;

use managers::{Client, Pipeline, Proxy};

use crate::common::{start, start_sync, sync_client, until, PairProxy, Transport};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_counted_exactly_per_typeid_and_method() {
    let server = start(Transport::Tcp).await;
    let client = Client::connect(server.address(), "test-key").await.unwrap();
    let before = client.stats().await.unwrap();
    assert_eq!(before.calls_of("get_pair", "sum"), None);
    assert!(before.connections >= 2, "{before:?}");

    let pair: PairProxy = client.create("get_pair", (6, 3)).await.unwrap();
    for _ in 0..3 {
        assert_eq!(pair.sum().await.unwrap(), 9);
    }
    assert!(pair.checked_div(0).await.is_err());
    assert_eq!(pair.checked_div(3).await.unwrap(), 2);
    assert!(pair.boom("counted".into()).await.is_err());
    assert_eq!(pair.add_async(1, 1).await.unwrap(), (7, 4));
    // Pipelined calls, and another connection's calls: all counted once their replies came.
    let mut pipeline = Pipeline::new();
    for _ in 0..500 {
        pipeline.push(pair.get_x());
    }
    while let Some(x) = pipeline.next().await {
        assert_eq!(x.unwrap(), 7);
    }
    drop(pipeline);
    let other = Client::connect(server.address(), "test-key").await.unwrap();
    let theirs: PairProxy = crate::common::share(&pair, &other);
    theirs.sum().await.unwrap();

    let stats = server.stats().await.unwrap();
    let counts = |method: &str| {
        stats
            .calls_of("get_pair", method)
            .map(|c| (c.calls, c.errors))
    };
    assert_eq!(counts("sum"), Some((4, 0)));
    assert_eq!(counts("checked_div"), Some((2, 1)));
    assert_eq!(counts("boom"), Some((1, 1)));
    assert_eq!(counts("add_async"), Some((1, 0)));
    assert_eq!(counts("get_x"), Some((500, 0)));
    assert_eq!(stats.objects_of("get_pair"), 1);
    assert!(stats.connections >= 3, "{stats:?}");
    assert!(stats.connections_total >= stats.connections);
    assert_eq!(stats.calls_waiting, 0);

    // Closed connections are no longer counted open.
    let open = stats.connections;
    drop((theirs, other));
    until("the closed connection is counted", async || {
        client.stats().await.unwrap().connections == open - 1
    })
    .await;
    drop(pair);
    until("the object is gone from the counts", async || {
        client.stats().await.unwrap().objects_of("get_pair") == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_calls_are_counted() {
    let server = start_sync(Transport::Unix).await;
    let manager = sync_client(&server).await;
    let queue = manager.queue::<u32>(0).await.unwrap();
    let waiting = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.get().await })
    };
    until("one call waits", async || {
        manager.client().stats().await.unwrap().calls_waiting == 1
    })
    .await;
    waiting.abort();
    until("none waits", async || {
        manager.client().stats().await.unwrap().calls_waiting == 0
    })
    .await;
    // A call withdrawn at its deadline is counted as a call.
    let err = queue.with_timeout(Duration::from_millis(20)).get().await;
    assert!(err.is_err());
    let stats = manager.client().stats().await.unwrap();
    let get = stats.calls_of("Queue", "get").expect("get counted");
    assert_eq!(get.calls, 2);
    assert_eq!(stats.objects_of("Queue"), 1);
}
