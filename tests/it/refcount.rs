//! Reference counting: clones, drops, closed connections and killed client processes.

use managers::Client;

use crate::child::ChildProcess;
use crate::common::{connect, eventually, start, PairProxy, StoreProxy, Transport, TRANSPORTS};

/// The refcount of object `id`, or 0 when it is gone.
async fn refcount(client: &Client, id: managers::ObjectId) -> u64 {
    client
        .debug_info()
        .await
        .unwrap()
        .iter()
        .find(|row| row.id == id)
        .map_or(0, |row| row.refcount)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_increfs_and_drop_decrefs() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let base = server.number_of_objects().await.unwrap();
        let pair: PairProxy = server.create("get_pair", (1, 2)).await.unwrap();
        let id = pair.handle().id();
        assert_eq!(refcount(&server, id).await, 1);
        let copy = pair.clone();
        let copy2 = copy.clone();
        // debug_info travels on the same connection after the increfs: it sees them.
        assert_eq!(refcount(&server, id).await, 3);
        drop(copy);
        assert_eq!(refcount(&server, id).await, 2);
        assert_eq!(copy2.sum().await.unwrap(), 3);
        drop(pair);
        assert_eq!(refcount(&server, id).await, 1);
        drop(copy2);
        assert_eq!(refcount(&server, id).await, 0);
        assert_eq!(
            server.number_of_objects().await.unwrap(),
            base,
            "{transport:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_clients_hold_one_object() {
    let server = start(Transport::Tcp).await;
    let other = connect(&server).await;
    let a: PairProxy = server.create("the_pair", ()).await.unwrap();
    let b: PairProxy = other.create("the_pair", ()).await.unwrap();
    let b2 = b.clone();
    let id = a.handle().id();
    let _ = other.number_of_objects().await.unwrap(); // b2's incref has arrived
    assert_eq!(refcount(&server, id).await, 3);
    drop(other);
    drop((b, b2));
    eventually("the other client's references are gone", async || {
        refcount(&server, id).await == 1
    })
    .await;
    assert_eq!(a.get_x().await.unwrap(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_client_process_leaks_nothing() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let base = server.number_of_objects().await.unwrap();
        let mut child = ChildProcess::spawn("hold", server.address(), 5);
        child.wait_for("HOLDING 5");
        assert_eq!(server.number_of_objects().await.unwrap(), base + 5);
        child.kill();
        eventually("the killed client's objects are released", async || {
            server.number_of_objects().await.unwrap() == base
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_mid_call_releases_its_references_and_call() {
    let server = start(Transport::Tcp).await;
    let store: StoreProxy = server.create("shared_store", ()).await.unwrap();
    let id = store.handle().id();
    let mut child = ChildProcess::spawn("stuck_in_call", server.address(), 0);
    child.wait_for("CALLING");
    eventually("the child's call is running on the server", async || {
        store.arrived().await.unwrap() == 1
    })
    .await;
    assert_eq!(refcount(&server, id).await, 2);
    child.kill();
    eventually("the child's reference is released", async || {
        refcount(&server, id).await == 1
    })
    .await;
    // The store is not stuck: `&mut self` calls need the lock the dead call was reading under.
    assert_eq!(store.incr("after".into()).await.unwrap(), 1);
}
