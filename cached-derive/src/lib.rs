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
/// the invalidation graph. See the `cached_runtime` documentation for the attributes.
#[proc_macro_derive(CachedEntity, attributes(cache))]
pub fn derive_cached_entity(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive_entity(&input).into()
}

/// Derives `CachedView`: a value computed from several entities, keyed by one entity's id,
/// invalidated precisely through the `relates_to` graph. See `cached_runtime::CachedView`.
#[proc_macro_derive(CachedView, attributes(view))]
pub fn derive_cached_view(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive_view(&input).into()
}
