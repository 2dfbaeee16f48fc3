//! The SyncManager's containers: `Queue`/`JoinableQueue`, `dict`, `list`, `Namespace`,
//! `Value` and `Array` (the intent of CPython's `test_queue`, `test_dict`, `test_list`,
//! `test_namespace`, `test_value`, `test_array` for managers, and their nesting tests),
//! across clients and a killed client process.
//!
//! Nothing here is timed: a short timeout is used only where the call must time out (the
//! queue stays empty or full, a task stays unfinished), and `bounded` is a safety net
//! around what must complete. Every test ends with the server back at its base number of
//! objects.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use managers::sync::{DictProxy, ListProxy, QueueProxy, SyncError, SyncManager};
use managers::Proxy;
use serde::{Deserialize, Serialize};

use crate::child::ChildProcess;
use crate::common::{
    assert_err, bounded, holders, share_as, start_sync, sync_client, until, Running, Transport,
    SHORT, TRANSPORTS,
};

/// Check that the server is back at `base` objects once every client in `clients` has had
/// its decrefs processed (a round trip on a connection follows everything sent before it).
async fn assert_back_to(server: &Running, base: u64, clients: &[&SyncManager]) {
    for client in clients {
        client.number_of_objects().await.unwrap();
    }
    assert_eq!(server.number_of_objects().await.unwrap(), base);
}

fn empty(e: &SyncError) -> bool {
    matches!(e, SyncError::Empty)
}
fn full(e: &SyncError) -> bool {
    matches!(e, SyncError::Full)
}
fn not_found(e: &SyncError) -> bool {
    matches!(e, SyncError::NotFound(_))
}
fn out_of_range(e: &SyncError) -> bool {
    matches!(e, SyncError::OutOfRange(_))
}
fn too_many_task_done(e: &SyncError) -> bool {
    matches!(e, SyncError::TooManyTaskDone)
}
fn invalid(e: &SyncError) -> bool {
    matches!(e, SyncError::Invalid(_))
}

// ---- Types stored as values ------------------------------------------------------------

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum State {
    Idle,
    Busy(u8),
    Moved(i8, i8),
    Done { code: i32 },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Job {
    id: u32,
    name: String,
    tags: Vec<String>,
    state: State,
    weights: BTreeMap<String, f64>,
    parent: Option<u32>,
}

/// What another client knows of a `Job`: fewer fields, wider integers.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct JobSummary {
    id: u64,
    name: String,
    state: State,
}

fn job(id: u32, state: State) -> Job {
    Job {
        id,
        name: format!("job-{id}"),
        tags: vec!["a".into(), "b".into()],
        state,
        weights: [("cpu".to_owned(), 0.5), ("io".to_owned(), 1.5)].into(),
        parent: (id > 1).then(|| id - 1),
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

/// The same key as a `Point`, declared by another client with its fields the other way
/// round and wider: keys compare by value (a struct is a map, maps compare by entries).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct PointYx {
    y: i64,
    x: i64,
}

// ---- Queue ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_put_get_in_order_and_empty_errors() {
    let server = start_sync(Transport::Tcp).await;
    let base = server.number_of_objects().await.unwrap();
    let m = sync_client(&server).await;
    let q = m.queue::<String>(0).await.unwrap();
    assert!(q.empty().await.unwrap());
    assert!(!q.full().await.unwrap(), "an unbounded queue is never full");
    for word in ["one", "two", "three"] {
        q.put(word.into()).await.unwrap();
    }
    q.put_nowait("four".into()).await.unwrap();
    q.put_with("five".into(), true, Some(SHORT)).await.unwrap();
    q.put_with("six".into(), false, None).await.unwrap();
    assert_eq!(q.qsize().await.unwrap(), 6);
    assert!(!q.empty().await.unwrap());
    assert_eq!(q.get().await.unwrap(), "one");
    assert_eq!(q.get_nowait().await.unwrap(), "two");
    assert_eq!(q.get_with(true, Some(SHORT)).await.unwrap(), "three");
    assert_eq!(q.get_with(false, None).await.unwrap(), "four");
    assert_eq!(q.get_with(true, None).await.unwrap(), "five");
    assert_eq!(q.get().await.unwrap(), "six");
    assert!(q.empty().await.unwrap());
    // Empty: at once without blocking, after the timeout (enforced by the server) with it.
    assert_err(q.get_nowait().await, empty);
    assert_err(
        q.get_with(false, Some(Duration::from_secs(60))).await,
        empty,
    );
    assert_err(q.get_with(true, Some(SHORT)).await, empty);
    assert_err(q.get_with(true, Some(Duration::ZERO)).await, empty);
    assert_eq!(q.qsize().await.unwrap(), 0);
    // An item that does not decode as `T` is an error of that call, not of the queue.
    let raw: QueueProxy<u8> = share_as(&q, m.client());
    raw.put(7).await.unwrap();
    assert_err(q.get().await, invalid);
    drop((q, raw));
    assert_back_to(&server, base, &[&m]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_queue_refuses_or_waits_when_full() {
    for transport in TRANSPORTS {
        let server = start_sync(transport).await;
        let base = server.number_of_objects().await.unwrap();
        let (a, b) = (sync_client(&server).await, sync_client(&server).await);
        let q = a.queue::<i32>(2).await.unwrap();
        q.put_nowait(1).await.unwrap();
        assert!(!q.full().await.unwrap());
        q.put(2).await.unwrap();
        assert!(q.full().await.unwrap(), "{transport:?}");
        assert_err(q.put_nowait(3).await, full);
        assert_err(q.put_with(3, false, None).await, full);
        assert_err(q.put_with(3, true, Some(SHORT)).await, full);
        assert_eq!(q.qsize().await.unwrap(), 2, "a refused put adds nothing");

        // A put blocked on another connection completes when a get makes room.
        let theirs: QueueProxy<i32> = share_as(&q, b.client());
        let (put, got) = tokio::join!(bounded("the blocked put", theirs.put(3)), async {
            // Sent after the put on the same connection: the put is on the server.
            assert!(theirs.full().await.unwrap());
            q.get().await.unwrap()
        });
        put.unwrap();
        assert_eq!(got, 1);
        assert_eq!(q.get().await.unwrap(), 2);
        assert_eq!(q.get().await.unwrap(), 3);
        assert!(q.empty().await.unwrap());
        drop((q, theirs));
        assert_back_to(&server, base, &[&a, &b]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_get_leaves_its_connection_free() {
    let server = start_sync(Transport::Tcp).await;
    let base = server.number_of_objects().await.unwrap();
    let m = sync_client(&server).await;
    let q = m.queue::<u64>(0).await.unwrap();
    let d = m.dict::<String, u64>().await.unwrap();
    // Two gets wait on the server while the same connection keeps calling, including
    // a get that times out and the puts that release the waiting ones.
    let (first, second, ()) = tokio::join!(
        bounded("the first blocked get", q.get()),
        bounded("the second blocked get", q.get()),
        async {
            assert_eq!(q.qsize().await.unwrap(), 0);
            d.set(&"k".into(), &1).await.unwrap();
            assert_eq!(d.get(&"k".into()).await.unwrap(), Some(1));
            assert_err(q.get_with(true, Some(SHORT)).await, empty);
            q.put(10).await.unwrap();
            q.put(20).await.unwrap();
        }
    );
    let mut got = [first.unwrap(), second.unwrap()];
    got.sort();
    assert_eq!(got, [10, 20]);
    assert!(
        q.empty().await.unwrap(),
        "each item went to exactly one getter"
    );
    drop((q, d));
    assert_back_to(&server, base, &[&m]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joinable_queue_join_waits_for_every_task_done() {
    let server = start_sync(Transport::Tcp).await;
    let base = server.number_of_objects().await.unwrap();
    let (a, b) = (sync_client(&server).await, sync_client(&server).await);
    let q = a.joinable_queue::<String>(0).await.unwrap();
    assert_eq!(q.handle().typeid(), "JoinableQueue");
    bounded("join of an empty queue", q.join()).await.unwrap();
    assert_err(q.task_done().await, too_many_task_done);

    for job in ["a", "b", "c"] {
        q.put(job.into()).await.unwrap();
    }
    let worker: QueueProxy<String> = share_as(&q, b.client());
    for _ in 0..3 {
        worker.get().await.unwrap();
    }
    assert!(q.empty().await.unwrap());
    // Taken but not done: join must still wait.
    assert!(tokio::time::timeout(SHORT, q.join()).await.is_err());
    worker.task_done().await.unwrap();
    worker.task_done().await.unwrap();
    assert!(tokio::time::timeout(SHORT, q.join()).await.is_err());
    // A join waiting on the server completes once the last task is done.
    let (joined, ()) = tokio::join!(bounded("join", q.join()), async {
        q.qsize().await.unwrap(); // the join is on the server
        worker.task_done().await.unwrap();
    });
    joined.unwrap();
    assert_err(worker.task_done().await, too_many_task_done);

    // The same for a plain `Queue` (Python's has task_done/join too) with two joiners.
    let plain = a.queue::<u8>(0).await.unwrap();
    plain.put(1).await.unwrap();
    let theirs: QueueProxy<u8> = share_as(&plain, b.client());
    let (x, y, ()) = tokio::join!(
        bounded("first join", plain.join()),
        bounded("second join", theirs.join()),
        async {
            plain.qsize().await.unwrap();
            theirs.qsize().await.unwrap();
            assert_eq!(plain.get().await.unwrap(), 1);
            plain.task_done().await.unwrap();
        }
    );
    x.unwrap();
    y.unwrap();
    drop((q, worker, plain, theirs));
    assert_back_to(&server, base, &[&a, &b]).await;
}

/// A child blocked in `get` is killed; the next item goes to a live getter (Python's dead
/// getter takes it with it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_getter_killed_while_blocked_swallows_no_item() {
    for transport in TRANSPORTS {
        let server = start_sync(transport).await;
        let base = server.number_of_objects().await.unwrap();
        let m = sync_client(&server).await;
        let q = m.queue::<i64>(0).await.unwrap();
        let id = q.handle().id();
        let bytes = postcard::to_stdvec(&q).unwrap();
        let mut child = ChildProcess::spawn_with("queue_get", server.address(), &bytes);
        child.wait_for("GETTING");
        // A live getter on another connection, waiting behind the child.
        let other = sync_client(&server).await;
        let live: QueueProxy<i64> = share_as(&q, other.client());
        let (got, ()) = tokio::join!(bounded("the live getter", live.get()), async {
            live.qsize().await.unwrap(); // the live get is on the server
            let before = holders(&m, id).await.len();
            assert_eq!(before, 3, "us, the child and the live getter");
            child.kill();
            // The dead connection is closed (its calls cancelled) when its references go.
            until("the server to close the dead connection", async || {
                holders(&m, id).await.len() == before - 1
            })
            .await;
            q.put(42).await.unwrap();
        });
        assert_eq!(got.unwrap(), 42, "{transport:?}");
        assert!(q.empty().await.unwrap());
        q.put(43).await.unwrap();
        assert_eq!(live.get_nowait().await.unwrap(), 43);
        drop((q, live));
        assert_back_to(&server, base, &[&m, &other]).await;
    }
}

// ---- dict -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dict_operations() {
    let server = start_sync(Transport::Tcp).await;
    let base = server.number_of_objects().await.unwrap();
    let m = sync_client(&server).await;
    let d = m.dict::<String, i64>().await.unwrap();
    let k = |s: &str| s.to_owned();
    assert!(d.is_empty().await.unwrap());
    assert_eq!(d.get(&k("a")).await.unwrap(), None);
    d.set(&k("a"), &1).await.unwrap();
    d.set(&k("b"), &2).await.unwrap();
    d.set(&k("c"), &3).await.unwrap();
    d.set(&k("a"), &10).await.unwrap(); // replaced in place
    assert_eq!(d.get(&k("a")).await.unwrap(), Some(10));
    assert!(d.contains(&k("b")).await.unwrap());
    assert!(!d.contains(&k("z")).await.unwrap());
    assert_eq!(d.len().await.unwrap(), 3);
    assert!(!d.is_empty().await.unwrap());
    assert_eq!(d.keys().await.unwrap(), ["a", "b", "c"]);
    assert_eq!(d.values().await.unwrap(), [10, 2, 3]);
    let items = d.items().await.unwrap();
    assert_eq!(items, [(k("a"), 10), (k("b"), 2), (k("c"), 3)]);
    assert_eq!(
        d.handle().referent_to_string().await.unwrap(),
        "{'a': 10, 'b': 2, 'c': 3}"
    );

    d.delete(&k("b")).await.unwrap();
    assert_err(d.delete(&k("b")).await, not_found);
    // update: existing keys keep their place, new ones go last.
    d.update([(k("c"), 30), (k("d"), 4)]).await.unwrap();
    assert_eq!(
        d.copy().await.unwrap(),
        [(k("a"), 10), (k("c"), 30), (k("d"), 4)]
    );
    assert_eq!(d.pop(&k("a")).await.unwrap(), 10);
    assert_err(d.pop(&k("a")).await, not_found);
    assert_eq!(d.pop_or(&k("a"), -1).await.unwrap(), -1);
    assert_eq!(d.pop_or(&k("c"), -1).await.unwrap(), 30);
    assert_eq!(
        d.setdefault(&k("d"), &99).await.unwrap(),
        4,
        "present: kept"
    );
    assert_eq!(
        d.setdefault(&k("e"), &5).await.unwrap(),
        5,
        "absent: inserted"
    );
    assert_eq!(d.popitem().await.unwrap(), (k("e"), 5), "the last entry");
    assert_eq!(d.len().await.unwrap(), 1);
    // copy() is a local snapshot.
    let mut copy = d.copy().await.unwrap();
    copy.push((k("local"), 0));
    assert_eq!(d.len().await.unwrap(), 1);
    d.clear().await.unwrap();
    assert!(d.is_empty().await.unwrap());
    assert_err(d.popitem().await, not_found);

    // Created with entries (a later duplicate wins, as in Python's dict()).
    let from = m
        .dict_from([(1u8, "x".to_owned()), (2, "y".into()), (1, "z".into())])
        .await
        .unwrap();
    assert_eq!(
        from.items().await.unwrap(),
        [(1, "z".into()), (2, "y".into())]
    );
    let wide: DictProxy<i64, String> = share_as(&from, m.client());
    assert_eq!(wide.get(&1).await.unwrap().as_deref(), Some("z"));
    drop((d, from, wide));
    assert_back_to(&server, base, &[&m]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_written_by_one_client_are_read_by_another() {
    let server = start_sync(Transport::Tcp).await;
    let base = server.number_of_objects().await.unwrap();
    let (a, b) = (sync_client(&server).await, sync_client(&server).await);

    // Tuple keys, struct values with enums, maps and options.
    let jobs = a.dict::<(u8, String), Job>().await.unwrap();
    let states = [
        State::Idle,
        State::Busy(3),
        State::Moved(-1, 2),
        State::Done { code: -7 },
    ];
    for (i, state) in states.iter().enumerate() {
        let i = i as u8;
        let j = job(u32::from(i), state.clone());
        jobs.set(&(i, format!("k{i}")), &j).await.unwrap();
    }
    // Client B declares the key with a wider integer: the same key by value.
    let theirs: DictProxy<(i64, String), Job> = share_as(&jobs, b.client());
    let got = theirs.get(&(3, "k3".into())).await.unwrap();
    assert_eq!(got, Some(job(3, State::Done { code: -7 })));
    assert!(theirs.contains(&(0, "k0".into())).await.unwrap());
    assert!(!theirs.contains(&(0, "k1".into())).await.unwrap());
    // And reads only what it knows of a job.
    let summaries: DictProxy<(u64, String), JobSummary> = share_as(&jobs, b.client());
    let all = summaries.items().await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(
        all[2],
        (
            (2, "k2".into()),
            JobSummary {
                id: 2,
                name: "job-2".into(),
                state: State::Moved(-1, 2)
            }
        )
    );
    // What B writes, A reads.
    theirs
        .set(&(9, "k9".into()), &job(9, State::Busy(1)))
        .await
        .unwrap();
    assert_eq!(jobs.len().await.unwrap(), 5);
    assert_eq!(
        jobs.pop(&(9, "k9".into())).await.unwrap(),
        job(9, State::Busy(1))
    );

    // Struct keys compare by value: another field order and width is the same key.
    let points = a.dict::<Point, String>().await.unwrap();
    points
        .set(&Point { x: 1, y: 2 }, &"one-two".into())
        .await
        .unwrap();
    let mirrored: DictProxy<PointYx, String> = share_as(&points, b.client());
    assert_eq!(
        mirrored
            .get(&PointYx { y: 2, x: 1 })
            .await
            .unwrap()
            .as_deref(),
        Some("one-two")
    );
    mirrored
        .set(&PointYx { y: 2, x: 1 }, &"replaced".into())
        .await
        .unwrap();
    assert_eq!(points.len().await.unwrap(), 1, "one key, not two");
    assert_eq!(points.keys().await.unwrap(), [Point { x: 1, y: 2 }]);

    // A queue of enums and a list of maps, across connections.
    let q = a.queue::<State>(0).await.unwrap();
    for state in &states {
        q.put(state.clone()).await.unwrap();
    }
    let their_q: QueueProxy<State> = share_as(&q, b.client());
    for state in &states {
        assert_eq!(&their_q.get().await.unwrap(), state);
    }
    let maps = a.list::<HashMap<String, Vec<u16>>>().await.unwrap();
    let entry: HashMap<String, Vec<u16>> = [("xs".to_owned(), vec![1, 2, 3])].into();
    maps.append(&entry).await.unwrap();
    let their_maps: ListProxy<BTreeMap<String, Vec<i32>>> = share_as(&maps, b.client());
    assert_eq!(
        their_maps.get(0).await.unwrap(),
        BTreeMap::from([("xs".to_owned(), vec![1, 2, 3])])
    );
    assert_eq!(
        their_maps
            .count(&[("xs".to_owned(), vec![1, 2, 3])].into())
            .await
            .unwrap(),
        1
    );

    drop((
        jobs, theirs, summaries, points, mirrored, q, their_q, maps, their_maps,
    ));
    assert_back_to(&server, base, &[&a, &b]).await;
}

// ---- list -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_operations() {
    let server = start_sync(Transport::Tcp).await;
    let base = server.number_of_objects().await.unwrap();
    let m = sync_client(&server).await;
    let l = m.list::<i32>().await.unwrap();
    assert!(l.is_empty().await.unwrap());
    assert_err(l.pop().await, out_of_range);
    assert_err(l.get(0).await, out_of_range);
    l.append(&1).await.unwrap();
    l.extend([2, 3, 4]).await.unwrap();
    l.insert(0, &0).await.unwrap();
    l.insert(-1, &35).await.unwrap(); // before the last, as in Python
    l.insert(100, &5).await.unwrap(); // clamped to the end
    l.insert(-100, &-1).await.unwrap(); // clamped to the start
    assert_eq!(l.to_vec().await.unwrap(), [-1, 0, 1, 2, 3, 35, 4, 5]);
    assert_eq!(l.len().await.unwrap(), 8);
    assert!(!l.is_empty().await.unwrap());
    assert_eq!(
        l.handle().referent_to_string().await.unwrap(),
        "[-1, 0, 1, 2, 3, 35, 4, 5]"
    );

    // Indexes: negative counts from the end; outside is OutOfRange.
    assert_eq!(l.get(0).await.unwrap(), -1);
    assert_eq!(l.get(-1).await.unwrap(), 5);
    assert_eq!(l.get(-8).await.unwrap(), -1);
    assert_err(l.get(8).await, out_of_range);
    assert_err(l.get(-9).await, out_of_range);
    l.set(-3, &30).await.unwrap();
    assert_eq!(l.get(5).await.unwrap(), 30);
    assert_err(l.set(8, &0).await, out_of_range);
    assert_err(l.set(-9, &0).await, out_of_range);

    // Slices: open ends, negative bounds, clamped, empty when reversed.
    assert_eq!(l.slice(Some(1), Some(3)).await.unwrap(), [0, 1]);
    assert_eq!(l.slice(None, Some(2)).await.unwrap(), [-1, 0]);
    assert_eq!(l.slice(Some(-2), None).await.unwrap(), [4, 5]);
    assert_eq!(l.slice(Some(-100), Some(100)).await.unwrap().len(), 8);
    assert_eq!(l.slice(Some(5), Some(2)).await.unwrap(), Vec::<i32>::new());
    assert_eq!(
        l.slice(None, None).await.unwrap(),
        l.to_vec().await.unwrap()
    );

    // pop, index, count, remove.
    assert_eq!(l.pop().await.unwrap(), 5);
    assert_eq!(l.pop_at(0).await.unwrap(), -1);
    assert_eq!(l.pop_at(-2).await.unwrap(), 30);
    assert_err(l.pop_at(10).await, out_of_range);
    assert_eq!(l.to_vec().await.unwrap(), [0, 1, 2, 3, 4]);
    l.extend([2, 2]).await.unwrap();
    assert_eq!(l.index(&2).await.unwrap(), 2, "the first one");
    assert_err(l.index(&99).await, not_found);
    assert_eq!(l.count(&2).await.unwrap(), 3);
    assert_eq!(l.count(&99).await.unwrap(), 0);
    l.remove(&2).await.unwrap();
    assert_eq!(l.to_vec().await.unwrap(), [0, 1, 3, 4, 2, 2]);
    assert_err(l.remove(&99).await, not_found);

    // reverse and sort.
    l.reverse().await.unwrap();
    assert_eq!(l.to_vec().await.unwrap(), [2, 2, 4, 3, 1, 0]);
    l.sort(false).await.unwrap();
    assert_eq!(l.to_vec().await.unwrap(), [0, 1, 2, 2, 3, 4]);
    l.sort(true).await.unwrap();
    assert_eq!(l.to_vec().await.unwrap(), [4, 3, 2, 2, 1, 0]);
    l.clear().await.unwrap();
    assert!(l.is_empty().await.unwrap());

    // Strings sort naturally; a descending sort is stable, as Python's: equal values
    // (0.0 and -0.0) keep their order.
    let words = m
        .list_from(["pear", "apple", "fig"].map(String::from))
        .await
        .unwrap();
    words.sort(false).await.unwrap();
    assert_eq!(words.to_vec().await.unwrap(), ["apple", "fig", "pear"]);
    let floats = m.list_from([0.0f64, 1.5, -0.0]).await.unwrap();
    floats.sort(true).await.unwrap();
    let sorted = floats.to_vec().await.unwrap();
    assert_eq!(sorted, [1.5, 0.0, -0.0]);
    assert!(sorted[1].is_sign_positive() && sorted[2].is_sign_negative());
    floats.sort(false).await.unwrap();
    let sorted = floats.to_vec().await.unwrap();
    assert!(sorted[0].is_sign_positive() && sorted[1].is_sign_negative());
    drop((l, words, floats));
    assert_back_to(&server, base, &[&m]).await;
}

// ---- Nesting --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dict_of_lists_holds_live_shared_lists() {
    for transport in TRANSPORTS {
        let server = start_sync(transport).await;
        let base = server.number_of_objects().await.unwrap();
        let (a, b) = (sync_client(&server).await, sync_client(&server).await);
        let d = a.dict::<String, ListProxy<i32>>().await.unwrap();
        for name in ["evens", "odds"] {
            let inner = a.list::<i32>().await.unwrap();
            d.set(&name.into(), &inner).await.unwrap();
        }
        let evens = a.list_from([0, 2]).await.unwrap();
        let evens_id = evens.handle().id();
        d.set(&"evens".into(), &evens).await.unwrap(); // replaces (and frees) the first
        drop(evens);
        // The dict and its two lists, held only from inside the server.
        assert_eq!(
            a.number_of_objects().await.unwrap(),
            base + 3,
            "{transport:?}"
        );

        // Read back through the dict, on another connection: the same live list.
        let theirs: DictProxy<String, ListProxy<i32>> = share_as(&d, b.client());
        let their_evens = theirs.get(&"evens".into()).await.unwrap().expect("set");
        assert_eq!(their_evens.handle().id(), evens_id);
        their_evens.append(&4).await.unwrap();
        let mine = d.get(&"evens".into()).await.unwrap().expect("set");
        assert_eq!(mine.to_vec().await.unwrap(), [0, 2, 4]);
        for (name, list) in theirs.items().await.unwrap() {
            if name == "odds" {
                list.extend([1, 3]).await.unwrap();
            }
        }
        let odds = d.get(&"odds".into()).await.unwrap().expect("set");
        assert_eq!(odds.to_vec().await.unwrap(), [1, 3]);
        // Reading a proxy back makes no new object: it is a reference to the same one.
        assert_eq!(a.number_of_objects().await.unwrap(), base + 3);

        // Dropping the outer dict frees the lists it held (once nobody else holds them).
        drop((mine, odds, their_evens, theirs));
        b.number_of_objects().await.unwrap();
        assert_eq!(a.number_of_objects().await.unwrap(), base + 3);
        drop(d);
        assert_back_to(&server, base, &[&a, &b]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_of_queues_passes_live_queues_around() {
    let server = start_sync(Transport::Tcp).await;
    let base = server.number_of_objects().await.unwrap();
    let (a, b) = (sync_client(&server).await, sync_client(&server).await);
    let queues = a.list::<QueueProxy<String>>().await.unwrap();
    for _ in 0..2 {
        let q = a.queue::<String>(0).await.unwrap();
        queues.append(&q).await.unwrap();
    }
    assert_eq!(a.number_of_objects().await.unwrap(), base + 3);
    let theirs: ListProxy<QueueProxy<String>> = share_as(&queues, b.client());
    let all = theirs.to_vec().await.unwrap();
    assert_eq!(all.len(), 2);
    // B puts into the second queue; A gets from it through its own read of the list.
    all[1].put("hello".into()).await.unwrap();
    let second = queues.get(-1).await.unwrap();
    assert_eq!(
        bounded("get through the list", second.get()).await.unwrap(),
        "hello"
    );
    // A blocked get through one read wakes for a put through another.
    let first = queues.get(0).await.unwrap();
    let (got, ()) = tokio::join!(bounded("blocked get", first.get()), async {
        first.qsize().await.unwrap();
        all[0].put("world".into()).await.unwrap();
    });
    assert_eq!(got.unwrap(), "world");
    // Popping a queue out of the list hands us its reference; dropping it frees it.
    let popped = queues.pop().await.unwrap();
    drop((second, all, theirs));
    b.number_of_objects().await.unwrap();
    assert_eq!(a.number_of_objects().await.unwrap(), base + 3);
    drop(popped);
    assert_eq!(a.number_of_objects().await.unwrap(), base + 2);
    drop((first, queues));
    assert_back_to(&server, base, &[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_nested_values_are_copies() {
    let server = start_sync(Transport::Tcp).await;
    let base = server.number_of_objects().await.unwrap();
    let m = sync_client(&server).await;
    let d = m.dict::<String, Vec<i32>>().await.unwrap();
    d.set(&"xs".into(), &vec![1, 2]).await.unwrap();
    let mut xs = d.get(&"xs".into()).await.unwrap().expect("set");
    xs.push(3); // changes our copy only, as `d['xs'].append(3)` does in Python
    assert_eq!(d.get(&"xs".into()).await.unwrap(), Some(vec![1, 2]));
    d.set(&"xs".into(), &xs).await.unwrap(); // storing it again is what changes it
    assert_eq!(d.get(&"xs".into()).await.unwrap(), Some(vec![1, 2, 3]));

    let l = m.list::<Vec<String>>().await.unwrap();
    let mut inner = vec!["a".to_owned()];
    l.append(&inner).await.unwrap();
    inner.push("b".into()); // the stored one is a copy of what we had then
    assert_eq!(l.get(0).await.unwrap(), ["a"]);
    let ns = m.namespace().await.unwrap();
    ns.set("xs", &vec![1]).await.unwrap();
    let mut got: Vec<i32> = ns.get("xs").await.unwrap();
    got.push(2);
    assert_eq!(ns.get::<Vec<i32>>("xs").await.unwrap(), [1]);
    assert_eq!(
        m.number_of_objects().await.unwrap(),
        base + 3,
        "no objects made"
    );
    drop((d, l, ns));
    assert_back_to(&server, base, &[&m]).await;
}

// ---- Namespace, Value, Array ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_attributes_and_display() {
    let server = start_sync(Transport::Tcp).await;
    let base = server.number_of_objects().await.unwrap();
    let (a, b) = (sync_client(&server).await, sync_client(&server).await);
    let ns = a.namespace().await.unwrap();
    assert_eq!(ns.repr().await.unwrap(), "Namespace()");
    assert_err(ns.get::<i32>("x").await, not_found);
    ns.set("x", &1).await.unwrap();
    ns.set("name", "ada").await.unwrap();
    ns.set("point", &Point { x: 3, y: 4 }).await.unwrap();
    ns.set("state", &State::Busy(2)).await.unwrap();
    ns.set("nothing", &()).await.unwrap();
    ns.set("flags", &[true, false]).await.unwrap();
    ns.set("x", &2.5).await.unwrap(); // an attribute may change type
                                      // Another client sees them.
    let theirs = share_as::<_, managers::sync::NamespaceProxy>(&ns, b.client());
    assert_eq!(theirs.get::<f64>("x").await.unwrap(), 2.5);
    assert_eq!(theirs.get::<String>("name").await.unwrap(), "ada");
    assert_eq!(
        theirs.get::<PointYx>("point").await.unwrap(),
        PointYx { y: 4, x: 3 }
    );
    assert_eq!(theirs.get::<State>("state").await.unwrap(), State::Busy(2));
    assert_err(theirs.get::<u8>("name").await, invalid);
    assert_eq!(
        theirs.names().await.unwrap(),
        ["x", "name", "point", "state", "nothing", "flags"]
    );
    assert_eq!(
        ns.repr().await.unwrap(),
        "Namespace(flags=(True, False), name='ada', nothing=None, point={'x': 3, 'y': 4}, state=Busy(2), x=2.5)"
    );
    theirs.delete("point").await.unwrap();
    assert_err(ns.delete("point").await, not_found);
    assert_err(ns.get::<Point>("point").await, not_found);
    ns.delete("state").await.unwrap();
    ns.delete("nothing").await.unwrap();
    ns.delete("flags").await.unwrap();
    assert_eq!(ns.names().await.unwrap(), ["x", "name"]);
    assert_eq!(
        ns.handle().referent_to_string().await.unwrap(),
        "Namespace(name='ada', x=2.5)"
    );
    drop((ns, theirs));
    assert_back_to(&server, base, &[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_and_array_cells() {
    let server = start_sync(Transport::Tcp).await;
    let base = server.number_of_objects().await.unwrap();
    let (a, b) = (sync_client(&server).await, sync_client(&server).await);
    let v = a.value(5i32).await.unwrap();
    assert_eq!(v.get().await.unwrap(), 5);
    v.set(&-7).await.unwrap();
    let theirs: managers::sync::ValueProxy<i64> = share_as(&v, b.client());
    assert_eq!(theirs.get().await.unwrap(), -7);
    theirs.set(&(i64::from(i32::MAX) + 1)).await.unwrap();
    assert_err(v.get().await, invalid); // does not fit in our i32
    let point = a.value(Point { x: 1, y: 2 }).await.unwrap();
    point.set(&Point { x: 3, y: 4 }).await.unwrap();
    assert_eq!(point.get().await.unwrap(), Point { x: 3, y: 4 });

    let arr = a.array([1.0f64, 2.0, 3.0]).await.unwrap();
    assert_eq!(arr.len().await.unwrap(), 3);
    assert!(!arr.is_empty().await.unwrap());
    assert_eq!(arr.get(0).await.unwrap(), 1.0);
    assert_eq!(arr.get(-1).await.unwrap(), 3.0);
    arr.set(1, &20.0).await.unwrap();
    arr.set(-3, &10.0).await.unwrap();
    assert_eq!(arr.to_vec().await.unwrap(), [10.0, 20.0, 3.0]);
    assert_err(arr.get(3).await, out_of_range);
    assert_err(arr.get(-4).await, out_of_range);
    assert_err(arr.set(3, &0.0).await, out_of_range);
    assert_err(arr.set(-4, &0.0).await, out_of_range);
    assert_eq!(arr.len().await.unwrap(), 3, "fixed length");
    let their_arr: managers::sync::ArrayProxy<f64> = share_as(&arr, b.client());
    assert_eq!(their_arr.get(1).await.unwrap(), 20.0);
    let none = a.array(Vec::<u8>::new()).await.unwrap();
    assert!(none.is_empty().await.unwrap());
    assert_err(none.get(0).await, out_of_range);
    assert_err(none.get(-1).await, out_of_range);
    drop((v, theirs, point, arr, their_arr, none));
    assert_back_to(&server, base, &[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_whose_future_is_dropped_takes_nothing() {
    let server = crate::common::start_sync(crate::common::Transport::Tcp).await;
    let a = crate::common::sync_client(&server).await;
    let b = crate::common::sync_client(&server).await;
    let queue: managers::sync::QueueProxy<String> = a.queue(0).await.unwrap();
    let bytes = postcard::to_stdvec(&queue).unwrap();
    let queue_b: managers::sync::QueueProxy<String> = b
        .client()
        .adopting(|| postcard::from_bytes(&bytes))
        .unwrap();
    {
        let get = queue.get();
        tokio::pin!(get);
        // Poll the get once (it is sent), then learn that the server has it running: a
        // later call on the same connection was answered.
        tokio::select! {
            biased;
            r = &mut get => panic!("nothing to get yet: {r:?}"),
            n = queue.qsize() => assert_eq!(n.unwrap(), 0),
        }
    } // the get's future is dropped here: a cancel goes to the server
    queue.qsize().await.unwrap(); // the cancel has been processed
    queue_b.put("only item".into()).await.unwrap();
    let got = queue_b
        .get_with(true, Some(std::time::Duration::from_secs(10)))
        .await
        .expect("the dropped get swallowed the item");
    assert_eq!(got, "only item");
}
