//! The insert shape of an entity whose id is generated (`#[cache(id, generated)]`): `NewScene`,
//! every persisted field but the id and the version, and its `NewRow` impl, which fills the
//! id's slot with what `GeneratedId` says (a null the database replaces, or a new `ObjectId`)
//! and the version's with 1.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::validate::Model;

pub fn expand(model: &Model<'_>) -> TokenStream {
    if !model.generated {
        return TokenStream::new();
    }
    let entity = &model.entity;
    let krate = entity.krate();
    let ident = entity.ident;
    let vis = entity.vis;
    let new = crate::names::prefixed_ident("New", entity.ident);
    let id_field = &entity.fields[model.id];
    let is_version = |f: &crate::ast::Field<'_>| {
        model
            .version
            .is_some_and(|v| std::ptr::eq(f, &entity.fields[v]))
    };
    let fields: Vec<_> = entity
        .persisted()
        .filter(|f| !f.is_id() && !is_version(f))
        .collect();
    let doc = format!(
        "A new [`{ident}`] row without its `{}`, which is generated when it is inserted: \
         `{ident}::repo(&ctx).insert(&{new} {{ .. }})` returns the stored row with its id.",
        id_field.ident
    );

    let decls = fields.iter().map(|f| {
        let (field, ty) = (f.ident, f.ty);
        let doc = format!("The new row's `{}`.", f.column());
        quote!(#[doc = #doc] pub #field: #ty)
    });
    let values = entity.persisted().map(|f| {
        let (field, ty) = (f.ident, f.ty);
        if f.is_id() {
            // Spanned at the id's type: an id that cannot be generated is reported there.
            quote_spanned!(ty.span()=> <#ty as #krate::GeneratedId>::generate())
        } else if is_version(f) {
            quote!(#krate::Value::Int(1))
        } else {
            quote_spanned!(ty.span()=> <#ty as #krate::ToValue>::to_value(&self.#field))
        }
    });

    // With the runtime's `serde` feature, a request body (unknown fields refused).
    let serde = crate::names::private_path_lit(&krate, "serde");
    quote! {
        #krate::__new_row_struct! {
            #serde,
            #[doc = #doc]
            #[derive(Clone)]
            #vis struct #new {
                #(#decls,)*
            }
        }

        #[automatically_derived]
        impl #krate::NewRow for #new {
            type Entity = #ident;

            fn values(&self) -> ::std::vec::Vec<#krate::Value> {
                ::std::vec![#(#values),*]
            }
        }
    }
}
