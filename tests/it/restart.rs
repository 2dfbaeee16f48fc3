//! Restarted servers: every instance has its own epoch, carried in its tokens, so a proxy
//! from an earlier instance at the same address fails with `Error::ServerRestarted` and
//! never reaches the object that has its id in the new instance.

use managers::{Error, ServerBuilder};

use crate::common::{register_all, PairProxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_from_an_earlier_instance_fails_and_reaches_nothing() {
    let first = register_all(ServerBuilder::new().address("127.0.0.1:0"))
        .start()
        .await
        .unwrap();
    let address = first.address().clone();
    let old: PairProxy = first.create("get_pair", (1, 2)).await.unwrap();
    let old_id = old.handle().id();
    // A proxy on its way to another process when the server went down.
    let bytes = postcard::to_stdvec(&old).unwrap();
    drop(old);
    assert!(first.shutdown());

    // A new instance on the same address, with the same registrations. (Object ids are
    // random, so one may well exist there; the epoch, not luck, keeps the proxy away.)
    let second = register_all(ServerBuilder::new().address(address.clone()))
        .start()
        .await
        .unwrap();
    let reused: PairProxy = second.create("get_pair", (10, 20)).await.unwrap();

    let stale: PairProxy = second.adopting(|| postcard::from_bytes(&bytes)).unwrap();
    let err = stale.sum().await.unwrap_err();
    assert!(
        matches!(&err, Error::ServerRestarted { typeid, id } if typeid == "get_pair" && *id == old_id),
        "{err:?}"
    );
    assert!(err.to_string().contains("restarted"), "{err}");
    let err = stale.set_x(99).await.unwrap_err();
    assert!(matches!(err, Error::ServerRestarted { .. }), "{err:?}");
    // Cloning and dropping it touch nothing; sending it on is refused.
    let copy = stale.clone();
    drop((stale, copy));
    assert!(postcard::to_stdvec(&reused).is_ok());
    // The new instance's object was not touched.
    assert_eq!(reused.sum().await.unwrap(), 30);
    let info = second.debug_info().await.unwrap();
    let row = info
        .iter()
        .find(|r| r.id == reused.handle().id())
        .expect("the new object");
    assert_eq!(
        row.refcount,
        1 + 1,
        "its proxy's, and the hold just serialised"
    );

    // Without a client connection of its own: the same through any connection of the
    // process to that address (here the manager's).
    let again: PairProxy = postcard::from_bytes(&bytes).unwrap();
    assert!(matches!(
        again.get_x().await.unwrap_err(),
        Error::ServerRestarted { .. }
    ));
}
