//! Join entities: an entity with a unique pair of foreign keys (`relates_to = "Movie"`,
//! `relates_to = "Actor"`, `unique(movie_id, actor_id)`) gets `attach(row)` (insert unless the
//! pair is joined), `detach(a, b)`, and, for each side, the rows of the other side joined to
//! one of its rows (`actors_by_movie_id(m)`, `movies_by_actor_id(a)`), cached as one entry.

use heck::ToSnakeCase;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::validate::{lookup_name, IndexKind, Model};

/// `actors` for `Actor`: the snake-case name of a type, in the plural (`y` -> `ies` after a
/// consonant, `es` after `s`, `x`, `z`, `ch`, `sh`; `s` otherwise).
fn plural(ty: &str) -> String {
    let name = ty.to_snake_case();
    let consonant_y =
        name.ends_with('y') && !name[..name.len() - 1].ends_with(['a', 'e', 'i', 'o', 'u']);
    if consonant_y {
        format!("{}ies", &name[..name.len() - 1])
    } else if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|end| name.ends_with(end))
    {
        format!("{name}es")
    } else {
        format!("{name}s")
    }
}

pub fn expand(model: &Model<'_>) -> TokenStream {
    let entity = &model.entity;
    let krate = entity.krate();
    let ident = entity.ident;
    let repo = entity.derived_ident("Repo");
    let query = entity.derived_ident("Query");
    let p = quote!(#krate::__private);
    let handle = super::repo::handle();
    let is_fk = |f: &usize| {
        model
            .indexes
            .iter()
            .any(|(i, kind)| i == f && *kind == IndexKind::ForeignKey)
    };
    let pairs: Vec<&Vec<usize>> = model
        .composites
        .iter()
        .filter(|c| c.unique && c.fields.len() == 2 && c.fields.iter().all(is_fk))
        .map(|c| &c.fields)
        .collect();
    // Only one pair: with two, `attach` and `detach` would not know which pair they mean.
    let [fields] = pairs.as_slice() else {
        return TokenStream::new();
    };
    let variant = super::keys::composite_variant(model, fields);
    let listed = lookup_name(entity, fields).replace("_and_", "`, `");
    let (a, b) = (&entity.fields[fields[0]], &entity.fields[fields[1]]);
    let (a_field, b_field) = (a.ident, b.ident);
    let (a_ty, b_ty) = (a.ty, b.ty);

    let detach_doc = format!(
        "Deletes the row joining these `{listed}` (the unique pair), if there is one; returns \
         whether there was. Drops exactly what a `delete` of it would: its row, and the lists, \
         counts and pages of each side it was in, and the joined rows read through it."
    );
    let (row_ty, values) = if model.generated {
        let new = crate::names::prefixed_ident("New", ident);
        (quote!(#new), quote!(<#new as #krate::NewRow>::values(row)))
    } else {
        (
            quote!(#ident),
            quote!(<#ident as #krate::CachedEntity>::values(row)),
        )
    };
    let attach_doc = format!(
        "Inserts `row` unless a row already joins its `{listed}`, and returns the row that \
         joins them (the one inserted, or the one there was, unchanged). Two attaches of one \
         pair at the same moment: one inserts, the other fails with `Error::Constraint` (the \
         unique pair) and writes nothing."
    );

    // For each side, the rows of the other side joined to one of its rows.
    let mut reads = Vec::new();
    for (this, other) in [(fields[0], fields[1]), (fields[1], fields[0])] {
        let Some(relation) = model.relations.iter().find(|r| r.field == other) else {
            continue;
        };
        let (this, other) = (&entity.fields[this], &entity.fields[other]);
        let target = &relation.target;
        let target_name = crate::names::last_segment(target);
        let (field, ty, column) = (this.ident, this.ty, this.column());
        let other_field = other.ident;
        let other_column = other.column();
        let method = format_ident!("{}_by_{}", plural(&target_name), column);
        let doc = format!(
            "The `{target_name}` rows joined to this `{column}` (through `{other_column}`), in \
             the order of the join rows' ids. Cached as one entry (a hit is one lookup), \
             dropped when a join row of this `{column}` is attached, detached or moved, or one \
             of these rows changes."
        );
        reads.push(quote! {
            #[doc = #doc]
            pub async fn #method(&mut self, #field: impl ::core::convert::Into<#ty>) -> #krate::Result<::std::vec::Vec<#p::Arc<#target>>> {
                let predicate = #krate::Predicate::Eq(#column, <#ty as #krate::KeyPart>::key_value(&#field.into()));
                #p::joined::<#ident, #target>(#handle, predicate, #other_column, |row: &#ident| {
                    #p::ForeignKey::<<#target as #krate::CachedEntity>::Id>::foreign_key(&row.#other_field)
                })
                .await
            }
        });
    }

    quote! {
        /// Join helpers: the entity joins one row of each side per unique pair.
        #[automatically_derived]
        impl<H> #repo<H> {
            #[doc = #attach_doc]
            pub async fn attach(&mut self, row: &#row_ty) -> #krate::Result<#p::Arc<#ident>> {
                let predicate = #query::#variant(row.#a_field.clone(), row.#b_field.clone()).predicate();
                #p::attach::<#ident>(#handle, predicate, #values).await
            }

            #[doc = #detach_doc]
            pub async fn detach(&mut self, #a_field: impl ::core::convert::Into<#a_ty>, #b_field: impl ::core::convert::Into<#b_ty>) -> #krate::Result<bool> {
                let predicate = #query::#variant(#a_field.into(), #b_field.into()).predicate();
                #p::delete_where::<#ident>(#handle, predicate).await.map(|n| n > 0)
            }

            #(#reads)*
        }
    }
}

#[cfg(test)]
mod tests {
    use super::plural;

    #[test]
    fn plurals_of_type_names() {
        let cases = [
            ("Actor", "actors"),
            ("Category", "categories"),
            ("Day", "days"),
            ("Status", "statuses"),
            ("Box", "boxes"),
            ("Match", "matches"),
            ("StoryLabel", "story_labels"),
        ];
        for (ty, want) in cases {
            assert_eq!(plural(ty), want, "{ty}");
        }
    }
}
