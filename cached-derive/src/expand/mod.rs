//! Code generation, one file per generated concern: the `CachedEntity` impl and its static
//! description ([`entity`]), typed keys ([`keys`]), the patch struct ([`patch`]), the repository
//! ([`repo`]) and the `relates_to` edges ([`relations`]).

mod entity;
mod keys;
mod patch;
mod relations;
mod repo;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, ToTokens};
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

/// The tokens of `path`, all spanned at `span`, so that an unsatisfied bound on the path is
/// reported where the user wrote the edge.
pub(crate) fn respan(path: &syn::Path, span: Span) -> TokenStream {
    fn walk(stream: TokenStream, span: Span) -> TokenStream {
        stream
            .into_iter()
            .map(|mut tt| {
                if let TokenTree::Group(g) = &tt {
                    let mut group = proc_macro2::Group::new(g.delimiter(), walk(g.stream(), span));
                    group.set_span(span);
                    tt = TokenTree::Group(group);
                } else {
                    tt.set_span(span);
                }
                tt
            })
            .collect()
    }
    walk(path.to_token_stream(), span)
}

#[cfg(test)]
mod tests {
    //! Snapshots of the generated code, pretty-printed, so reviewers can read what users get.

    use super::derive_entity;

    fn expand(input: syn::DeriveInput) -> String {
        let tokens = derive_entity(&input).expect("valid input");
        let file: syn::File = syn::parse2(tokens).expect("expansion parses as a file");
        prettyplease::unparse(&file)
    }

    #[test]
    fn scene_with_relations_index_and_counters() {
        insta::assert_snapshot!(expand(syn::parse_quote! {
            #[cache(table = "scenes", ttl = 60, relates_to = "Chapter", relates_to = "Story")]
            pub struct Scene {
                #[cache(id)]
                pub id: i64,
                pub chapter_id: i64,
                pub story_id: i64,
                #[cache(references = "Setting")]
                pub location_id: Option<i64>,
                #[cache(index)]
                pub status: String,
                pub title: String,
                pub word_count: i64,
                #[cache(skip)]
                pub draft_notes: Vec<String>,
            }
        }));
    }

    #[test]
    fn text_id_custom_name_and_crate_path() {
        insta::assert_snapshot!(expand(syn::parse_quote! {
            #[cache(table = "app.tags", name = "tag", crate = "my_app::cache")]
            pub(crate) struct Label {
                #[cache(id)]
                slug: String,
                #[cache(index)]
                pinned: bool,
            }
        }));
    }
}
