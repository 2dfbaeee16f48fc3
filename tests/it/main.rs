//! Integration tests through the public API, over real sockets and real processes.
//!
//! One binary (one link step). Child processes are this same binary re-executed in a
//! role (see `child`).

#![allow(unreachable_pub)] // helpers are `pub` inside this one test binary

mod auth;
mod bad_input;
mod basics;
#[path = "../support/certs.rs"]
mod certs;
mod child;
mod client_bounds;
mod common;
mod deadlines;
mod describe;
mod effects;
mod examples;
mod fuzz_replay;
mod handoff;
mod hostile;
mod lifecycle;
mod limits;
mod pipeline;
mod python;
mod python_fleet;
mod python_suite;
#[path = "../support/python.rs"]
mod python_support;
mod raw;
mod reconnect;
mod refcount;
#[path = "../support/relay.rs"]
mod relay;
mod restart;
mod stats;
mod sync_containers;
mod sync_locks;
mod tls;
mod typed_errors;
mod values;
