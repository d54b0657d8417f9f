//! Compile-time guarantees: every misuse the derive rejects, with the message users see.
//! One mistake per file under `tests/ui/`; the expected compiler output is the `.stderr`
//! beside it (regenerate with `TRYBUILD=overwrite cargo test --test ui` and review the diff).

#[test]
fn misuse_is_a_compile_error() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
