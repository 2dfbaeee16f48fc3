//! Fuzz target: `manager_runtime::fuzz::server_message` (see `fuzz/README.md`).

fn main() {
    afl::fuzz!(|data: &[u8]| manager_runtime::fuzz::server_message(data));
}
