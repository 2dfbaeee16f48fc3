//! Default exposure: every `pub fn` taking `&self` or `&mut self` whose name does not start
//! with `_`. Round-trips each kind of method through a real manager.

use managers::{shared, Error, Registration, RemoteError, ServerBuilder};

/// A counter that keeps a log of who touched it.
pub struct Counter {
    value: i64,
    log: Vec<String>,
}

#[shared]
impl Counter {
    /// Not exposed: no `self`.
    pub fn new(value: i64) -> Self {
        Counter {
            value,
            log: Vec::new(),
        }
    }

    /// `&self`, a value.
    pub fn get(&self) -> i64 {
        self.value
    }

    /// `&mut self`, unit return.
    pub fn add(&mut self, by: i64) {
        self.value += by;
    }

    /// An explicit `()` return.
    pub fn reset(&mut self) -> () {
        self.value = 0;
    }

    /// `Result<T, E>`: `Err` reaches the caller as a remote error.
    pub fn checked_sub(&mut self, by: i64) -> Result<i64, String> {
        if by > self.value {
            return Err(format!("cannot take {by} from {}", self.value));
        }
        self.value -= by;
        Ok(self.value)
    }

    /// Several arguments of different types.
    pub fn record(&mut self, who: String, times: u32, loud: bool) -> Vec<String> {
        for _ in 0..times {
            let entry = if loud {
                who.to_uppercase()
            } else {
                who.clone()
            };
            self.log.push(entry);
        }
        self.log.clone()
    }

    /// A borrowed argument and a tuple result.
    pub fn describe(&self, label: &str) -> (String, usize) {
        (format!("{label}={}", self.value), self.log.len())
    }

    /// An owned slice behind a pointer is a value, not a borrow.
    pub fn history(&self) -> Box<[String]> {
        self.log.clone().into_boxed_slice()
    }

    /// Public but starts with `_`: not exposed.
    pub fn _scratch(&self) -> i64 {
        self.helper()
    }

    /// Private: not exposed.
    fn helper(&self) -> i64 {
        self.value * 2
    }
}

async fn run() -> Result<(), Error> {
    let manager = ServerBuilder::new()
        .register(Registration::constructor("Counter", |(value,): (i64,)| {
            Counter::new(value)
        }))
        .start()
        .await?;
    let counter: CounterProxy = manager.create("Counter", (5,)).await?;

    assert_eq!(counter.get().await?, 5);
    counter.add(3).await?;
    assert_eq!(counter.get().await?, 8);
    assert_eq!(counter.checked_sub(2).await?, 6);
    match counter.checked_sub(100).await {
        Err(Error::Remote(RemoteError::Method { method, message })) => {
            assert_eq!(method, "checked_sub");
            assert_eq!(message, "cannot take 100 from 6");
        }
        other => panic!("expected a method error, got {other:?}"),
    }
    let log = counter.record("ann".to_owned(), 2, true).await?;
    assert_eq!(log, ["ANN", "ANN"]);
    assert_eq!(counter.describe("x").await?, ("x=6".to_owned(), 2));
    assert_eq!(&*counter.history().await?, ["ANN", "ANN"]);
    counter.reset().await?;
    assert_eq!(counter.get().await?, 0);

    // Not exposed, so refused by the server when called by name.
    for hidden in ["_scratch", "helper", "new"] {
        let refused = counter.handle().call_method::<_, i64>(hidden, ()).await;
        assert!(
            matches!(refused, Err(Error::Remote(RemoteError::NotExposed { .. }))),
            "{hidden}: {refused:?}"
        );
    }

    drop(counter);
    manager.shutdown();
    Ok(())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run()).unwrap();
}
