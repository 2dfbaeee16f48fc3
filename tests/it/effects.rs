//! A call dropped after the server granted it, or whose client dies while the reply is on
//! its way, keeps no lock, no permit and no item: the server undoes what the client never
//! took.

use std::time::Duration;

use futures_util::poll;
use manager_core::wire::{ClientMessage, Reply, Request, ServerMessage};
use managers::sync::{LockProxy, QueueProxy, SemaphoreProxy};
use managers::Proxy;

use crate::common::*;
use crate::raw::Raw;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_granted_to_a_dropped_call_is_released() {
    for transport in TRANSPORTS {
        let running = start_sync(transport).await;
        let (mine, theirs) = (sync_client(&running).await, sync_client(&running).await);
        let lock = mine.lock().await.unwrap();
        let watcher: LockProxy = share(&lock, theirs.client());
        let mut acquire = Box::pin(lock.acquire());
        assert!(poll!(acquire.as_mut()).is_pending(), "sent");
        until("the lock is granted", async || {
            watcher.locked().await.unwrap()
        })
        .await;
        // Dropped without its result (as under a timeout or in a `select!`).
        drop(acquire);
        until("the lock is free again", async || {
            !watcher.locked().await.unwrap()
        })
        .await;
        assert!(watcher.try_acquire().await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permit_granted_to_a_dropped_call_is_returned() {
    let running = start_sync(Transport::Unix).await;
    let (mine, theirs) = (sync_client(&running).await, sync_client(&running).await);
    let sem = mine.semaphore(1).await.unwrap();
    let watcher: SemaphoreProxy = share(&sem, theirs.client());
    let mut acquire = Box::pin(sem.acquire());
    assert!(poll!(acquire.as_mut()).is_pending());
    until("the permit is taken", async || {
        watcher.value().await.unwrap() == 0
    })
    .await;
    drop(acquire);
    until("the permit is back", async || {
        watcher.value().await.unwrap() == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_taken_by_a_dropped_get_goes_back_to_the_queue() {
    for transport in TRANSPORTS {
        let running = start_sync(transport).await;
        let (mine, theirs) = (sync_client(&running).await, sync_client(&running).await);
        let q = mine.queue::<u32>(0).await.unwrap();
        let producer: QueueProxy<u32> = share(&q, theirs.client());
        let mut get = Box::pin(q.get());
        assert!(poll!(get.as_mut()).is_pending(), "waiting on the server");
        producer.put(5).await.unwrap();
        producer.put(6).await.unwrap();
        until("the waiting get took an item", async || {
            producer.qsize().await.unwrap() == 1
        })
        .await;
        drop(get);
        until("the item is back", async || {
            producer.qsize().await.unwrap() == 2
        })
        .await;
        // First in line again.
        assert_eq!(producer.get().await.unwrap(), 5);
        assert_eq!(producer.get().await.unwrap(), 6);
    }
}

/// A getter whose reply is on its way when it dies (its connection closes without taking
/// the result): the item goes back to the queue. (It was lost: in the issue, 2 of 150
/// SIGKILLed getters took an item put right after.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_on_its_way_to_a_dead_getter_goes_back_to_the_queue() {
    let running = start_sync(Transport::Tcp).await;
    let m = sync_client(&running).await;
    let q = m.queue::<u32>(0).await.unwrap();
    let object = q.handle().id();
    // The getter: a raw connection that sends `get`, reads the reply, and dies without
    // acknowledging it.
    let mut getter = Raw::authenticated(running.address(), b"test-key").await;
    let args = postcard::to_stdvec(&(true, None::<Duration>)).unwrap();
    getter
        .send(&ClientMessage::V1(Request::Call {
            id: 1,
            object,
            method: "get",
            args: &args,
        }))
        .await;
    q.put(9).await.unwrap();
    getter
        .recv(|m| {
            let ServerMessage::V1(response) = m;
            assert_eq!(response.id, 1);
            assert!(
                matches!(response.result, Ok(Reply::Effect(_))),
                "{response:?}"
            );
        })
        .await;
    assert_eq!(q.qsize().await.unwrap(), 0, "the getter took it");
    drop(getter);
    until("the item is back", async || q.qsize().await.unwrap() == 1).await;
    assert_eq!(q.get().await.unwrap(), 9);
}

/// A result that was taken stands: a getter that acknowledged its item keeps it when its
/// connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_result_stands_after_the_connection_closes() {
    let running = start_sync(Transport::Tcp).await;
    let m = sync_client(&running).await;
    let q = m.queue::<u32>(0).await.unwrap();
    q.put(1).await.unwrap();
    let mut getter = Raw::authenticated(running.address(), b"test-key").await;
    // An object only this connection holds: freed when the server has closed it.
    let unit = postcard::to_stdvec(&()).unwrap();
    getter
        .send(&ClientMessage::V1(Request::Create {
            id: 1,
            typeid: "Event",
            args: &unit,
            expected: None,
        }))
        .await;
    getter.recv(|_| ()).await;
    let args = postcard::to_stdvec(&(true, None::<Duration>)).unwrap();
    let object = q.handle().id();
    getter
        .send(&ClientMessage::V1(Request::Call {
            id: 2,
            object,
            method: "get",
            args: &args,
        }))
        .await;
    getter
        .recv(|m| {
            let ServerMessage::V1(response) = m;
            assert!(matches!(response.result, Ok(Reply::Effect(_))));
        })
        .await;
    getter
        .send(&ClientMessage::V1(Request::Ack { id: 2 }))
        .await;
    assert_eq!(m.client().number_of_objects().await.unwrap(), 2);
    drop(getter);
    objects_become(m.client(), 1).await;
    assert_eq!(q.qsize().await.unwrap(), 0, "the taken item stays taken");
}

/// Results a `Pipeline` took but never handed out (it was dropped after its first result)
/// are undone: the second item goes back to the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_a_dropped_pipeline_never_handed_out_go_back() {
    let running = start_sync(Transport::Unix).await;
    let sync = sync_client(&running).await;
    let q = sync.queue::<u32>(0).await.unwrap();
    q.put(1).await.unwrap();
    q.put(2).await.unwrap();
    let raw = <managers::sync::QueueCalls as Proxy>::from_handle(q.handle().clone());
    let mut pipeline = managers::Pipeline::new();
    pipeline.push(raw.get(true, None));
    pipeline.push(raw.get(true, None));
    let first = pipeline.next().await.expect("a result").unwrap();
    assert!(first.is_ok());
    drop(pipeline);
    until("the item not handed out is back", async || {
        q.qsize().await.unwrap() == 1
    })
    .await;
    assert_eq!(q.get().await.unwrap(), 2);
}

/// A dict entry popped by a call dropped before it took the entry goes back, where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_popped_by_a_dropped_call_goes_back_to_the_dict() {
    let running = start_sync(Transport::Unix).await;
    let (mine, theirs) = (sync_client(&running).await, sync_client(&running).await);
    let d = mine.dict::<String, u32>().await.unwrap();
    let watcher: managers::sync::DictProxy<String, u32> = share(&d, theirs.client());
    for (k, v) in [("a", 1), ("b", 2), ("c", 3)] {
        d.set(&k.to_owned(), &v).await.unwrap();
    }
    let key = "b".to_owned();
    let mut pop = Box::pin(d.pop(&key));
    assert!(poll!(pop.as_mut()).is_pending(), "sent");
    until("the entry is popped", async || {
        watcher.len().await.unwrap() == 2
    })
    .await;
    drop(pop);
    until("the entry is back", async || {
        watcher.len().await.unwrap() == 3
    })
    .await;
    assert_eq!(watcher.keys().await.unwrap(), ["a", "b", "c"]);
    // The same for popitem (the last entry).
    let mut popitem = Box::pin(d.popitem());
    assert!(poll!(popitem.as_mut()).is_pending(), "sent");
    until("the last entry is popped", async || {
        watcher.len().await.unwrap() == 2
    })
    .await;
    drop(popitem);
    until("it is back", async || watcher.len().await.unwrap() == 3).await;
    // A pop whose result is taken stands.
    assert_eq!(d.pop(&key).await.unwrap(), 2);
    assert_eq!(watcher.keys().await.unwrap(), ["a", "c"]);
}

/// A list item popped by a call dropped before it took the item goes back, where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_popped_by_a_dropped_call_goes_back_to_the_list() {
    let running = start_sync(Transport::Unix).await;
    let (mine, theirs) = (sync_client(&running).await, sync_client(&running).await);
    let l = mine.list::<u32>().await.unwrap();
    let watcher: managers::sync::ListProxy<u32> = share(&l, theirs.client());
    l.extend([1, 2, 3]).await.unwrap();
    let mut pop = Box::pin(l.pop_at(1));
    assert!(poll!(pop.as_mut()).is_pending(), "sent");
    until("the item is popped", async || {
        watcher.len().await.unwrap() == 2
    })
    .await;
    drop(pop);
    until("the item is back", async || {
        watcher.len().await.unwrap() == 3
    })
    .await;
    assert_eq!(watcher.to_vec().await.unwrap(), [1, 2, 3]);
    assert_eq!(l.pop().await.unwrap(), 3);
    assert_eq!(watcher.to_vec().await.unwrap(), [1, 2]);
}
