//! `Value`s holding live proxies: made with `to_value`, read with `from_value`, and sent
//! over postcard between clients.

use std::collections::BTreeMap;

use manager_runtime::{from_value, to_value, Value};
use managers::Holder;

use crate::common::{connect, holders, start, CounterProxy, Transport};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_in_values_stay_live_and_do_not_leak() {
    let server = start(Transport::Tcp).await;
    let base = server.number_of_objects().await.unwrap();
    let counter: CounterProxy = server.create("counter", (0,)).await.unwrap();
    let id = counter.handle().id();

    // `to_value` clones the handle: one more reference, none in transit.
    let value = to_value(&counter).unwrap();
    let Value::Proxy(handle) = &value else {
        panic!("not a proxy: {value:?}")
    };
    assert_eq!(handle.token(), counter.handle().token());
    assert_eq!(value, Value::Proxy(counter.handle().clone()));
    assert_eq!(holders(&server, id).await, vec![(Holder::Connection(1), 2)]);

    // And back out as a typed proxy, live: the handle moves into it.
    let back: CounterProxy = from_value(value).unwrap();
    assert_eq!(back.incr().await.unwrap(), 1);
    assert_eq!(counter.get().await.unwrap(), 1);
    assert_eq!(holders(&server, id).await, vec![(Holder::Connection(1), 2)]);
    let maybe: Option<CounterProxy> = from_value(to_value(&Some(&back)).unwrap()).unwrap();
    assert_eq!(maybe.expect("some").get().await.unwrap(), 1);
    assert!(from_value::<Option<CounterProxy>>(Value::None)
        .unwrap()
        .is_none());
    let err = from_value::<CounterProxy>(Value::Int(3)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid type: integer `3`, expected a proxy"
    );
    let err = from_value::<String>(to_value(&back).unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid type: proxy, expected a string: a proxy is read only by a proxy type"
    );

    // A dict of lists of proxies, through postcard on the same client.
    let dict: BTreeMap<String, Vec<CounterProxy>> =
        [("c".to_owned(), vec![counter.clone(), back.clone()])].into();
    let value = to_value(&dict).unwrap();
    let bytes = postcard::to_stdvec(&value).unwrap();
    // `counter`, `back`, their clones in `dict` and in `value`; and the two in the bytes.
    let mut expected = vec![(Holder::Connection(1), 6), (Holder::InTransit, 2)];
    expected.sort();
    assert_eq!(
        holders(&server, id).await,
        expected,
        "two references in transit"
    );
    let arrived: Value = server.adopting(|| postcard::from_bytes(&bytes)).unwrap();
    assert_eq!(arrived, value, "proxies compare by address and id");
    let mut typed: BTreeMap<String, Vec<CounterProxy>> = from_value(arrived).unwrap();
    let proxies = typed.remove("c").unwrap();
    assert_eq!(proxies.len(), 2);
    assert_eq!(proxies[1].incr().await.unwrap(), 2);
    assert_eq!(holders(&server, id).await, vec![(Holder::Connection(1), 8)]);

    drop((dict, value, typed, proxies, back));
    assert_eq!(holders(&server, id).await, vec![(Holder::Connection(1), 1)]);
    drop(counter);
    assert_eq!(server.number_of_objects().await.unwrap(), base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_written_by_one_client_decodes_in_another() {
    let server = start(Transport::Tcp).await;
    let base = server.number_of_objects().await.unwrap();
    let counter: CounterProxy = server.create("counter", (10,)).await.unwrap();
    let value = Value::Map(vec![
        (Value::from("counter"), to_value(&counter).unwrap()),
        (Value::Int(1), to_value(&(1.5, "text")).unwrap()),
    ]);
    let bytes = postcard::to_stdvec(&value).unwrap();
    drop(value);

    let other = connect(&server).await;
    let arrived: Value = other.adopting(|| postcard::from_bytes(&bytes)).unwrap();
    let Value::Map(entries) = &arrived else {
        panic!("{arrived:?}")
    };
    assert_eq!(
        entries[1].1,
        to_value(&(1.5f32, "text".to_owned())).unwrap()
    );
    let theirs: CounterProxy = from_value(entries[0].1.clone()).unwrap();
    assert_eq!(theirs.incr().await.unwrap(), 11);
    assert_eq!(counter.get().await.unwrap(), 11);

    drop((arrived, theirs));
    other.number_of_objects().await.unwrap(); // its decrefs have been processed
    drop(counter);
    assert_eq!(server.number_of_objects().await.unwrap(), base);
}
