//! Mixed fleets: stock CPython clients and Rust clients on the same shared objects at once
//! (a queue, a dict, a lock), each side reading what the other wrote as its natural values.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use managers::sync::{python, Dict, DictProxy, Lock, LockProxy, Queue, QueueProxy};
use managers::{Registration, Value};

use crate::common::*;
use crate::python::driver_address;
use crate::python_support::first_python;

/// A server with three objects every client reaches by name: `jobs` (a queue), `shared`
/// (a dict) and `the_lock`.
async fn start_fleet_server() -> Running {
    let (builder, dir) = builder(Transport::Unix);
    let builder = managers::sync::register(builder)
        .authkey("test-key")
        .python_clients(true)
        .shutdown_timeout(Duration::from_secs(2))
        .register(Registration::instance("jobs", Queue::new(0)).python(python::QUEUE))
        .register(Registration::instance("shared", Dict::new(Vec::new())).python(python::DICT))
        .register(Registration::instance("the_lock", Lock::new()).python(python::LOCK));
    Running {
        manager: builder.start().await.expect("server starts"),
        _dir: dir,
    }
}

/// Python code run with the fleet's objects: `jobs`, `shared` and `lock` are proxies.
fn python_worker(python: &OsString, address: &str, body: &str) -> Child {
    let script = format!(
        "import multiprocessing, sys, time\n\
         from multiprocessing.managers import SyncManager, DictProxy, AcquirerProxy\n\
         class Fleet(SyncManager): pass\n\
         Fleet.register('jobs')\n\
         Fleet.register('shared', proxytype=DictProxy)\n\
         Fleet.register('the_lock', proxytype=AcquirerProxy)\n\
         multiprocessing.current_process().authkey = b'test-key'\n\
         m = Fleet(address={address:?}, authkey=b'test-key')\n\
         m.connect()\n\
         jobs, shared, lock = m.jobs(), m.shared(), m.the_lock()\n\
         {body}\n"
    );
    Command::new(python)
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the interpreter starts")
}

/// A Python producer and a Rust consumer on one queue: what Python puts, Rust gets as the
/// natural Rust values (an `int` is an `i64`, a `dict` a map, a `tuple` a sequence).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_producer_feeds_a_rust_consumer() {
    let Some(python) = first_python() else { return };
    let server = start_fleet_server().await;
    let rust = connect(&server).await;
    let jobs: QueueProxy<Value> = rust.create("jobs", ()).await.unwrap();
    let address = driver_address(server.address());
    let mut producer = python_worker(
        &python,
        &address,
        "for item in [42, -7, 2**63 + 1, 1.5, 'text', b'\\x00raw', True, None, [1, [2]], \
         {'k': 'v', 1: 2}, (3, 'four')]:\n    jobs.put(item)\n",
    );
    let mut got = Vec::new();
    for _ in 0..11 {
        got.push(bounded("a Python item", jobs.get()).await.unwrap());
    }
    assert!(producer.wait().unwrap().success());
    let ints: Vec<i64> = vec![
        managers::from_value(got[0].clone()).unwrap(),
        managers::from_value(got[1].clone()).unwrap(),
    ];
    assert_eq!(ints, [42, -7]);
    assert_eq!(
        managers::from_value::<u64>(got[2].clone()).unwrap(),
        (1 << 63) + 1
    );
    assert_eq!(managers::from_value::<f64>(got[3].clone()).unwrap(), 1.5);
    assert_eq!(
        managers::from_value::<String>(got[4].clone()).unwrap(),
        "text"
    );
    assert_eq!(got[5], Value::Bytes(b"\x00raw".to_vec()));
    assert!(managers::from_value::<bool>(got[6].clone()).unwrap());
    assert_eq!(
        managers::from_value::<Option<i64>>(got[7].clone()).unwrap(),
        None
    );
    assert_eq!(
        managers::from_value::<(i64, Vec<i64>)>(got[8].clone()).unwrap(),
        (1, vec![2])
    );
    let Value::Map(entries) = &got[9] else {
        panic!("{:?}", got[9])
    };
    assert_eq!(entries.len(), 2);
    assert_eq!(
        managers::from_value::<(u8, String)>(got[10].clone()).unwrap(),
        (3, "four".to_owned())
    );
    assert!(matches!(got[10], Value::Tuple(_)));
}

/// A Rust writer and a Python reader on one dict: Python reads Rust's values as its own
/// types (a struct as a dict, a tuple as a tuple, a `Vec<u8>` through `serde_bytes` as
/// bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_writer_feeds_a_python_reader() {
    let Some(python) = first_python() else { return };
    let server = start_fleet_server().await;
    let rust = connect(&server).await;
    let shared: DictProxy<String, Value> = rust.create("shared", ()).await.unwrap();
    #[derive(serde::Serialize)]
    struct Point {
        x: i32,
        y: i32,
    }
    let set = |k: &str, v: Value| {
        let shared = shared.clone();
        let k = k.to_owned();
        async move { shared.set(&k, &v).await.unwrap() }
    };
    set("int", Value::Int(-5)).await;
    set("big", managers::to_value(&u64::MAX).unwrap()).await;
    set("float", Value::Float(0.25)).await;
    set("text", Value::from("héllo")).await;
    set("bytes", Value::Bytes(vec![0, 255])).await;
    set("flag", Value::Bool(false)).await;
    set("none", Value::None).await;
    set("list", managers::to_value(&vec![1, 2, 3]).unwrap()).await;
    set("tuple", managers::to_value(&(1, "two")).unwrap()).await;
    set("point", managers::to_value(&Point { x: 1, y: 2 }).unwrap()).await;
    let map: BTreeMap<String, f64> = [("a".into(), 1.0)].into();
    set("map", managers::to_value(&map).unwrap()).await;
    let address = driver_address(server.address());
    let mut reader = python_worker(
        &python,
        &address,
        "want = {'int': -5, 'big': 2**64 - 1, 'float': 0.25, 'text': 'héllo', \
         'bytes': b'\\x00\\xff', 'flag': False, 'none': None, 'list': [1, 2, 3], \
         'tuple': (1, 'two'), 'point': {'x': 1, 'y': 2}, 'map': {'a': 1.0}}\n\
         got = shared.copy()\n\
         for k, v in want.items():\n    \
             assert got[k] == v and type(got[k]) is type(v), (k, got[k], v)\n\
         print('READ OK', flush=True)\n",
    );
    let out = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(reader.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        (reader.wait().unwrap(), line)
    })
    .await
    .unwrap();
    assert!(out.0.success(), "{out:?}");
    assert_eq!(out.1.trim(), "READ OK");
}

/// A Python client holding the lock is SIGKILLed: a Rust client waiting for it gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_python_lock_holder_lets_a_rust_client_in() {
    let Some(python) = first_python() else { return };
    let server = start_fleet_server().await;
    let rust = connect(&server).await;
    let lock: LockProxy = rust.create("the_lock", ()).await.unwrap();
    let address = driver_address(server.address());
    let mut holder = python_worker(
        &python,
        &address,
        "assert lock.acquire()\nprint('HELD', flush=True)\ntime.sleep(600)\n",
    );
    let stdout = holder.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert_eq!(line.trim(), "HELD");
    assert!(!lock.try_acquire().await.unwrap(), "Python holds it");
    let (acquired, ()) = tokio::join!(
        bounded(
            "the Rust acquire of a dead Python holder's lock",
            lock.acquire()
        ),
        async {
            holder.kill().unwrap();
            holder.wait().unwrap();
        }
    );
    acquired.unwrap();
    lock.release().await.unwrap();
}
