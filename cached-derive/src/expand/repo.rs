//! The repository (`SceneRepo<H>`): every read and write of the entity, on any cache handle
//! (`&ctx` or `&mut tx`). `Scene::repo(handle)` is its only constructor, and its bound is the
//! sealed `Handle` trait, so a driver pool cannot stand in for a handle.
//!
//! Only the methods that depend on the entity's attributes are generated here; the ones every
//! entity has (`get`, `require`, `get_many`, `list`, `count`, `update`, `delete`,
//! `delete_many`, the row locks) are the runtime's `Repo<Scene, H>`, which `SceneRepo<H>`
//! dereferences to: written once, they are type-checked once, not once per entity.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::validate::{lookup_name, Model};

/// `Predicate::Eq("<column>", <T as KeyPart>::key_value(&<field>.into()))`: the predicate of a
/// lookup on one field, from the method argument named like the field.
fn eq_predicate(krate: &syn::Path, field: &crate::ast::Field<'_>) -> TokenStream {
    let (ident, ty, column) = (field.ident, field.ty, field.column());
    quote!(#krate::Predicate::Eq(#column, <#ty as #krate::KeyPart>::key_value(&#ident.into())))
}

/// The handle a generated method runs on, from the repository's inner `cached_runtime::Repo`
/// (resolved through the function `Repo::__new` stored, so that the methods need no `Handle`
/// bound: a repository built on something that is not a handle is one error, at `repo`).
pub fn handle() -> TokenStream {
    quote!(self.0.__handle())
}

pub fn expand(model: &Model<'_>) -> TokenStream {
    let entity = &model.entity;
    let krate = entity.krate();
    let ident = entity.ident;
    let vis = entity.vis;
    let repo = entity.derived_ident("Repo");
    let update = entity.derived_ident("Update");
    let id_ty = entity.fields[model.id].ty;
    let p = quote!(#krate::__private);
    let result = |t: TokenStream| quote!(#krate::Result<#t>);
    let row = quote!(#p::Arc<#ident>);
    let opt_row = result(quote!(::core::option::Option<#row>));
    let rows = result(quote!(::std::vec::Vec<#row>));
    let count = result(quote!(i64));
    let handle = handle();

    // The runtime's path as a doc link resolves it (no leading `::`).
    let krate_path = quote!(#krate).to_string().replace(' ', "");
    let krate_path = krate_path.trim_start_matches("::");
    let repo_doc = format!(
        "The repository of [`{ident}`]: cached reads and invalidating writes. \
         Get one with `{ident}::repo(&ctx)` or `{ident}::repo(&mut tx)`. The methods every \
         repository has (`get`, `require`, `get_many`, `list`, `count`, `update`, `delete`, \
         `delete_many`, and `get_for_update` on a transaction) are those of \
         [`Repo`]({krate_path}::Repo), which it dereferences to."
    );
    let ctor_doc = format!(
        "The repository of `{ident}` on a cache handle: `&ctx` (cached reads; each write \
         commits on its own) or `&mut tx` (reads and writes inside the transaction)."
    );

    let finders = model.indexes.iter().map(|(i, _)| {
        let f = &entity.fields[*i];
        let (field, ty) = (f.ident, f.ty);
        let column = f.column();
        let find = format_ident!("find_by_{}", column);
        let count_by = format_ident!("count_by_{}", column);
        let find_doc = format!("The rows whose `{column}` equals `{field}`, ordered by id (cached as `{}?{column}=<value>`).", entity.key_name());
        let count_doc = format!("The number of rows whose `{column}` equals `{field}`.");
        let update_by = format_ident!("update_many_by_{}", column);
        let update_doc = format!("Applies `patch` to every row whose `{column}` equals `{field}` and returns the updated rows, ordered by id; each row invalidates exactly the queries its old and new values belong to.");
        let predicate = eq_predicate(&krate, f);
        quote! {
            #[doc = #find_doc]
            pub fn #find<'r>(&'r mut self, #field: impl ::core::convert::Into<#ty>) -> impl ::core::future::Future<Output = #rows> + 'r {
                let predicate = #predicate;
                #p::find::<#ident>(#handle, predicate)
            }

            #[doc = #count_doc]
            pub fn #count_by<'r>(&'r mut self, #field: impl ::core::convert::Into<#ty>) -> impl ::core::future::Future<Output = #count> + 'r {
                let predicate = #predicate;
                #p::count::<#ident>(#handle, predicate)
            }

            #[doc = #update_doc]
            pub fn #update_by<'r>(&'r mut self, #field: impl ::core::convert::Into<#ty>, patch: #update) -> impl ::core::future::Future<Output = #rows> + 'r {
                let predicate = #predicate;
                #p::update_many::<#ident>(#handle, predicate, patch)
            }
        }
    });

    let query = entity.derived_ident("Query");
    // Each distinct composite field list: find_by_a_and_b / count_by_a_and_b.
    let composite_lists = model.composite_lists();
    let params = |fields: &[usize]| {
        let args: Vec<_> = fields
            .iter()
            .map(|i| {
                let f = &entity.fields[*i];
                let (field, ty) = (f.ident, f.ty);
                quote!(#field: impl ::core::convert::Into<#ty>)
            })
            .collect();
        let values: Vec<_> = fields
            .iter()
            .map(|i| {
                let field = entity.fields[*i].ident;
                quote!(#field.into())
            })
            .collect();
        (args, values)
    };
    let composite_finders = composite_lists.iter().map(|fields| {
        let name = lookup_name(entity, fields);
        let listed = name.replace("_and_", "`, `");
        let find = format_ident!("find_by_{}", name);
        let count_by = format_ident!("count_by_{}", name);
        let variant = super::keys::composite_variant(model, fields);
        let (args, values) = params(fields);
        let find_doc = format!(
            "The rows whose `{listed}` equal the values, ordered by id (one cached entry per \
             combination: a write drops only the combinations its row left or entered)."
        );
        let count_doc = format!("The number of rows whose `{listed}` equal the values.");
        let update_by = format_ident!("update_many_by_{}", name);
        let update_doc = format!(
            "Applies `patch` to every row whose `{listed}` equal the values and returns the \
             updated rows, ordered by id; each row invalidates exactly the queries its old and \
             new values belong to."
        );
        quote! {
            #[doc = #find_doc]
            pub fn #find<'r>(&'r mut self, #(#args),*) -> impl ::core::future::Future<Output = #rows> + 'r {
                let predicate = #query::#variant(#(#values),*).predicate();
                #p::find::<#ident>(#handle, predicate)
            }

            #[doc = #count_doc]
            pub fn #count_by<'r>(&'r mut self, #(#args),*) -> impl ::core::future::Future<Output = #count> + 'r {
                let predicate = #query::#variant(#(#values),*).predicate();
                #p::count::<#ident>(#handle, predicate)
            }

            #[doc = #update_doc]
            pub fn #update_by<'r>(&'r mut self, #(#args,)* patch: #update) -> impl ::core::future::Future<Output = #rows> + 'r {
                let predicate = #query::#variant(#(#values),*).predicate();
                #p::update_many::<#ident>(#handle, predicate, patch)
            }
        }
    });
    let unique_lists: Vec<Vec<usize>> = model
        .uniques
        .iter()
        .map(|i| vec![*i])
        .chain(
            model
                .composites
                .iter()
                .filter(|c| c.unique)
                .map(|c| c.fields.clone()),
        )
        .collect();
    let getters = unique_lists.iter().map(|fields| {
        let name = lookup_name(entity, fields);
        let listed = name.replace("_and_", "`, `");
        let get_by = format_ident!("get_by_{}", name);
        let (args, values) = params(fields);
        let predicate = if let [single] = fields.as_slice() {
            eq_predicate(&krate, &entity.fields[*single])
        } else {
            let variant = super::keys::composite_variant(model, fields);
            quote!(#query::#variant(#(#values),*).predicate())
        };
        let doc = format!(
            "The row whose `{listed}` equal the values, or `None` (declared unique: the \
             database's unique constraint is what keeps it one row; if several match, the \
             lowest id wins). Cached as the lookup's id plus the row, and dropped by the writes \
             that change it."
        );
        quote! {
            #[doc = #doc]
            pub fn #get_by<'r>(&'r mut self, #(#args),*) -> impl ::core::future::Future<Output = #opt_row> + 'r {
                #p::get_by::<#ident>(#handle, #predicate)
            }
        }
    });

    let pages = model.orders.iter().enumerate().map(|(at, order)| {
        let column = entity.fields[order.column].column();
        let direction = if order.descending { " descending" } else { "" };
        match order.by {
            Some(by) => {
                let f = &entity.fields[by];
                let (field, ty, by_column) = (f.ident, f.ty, f.column());
                let predicate = eq_predicate(&krate, f);
                let method = format_ident!("page_by_{}", by_column);
                let doc = format!(
                    "One page of the rows whose `{by_column}` equals `{field}`, ordered by \
                     `{column}`{direction} (then id): `Page::first(n)`, then \
                     `Page::after(paged.next.unwrap(), n)`. Keyset pagination (no OFFSET); each \
                     page is cached with its rows, and a write drops only the pages of the \
                     `{by_column}` values its row left, entered or moved within, and the pages \
                     that hold the row."
                );
                quote! {
                    #[doc = #doc]
                    pub fn #method<'r>(&'r mut self, #field: impl ::core::convert::Into<#ty>, page: #krate::Page) -> impl ::core::future::Future<Output = #krate::Result<#krate::Paged<#ident>>> + 'r {
                        let predicate = #predicate;
                        #p::page::<#ident>(#handle, predicate, #at, page)
                    }
                }
            }
            None => {
                let doc = format!(
                    "One page of every row, ordered by `{column}`{direction} (then id): \
                     `Page::first(n)`, then `Page::after(paged.next.unwrap(), n)`. Keyset \
                     pagination; each page is cached with its rows and dropped by any write \
                     that adds, removes or reorders a row, or changes a row it holds."
                );
                quote! {
                    #[doc = #doc]
                    pub fn page<'r>(&'r mut self, page: #krate::Page) -> impl ::core::future::Future<Output = #krate::Result<#krate::Paged<#ident>>> + 'r {
                        #p::page::<#ident>(#handle, #krate::Predicate::All, #at, page)
                    }
                }
            }
        }
    });

    let counters = model.counters.iter().map(|i| {
        let f = &entity.fields[*i];
        let column = f.column();
        let inc = format_ident!("increment_{}", column);
        let dec = format_ident!("decrement_{}", column);
        let inc_doc = format!("Adds `by` to `{column}` in one statement and returns the updated row; the cached row is rewritten in place.");
        let dec_doc = format!("Subtracts `by` from `{column}` in one statement and returns the updated row.");
        quote! {
            #[doc = #inc_doc]
            pub fn #inc<'r>(&'r mut self, id: impl ::core::convert::Into<#id_ty>, by: i64) -> impl ::core::future::Future<Output = #krate::Result<#row>> + 'r {
                #p::add::<#ident>(#handle, id.into(), #column, by)
            }

            #[doc = #dec_doc]
            pub fn #dec<'r>(&'r mut self, id: impl ::core::convert::Into<#id_ty>, by: i64) -> impl ::core::future::Future<Output = #krate::Result<#row>> + 'r {
                #p::subtract::<#ident>(#handle, id.into(), #column, by)
            }
        }
    });

    let lists = model.lists.iter().map(|i| {
        let f = &entity.fields[*i];
        let column = f.column();
        let item = f.list_item().expect("a list field");
        let append = format_ident!("append_{}", column);
        let remove = format_ident!("remove_{}", column);
        let append_doc = format!("Appends `item` to `{column}` in one operation (`$push` on MongoDB; on SQL, under the row's lock) and returns the updated row; the cached row is rewritten.");
        let remove_doc = format!("Removes every item equal to `item` from `{column}` in one operation (`$pull` on MongoDB; on SQL, under the row's lock) and returns the updated row.");
        quote! {
            #[doc = #append_doc]
            pub fn #append<'r>(&'r mut self, id: impl ::core::convert::Into<#id_ty>, item: impl ::core::convert::Into<#item>) -> impl ::core::future::Future<Output = #krate::Result<#row>> + 'r {
                let item = <#item as #krate::ToValue>::to_value(&item.into());
                #p::list_op::<#ident>(#handle, id.into(), #column, item, true)
            }

            #[doc = #remove_doc]
            pub fn #remove<'r>(&'r mut self, id: impl ::core::convert::Into<#id_ty>, item: impl ::core::convert::Into<#item>) -> impl ::core::future::Future<Output = #krate::Result<#row>> + 'r {
                let item = <#item as #krate::ToValue>::to_value(&item.into());
                #p::list_op::<#ident>(#handle, id.into(), #column, item, false)
            }
        }
    });

    let versioned = model.version.map(|i| {
        let f = &entity.fields[i];
        let (field, ty) = (f.ident, f.ty);
        let doc = format!(
            "Applies `patch` only if the row's `{field}` is still `expected` (the version you \
             read), in one conditional statement that also moves the version on; returns the \
             updated row. Fails with `Error::VersionConflict` (someone else changed the row: \
             read it again) or `Error::NotFound`, and then writes nothing."
        );
        quote! {
            #[doc = #doc]
            pub fn update_if_version<'r>(&'r mut self, id: impl ::core::convert::Into<#id_ty>, expected: #ty, patch: #update) -> impl ::core::future::Future<Output = #krate::Result<#row>> + 'r {
                #p::update_if_version::<#ident>(#handle, id.into(), ::core::primitive::i64::from(expected), patch)
            }
        }
    });

    let inserts = if model.generated {
        let new = crate::names::prefixed_ident("New", entity.ident);
        let id = entity.fields[model.id].ident;
        let one = format!(
            "Inserts a row and returns it as stored, with the `{id}` it was given (by the \
             database: an identity/serial column, `AUTO_INCREMENT`, SQLite's rowid; or, for an \
             `ObjectId`, by this process); the row goes into the cache on commit."
        );
        let many = format!(
            "Inserts rows and returns them as stored, in the order given, each with its `{id}`; \
             one cache update for the whole batch on commit (on MySQL/MariaDB, which has no \
             `RETURNING`, one statement per row)."
        );
        quote! {
            #[doc = #one]
            pub fn insert<'r>(&'r mut self, row: &'r #new) -> impl ::core::future::Future<Output = #krate::Result<#row>> + 'r {
                #p::insert_new::<#new>(#handle, row)
            }

            #[doc = #many]
            pub fn insert_many<'r>(&'r mut self, rows: &'r [#new]) -> impl ::core::future::Future<Output = #rows> + 'r {
                #p::insert_new_many::<#new>(#handle, rows)
            }
        }
    } else {
        quote! {
            /// Inserts a row and returns it as stored; the row goes into the cache on commit.
            pub fn insert<'r>(&'r mut self, row: &'r #ident) -> impl ::core::future::Future<Output = #krate::Result<#row>> + 'r {
                #p::insert::<#ident>(#handle, row)
            }

            /// Inserts rows (one statement per chunk) and returns them as stored; one cache
            /// update for the whole batch on commit.
            pub fn insert_many<'r>(&'r mut self, rows: &'r [#ident]) -> impl ::core::future::Future<Output = #rows> + 'r {
                #p::insert_many::<#ident>(#handle, rows)
            }
        }
    };

    quote! {
        #[doc = #repo_doc]
        #vis struct #repo<H>(#krate::Repo<#ident, H>);

        #[automatically_derived]
        impl #ident {
            #[doc = #ctor_doc]
            #vis fn repo<H: #krate::Handle>(handle: H) -> #repo<H> {
                #repo(#krate::Repo::__new(handle))
            }
        }

        #[automatically_derived]
        impl<H> ::core::ops::Deref for #repo<H> {
            type Target = #krate::Repo<#ident, H>;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        #[automatically_derived]
        impl<H> ::core::ops::DerefMut for #repo<H> {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.0
            }
        }

        #[automatically_derived]
        impl<H> #repo<H> {
            #(#finders)*

            #(#composite_finders)*

            #(#getters)*

            #(#pages)*

            #inserts

            #(#counters)*

            #(#lists)*

            #versioned
        }

    }
}
