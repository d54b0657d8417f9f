//! `impl CachedEntity`: the static description of the entity (table, columns, key-forming
//! fields, edges, TTL) and the accessors the runtime calls.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::names::{self, last_segment};
use crate::validate::{IndexKind, Model};

pub fn expand(model: &Model<'_>) -> TokenStream {
    let entity = &model.entity;
    let krate = entity.krate();
    let ident = entity.ident;
    let update = entity.derived_ident("Update");
    let name = entity.key_name();
    let type_name = ident.to_string();
    let table = entity.table();
    let id_field = &entity.fields[model.id];
    let id_ident = id_field.ident;
    let id_ty = id_field.ty;
    let id_column = id_field.column();
    let ttl = names::ttl(&krate, entity.attrs.ttl.as_ref());
    let negative_ttl = names::ttl(&krate, entity.attrs.negative_ttl.as_ref());
    let swr = names::ttl(&krate, entity.attrs.stale_while_revalidate.as_ref());
    let columns = entity.persisted().map(|f| f.column());
    let indexes = model.indexes.iter().map(|(i, kind)| {
        let column = entity.fields[*i].column();
        let kind = match kind {
            IndexKind::Index => quote!(#krate::IndexKind::Index),
            IndexKind::ForeignKey => quote!(#krate::IndexKind::ForeignKey),
        };
        quote!(#krate::IndexMeta { column: #column, kind: #kind })
    });
    let relations = model.relations.iter().map(|r| {
        let target = &r.target;
        let krate = super::respan(&krate, r.lit.span());
        let target_name = r.lit.value();
        let column = entity.fields[r.field].column();
        quote_spanned! {r.lit.span()=>
            #krate::RelationMeta {
                target: #target_name,
                column: #column,
                target_meta: <#target as #krate::CachedEntity>::meta,
            }
        }
    });
    let counters = model.counters.iter().map(|i| entity.fields[*i].column());
    let values = entity.persisted().map(|f| {
        let (field, ty) = (f.ident, f.ty);
        quote_spanned!(ty.span()=> <#ty as #krate::ToValue>::to_value(&self.#field))
    });
    let heap_sizes = entity.persisted().map(|f| {
        let (field, ty) = (f.ident, f.ty);
        quote_spanned!(ty.span()=> <#ty as #krate::ToValue>::heap_size(&self.#field))
    });
    let kinds = entity.persisted().map(|f| {
        let ty = f.ty;
        quote_spanned!(ty.span()=> <#ty as #krate::ToValue>::KIND)
    });
    let fields_from_row = entity.fields.iter().map(|f| {
        let (field, ty) = (f.ident, f.ty);
        if f.attrs.skip.is_some() {
            return quote!(#field: ::core::default::Default::default());
        }
        let column = f.column();
        let read = quote_spanned!(ty.span()=> #krate::__private::read_column::<#ty>);
        quote!(#field: #read(&mut row, #column)?)
    });
    // The single key-forming fields, then each composite's fields in order, then each
    // order's column.
    let composite_fields = model.composites.iter().flat_map(|c| c.fields.iter());
    let order_fields = model.orders.iter().map(|o| &o.column);
    let index_values = model
        .indexes
        .iter()
        .map(|(i, _)| i)
        .chain(composite_fields)
        .chain(order_fields)
        .map(|i| {
            let f = &entity.fields[*i];
            let (field, ty) = (f.ident, f.ty);
            quote_spanned!(ty.span()=> <#ty as #krate::KeyPart>::key_value(&self.#field))
        });
    let orders = model.orders.iter().map(|o| {
        let by = match o.by {
            Some(i) => {
                let column = entity.fields[i].column();
                quote!(::core::option::Option::Some(#column))
            }
            None => quote!(::core::option::Option::None),
        };
        let column = entity.fields[o.column].column();
        let descending = o.descending;
        quote!(#krate::OrderMeta { by: #by, column: #column, descending: #descending })
    });
    let composites = model.composites.iter().map(|c| {
        let columns = c.fields.iter().map(|i| entity.fields[*i].column());
        let unique = c.unique;
        quote!(#krate::CompositeMeta { columns: &[#(#columns),*], unique: #unique })
    });
    let id_ty_spanned = quote_spanned!(id_ty.span()=> #id_ty);
    let (version_column, version_fn) = match model.version {
        Some(i) => {
            let f = &entity.fields[i];
            let (field, column) = (f.ident, f.column());
            (
                quote!(::core::option::Option::Some(#column)),
                quote! {
                    fn version(&self) -> ::core::option::Option<i64> {
                        ::core::option::Option::Some(::core::primitive::i64::from(self.#field))
                    }
                },
            )
        }
        None => (quote!(::core::option::Option::None), quote!()),
    };
    let relates_to = model.relations.iter().map(|r| last_segment(&r.target));

    quote! {
        #[automatically_derived]
        impl #krate::CachedEntity for #ident {
            type Id = #id_ty_spanned;
            type Update = #update;

            const TYPE_NAME: &'static str = #type_name;
            const RELATES_TO: &'static [&'static str] = &[#(#relates_to),*];

            fn meta() -> &'static #krate::EntityMeta {
                static META: #krate::EntityMeta = #krate::EntityMeta {
                    namespace: #krate::Namespace {
                        name: #name,
                        type_name: #type_name,
                        ttl: #ttl,
                        negative_ttl: #negative_ttl,
                        stale_while_revalidate: #swr,
                        __state: #krate::__private::EntityState::new(),
                    },
                    table: #table,
                    id_column: #id_column,
                    columns: &[#(#columns),*],
                    kinds: &[#(#kinds),*],
                    indexes: &[#(#indexes),*],
                    composites: &[#(#composites),*],
                    orders: &[#(#orders),*],
                    relations: &[#(#relations),*],
                    counters: &[#(#counters),*],
                    version: #version_column,
                };
                &META
            }

            fn id(&self) -> &Self::Id {
                &self.#id_ident
            }

            fn values(&self) -> ::std::vec::Vec<#krate::Value> {
                ::std::vec![#(#values),*]
            }

            fn from_values(
                row: ::std::vec::Vec<#krate::Value>,
            ) -> ::core::result::Result<Self, #krate::DecodeError> {
                let mut row = row.into_iter();
                ::core::result::Result::Ok(#ident {
                    #(#fields_from_row),*
                })
            }

            fn index_values(&self) -> ::std::vec::Vec<#krate::KeyValue> {
                ::std::vec![#(#index_values),*]
            }

            #version_fn

            fn heap_size(&self) -> usize {
                0 #(+ #heap_sizes)*
            }
        }

        #krate::__private::inventory::submit! {
            #krate::__private::EntityRegistration(
                <#ident as #krate::CachedEntity>::meta,
                #krate::__private::RowCodec::of::<#ident>(),
            )
        }
    }
}
