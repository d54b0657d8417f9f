//! What a derive emits beside its errors when the input is too broken to expand (no id, two
//! ids, not a struct, a view without a key): empty items under the generated names, so that
//! each later use of `SceneKey`, `SceneUpdate`, `SceneQuery`, `SceneRepo` or `Scene::repo`
//! does not add a "cannot find" error to the one that says what is wrong. As thiserror does,
//! one mistake is one error.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, Ident};

use crate::names;

fn derived(input: &DeriveInput, suffix: &str) -> Ident {
    names::derived_ident(&input.ident, suffix)
}

/// The names `#[derive(CachedEntity)]` generates, as empty items.
pub fn entity(input: &DeriveInput) -> TokenStream {
    let (ident, vis) = (&input.ident, &input.vis);
    let key = derived(input, "Key");
    let update = derived(input, "Update");
    let query = derived(input, "Query");
    let repo = derived(input, "Repo");
    let constructor = input.generics.params.is_empty().then(|| {
        quote! {
            impl #ident {
                #[doc(hidden)]
                #vis fn repo<H>(handle: H) -> #repo<H> {
                    #repo(handle)
                }
            }
        }
    });
    quote! {
        #[doc(hidden)]
        #vis struct #key;
        #[doc(hidden)]
        #[derive(Default)]
        #vis struct #update;
        #[doc(hidden)]
        #vis enum #query {}
        #[doc(hidden)]
        #vis struct #repo<H>(#[allow(dead_code)] H);
        #constructor
    }
}

/// The name `#[derive(CachedView)]` generates, as an empty item.
pub fn view(input: &DeriveInput) -> TokenStream {
    let vis = &input.vis;
    let key = derived(input, "Key");
    quote! {
        #[doc(hidden)]
        #vis struct #key;
    }
}
