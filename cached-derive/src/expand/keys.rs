//! Typed keys: the row key (`SceneKey`, printed `scene:42`) and the query key (`SceneQuery`,
//! printed `scene?status=draft`, with its count twin `scene#count?status=draft`).

use heck::ToUpperCamelCase;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::validate::Model;

pub fn expand(model: &Model<'_>) -> TokenStream {
    let entity = &model.entity;
    let krate = entity.krate();
    let ident = entity.ident;
    let vis = entity.vis;
    let key = entity.derived_ident("Key");
    let query = entity.derived_ident("Query");
    let id_ty = entity.fields[model.id].ty;
    let name = entity.key_name();

    let key_doc = format!("The cache key of one [`{ident}`] row, printed `{name}:<id>`.");
    let query_doc = format!(
        "A cached query of [`{ident}`]: printed `{name}?all`, `{name}?<field>=<value>` or \
         `{name}?<a>=<x>&<b>=<y>`; its count is `{name}#count?...`."
    );
    let variants = model.indexes.iter().map(|(i, _)| {
        let f = &entity.fields[*i];
        let variant = format_ident!("By{}", f.column().to_upper_camel_case());
        let ty = f.ty;
        let doc = format!("Rows whose `{}` equals the value.", f.column());
        quote!(#[doc = #doc] #variant(#ty))
    });
    let predicates = model.indexes.iter().map(|(i, _)| {
        let f = &entity.fields[*i];
        let column = f.column();
        let variant = format_ident!("By{}", column.to_upper_camel_case());
        let ty = f.ty;
        quote! {
            #query::#variant(value) => #krate::Predicate::Eq(#column, <#ty as #krate::KeyPart>::key_value(value))
        }
    });

    // One variant per distinct field list (an `index(a, b)` and a `unique(a, b)` share one).
    let lists = model.composite_lists();
    let composite_variants = lists.iter().map(|fields| {
        let variant = composite_variant(model, fields);
        let tys = fields.iter().map(|i| entity.fields[*i].ty);
        let doc = format!(
            "Rows whose {} equal the values, in that order.",
            fields
                .iter()
                .map(|i| format!("`{}`", entity.fields[*i].column()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        quote!(#[doc = #doc] #variant(#(#tys),*))
    });
    let composite_predicates = lists.iter().map(|fields| {
        let variant = composite_variant(model, fields);
        let columns: Vec<String> = fields.iter().map(|i| entity.fields[*i].column()).collect();
        let bindings: Vec<_> = (0..fields.len()).map(|n| format_ident!("v{}", n)).collect();
        let parts = fields.iter().zip(&bindings).map(|(i, v)| {
            let ty = entity.fields[*i].ty;
            quote!(<#ty as #krate::KeyPart>::key_value(#v))
        });
        quote! {
            #query::#variant(#(#bindings),*) => #krate::Predicate::And(
                &[#(#columns),*],
                ::std::vec![#(#parts),*].into(),
            )
        }
    });

    quote! {
        #[doc = #key_doc]
        #[derive(Clone, Debug, PartialEq)]
        #vis struct #key(pub #id_ty);

        #[automatically_derived]
        impl ::core::convert::From<#key> for #krate::CacheKey {
            fn from(key: #key) -> Self {
                #krate::CacheKey::row(
                    <#ident as #krate::CachedEntity>::meta(),
                    <#id_ty as #krate::KeyPart>::key_value(&key.0),
                )
            }
        }

        #[automatically_derived]
        impl ::core::fmt::Display for #key {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(&#krate::CacheKey::from(self.clone()), f)
            }
        }

        #[doc = #query_doc]
        #[derive(Clone, Debug, PartialEq)]
        #vis enum #query {
            /// Every row (`list()`, `count()`).
            All,
            #(#variants,)*
            #(#composite_variants,)*
        }

        #[automatically_derived]
        impl #query {
            /// The predicate this query filters on.
            pub fn predicate(&self) -> #krate::Predicate {
                match self {
                    #query::All => #krate::Predicate::All,
                    #(#predicates,)*
                    #(#composite_predicates,)*
                }
            }
        }

        #[automatically_derived]
        impl #krate::QueryKey for #query {
            fn list_key(&self) -> #krate::CacheKey {
                #krate::CacheKey::list(<#ident as #krate::CachedEntity>::meta(), self.predicate())
            }
            fn count_key(&self) -> #krate::CacheKey {
                #krate::CacheKey::count(<#ident as #krate::CachedEntity>::meta(), self.predicate())
            }
        }

        #[automatically_derived]
        impl #krate::EntityQuery for #query {
            type Entity = #ident;
            fn predicate(&self) -> #krate::Predicate {
                #query::predicate(self)
            }
        }

        #[automatically_derived]
        impl ::core::fmt::Display for #query {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(&#krate::QueryKey::list_key(self), f)
            }
        }
    }
}

/// `ByStoryIdAndStatus`: the query variant of a composite lookup on `fields`.
pub fn composite_variant(model: &Model<'_>, fields: &[usize]) -> proc_macro2::Ident {
    let parts: Vec<String> = fields
        .iter()
        .map(|i| model.entity.fields[*i].column().to_upper_camel_case())
        .collect();
    format_ident!("By{}", parts.join("And"))
}
