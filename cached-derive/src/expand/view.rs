//! `#[derive(CachedView)]`: the `CachedView` impl and static description, the `Reads<E>`
//! impls that let the loader read exactly the declared entities, link-time registration, the
//! view's typed key, and compile-time checks that each declared entity reaches the key entity
//! through `relates_to` edges.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::respan;
use crate::names::{self, last_segment};
use crate::validate::ViewModel;

pub fn expand(model: &ViewModel<'_>) -> TokenStream {
    let view = &model.view;
    let krate = view.krate();
    let ident = view.ident;
    let vis = view.vis;
    let name = view.key_name();
    let type_name = ident.to_string();
    let key_ident = syn::Ident::new(&format!("{ident}Key"), ident.span());
    let key_lit_span = view.attrs.key.as_ref().map_or(ident.span(), |l| l.span());
    let key_krate = respan(&krate, key_lit_span);
    let key = &model.key;
    let key_ty = quote_spanned!(key_lit_span=> #key);
    // Everything but `type Key` names the key through the view's own impl, so that a key that
    // is not an entity is reported once, at the attribute.
    let key_proj = quote!(<#ident as #krate::CachedView>::Key);
    let ttl = names::ttl(&krate, view.attrs.ttl.as_ref());
    let metas = |paths: &[syn::Path]| -> Vec<TokenStream> {
        paths
            .iter()
            .map(|p| {
                let k = respan(&krate, p.span());
                quote_spanned!(p.span()=> <#p as #k::CachedEntity>::meta)
            })
            .collect()
    };
    let reads = metas(&model.reads);
    let reads_all = metas(&model.reads_all);
    let reads_impls = model.reads.iter().skip(1).chain(&model.reads_all).map(|p| {
        let k = respan(&krate, p.span());
        quote_spanned! {p.span()=>
            #[automatically_derived]
            impl #k::Reads<#p> for #ident {}
        }
    });
    let graph_nodes = model.reads.iter().map(|p| {
        let k = respan(&krate, p.span());
        quote_spanned!(p.span()=> (<#p as #k::CachedEntity>::TYPE_NAME, <#p as #k::CachedEntity>::RELATES_TO))
    });
    let key_name = last_segment(key);
    let path_checks = model.reads.iter().skip(1).map(|p| {
        let k = respan(&krate, p.span());
        quote_spanned! {p.span()=>
            const _: () = #k::__private::assert_reaches::<
                #ident,
                #p,
                #key_proj,
                #k::__private::Connected<{
                    #k::__private::reaches(
                        GRAPH,
                        <#p as #k::CachedEntity>::TYPE_NAME,
                        <#key_proj as #k::CachedEntity>::TYPE_NAME,
                    )
                }>,
            >();
        }
    });
    let key_doc = format!(
        "The cache key of one [`{ident}`], printed `{name}:<{key_name} id>`: `{ident}Key::new(id)`."
    );
    quote! {
        #[doc = #key_doc]
        #vis type #key_ident = #krate::ViewKey<#ident>;

        #[doc(hidden)]
        const _: () = {
            #[automatically_derived]
            impl #key_krate::CachedView for #ident {
                type Key = #key_ty;

                fn view_meta() -> &'static #krate::ViewMeta {
                    static META: #krate::ViewMeta = #krate::ViewMeta {
                        namespace: #krate::Namespace {
                            name: #name,
                            type_name: #type_name,
                            ttl: #ttl,
                            negative_ttl: ::core::option::Option::None,
                            stale_while_revalidate: ::core::option::Option::None,
                            __state: #krate::__private::EntityState::new(),
                        },
                        key: <#key_proj as #krate::CachedEntity>::meta,
                        reads: &[#(#reads),*],
                        reads_all: &[#(#reads_all),*],
                    };
                    &META
                }
            }

            #[automatically_derived]
            impl #krate::Reads<#key_proj> for #ident {}
            #(#reads_impls)*

            #krate::__private::inventory::submit! {
                #krate::__private::ViewRegistration(<#ident as #krate::CachedView>::view_meta)
            }

            const GRAPH: &[(&str, &[&str])] = &[#(#graph_nodes),*];
            #(#path_checks)*
        };
    }
}
