//! `errors = typed`: a method's own error type reaches clients typed, over TCP and Unix
//! sockets and in another process.

use managers::{CallError, Error, Pipeline, RemoteError};

use crate::child::ChildProcess;
use crate::common::{start, BoardError, BoardProxy, ItemWrapperProxy, Transport, TRANSPORTS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_error_arrives_as_its_own_type() {
    for transport in TRANSPORTS {
        let server = start(transport).await;
        let board: BoardProxy = server.create("board", ()).await.unwrap();
        assert_eq!(board.submit("build".into()).await.unwrap(), 0);
        match board.submit(String::new()).await {
            Err(CallError::Method(BoardError::EmptyName)) => {}
            other => panic!("{transport:?}: expected the typed error, got {other:?}"),
        }
        // An async method, and a `method_to_typeid` one.
        assert_eq!(board.take(0).await.unwrap(), "build");
        assert_eq!(
            board.take(5).await.unwrap_err().method(),
            Some(BoardError::NoSuchJob { id: 5 })
        );
        let job: ItemWrapperProxy = board.job(0).await.unwrap();
        assert_eq!(job.get().await.unwrap(), 5);
        assert!(matches!(
            board.job(9).await,
            Err(CallError::Method(BoardError::NoSuchJob { id: 9 }))
        ));
        // The method that chose text.
        match board.parse("x".into()).await {
            Err(Error::Remote(RemoteError::Method { message, .. })) => {
                assert_eq!(message, "invalid digit found in string")
            }
            other => panic!("expected a text error, got {other:?}"),
        }
        // Typed calls in a pipeline: each result in its place.
        let mut pipeline = Pipeline::new();
        for name in ["a", "", "b"] {
            pipeline.push(board.submit(name.into()));
        }
        let mut results = Vec::new();
        while let Some(result) = pipeline.next().await {
            results.push(result.map_err(|e| e.method()));
        }
        assert_eq!(results, [Ok(1), Err(Some(BoardError::EmptyName)), Ok(2)]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_calls_see_the_text_and_can_ask_for_the_type() {
    let server = start(Transport::Tcp).await;
    let board: BoardProxy = server.create("board", ()).await.unwrap();
    let handle = board.handle();
    match handle.call_method::<_, u64>("submit", ("",)).await {
        Err(Error::Remote(e @ RemoteError::TypedMethod { .. })) => {
            assert_eq!(e.method_message(), Some("a job needs a name"));
            assert_eq!(
                e.to_string(),
                "`submit` returned an error: a job needs a name"
            );
        }
        other => panic!("expected a typed method error, got {other:?}"),
    }
    let typed = handle
        .call_method_typed::<_, u64, BoardError>("submit", ("",))
        .await;
    assert!(matches!(
        typed,
        Err(CallError::Method(BoardError::EmptyName))
    ));
    // An error that does not decode as the type asked for (a client built with another
    // version of it) is a call failure that says so, with the server's text.
    let wrong = handle
        .call_method_typed::<_, u64, (u64, u64)>("submit", ("",))
        .await;
    match wrong {
        Err(CallError::Rpc(Error::Codec(e))) => {
            let text = e.to_string();
            assert!(text.contains("does not decode as `(u64, u64)`"), "{text}");
            assert!(text.contains("a job needs a name"), "{text}");
        }
        other => panic!("expected the undecodable error as Rpc, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_made_inside_the_server_gets_the_typed_error_too() {
    let server = start(Transport::Tcp).await;
    let board: BoardProxy = server.create("board", ()).await.unwrap();
    let other: BoardProxy = server.create("board", ()).await.unwrap();
    assert_eq!(
        board.submit_via(other.clone(), "a".into()).await.unwrap(),
        0
    );
    assert!(matches!(
        board.submit_via(other.clone(), String::new()).await,
        Err(CallError::Method(BoardError::EmptyName))
    ));
    assert_eq!(other.submit("b".into()).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_call_is_rpc_not_method() {
    let server = start(Transport::Tcp).await;
    let board: BoardProxy = server.create("board", ()).await.unwrap();
    let crate::common::Running { manager, _dir } = server;
    manager.shutdown();
    let after = board.submit("late".into()).await;
    match after {
        Err(CallError::Rpc(e)) => assert!(e.is_transport(), "{e:?}"),
        other => panic!("expected a transport failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_matches_on_the_error_type() {
    let server = start(Transport::Tcp).await;
    let mut child = ChildProcess::spawn("typed_errors", server.address(), 0);
    assert_eq!(child.wait_for("SUBMITTED"), "SUBMITTED 0");
    assert_eq!(child.wait_for("EMPTY"), "EMPTY matched");
    assert_eq!(child.wait_for("MISSING"), "MISSING 3");
}
