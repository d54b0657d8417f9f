//! Small helpers on names and paths that parsing, validation and expansion share.

use heck::ToSnakeCase;
use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt as _;
use syn::Ident;

use crate::attr::Spanned;

/// A path as written, without spaces (`crate::Story`), for messages and comparisons.
pub fn path_string(path: &syn::Path) -> String {
    quote!(#path).to_string().replace(' ', "")
}

/// The last segment of a path (`Story` for `crate::domain::Story`).
pub fn last_segment(path: &syn::Path) -> String {
    path.segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default()
}

/// A name derived from a type (`SceneKey` from `Scene` + `Key`), spanned at the type.
pub fn derived_ident(ident: &Ident, suffix: &str) -> Ident {
    Ident::new(&format!("{}{suffix}", ident.unraw()), ident.span())
}

/// `prefix` + `ident`, spanned at `ident` (`NewScene`).
pub fn prefixed_ident(prefix: &str, ident: &Ident) -> Ident {
    Ident::new(&format!("{prefix}{}", ident.unraw()), ident.span())
}

/// The key prefix: `name = "..."`, or the snake_case type name.
pub fn key_name(name: Option<&Spanned<String>>, ident: &Ident) -> String {
    match name {
        Some(name) => name.value.clone(),
        None => ident.unraw().to_string().to_snake_case(),
    }
}

/// The runtime crate's path: `crate = "..."`, or `::cached_runtime`.
pub fn krate(krate: Option<&syn::Path>) -> syn::Path {
    krate
        .cloned()
        .unwrap_or_else(|| syn::parse_quote!(::cached_runtime))
}

/// The path of an item under the runtime's `__private` module, as a string literal (what
/// serde's `crate = "..."` and `deserialize_with = "..."` take).
pub fn private_path_lit(krate: &syn::Path, item: &str) -> syn::LitStr {
    let krate = quote!(#krate).to_string().replace(' ', "");
    syn::LitStr::new(
        &format!("{krate}::__private::{item}"),
        proc_macro2::Span::call_site(),
    )
}

/// A TTL in seconds as an `Option<Duration>` expression.
pub fn ttl(krate: &syn::Path, ttl: Option<&Spanned<u64>>) -> TokenStream {
    match ttl {
        Some(ttl) => {
            let secs = ttl.value;
            quote!(::core::option::Option::Some(#krate::__private::Duration::from_secs(#secs)))
        }
        None => quote!(::core::option::Option::None),
    }
}
