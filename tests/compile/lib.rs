//! The derive's compile-time checks: `tests/ui.rs` runs every case under `tests/ui/` (each one
//! misuse, with the compiler output users see in the `.stderr` beside it), and
//! `tests/accepted.rs` holds uses next to a rejected one that must keep compiling (and work).
//! This library is empty; the package exists so that trybuild checks the cases against the
//! runtime alone (see `Cargo.toml`).
