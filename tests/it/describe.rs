//! `client.describe()`: every registered typeid with its type's methods as `#[shared]`
//! recorded them, over real sockets.

use managers::describe::{ErrorsAs, MethodDescription, Registered, ReturnDescription};

use crate::common::{connect, start, Transport};

fn method<'a>(methods: &'a [MethodDescription], name: &str) -> &'a MethodDescription {
    methods
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no method {name} in {methods:#?}"))
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_describes_its_typeids_and_their_methods() {
    let server = start(Transport::Tcp).await;
    let client = connect(&server).await;
    let types = client.describe().await.unwrap();
    let typeids: Vec<&str> = types.iter().map(|t| t.typeid.as_str()).collect();
    let mut sorted = typeids.clone();
    sorted.sort_unstable();
    assert_eq!(typeids, sorted, "sorted by typeid");

    // The test `Pair`, under two registrations, and an instance.
    let pair = types.iter().find(|t| t.typeid == "get_pair").unwrap();
    assert_eq!(pair.name, "Pair");
    assert_eq!(pair.registered, Registered::Constructor);
    assert!(pair.create_method);
    let names: Vec<&str> = pair.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "get_x",
            "set_x",
            "sum",
            "add_async",
            "checked_div",
            "boom",
            "boom_async",
            "echo",
            "swap",
            "big",
            "big_async"
        ],
        "the exposed methods, in order"
    );
    let get_x = method(&pair.methods, "get_x");
    assert_eq!(
        (get_x.exclusive, get_x.is_async, get_x.doc.as_str()),
        (false, false, "The x coordinate.")
    );
    assert_eq!(get_x.returns, ReturnDescription::Value("i64".into()));
    let set_x = method(&pair.methods, "set_x");
    assert!(set_x.exclusive);
    assert_eq!(set_x.params, params(&[("x", "i64")]));
    assert_eq!(set_x.returns, ReturnDescription::Unit);
    let add = method(&pair.methods, "add_async");
    assert!(add.is_async && add.exclusive);
    assert_eq!(add.params, params(&[("dx", "i64"), ("dy", "i64")]));
    assert_eq!(add.returns, ReturnDescription::Value("(i64, i64)".into()));
    assert_eq!(
        method(&pair.methods, "checked_div").returns,
        ReturnDescription::Result {
            ok: "i64".into(),
            err: "String".into(),
            errors: ErrorsAs::Text
        }
    );
    assert_eq!(
        method(&pair.methods, "echo").params,
        params(&[("bytes", "Vec<u8>"), ("text", "&str")])
    );
    let not_creatable = types.iter().find(|t| t.typeid == "Pair").unwrap();
    assert!(!not_creatable.create_method);
    let instance = types.iter().find(|t| t.typeid == "the_pair").unwrap();
    assert_eq!(instance.registered, Registered::Instance);

    // `method_to_typeid`, with and without an error.
    let item_pair = types.iter().find(|t| t.typeid == "item_pair").unwrap();
    assert_eq!(
        method(&item_pair.methods, "get_item").returns,
        ReturnDescription::Shared {
            name: "ItemWrapper".into(),
            err: None
        }
    );
    assert_eq!(
        method(&item_pair.methods, "try_item").returns,
        ReturnDescription::Shared {
            name: "ItemWrapper".into(),
            err: Some(("String".into(), ErrorsAs::Text))
        }
    );

    // Typed errors, and a method that chose text.
    let board = types.iter().find(|t| t.typeid == "board").unwrap();
    assert_eq!(
        method(&board.methods, "submit").returns,
        ReturnDescription::Result {
            ok: "u64".into(),
            err: "BoardError".into(),
            errors: ErrorsAs::Typed
        }
    );
    assert!(method(&board.methods, "take").is_async);
    assert_eq!(
        method(&board.methods, "parse").returns,
        ReturnDescription::Result {
            ok: "u64".into(),
            err: "std::num::ParseIntError".into(),
            errors: ErrorsAs::Text
        }
    );

    // The Markdown form names the typeid, the type and each method.
    let markdown = pair.to_markdown();
    assert!(markdown.starts_with("## `get_pair`"), "{markdown}");
    assert!(
        markdown
            .contains("| `add_async` | `async &mut self` | `dx: i64, dy: i64` | `(i64, i64)` |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("### `get_x`\n\nThe x coordinate."),
        "{markdown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_manager_types_are_described_too() {
    let server = crate::common::start_sync(Transport::Unix).await;
    let client = crate::common::sync_client(&server).await;
    let types = client.client().describe().await.unwrap();
    for typeid in [
        "Lock",
        "RLock",
        "Semaphore",
        "BoundedSemaphore",
        "Condition",
        "Event",
        "Barrier",
        "Queue",
        "JoinableQueue",
        "dict",
        "list",
        "Namespace",
        "Value",
        "Array",
    ] {
        let ty = types
            .iter()
            .find(|t| t.typeid == typeid)
            .unwrap_or_else(|| panic!("{typeid} is not described"));
        assert!(!ty.methods.is_empty(), "{typeid} has methods");
    }
    let queue = types.iter().find(|t| t.typeid == "Queue").unwrap();
    let get = method(&queue.methods, "get");
    assert!(get.is_async);
    assert_eq!(
        get.params,
        params(&[("block", "bool"), ("timeout", "Option<Duration>")])
    );
}

/// `error` is the server's `SchemaMismatch` for `newer::Pair` under `get_pair`: only
/// `get_x` differs.
#[track_caller]
fn assert_get_x_differs(error: &managers::Error) {
    match error.as_remote() {
        Some(managers::RemoteError::SchemaMismatch {
            typeid,
            differences,
        }) => {
            assert_eq!(typeid, "get_pair");
            assert_eq!(
                differences,
                &["`get_x` has another signature on the server".to_owned()],
                "only the method that changed"
            );
        }
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
}

/// Another build's idea of the test `Pair`: the same name, `get_x` declared otherwise.
mod newer {
    pub struct Pair;

    #[managers::shared(name = "Pair")]
    impl Pair {
        pub fn get_x(&self) -> String {
            String::new()
        }

        pub fn sum(&self) -> i64 {
            0
        }
    }
}

/// An older build's: only two of the methods, declared the same way.
mod older {
    pub struct Pair;

    #[managers::shared(name = "Pair")]
    impl Pair {
        pub fn get_x(&self) -> i64 {
            0
        }

        pub fn sum(&self) -> i64 {
            0
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_built_from_another_version_of_a_type_is_refused_before_any_call() {
    for transport in crate::common::TRANSPORTS {
        let server = start(transport).await;
        let client = connect(&server).await;
        let refused = client
            .create::<newer::PairProxy, _>("get_pair", (1, 2))
            .await
            .unwrap_err();
        assert_get_x_differs(&refused);
        // Nothing was created.
        assert_eq!(client.number_of_objects().await.unwrap(), 0);
        // An older client, with fewer methods declared the same way, is compatible.
        let pair: older::PairProxy = client.create("get_pair", (3, 4)).await.unwrap();
        assert_eq!(pair.sum().await.unwrap(), 7);
        assert_eq!(pair.get_x().await.unwrap(), 3);
        // The check is per connection and typeid; the same-build type passes too.
        let same: crate::common::PairProxy = client.create("get_pair", (5, 6)).await.unwrap();
        assert_eq!(same.get_x().await.unwrap(), 5);
        // A raw caller can ask for the same check.
        let other = connect(&server).await;
        assert!(other.check_schema::<newer::Pair>("get_pair").await.is_err());
        other
            .check_schema::<crate::common::Pair>("get_pair")
            .await
            .unwrap();
    }
}

/// Another build's idea of the objects `ItemPair.get_item` shares.
mod newer_items {
    pub struct ItemWrapper;

    impl From<u8> for ItemWrapper {
        fn from(_: u8) -> Self {
            ItemWrapper
        }
    }

    #[managers::shared(name = "ItemWrapper")]
    impl ItemWrapper {
        pub fn get(&self) -> String {
            String::new()
        }
    }

    pub struct ItemPair;

    #[managers::shared(name = "ItemPair", method_to_typeid = { get_item: ItemWrapper })]
    impl ItemPair {
        pub fn get_item(&self) -> u8 {
            0
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_result_of_another_version_is_refused_too() {
    let server = start(Transport::Unix).await;
    let client = connect(&server).await;
    // Its `ItemPair` matches the server's as far as it goes...
    let pair: newer_items::ItemPairProxy = client.create("item_pair", ()).await.unwrap();
    // ...but the `ItemWrapper` it expects back does not: refused, and released.
    match pair.get_item().await {
        Err(managers::Error::Remote(managers::RemoteError::SchemaMismatch {
            typeid,
            differences,
        })) => {
            assert_eq!(typeid, "ItemWrapper");
            assert_eq!(differences, ["`get` has another signature on the server"]);
        }
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
    crate::common::objects_become(&client, 1).await;
    // This build's own types pass.
    let same: crate::common::ItemPairProxy = client.create("item_pair", ()).await.unwrap();
    let item = same.get_item().await.unwrap();
    assert_eq!(item.get().await.unwrap(), 0);
}

/// A proxy that arrives by a hand-off (deserialised, not created) into a client built with
/// another version of its type: the server hears that client's idea of the type as it
/// adopts the proxy, and refuses that connection's calls on it instead of mis-decoding
/// them. A client whose version is compatible calls it as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_adopted_by_a_client_built_otherwise_is_refused_not_mis_decoded() {
    let server = start(crate::common::Transport::Tcp).await;
    let pair: crate::common::PairProxy = server.create("get_pair", (1, 2)).await.unwrap();

    let newer_client = connect(&server).await;
    let newer: newer::PairProxy = crate::common::share_as(&pair, &newer_client);
    for refused in [
        newer.get_x().await.map(|_| ()).unwrap_err(),
        newer.sum().await.map(|_| ()).unwrap_err(),
    ] {
        assert_get_x_differs(&refused);
    }
    // The same connection still works for everything else.
    assert_eq!(newer_client.number_of_objects().await.unwrap(), 1);

    let older_client = connect(&server).await;
    let older: older::PairProxy = crate::common::share_as(&pair, &older_client);
    assert_eq!(older.sum().await.unwrap(), 3);
    assert_eq!(older.get_x().await.unwrap(), 1);
}
