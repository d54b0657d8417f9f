//! The patch struct (`SceneUpdate`): every persisted field but the id as an `Option`, with
//! chainable setters, and the `Patch` impl that tells the runtime which columns it assigns
//! (whether any of them forms cache keys is the runtime's to decide, from the entity's
//! metadata: one definition for every write path).

use proc_macro2::TokenStream;
use quote::quote;

use crate::validate::Model;

pub fn expand(model: &Model<'_>) -> TokenStream {
    let entity = &model.entity;
    let krate = entity.krate();
    let ident = entity.ident;
    let vis = entity.vis;
    let update = entity.derived_ident("Update");
    // The version is the database's to move on: a patch cannot set it.
    let fields: Vec<_> = entity
        .persisted()
        .filter(|f| {
            !f.is_id()
                && !model
                    .version
                    .is_some_and(|v| std::ptr::eq(*f, &entity.fields[v]))
        })
        .collect();
    let doc = format!(
        "Changes to one [`{ident}`] row: each field `Some(new value)` or `None` (unchanged). \
         Build it with the setters: `{update}::default().title(\"...\")`. With the runtime's \
         `serde` feature it is also a JSON request body: an absent field is unchanged, `null` \
         sets a nullable column to NULL, an unknown field is refused."
    );

    let decls = fields.iter().map(|f| {
        let (field, ty) = (f.ident, f.ty);
        let doc = format!("New value of `{}`, if it changes.", f.column());
        quote!(#[doc = #doc] pub #field: ::core::option::Option<#ty>)
    });
    let setters = fields.iter().map(|f| {
        let (field, ty) = (f.ident, f.ty);
        let doc = format!("Sets `{}`.", f.column());
        quote! {
            #[doc = #doc]
            #[must_use]
            pub fn #field(mut self, value: impl ::core::convert::Into<#ty>) -> Self {
                self.#field = ::core::option::Option::Some(value.into());
                self
            }
        }
    });
    let assignments = fields.iter().map(|f| {
        let (field, ty) = (f.ident, f.ty);
        let column = f.column();
        quote! {
            if let ::core::option::Option::Some(value) = &self.#field {
                out.push((#column, <#ty as #krate::ToValue>::to_value(value)));
            }
        }
    });
    // Through the runtime's macro: with its `serde` feature, a request body (absent field =
    // unchanged, `null` = set to NULL, unknown fields refused).
    let serde = crate::names::private_path_lit(&krate, "serde");
    let present = crate::names::private_path_lit(&krate, "present");
    quote! {
        #krate::__patch_struct! {
            #serde, #present,
            #[doc = #doc]
            #[derive(Clone, Default)]
            #vis struct #update {
                #(#decls,)*
            }
        }

        #[automatically_derived]
        impl #update {
            #(#setters)*
        }

        #[automatically_derived]
        impl #krate::Patch<#ident> for #update {
            fn assignments(&self) -> ::std::vec::Vec<(&'static str, #krate::Value)> {
                let mut out = ::std::vec::Vec::new();
                #(#assignments)*
                out
            }
        }
    }
}
