//! Code generation, one file per generated concern: the `CachedEntity` impl and its static
//! description ([`entity`]), typed keys ([`keys`]), the patch struct ([`patch`]), the repository
//! ([`repo`]) and the `relates_to` edges ([`relations`]).

mod entity;
mod keys;
mod patch;
mod relations;
mod repo;

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use crate::ast::Entity;
use crate::ctxt::Ctxt;
use crate::validate::{validate, Model};

/// `#[derive(CachedEntity)]`: parse, validate, expand.
pub fn derive_entity(input: &DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let model = Entity::from_syn(&cx, input).and_then(|entity| validate(&cx, entity));
    cx.check()?;
    let model = model.expect("validation without errors yields a model");
    Ok(expand(&model))
}

fn expand(model: &Model<'_>) -> TokenStream {
    let keys = keys::expand(model);
    let patch = patch::expand(model);
    let repo = repo::expand(model);
    let entity = entity::expand(model);
    let relations = relations::expand(model);
    quote! {
        #keys
        #patch
        #repo
        #[doc(hidden)]
        const _: () = {
            #entity
            #relations
        };
    }
}
