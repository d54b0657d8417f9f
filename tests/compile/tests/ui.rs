//! Compile-time guarantees: every misuse the derive rejects, with the message users see.
//! One mistake per file under `tests/ui/`; the expected compiler output is the `.stderr` beside
//! it (regenerate with `TRYBUILD=overwrite cargo test -p cached-compile-checks` and review the
//! diff).
//!
//! Only compile-fail cases: with a single `pass` case trybuild builds (not checks) every
//! dependency in a target directory of its own, and runs each case. What the checks must
//! accept is in `tests/accepted.rs`, an ordinary test that also runs what it declares.

#[test]
fn misuse_is_a_compile_error() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
