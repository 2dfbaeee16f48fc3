//! Fuzz target: `manager_runtime::fuzz::frames` (see `fuzz/README.md`).

fn main() {
    afl::fuzz!(|data: &[u8]| manager_runtime::fuzz::frames(data));
}
