//! Fuzz target: `manager_core::pickle::fuzz` (see `fuzz/README.md`).

fn main() {
    afl::fuzz!(|data: &[u8]| manager_core::pickle::fuzz(data));
}
