//! `impl RelatesTo<Target>` for each `relates_to` edge. The target must be a cached entity
//! (checked by the trait bound, with the error spanned at the user's string literal) and the
//! foreign key must hold the target's id type (or an `Option` of it).

use proc_macro2::TokenStream;
use quote::quote_spanned;

use super::respan;
use syn::spanned::Spanned;

use crate::validate::Model;

pub fn expand(model: &Model<'_>) -> TokenStream {
    let entity = &model.entity;
    let ident = entity.ident;
    model
        .relations
        .iter()
        .map(|r| {
            let target = &r.target;
            let field = &entity.fields[r.field];
            let fk = field.ident;
            let column = field.column();
            let span = r.lit.span();
            let krate = respan(&entity.krate(), span);
            let fk_ty = field.ty;
            let read_fk = quote_spanned! {fk_ty.span()=>
                <#fk_ty as #krate::__private::ForeignKey<<#target as #krate::CachedEntity>::Id>>::foreign_key(&self.#fk)
            };
            quote_spanned! {span=>
                #[automatically_derived]
                impl #krate::RelatesTo<#target> for #ident {
                    const FOREIGN_KEY: &'static str = #column;

                    fn related_id(&self) -> ::core::option::Option<<#target as #krate::CachedEntity>::Id> {
                        #read_fk
                    }
                }
            }
        })
        .collect()
}
