//! Many calls in flight on one connection.

use futures_util::future::join_all;
use managers::{Client, Error, Pipeline, RemoteError};

use crate::common::{
    bounded, register_all, start, until, PairProxy, StoreProxy, Transport, TRANSPORTS,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_calls_on_one_connection() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let store: StoreProxy = server.create("store", ()).await.unwrap();
        let pair: PairProxy = server.create("get_pair", (0, 0)).await.unwrap();
        let incrs = join_all((0..100).map(|i| store.incr(format!("k{}", i % 10)))).await;
        let mut values: Vec<u64> = incrs.into_iter().map(Result::unwrap).collect();
        values.sort();
        // Ten keys, each incremented ten times: every value 1..=10 appears ten times.
        let expected: Vec<u64> = (1..=10).flat_map(|v| std::iter::repeat_n(v, 10)).collect();
        assert_eq!(values, expected, "{transport:?}");
        // Replies are matched to their requests, not to their order.
        let echoes = join_all((0..100u8).map(|i| pair.echo(vec![i; i as usize], "x"))).await;
        for (i, echo) in echoes.into_iter().enumerate() {
            assert_eq!(echo.unwrap().0, vec![i as u8; i]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_complete_independently() {
    let server = start(Transport::Tcp).await;
    let store: StoreProxy = server.create("store", ()).await.unwrap();
    let blocked = store.rendezvous(2);
    tokio::pin!(blocked);
    // The first call is in flight and waiting; a later one on the same connection
    // completes, and then releases the first. (`get` takes `&self`, so it runs beside the
    // waiting `&self` call; a `&mut self` call would wait for it, by design.)
    tokio::select! {
        biased;
        _ = &mut blocked => panic!("rendezvous(2) cannot finish alone"),
        n = store.get("x".into()) => assert_eq!(n.unwrap(), None),
    }
    let (first, second) = tokio::join!(blocked, store.rendezvous(2));
    assert_eq!(first.unwrap() + second.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pending_call_gets_the_same_error_when_the_connection_fails() {
    let server = register_all(managers::ServerBuilder::new())
        .bind()
        .await
        .unwrap();
    let address = server.address().clone();
    let stop = server.shutdown_handle();
    let serving = tokio::spawn(server.serve_forever());
    let client = Client::connect(&address, "test-key").await.unwrap();
    let store: StoreProxy = client.create("store", ()).await.unwrap();
    let pending: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.forever().await })
        })
        .collect();
    // Wait until all ten increfs and calls were read by the server.
    let rows = client.debug_info().await.unwrap();
    assert_eq!(rows[0].refcount, 11);
    stop.shutdown();
    serving.await.unwrap().unwrap();
    let mut errors = Vec::new();
    for call in pending {
        errors.push(call.await.unwrap().unwrap_err());
    }
    assert!(
        errors.iter().all(|e| matches!(e, Error::Transport(_))),
        "{errors:?}"
    );
    let first = errors[0].to_string();
    assert!(errors.iter().all(|e| e.to_string() == first), "{errors:?}");
    // Later calls fail at once with it too.
    assert_eq!(store.get("k".into()).await.unwrap_err().to_string(), first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_kept_but_not_polled_does_not_stall_the_connection() {
    let server = start(Transport::Tcp).await;
    let store: StoreProxy = server.create("store", ()).await.unwrap();
    // One call in flight elsewhere, so the next one is a pipelined write.
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { store.rendezvous(2).await }
    });
    store.get("sync".into()).await.unwrap(); // the rendezvous has been read by the server
                                             // Poll a call once and then keep it without polling it again.
    let kept = store.get("kept".into());
    tokio::pin!(kept);
    assert!(futures_util::poll!(kept.as_mut()).is_pending());
    // Other calls, from other tasks, still go out and complete.
    let other = tokio::spawn({
        let store = store.clone();
        async move { store.rendezvous(2).await }
    });
    let done = tokio::time::timeout(std::time::Duration::from_secs(20), other)
        .await
        .expect("a kept, unpolled call stalled the connection");
    assert!(done.unwrap().is_ok());
    assert!(waiting.await.unwrap().is_ok());
    assert_eq!(kept.await.unwrap(), None);
}

/// A reply that arrives and is never taken (its call's future kept and not polled again)
/// must not hold back the requests queued after it: they are written without it.
async fn a_reply_never_taken_does_not_hold_back_later_calls(store: StoreProxy, tag: &str) {
    let later_key = format!("later-{tag}");
    let kept = store.get("kept".into());
    tokio::pin!(kept);
    assert!(futures_util::poll!(kept.as_mut()).is_pending());
    // Replies come in order: once this one is here, so is the kept call's, in the same
    // batch or an earlier one.
    store.get("sync".into()).await.unwrap();
    let later = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        store.incr(later_key.clone()),
    )
    .await
    .expect("a reply never taken held back a later call");
    assert_eq!(later.unwrap(), 1);
    // Dropping the call whose reply came (instead of taking it) releases the batch too.
    let mut dropped = Box::pin(store.get("dropped".into()));
    assert!(futures_util::poll!(dropped.as_mut()).is_pending());
    store.get("sync".into()).await.unwrap();
    drop(dropped);
    assert_eq!(store.incr(later_key.clone()).await.unwrap(), 2);
    assert_eq!(kept.await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untaken_reply_does_not_stall_calls_outside_a_task() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        a_reply_never_taken_does_not_hold_back_later_calls(
            server.create("store", ()).await.unwrap(),
            "block_on",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untaken_reply_does_not_stall_calls_inside_a_task() {
    let server = start(Transport::Tcp).await;
    let store: StoreProxy = server.create("store", ()).await.unwrap();
    tokio::spawn(
        async move { a_reply_never_taken_does_not_hold_back_later_calls(store, "task").await },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn an_untaken_reply_does_not_stall_calls_on_a_current_thread_runtime() {
    let server = start(Transport::Unix).await;
    let store: StoreProxy = server.create("store", ()).await.unwrap();
    a_reply_never_taken_does_not_hold_back_later_calls(store.clone(), "block_on").await;
    tokio::spawn(
        async move { a_reply_never_taken_does_not_hold_back_later_calls(store, "task").await },
    )
    .await
    .unwrap();
}

/// Pipelined calls from inside a task (their frames go out through the connection's
/// writer task) and from several tasks at once, on both runtime flavours.
async fn pipelined_from_tasks(store: StoreProxy) {
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let calls = (0..64).map(|_| store.incr(format!("t{t}")));
                let mut values: Vec<u64> = join_all(calls)
                    .await
                    .into_iter()
                    .map(Result::unwrap)
                    .collect();
                values.sort();
                values
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), (1..=64).collect::<Vec<u64>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_calls_from_tasks_on_a_multi_thread_runtime() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        pipelined_from_tasks(server.create("store", ()).await.unwrap()).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn pipelined_calls_from_tasks_on_a_current_thread_runtime() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        pipelined_from_tasks(server.create("store", ()).await.unwrap()).await;
    }
}

/// A `Pipeline` keeps `depth` calls in flight over two stores on two connections (each
/// with its own manager) and returns every result in push order, a refused call's error
/// in its turn.
async fn a_pipeline_returns_results_in_push_order(a: StoreProxy, b: StoreProxy, depth: usize) {
    const CALLS: usize = 500;
    fn key(i: usize) -> String {
        format!("k{}", i % 7)
    }
    fn push<'a>(pipeline: &mut Pipeline<'a, u64>, a: &'a StoreProxy, b: &'a StoreProxy, i: usize) {
        if i == 123 {
            // Not a method of the store: refused by the server, in its turn.
            pipeline.push(a.handle().call_method("no_such_method", ()));
        } else if i % 2 == 0 {
            pipeline.push(a.incr(key(i)));
        } else {
            pipeline.push(b.incr(key(i)));
        }
    }
    let mut pipeline = Pipeline::new();
    let mut pushed = 0;
    while pushed < depth {
        push(&mut pipeline, &a, &b, pushed);
        pushed += 1;
    }
    assert_eq!(pipeline.len(), depth);
    let mut counts = std::collections::HashMap::new();
    let mut taken = 0;
    while let Some(result) = pipeline.next().await {
        if taken == 123 {
            match result {
                Err(Error::Remote(RemoteError::UnknownMethod { method, .. })) => {
                    assert_eq!(method, "no_such_method")
                }
                other => panic!("call 123 should be refused, got {other:?}"),
            }
        } else {
            let count = counts.entry((taken % 2, key(taken))).or_insert(0);
            *count += 1;
            assert_eq!(result.unwrap(), *count, "call {taken}");
        }
        taken += 1;
        if pushed < CALLS {
            push(&mut pipeline, &a, &b, pushed);
            pushed += 1;
        }
    }
    assert_eq!(taken, CALLS);
    assert!(pipeline.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_returns_results_in_order_outside_a_task() {
    for transport in TRANSPORTS {
        let (one, two) = (start(transport).await, start(transport).await);
        let a = one.create("store", ()).await.unwrap();
        let b = two.create("store", ()).await.unwrap();
        a_pipeline_returns_results_in_push_order(a, b, 64).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_returns_results_in_order_inside_a_task() {
    let (one, two) = (start(Transport::Tcp).await, start(Transport::Unix).await);
    let a = one.create("store", ()).await.unwrap();
    let b = two.create("store", ()).await.unwrap();
    tokio::spawn(async move { a_pipeline_returns_results_in_push_order(a, b, 16).await })
        .await
        .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_pipeline_returns_results_in_order_on_a_current_thread_runtime() {
    let (one, two) = (start(Transport::Unix).await, start(Transport::Tcp).await);
    let a = one.create("store", ()).await.unwrap();
    let b = two.create("store", ()).await.unwrap();
    a_pipeline_returns_results_in_push_order(a, b, 1).await;
    let a = one.create("store", ()).await.unwrap();
    let b = two.create("store", ()).await.unwrap();
    tokio::spawn(async move { a_pipeline_returns_results_in_push_order(a, b, 100).await })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_pipeline_cancels_its_calls_on_the_server() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let store: StoreProxy = server.create("store", ()).await.unwrap();
        let mut pipeline = Pipeline::new();
        for _ in 0..3 {
            pipeline.push(store.wait_counted());
        }
        until("the three calls run on the server", async || {
            store.waiting().await.unwrap() == 3
        })
        .await;
        drop(pipeline);
        until("the dropped pipeline's calls are cancelled", async || {
            store.waiting().await.unwrap() == 0
        })
        .await;
    }
}

/// A pipeline with two increments of `k` pushed, not polled yet.
fn incremented_twice(store: &StoreProxy) -> Pipeline<'_, u64> {
    let mut pipeline = Pipeline::new();
    pipeline.push(store.incr("k".into()));
    pipeline.push(store.incr("k".into()));
    pipeline
}

/// Calls pushed onto a pipeline wait until it is polled, but never behind a later
/// request on the same connection: a call made after the push sees its effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelines_calls_go_before_later_requests_on_their_connection() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let store: StoreProxy = server.create("store", ()).await.unwrap();
        let mut pipeline = incremented_twice(&store);
        // Not polled yet; this call on the same connection still runs after both.
        assert_eq!(store.get("k".into()).await.unwrap(), Some(2));
        // A clone's incref and drop's decref are requests too.
        pipeline.push(store.incr("k".into()));
        drop(store.clone());
        assert_eq!(store.get("k".into()).await.unwrap(), Some(3));
        let mut results = Vec::new();
        while let Some(r) = bounded("the results", pipeline.next()).await {
            results.push(r.unwrap());
        }
        assert_eq!(results, [1, 2, 3]);
    }
}

/// A call outside a task, made while others are in flight, queues the calls a pipeline
/// stashed (they go first) and yields before it writes; kept and never polled again, it
/// must not strand them: the pipeline writes its calls when it is polled, whoever queued
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelines_calls_queued_by_a_call_never_polled_again_still_go_out() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let store: StoreProxy = server.create("store", ()).await.unwrap();
        let mut pipeline = incremented_twice(&store);
        // Queues the pipeline's two calls, then its own, and yields before writing.
        let kept = store.get("kept".into());
        tokio::pin!(kept);
        assert!(futures_util::poll!(kept.as_mut()).is_pending());
        assert_eq!(
            bounded("the pipeline's first call", pipeline.next())
                .await
                .unwrap()
                .unwrap(),
            1
        );
        assert_eq!(pipeline.next().await.unwrap().unwrap(), 2);
        assert_eq!(kept.await.unwrap(), None);
    }
}

/// Two pipelines on one connection: the calls pushed onto the first go before those of
/// the second, even when only the second is polled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_on_one_connection_keep_the_order_of_their_calls() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let store: StoreProxy = server.create("store", ()).await.unwrap();
        let mut first = Pipeline::new();
        let mut second = Pipeline::new();
        first.push(store.incr("k".into()));
        second.push(store.get("k".into()));
        first.push(store.incr("k".into()));
        second.push(store.get("k".into()));
        assert_eq!(
            bounded("the second", second.next()).await.unwrap().unwrap(),
            Some(1)
        );
        assert_eq!(
            bounded("the second", second.next()).await.unwrap().unwrap(),
            Some(2)
        );
        assert_eq!(
            bounded("the first", first.next()).await.unwrap().unwrap(),
            1
        );
        assert_eq!(
            bounded("the first", first.next()).await.unwrap().unwrap(),
            2
        );
    }
}

/// A request refused before it is sent (over the client's frame limit), made while a
/// pipeline holds calls it has not sent: the pipeline's calls still go out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_does_not_strand_a_pipelines_calls() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let client = managers::Client::builder()
            .max_frame_length(1024)
            .connect(server.address(), "test-key")
            .await
            .unwrap();
        let pair: PairProxy = client.create("get_pair", (1, 2)).await.unwrap();
        let mut pipeline = Pipeline::new();
        pipeline.push(pair.sum());
        let err = pair.echo(vec![0; 2000], "").await.unwrap_err();
        assert!(matches!(err, Error::Codec(_)), "{err:?}");
        assert_eq!(
            bounded("the pipeline's call", pipeline.next())
                .await
                .unwrap()
                .unwrap(),
            3
        );
    }
}

/// A pipeline dropped with results it took and did not return releases the references
/// those results carried (a raw call of a method that returns a new shared object).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_pipeline_releases_the_objects_its_untaken_results_carry() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let pair: crate::common::ItemPairProxy = server.create("item_pair", ()).await.unwrap();
        let mut pipeline = Pipeline::<i64>::new();
        for x in 0..8 {
            pipeline.push(pair.handle().call_method("make_square", (x,)));
        }
        // Each call's object comes back with its reply; a raw call cannot take it.
        let first = bounded("the first result", pipeline.next()).await.unwrap();
        assert!(
            matches!(first, Err(Error::Remote(RemoteError::Protocol(_)))),
            "{first:?}"
        );
        // Replies come in order: once this one is here, all eight are (taken or not).
        pair.make_square(0).await.unwrap();
        drop(pipeline);
        // A single call dropped after its reply came, before it was polled again.
        let mut call = Box::pin(pair.handle().call_method::<_, i64>("make_square", (9,)));
        assert!(futures_util::poll!(call.as_mut()).is_pending());
        pair.make_square(0).await.unwrap();
        drop(call);
        // Only the pair is left: every object the calls made was released.
        crate::common::objects_become(server.client(), 1).await;
        drop(pair);
    }
}
