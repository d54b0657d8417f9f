//! Derive macros for `cached-runtime`. Use them through `cached_runtime` (which re-exports
//! them), not directly.
//!
//! The pipeline, one module per phase: `attr` parses `#[cache(...)]` into typed attributes,
//! `ast` builds the entity model, `validate` checks cross-field rules and resolves
//! `relates_to` edges, `expand` generates code.

mod ast;
mod attr;
mod ctxt;
mod expand;
mod names;
mod symbol;
mod validate;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `CachedEntity`: typed keys, a repository, a patch struct and the entity's place in
/// the invalidation graph.
///
/// ```text
/// #[derive(CachedEntity, Clone)]
/// #[cache(table = "scenes", ttl = 60, relates_to = "Chapter", index(chapter_id, status))]
/// pub struct Scene {
///     #[cache(id)] pub id: i64,
///     pub chapter_id: i64,                        // the foreign key of `relates_to = "Chapter"`
///     #[cache(index, order_by = "position")] pub status: String,
///     pub position: i64,
///     #[cache(version)] pub version: i64,
/// }
/// ```
///
/// # On the struct: `#[cache(...)]`
///
/// | attribute | meaning |
/// |---|---|
/// | `table = "scenes"` (or `"schema.scenes"`) | the SQL table; required on SQL stores |
/// | `collection = "scenes"` | the MongoDB collection (instead of `table`) |
/// | `ttl = 60` | seconds an entry lives (default: until invalidated); a positive integer |
/// | `negative_ttl = 5` | seconds "this id does not exist" is remembered (`0`: never cached) |
/// | `stale_while_revalidate = 30` | seconds past the TTL an entry may be served while one refresh runs (needs `ttl`) |
/// | `relates_to = "Chapter"` | an edge to another entity: the field `chapter_id` is its foreign key (repeatable); key-forming like `index` |
/// | `index(a, b)` | a composite lookup: `find_by_a_and_b`, `count_by_a_and_b`, `update_many_by_a_and_b` |
/// | `unique(a, b)` | a unique composite: also `get_by_a_and_b`; on two `relates_to` keys (a join entity), also `attach(&row)`, `detach(a, b)` and each side's rows of the other (`actors_by_movie_id(m)`) |
/// | `order_by = "column"` / `"column desc"` | keyset pages of every row: `page(Page)`; and `max_<column>()` / `min_<column>()` |
/// | `name = "scene"` | the key prefix (default: the type name in snake_case) |
/// | `crate = "path"` | where `cached_runtime` is, if renamed |
///
/// # On a field: `#[cache(...)]`
///
/// | attribute | meaning |
/// |---|---|
/// | `id` | the primary key (`_id` on MongoDB); exactly one |
/// | `id, generated` | the database makes it (an integer, or an `ObjectId` made here): insert a `NewScene` |
/// | `index` | a lookup: `find_by_<field>`, `count_by_<field>`, `update_many_by_<field>`; grouped counts: `count_grouped_by_<field>()` |
/// | `unique` | a unique lookup: `get_by_<field>` |
/// | `order_by = "column"` / `"column desc"` | on a key-forming field: `page_by_<field>(value, Page)`; and `max_<column>_by_<field>(value)` / `min_...` |
/// | `references = "Setting"` | a nullable or extra foreign key to another entity |
/// | `version` | an integer the database moves on at every write: `update_if_version` |
/// | `skip` | not persisted (gets `Default` when loaded) |
///
/// Every misuse is one compile error that says what to write instead (the repository's
/// `tests/compile/tests/ui`). What each generated method does, its cache keys and what
/// invalidates them are on the generated items themselves (`cargo doc` of your crate) and in the guide (`docs/` in
/// the repository, linked from the README).
#[proc_macro_derive(CachedEntity, attributes(cache))]
pub fn derive_cached_entity(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive_entity(&input).into()
}

/// Derives `CachedView`: a value computed from several entities, keyed by one entity's id,
/// invalidated precisely through the `relates_to` graph. Implement `LoadView` to compute it;
/// `StoryOutline::get(&ctx, story_id)` reads it.
///
/// ```text
/// #[derive(CachedView, Clone)]
/// #[view(key = "Story", reads(Story, Chapter, Scene), ttl = 300)]
/// pub struct StoryOutline { pub title: String, pub chapters: Vec<String> }
/// ```
///
/// # On the struct: `#[view(...)]`
///
/// | attribute | meaning |
/// |---|---|
/// | `key = "Story"` | the entity whose id keys the view; required |
/// | `reads(A, B)` | the entities the loader may read (through `ViewCtx`); each must be connected to the key by `relates_to` edges, and a read of an undeclared one is a compile error |
/// | `reads_all(C)` | entities read without a path to the key: any write to them drops every instance |
/// | `ttl = 300` | seconds an instance lives (default: until invalidated) |
/// | `name = "story_outline"` | the key prefix (default: the type name in snake_case) |
/// | `crate = "path"` | where `cached_runtime` is, if renamed |
#[proc_macro_derive(CachedView, attributes(view))]
pub fn derive_cached_view(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive_view(&input).into()
}
