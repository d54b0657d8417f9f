//! Compile-time guarantees: every misuse the derive rejects, with the message users see.
//! One mistake per file under `tests/ui/` (and, under `tests/ui_pass/`, uses next to a rejected
//! one that must keep compiling); the expected compiler output is the `.stderr` beside it
//! (regenerate with `TRYBUILD=overwrite cargo test -p cached-compile-checks` and review the
//! diff).

#[test]
fn misuse_is_a_compile_error() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    // What the checks must accept: each file here compiles (and its `main` runs).
    t.pass("tests/ui_pass/*.rs");
}
