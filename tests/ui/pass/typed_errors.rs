//! `errors = typed`: a method's own error type reaches the caller typed, as
//! `CallError::Method(e)`; `errors = display` on one method keeps the text form; a pipeline
//! of typed calls yields typed errors too.

use managers::{
    shared, CallError, Error, Pipeline, Registration, RemoteError, ServerBuilder,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum BoardError {
    #[error("a job needs a name")]
    EmptyName,
    #[error("no job {0}")]
    NoSuchJob(u64),
}

/// No `Display`: its text on the wire is its type name.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Refused {
    pub reason: u8,
}

pub struct Board {
    jobs: std::sync::Mutex<Vec<String>>,
}

#[shared(errors = typed, method_to_typeid = { job: Job })]
impl Board {
    pub fn submit(&self, name: &str) -> Result<u64, BoardError> {
        if name.is_empty() {
            return Err(BoardError::EmptyName);
        }
        let mut jobs = self.jobs.lock().unwrap();
        jobs.push(name.to_owned());
        Ok(jobs.len() as u64 - 1)
    }

    pub fn refuse(&self) -> Result<(), Refused> {
        Err(Refused { reason: 7 })
    }

    /// A `Result<T>` alias sends text when the method says so.
    #[shared(errors = display)]
    pub fn parse(&self, text: String) -> std::io::Result<u64> {
        text.parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    }

    /// A method returning a new shared object, with a typed error.
    pub fn job(&self, id: u64) -> Result<String, BoardError> {
        let jobs = self.jobs.lock().unwrap();
        jobs.get(id as usize).cloned().ok_or(BoardError::NoSuchJob(id))
    }

    /// Not a `Result`: `errors = typed` does not apply.
    pub fn len(&self) -> usize {
        self.jobs.lock().unwrap().len()
    }

    /// `errors = value`: the `Result` is the value, here behind an alias.
    #[shared(errors = value)]
    pub fn check(&self, name: String) -> Checked {
        if name.is_empty() {
            Err(BoardError::EmptyName)
        } else {
            Ok(name.len() as u64)
        }
    }
}

type Checked = Result<u64, BoardError>;

pub struct Job(String);

impl From<String> for Job {
    fn from(name: String) -> Self {
        Job(name)
    }
}

#[shared]
impl Job {
    pub fn name(&self) -> String {
        self.0.clone()
    }
}

async fn run() -> Result<(), Error> {
    let manager = ServerBuilder::new()
        .register(Registration::constructor("Board", |(): ()| Board {
            jobs: Default::default(),
        }))
        .start()
        .await?;
    let board: BoardProxy = manager.create("Board", ()).await?;

    assert_eq!(board.submit("build").await.unwrap(), 0);
    match board.submit("").await {
        Err(CallError::Method(BoardError::EmptyName)) => {}
        other => panic!("expected the typed error, got {other:?}"),
    }
    // `?` takes a typed call's error into a function returning `CallError<E>`.
    async fn submit_two(board: &BoardProxy) -> Result<u64, CallError<BoardError>> {
        board.submit("a").await?;
        board.submit("").await
    }
    assert!(matches!(
        submit_two(&board).await,
        Err(CallError::Method(BoardError::EmptyName))
    ));
    // An error type without `Display` travels typed, its type name as its text.
    assert_eq!(
        board.refuse().await.unwrap_err().method(),
        Some(Refused { reason: 7 })
    );
    match board.handle().call_method::<_, ()>("refuse", ()).await {
        Err(Error::Remote(e)) => assert!(
            e.method_message().is_some_and(|m| m.ends_with("Refused")),
            "{e:?}"
        ),
        other => panic!("expected a typed method error, got {other:?}"),
    }
    // `errors = value`: `Ok(Err(e))`.
    assert_eq!(board.check("abc".into()).await?, Ok(3));
    assert_eq!(board.check(String::new()).await?, Err(BoardError::EmptyName));
    // Raw calls by name see the error's text in `RemoteError::TypedMethod`.
    let raw = board.handle().call_method::<_, u64>("submit", ("",)).await;
    match raw {
        Err(Error::Remote(e @ RemoteError::TypedMethod { .. })) => {
            assert_eq!(e.method_message(), Some("a job needs a name"));
        }
        other => panic!("expected a typed method error, got {other:?}"),
    }
    // `errors = display` on a method: its error arrives as text.
    assert_eq!(board.parse("12".to_owned()).await?, 12);
    match board.parse("x".to_owned()).await {
        Err(Error::Remote(RemoteError::Method { method, .. })) => assert_eq!(method, "parse"),
        other => panic!("expected a text error, got {other:?}"),
    }
    // `method_to_typeid` with a typed error.
    let job: JobProxy = board.job(0).await.unwrap();
    assert_eq!(job.name().await?, "build");
    match board.job(99).await {
        Err(CallError::Method(BoardError::NoSuchJob(99))) => {}
        other => panic!("expected the typed error, got {other:?}"),
    }
    // A pipeline of typed calls yields typed results in order.
    let mut pipeline: Pipeline<'_, u64, CallError<BoardError>> = Pipeline::new();
    pipeline.push(board.submit("x"));
    pipeline.push(board.submit(""));
    assert!(pipeline.next().await.unwrap().is_ok());
    assert!(matches!(
        pipeline.next().await,
        Some(Err(CallError::Method(BoardError::EmptyName)))
    ));
    assert_eq!(board.len().await?, 3);

    // A failure of the call itself is `CallError::Rpc`.
    manager.shutdown();
    let after = board.submit("late").await;
    assert!(matches!(after, Err(CallError::Rpc(_))), "{after:?}");
    Ok(())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run()).unwrap();
}
