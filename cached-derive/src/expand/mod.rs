//! Code generation, one file per generated concern: the `CachedEntity` impl and its static
//! description ([`entity`]), typed keys ([`keys`]), the patch struct ([`patch`]), the insert
//! shape of a generated id ([`new_row`]), the repository ([`repo`]), its aggregates
//! ([`aggregate`]), a join entity's helpers ([`join`]) and the `relates_to` edges
//! ([`relations`]).

mod aggregate;
mod entity;
mod fallback;
mod join;
mod keys;
mod new_row;
mod patch;
mod relations;
mod repo;
mod view;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::DeriveInput;

use crate::ast::{Entity, View};
use crate::ctxt::Ctxt;
use crate::validate::{validate, validate_view, Model};

/// `#[derive(CachedEntity)]`: parse, validate, expand. On errors, the errors and the best
/// expansion there is (see [`with_errors`]).
pub fn derive_entity(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let model = Entity::from_syn(&cx, input).and_then(|entity| validate(&cx, entity));
    with_errors(cx, model.as_ref().map(expand), || fallback::entity(input))
}

/// `#[derive(CachedView)]`: parse, validate, expand, likewise.
pub fn derive_view(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let model = validate_view(&cx, View::from_syn(&cx, input));
    with_errors(cx, model.as_ref().map(view::expand), || {
        fallback::view(input)
    })
}

/// The expansion, preceded by the errors if there were any. A rejected attribute leaves the
/// rest of the model intact (an unknown key or a bad value is ignored, a conflicting flag is
/// reported), so the model still expands and later uses of the generated items type-check:
/// one mistake is one error. Without a model (no id, two ids, a view without a key), empty
/// items stand in for the generated names.
fn with_errors(
    cx: Ctxt,
    expansion: Option<TokenStream>,
    fallback: impl FnOnce() -> TokenStream,
) -> TokenStream {
    match cx.check() {
        Ok(()) => expansion.expect("validation without errors yields a model"),
        Err(errors) => {
            let errors = errors.into_compile_error();
            let items = expansion.unwrap_or_else(fallback);
            quote!(#errors #items)
        }
    }
}

fn expand(model: &Model<'_>) -> TokenStream {
    let keys = keys::expand(model);
    let patch = patch::expand(model);
    let new_row = new_row::expand(model);
    let repo = repo::expand(model);
    let aggregates = aggregate::expand(model);
    let joins = join::expand(model);
    let entity = entity::expand(model);
    let relations = relations::expand(model);
    quote! {
        #keys
        #patch
        #new_row
        #repo
        #aggregates
        #joins
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

    use super::{derive_entity, derive_view};

    fn pretty(tokens: proc_macro2::TokenStream) -> String {
        let file: syn::File = syn::parse2(tokens).expect("expansion parses as a file");
        prettyplease::unparse(&file)
    }

    fn expand(input: syn::DeriveInput) -> String {
        pretty(derive_entity(&input))
    }

    #[test]
    fn story_outline_view() {
        insta::assert_snapshot!(pretty(derive_view(&syn::parse_quote! {
            #[view(key = "Story", reads(Story, Chapter, Scene), reads_all(Setting), ttl = 300)]
            pub struct StoryOutline {
                pub title: String,
                pub words: i64,
            }
        })));
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

    /// A version field: no setter in the patch, no counter, `update_if_version`, and the
    /// version bump recorded in the meta.
    #[test]
    fn versioned_entity() {
        insta::assert_snapshot!(expand(syn::parse_quote! {
            #[cache(table = "drafts")]
            pub struct Draft {
                #[cache(id)]
                pub id: i64,
                pub body: String,
                #[cache(version)]
                pub version: i32,
            }
        }));
    }

    /// A generated id: `NewTicket` without the id and the version, and `insert` taking it.
    #[test]
    fn generated_id_entity() {
        insta::assert_snapshot!(expand(syn::parse_quote! {
            #[cache(table = "tickets")]
            pub struct Ticket {
                #[cache(id, generated)]
                pub id: i64,
                #[cache(index)]
                pub queue: String,
                pub title: String,
                #[cache(version)]
                pub version: i64,
            }
        }));
    }

    /// Composite and unique lookups: `TaskQuery::ByProjectIdAndStatus`, `find_by_..._and_...`,
    /// `get_by_slug`, `get_by_project_id_and_number`, and the composites in the meta.
    #[test]
    fn composite_and_unique_lookups() {
        insta::assert_snapshot!(expand(syn::parse_quote! {
            #[cache(table = "tasks", index(project_id, status), unique(project_id, number))]
            pub struct Task {
                #[cache(id)]
                pub id: i64,
                pub project_id: i64,
                pub number: i64,
                pub status: String,
                #[cache(unique)]
                pub slug: String,
            }
        }));
    }

    /// A join entity: two `relates_to` edges and `unique(movie_id, actor_id)` give
    /// `detach(movie_id, actor_id)` besides the pair's lookups.
    #[test]
    fn join_entity() {
        insta::assert_snapshot!(expand(syn::parse_quote! {
            #[cache(table = "castings", relates_to = "Movie", relates_to = "Actor", unique(movie_id, actor_id))]
            pub struct Casting {
                #[cache(id)]
                pub id: i64,
                pub movie_id: i64,
                pub actor_id: i64,
            }
        }));
    }

    /// Keyset pages: `page_by_album_id` (by position) and `page` (every row, newest first),
    /// the orders in the meta and the order columns among the key-forming values.
    #[test]
    fn ordered_pages() {
        insta::assert_snapshot!(expand(syn::parse_quote! {
            #[cache(table = "tracks", order_by = "added desc")]
            pub struct Track {
                #[cache(id)]
                pub id: i64,
                #[cache(index, order_by = "position")]
                pub album_id: i64,
                pub position: i64,
                pub added: i64,
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

    /// An entity that cannot expand (no id): its error, then empty items under the
    /// generated names, so that later uses add no errors of their own.
    #[test]
    fn fallback_beside_the_error() {
        insta::assert_snapshot!(expand(syn::parse_quote! {
            #[cache(table = "scenes")]
            pub struct Scene {
                pub id: i64,
            }
        }));
    }

    #[test]
    fn mongo_collection_with_a_list_field() {
        insta::assert_snapshot!(expand(syn::parse_quote! {
            #[cache(collection = "characters")]
            pub struct Character {
                #[cache(id)]
                pub id: i64,
                pub traits: Vec<String>,
                pub avatar: Vec<u8>,
            }
        }));
    }

    /// What one entity of `benches/compile_time.sh` (one index, one `relates_to`) costs the
    /// compiler in generated code: printed (`cargo test -p cached-derive generated_lines --
    /// --nocapture`), and held under a ceiling so that growth is a decision, not an accident.
    #[test]
    fn generated_lines_per_entity() {
        let tokens = derive_entity(&syn::parse_quote! {
            #[cache(table = "e2", relates_to = "E1")]
            pub struct E2 {
                #[cache(id)]
                pub id: i64,
                pub e1_id: i64,
                #[cache(index)]
                pub name: String,
                pub body: String,
            }
        });
        let token_count = tokens.clone().into_iter().map(count_tokens).sum::<usize>();
        let lines = pretty(tokens).lines().count();
        println!("generated per entity: {lines} lines, {token_count} tokens");
        assert!(
            lines <= LINES_CEILING,
            "{lines} lines (ceiling {LINES_CEILING})"
        );
    }

    /// The pretty-printed lines an entity of `generated_lines_per_entity` may expand to.
    const LINES_CEILING: usize = 450;

    fn count_tokens(tree: proc_macro2::TokenTree) -> usize {
        match tree {
            proc_macro2::TokenTree::Group(group) => {
                1 + group.stream().into_iter().map(count_tokens).sum::<usize>()
            }
            _ => 1,
        }
    }
}
