//! Proxies that return proxies, travel between processes, nest, and custom proxy types.

use std::time::Duration;

use managers::{manager, Error, Holder, Proxy, ProxyHandle, RemoteError};

use crate::child::ChildProcess;
use crate::common::{
    builder, connect, eventually_ok, holders, objects_become, start, Counter, CounterProxy,
    ItemPairProxy, PairProxy, Registry, RegistryProxy, Running, SquareProxy, Transport, TRANSPORTS,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_to_typeid_shares_the_tutorials_item() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let base = server.number_of_objects().await.unwrap();
        let pair: ItemPairProxy = server.create("item_pair", ()).await.unwrap();
        let first = pair.get_item().await.unwrap();
        let second = pair.get_item().await.unwrap();
        assert_ne!(
            first.handle().id(),
            second.handle().id(),
            "two wrapper objects"
        );
        assert_eq!(first.handle().typeid(), "ItemWrapper");
        first.set(5).await.unwrap();
        assert_eq!(second.get().await.unwrap(), 5, "{transport:?}");
        second.set(7).await.unwrap();
        assert_eq!(first.get().await.unwrap(), 7);
        assert_eq!(
            pair.item_value().await.unwrap(),
            7,
            "the server-side pair sees it"
        );
        assert_eq!(server.number_of_objects().await.unwrap(), base + 3);
        // A fallible mapped method: Ok shares, Err is a typed remote error.
        let third = pair.try_item(true).await.unwrap();
        assert_eq!(third.get().await.unwrap(), 7);
        let err = pair.try_item(false).await.unwrap_err();
        assert!(
            matches!(&err, Error::Remote(RemoteError::Method { message, .. }) if message == "no item for you"),
            "{err:?}"
        );
        // A raw call of a mapped method with the value API is refused without a leak;
        // the proxy API works by name too.
        let err = pair
            .handle()
            .call_method::<_, i64>("get_item", ())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("call_for_proxy"), "{err}");
        let fourth: crate::common::ItemWrapperProxy =
            pair.handle().call_for_proxy("get_item", ()).await.unwrap();
        assert_eq!(fourth.get().await.unwrap(), 7);
        drop((pair, first, second, third, fourth));
        assert_eq!(server.number_of_objects().await.unwrap(), base);
    }
}

/// The tutorial's `MyProxy` for the tutorial's `Pair`: `get_x` squared, via a raw call.
#[derive(Clone, Debug, managers::Proxy)]
#[proxy(target = crate::common::Pair)]
struct SquaringProxy {
    handle: ProxyHandle,
}

impl SquaringProxy {
    async fn get_x(&self) -> Result<i64, Error> {
        let x: i64 = self.handle.call_method("get_x", ()).await?;
        Ok(x * x)
    }
}

manager! {
    /// A client that registers the custom proxy for `get_pair`.
    pub struct SquaringManager {
        /// A pair, seen through the squaring proxy.
        fn get_pair(x: i64, y: i64) -> SquaringProxy;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_proxies_work_wherever_generated_ones_do() {
    let server = start(Transport::Tcp).await;
    let base = server.number_of_objects().await.unwrap();
    // Created by typeid.
    let squared: SquaringProxy = server.create("get_pair", (3, 4)).await.unwrap();
    assert_eq!(squared.get_x().await.unwrap(), 9);
    // Registered on the client for a typeid.
    let m = SquaringManager::from_client(connect(&server).await);
    let other = m.get_pair(5, 0).await.unwrap();
    assert_eq!(other.get_x().await.unwrap(), 25);
    // The same object through the generated proxy: unsquared.
    let plain: PairProxy = PairProxy::from_handle(squared.handle().clone());
    assert_eq!(plain.get_x().await.unwrap(), 3);
    // The declared proxy of a type (`custom_proxy`), returned by `method_to_typeid`.
    let pair: ItemPairProxy = server.create("item_pair", ()).await.unwrap();
    let square: SquareProxy = pair.make_square(6).await.unwrap();
    assert_eq!(square.get_x().await.unwrap(), 36);
    let created: SquareProxy = server.create("square", (7,)).await.unwrap();
    assert_eq!(created.get_x().await.unwrap(), 49);
    // It travels like any proxy.
    let bytes = postcard::to_stdvec(&square).unwrap();
    let copy: SquareProxy = server.adopting(|| postcard::from_bytes(&bytes)).unwrap();
    assert_eq!(copy.get_x().await.unwrap(), 36);
    drop(other);
    m.number_of_objects().await.unwrap(); // its decref has been processed
    drop((squared, plain, pair, square, created, copy, m));
    assert_eq!(server.number_of_objects().await.unwrap(), base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_value_copies_the_referent() {
    let server = start(Transport::Tcp).await;
    let counter: CounterProxy = server.create("counter", (41,)).await.unwrap();
    counter.incr().await.unwrap();
    let mut copy: Counter = counter.get_value().await.unwrap();
    assert_eq!(copy, Counter { n: 42 });
    copy.n += 100;
    assert_eq!(
        (copy.n, counter.get().await.unwrap()),
        (142, 42),
        "the copy is a copy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_as_arguments_results_and_state() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let base = server.number_of_objects().await.unwrap();
        let registry: RegistryProxy = server.create("registry", ()).await.unwrap();
        let counter: CounterProxy = server.create("counter", (0,)).await.unwrap();
        let id = counter.handle().id();
        registry.put("a".into(), counter.clone()).await.unwrap();
        let mut expected = vec![(Holder::Connection(1), 1), (Holder::Objects, 1)];
        expected.sort();
        assert_eq!(holders(&server, id).await, expected, "{transport:?}");
        // The registry's proxy keeps the counter alive without us.
        drop(counter);
        assert_eq!(holders(&server, id).await, vec![(Holder::Objects, 1)]);
        // Returned from a method: a new reference for us.
        let again = registry.get("a".into()).await.unwrap().expect("stored");
        assert_eq!(again.incr().await.unwrap(), 1);
        // Called from inside the server through the stored proxy.
        assert_eq!(registry.incr_all().await.unwrap(), vec![2]);
        assert_eq!(again.get().await.unwrap(), 2);
        // Through an argument and back out.
        let bounced = registry.bounce(again.clone()).await.unwrap();
        assert_eq!(bounced.handle().id(), id);
        // Ours twice (`again`, `bounced`) and the registry's; the argument's reference was
        // released when the call finished.
        assert_eq!(
            holders(&server, id).await.iter().map(|h| h.1).sum::<u64>(),
            3
        );
        drop((again, bounced));
        assert!(registry.remove("a".into()).await.unwrap());
        assert_eq!(server.number_of_objects().await.unwrap(), base + 1);
        drop(registry);
        assert_eq!(server.number_of_objects().await.unwrap(), base);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_objects_are_freed_with_their_last_holder() {
    let server = start(Transport::Tcp).await;
    let base = server.number_of_objects().await.unwrap();
    let outer: RegistryProxy = server.create("registry", ()).await.unwrap();
    let inner: RegistryProxy = server.create("registry", ()).await.unwrap();
    for name in ["x", "y"] {
        let c: CounterProxy = server.create("counter", (0,)).await.unwrap();
        inner.put(name.into(), c).await.unwrap();
    }
    outer.link("inner".into(), inner.clone()).await.unwrap();
    drop(inner);
    // outer -> inner -> two counters, all held only from inside the server.
    assert_eq!(server.number_of_objects().await.unwrap(), base + 4);
    // Freeing the outer object frees everything it (transitively) held.
    drop(outer);
    assert_eq!(server.number_of_objects().await.unwrap(), base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_do_not_deadlock_and_can_be_broken() {
    let server = start(Transport::Tcp).await;
    let base = server.number_of_objects().await.unwrap();
    let a: RegistryProxy = server.create("registry", ()).await.unwrap();
    let b: RegistryProxy = server.create("registry", ()).await.unwrap();
    a.link("b".into(), b.clone()).await.unwrap();
    b.link("a".into(), a.clone()).await.unwrap();
    drop(b);
    // b is kept alive by a, a by us and by b.
    assert_eq!(server.number_of_objects().await.unwrap(), base + 2);
    // Breaking the cycle from outside frees b, which releases its reference to a.
    a.clear().await.unwrap();
    assert_eq!(server.number_of_objects().await.unwrap(), base + 1);
    drop(a);
    assert_eq!(server.number_of_objects().await.unwrap(), base);

    // An unbroken cycle with no outside holder is leaked (as in Python), but nothing
    // deadlocks and the server keeps serving.
    let a: RegistryProxy = server.create("registry", ()).await.unwrap();
    let b: RegistryProxy = server.create("registry", ()).await.unwrap();
    a.link("b".into(), b.clone()).await.unwrap();
    b.link("a".into(), a.clone()).await.unwrap();
    drop((a, b));
    assert_eq!(server.number_of_objects().await.unwrap(), base + 2);
    let pair: PairProxy = server.create("get_pair", (1, 1)).await.unwrap();
    assert_eq!(pair.sum().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_while_the_sender_drops_its_copy_never_frees_the_object() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let sender = connect(&server).await;
        let receiver = connect(&server).await;
        let base = server.number_of_objects().await.unwrap();
        for round in 0..200 {
            let counter: CounterProxy = sender.create("counter", (round,)).await.unwrap();
            let bytes = postcard::to_stdvec(&counter).unwrap();
            drop(counter); // at once: only the hold in transit keeps the object alive
            let adopted: CounterProxy = receiver.adopting(|| postcard::from_bytes(&bytes)).unwrap();
            assert_eq!(adopted.incr().await.unwrap(), round + 1, "round {round}");
        }
        // Every adopted proxy was dropped; the sender's decrefs reach the server in order.
        sender.number_of_objects().await.unwrap();
        receiver.number_of_objects().await.unwrap();
        objects_become(&server, base).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_nobody_adopts_is_released() {
    let (builder, _dir) = builder(Transport::Tcp);
    let server = Running::from(
        builder
            .hold_timeout(Duration::from_millis(300))
            .start()
            .await
            .unwrap(),
    );
    let base = server.number_of_objects().await.unwrap();
    let counter: CounterProxy = server.create("counter", (0,)).await.unwrap();
    let id = counter.handle().id();
    let _lost = postcard::to_stdvec(&counter).unwrap();
    drop(counter);
    assert_eq!(holders(&server, id).await, vec![(Holder::InTransit, 1)]);
    objects_become(&server, base).await;

    // A receiver process that dies before adopting.
    let counter: CounterProxy = server.create("counter", (0,)).await.unwrap();
    let bytes = postcard::to_stdvec(&counter).unwrap();
    drop(counter);
    let mut child = ChildProcess::spawn_with("wait_then_adopt", server.address(), &bytes);
    child.wait_for("READY");
    child.kill();
    objects_become(&server, base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_sent_to_another_process_is_live_there() {
    let server = start(Transport::Tcp).await;
    let base = server.number_of_objects().await.unwrap();
    let counter: CounterProxy = server.create("counter", (10,)).await.unwrap();
    let bytes = postcard::to_stdvec(&counter).unwrap();
    drop(counter);
    let mut child = ChildProcess::spawn_with("adopt_and_incr", server.address(), &bytes);
    assert_eq!(child.wait_for("INCR "), "INCR 11");
    child.wait_for("DONE");
    objects_become(&server, base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_for_an_unknown_manager_is_a_clear_error() {
    let server = start(Transport::Tcp).await;
    let counter: CounterProxy = server.create("counter", (0,)).await.unwrap();
    let mut bytes = postcard::to_stdvec(&counter).unwrap();
    drop(server);
    // The manager is gone: no connection of this process leads to it any more.
    let err = postcard::from_bytes::<CounterProxy>(&bytes).unwrap_err();
    assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err:?}");
    bytes.clear();
    drop(counter);
    let _ = Registry::default();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_info_shows_who_holds_one_object_across_processes() {
    let server = start(Transport::Tcp).await;
    let mine: PairProxy = server.create("the_pair", ()).await.unwrap();
    let id = mine.handle().id();
    let mut two = ChildProcess::spawn("hold_shared", server.address(), 2);
    two.wait_for("HOLDING 2");
    let mut three = ChildProcess::spawn("hold_shared", server.address(), 3);
    three.wait_for("HOLDING 3");
    let rows = holders(&server, id).await;
    let counts: Vec<u64> = rows.iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, vec![1, 2, 3], "{rows:?}");
    assert!(
        rows.iter().all(|(h, _)| matches!(h, Holder::Connection(_))),
        "{rows:?}"
    );
    assert_eq!(
        rows[0].0,
        Holder::Connection(1),
        "this test's connection came first"
    );
    two.kill();
    three.kill();
    eventually_ok(async || {
        let rows = holders(&server, id).await;
        if rows == vec![(Holder::Connection(1), 1)] {
            Ok(())
        } else {
            Err(format!("{rows:?}"))
        }
    })
    .await;
}
