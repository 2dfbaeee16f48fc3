//! Compile tests for the `#[shared]` attribute: programs that must compile (and run), and
//! mistakes that must be refused with an error at the user's tokens.
//!
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test --test ui` and review
//! the diff: rustc owns part of their text, so they follow the one toolchain we build with.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
