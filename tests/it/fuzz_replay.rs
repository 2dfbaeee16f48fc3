//! Replays the fuzz corpus (`fuzz/corpus/TARGET/`, found by the fuzzers and checked in)
//! through the same entry points the fuzz targets call, plus seeds made here: a decoder a
//! peer reaches must never panic on any of them. With `WRITE_FUZZ_SEEDS=1` the seeds are
//! also written into the corpus folders (to start a fuzzer from).

use std::path::{Path, PathBuf};
use std::time::Duration;

use manager_core::handshake::{ClientHandshake, ServerHandshake, Step};
use manager_core::wire::{self, ClientMessage, Reply, Request, Response, ServerMessage};
use manager_core::{Address, ObjectId, RemoteError, Token};
use manager_runtime::fuzz;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 5] = [
    ("frames", fuzz::frames),
    ("client_message", fuzz::client_message),
    ("server_message", fuzz::server_message),
    ("handshake", fuzz::handshake),
    ("value", fuzz::value),
];

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Valid inputs of each target, for the replay and as a fuzzer's starting corpus.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let token = Token {
        typeid: "Queue".into(),
        address: Address::Tcp("127.0.0.1:50000".into()),
        id: ObjectId(0x9a25_8438_293b_a44e),
        epoch: 0x1234_5678,
    };
    let requests = [
        Request::Call {
            id: 1,
            object: token.id,
            method: "get",
            args: &[1, 0],
        },
        Request::Create {
            id: 2,
            typeid: "Queue",
            args: &[0],
            expected: Some("Queue"),
        },
        Request::Incref { object: token.id },
        Request::Decref { object: token.id },
        Request::Hold {
            object: token.id,
            hold: [3; 16],
        },
        Request::Adopt {
            object: token.id,
            hold: [3; 16],
        },
        Request::Cancel { id: 1 },
        Request::Ack { id: 1 },
        Request::NumberOfObjects { id: 4 },
    ];
    let client: Vec<Vec<u8>> = requests
        .into_iter()
        .map(|r| wire::encode(&ClientMessage::V1(r)).unwrap())
        .collect();
    let replies = [
        Ok(Reply::Value(&[1, 2, 3])),
        Ok(Reply::Effect(&[4])),
        Ok(Reply::Created(token.clone())),
        Ok(Reply::Count(3)),
        Err(RemoteError::Busy { limit: 1024 }),
    ];
    let server: Vec<Vec<u8>> = replies
        .into_iter()
        .map(|result| wire::encode(&ServerMessage::V1(Response { id: 9, result })).unwrap())
        .collect();
    match target {
        "frames" => {
            let mut batch = Vec::new();
            for body in &client {
                batch.extend_from_slice(&(body.len() as u32).to_be_bytes());
                batch.extend_from_slice(body);
            }
            vec![
                batch.clone(),
                batch[..batch.len() - 3].to_vec(),
                vec![0, 0, 9, 0, 1],
            ]
        }
        "client_message" => client,
        "server_message" => server,
        "handshake" => vec![handshake_transcript()],
        "value" => {
            let values = [
                managers::to_value(&7i64).unwrap(),
                managers::to_value("text").unwrap(),
                managers::to_value(&(1u8, vec!["a", "b"], Some(2.5f64))).unwrap(),
                managers::to_value(&std::collections::BTreeMap::from([("k", vec![1u16])])).unwrap(),
                managers::to_value(&Duration::from_millis(1500)).unwrap(),
            ];
            values
                .iter()
                .map(|v| postcard::to_stdvec(v).unwrap())
                .collect()
        }
        _ => unreachable!("a target of TARGETS"),
    }
}

/// A whole handshake as `fuzz::handshake` reads it: each message after a length byte,
/// client and server in turn (the server's first input is the client's digest).
fn handshake_transcript() -> Vec<u8> {
    let (mut server, challenge) = ServerHandshake::new(b"key", [7; 32]);
    let mut client = ClientHandshake::new(b"key", [9; 32]);
    let mut transcript = Vec::new();
    let mut to_client = challenge;
    while let Ok(Step::Send(to_server) | Step::SendAndFinish(to_server)) =
        client.receive(&to_client)
    {
        let Ok(len) = u8::try_from(to_server.len()) else {
            break;
        };
        transcript.push(len);
        transcript.extend_from_slice(&to_server);
        match server.receive(&to_server) {
            Ok(Step::Send(next)) | Ok(Step::SendAndFinish(next)) => {
                let Ok(len) = u8::try_from(next.len()) else {
                    break;
                };
                transcript.push(len);
                transcript.extend_from_slice(&next);
                to_client = next;
            }
            _ => break,
        }
    }
    transcript
}

#[test]
fn the_fuzz_corpus_and_seeds_replay_without_a_panic() {
    let write = std::env::var_os("WRITE_FUZZ_SEEDS").is_some();
    for (name, target) in TARGETS {
        let dir = corpus(name);
        let seeds = seeds(name);
        assert!(!seeds.is_empty(), "{name} has seeds");
        for (i, seed) in seeds.iter().enumerate() {
            if write {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
            }
            target(seed);
            // Every prefix too: truncated input is what a dying peer sends.
            for end in 0..seed.len() {
                target(&seed[..end]);
            }
        }
        let mut replayed = 0;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                target(&bytes);
                replayed += 1;
            }
        }
        assert!(
            replayed >= seeds.len(),
            "{name}: corpus missing at {}",
            dir.display()
        );
    }
}
