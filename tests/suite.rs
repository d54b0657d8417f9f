//! The integration suite's main body, built as one test binary: one link of the runtime and
//! one compile of the shared fixtures (`common/`) for all of these files, instead of one per
//! file (a cold `cargo test --workspace` spent most of its build on ~40 such binaries).
//!
//! Each file is a module; run one with its name as a filter: `cargo test --test suite pages::`.
//! Every test makes its own database (schema) and its own context, so the modules run side by
//! side. Files that change state shared by a whole process or server stay binaries of their
//! own (see `Cargo.toml`): the counting allocator (`memory`), the metrics recorder
//! (`metrics`), the tracing subscriber (`tracing`), server-wide fail points and killed sessions
//! (`mongo`, `feed`), a paused Redis (`broadcast`, `shared_cache`), child processes started
//! from the test binary (`broadcast_loss`, `outbox`) and the Redis Cluster's failovers
//! (`cluster`). So do the files whose tests read the whole registry of entities linked into
//! the binary, which another file's entities would join: `check_schema` checks every one of
//! them (`cascades`, `decoding`, `qualified`), the graph lists them (`views`), and an entity
//! over the same table as another one's is invalidated with it (`cascades`).

#[macro_use]
mod common;

/// The studio's domain and web API (`examples/studio/web.rs`, axum, which names the domain
/// `crate::domain`), which `admin` and `web` drive.
use common::domain;
#[path = "../examples/studio/web.rs"]
mod studio_web;

mod admin;
mod aggregates;
mod audit;
mod bulk;
mod cache;
mod cancellation;
mod collation;
mod collation_proof;
mod composite;
mod edges;
mod generated;
mod handler_send;
mod join_tables;
mod model;
mod negative;
mod object_ids;
mod pages;
mod precision;
mod read_sets;
mod repository;
mod retryable;
mod same_type_names;
mod stale_while_revalidate;
mod torture;
mod transactions;
mod versions;
mod warming;
mod web;
