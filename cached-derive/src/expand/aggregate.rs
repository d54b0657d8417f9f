//! Cached aggregates: `count_grouped_by_<field>()` for each key-forming field, and
//! `max_<column>_by_<field>(v)` / `min_...` for each declared order (`max_<column>()` for an
//! order on the struct). Each is a typed query on `SceneQuery` (what a view loader reads) and
//! a repository method that reads it.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::validate::Model;

pub fn expand(model: &Model<'_>) -> TokenStream {
    let entity = &model.entity;
    let krate = entity.krate();
    let ident = entity.ident;
    let repo = entity.derived_ident("Repo");
    let query = entity.derived_ident("Query");
    let p = quote!(#krate::__private);
    let handle = super::repo::handle();

    let mut queries = Vec::new();
    let mut methods = Vec::new();

    for (i, _) in &model.indexes {
        let f = &entity.fields[*i];
        let (ty, column) = (f.ty, f.column());
        let name = format_ident!("count_grouped_by_{}", column);
        let doc = format!(
            "Each `{column}` value with its number of rows (`GROUP BY {column}`), in the \
             database's order of the values; cached as one entry, which a write drops only \
             when a row enters or leaves a group."
        );
        queries.push(quote! {
            #[doc = #doc]
            pub const fn #name() -> #krate::GroupedCount<#ident, #ty> {
                #krate::GroupedCount::__new(#column)
            }
        });
        methods.push(quote! {
            #[doc = #doc]
            pub async fn #name(&mut self) -> #krate::Result<::std::vec::Vec<(#ty, i64)>> {
                #p::count_grouped(#handle, #query::#name()).await
            }
        });
    }

    let mut named = Vec::new();
    for (at, order) in model.orders.iter().enumerate() {
        let f = &entity.fields[order.column];
        let (ty, column) = (f.ty, f.column());
        for (max, word) in [(true, "max"), (false, "min")] {
            let (name, args, values, predicate, among) = match order.by {
                Some(by) => {
                    let b = &entity.fields[by];
                    let (field, by_ty, by_column) = (b.ident, b.ty, b.column());
                    (
                        format_ident!("{}_{}_by_{}", word, column, by_column),
                        quote!(#field: impl ::core::convert::Into<#by_ty>),
                        quote!(#field),
                        quote!(#krate::Predicate::Eq(#by_column, <#by_ty as #krate::KeyPart>::key_value(&#field.into()))),
                        format!("the rows whose `{by_column}` equals `{field}`"),
                    )
                }
                None => (
                    format_ident!("{}_{}", word, column),
                    TokenStream::new(),
                    TokenStream::new(),
                    quote!(#krate::Predicate::All),
                    "every row".to_owned(),
                ),
            };
            // Two orders on one column and field (ascending and descending) share the method.
            if named.contains(&name) {
                continue;
            }
            named.push(name.clone());
            let (largest, use_) = match max {
                true => (
                    "largest",
                    " (\"append at the end\" without loading the rows)",
                ),
                false => ("smallest", ""),
            };
            let doc = format!(
                "The {largest} `{column}` among {among}, or `None` if there is none{use_}. \
                 Cached, and dropped as the pages of the same rows are: when a row enters or \
                 leaves them or its `{column}` changes."
            );
            queries.push(quote! {
                #[doc = #doc]
                pub fn #name(#args) -> #krate::Extreme<#ident, #ty> {
                    #krate::Extreme::__new(#predicate, #at, #max)
                }
            });
            methods.push(quote! {
                #[doc = #doc]
                pub async fn #name(&mut self, #args) -> #krate::Result<::core::option::Option<#ty>> {
                    #p::extreme(#handle, #query::#name(#values)).await
                }
            });
        }
    }

    if queries.is_empty() {
        return TokenStream::new();
    }
    quote! {
        /// Aggregates: the typed queries a view loader reads
        /// (`ctx.count_grouped(...)`, `ctx.extreme(...)`).
        #[automatically_derived]
        impl #query {
            #(#queries)*
        }

        /// Aggregates: cached like the queries they summarise.
        #[automatically_derived]
        impl<H> #repo<H> {
            #(#methods)*
        }
    }
}
