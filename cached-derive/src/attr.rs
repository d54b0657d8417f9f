//! Typed `#[cache(...)]` attributes. Every key is checked while parsing: unknown keys (with a
//! suggestion), duplicates, and values of the wrong shape are errors spanned at the token.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned as _;
use syn::{Attribute, Expr, ExprLit, Lit, LitStr};

use crate::ctxt::Ctxt;

/// The keys `#[cache(...)]` accepts on a struct.
pub const STRUCT_KEYS: &[&str] = &["table", "collection", "ttl", "relates_to", "name", "crate"];
/// The keys `#[cache(...)]` accepts on a field.
pub const FIELD_KEYS: &[&str] = &["id", "index", "references", "skip"];
/// The keys `#[view(...)]` accepts.
pub const VIEW_KEYS: &[&str] = &["key", "reads", "reads_all", "ttl", "name", "crate"];

/// A value with the span of the token it came from.
#[derive(Clone)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

/// `#[cache(...)]` on the struct.
#[derive(Default)]
pub struct StructAttrs {
    pub table: Option<Spanned<String>>,
    pub ttl: Option<Spanned<u64>>,
    pub relates_to: Vec<LitStr>,
    pub name: Option<Spanned<String>>,
    pub krate: Option<syn::Path>,
}

/// `#[cache(...)]` on a field.
#[derive(Default)]
pub struct FieldAttrs {
    pub id: Option<Span>,
    pub index: Option<Span>,
    pub references: Option<LitStr>,
    pub skip: Option<Span>,
}

fn is_cache(attr: &Attribute) -> bool {
    attr.path().is_ident("cache")
}

/// The closest known key, if the typo is small.
fn suggestion(unknown: &str, known: &[&str]) -> Option<String> {
    known
        .iter()
        .map(|k| (edit_distance(unknown, k), k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!("; did you mean `{k}`?"))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn key_list(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_key(
    meta: &ParseNestedMeta<'_>,
    what: &str,
    known: &[&str],
    other: &[&str],
) -> syn::Error {
    let key = meta
        .path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_else(|| {
            let path = &meta.path;
            quote::quote!(#path).to_string().replace(' ', "")
        });
    let hint = if other.contains(&key.as_str()) {
        format!(
            "; `{key}` belongs on the {}",
            if what == "struct" { "field" } else { "struct" }
        )
    } else {
        suggestion(&key, known).unwrap_or_default()
    };
    let attr = if what == "view" { "view" } else { "cache" };
    meta.error(format!(
        "unknown {what} attribute `{attr}({key})`; expected one of {}{hint}",
        key_list(known)
    ))
}

/// Fills a single-valued attribute slot; a second value is an error naming `attr(key)`.
fn set<T>(
    slot: &mut Option<T>,
    value: T,
    meta: &ParseNestedMeta<'_>,
    attr: &str,
    key: &str,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(meta.error(format!(
            "duplicate `{attr}({key})` attribute; remove one of them"
        )));
    }
    *slot = Some(value);
    Ok(())
}

fn string(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<LitStr> {
    let expr: Expr = meta.value()?.parse()?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{key}` takes a string, like `{key} = \"...\"`"),
        )),
    }
}

fn ttl(meta: &ParseNestedMeta<'_>) -> syn::Result<Spanned<u64>> {
    const HOW: &str = "`ttl` is a positive whole number of seconds, like `ttl = 60`; \
                       leave `ttl` out to keep entries until they are invalidated";
    let expr: Expr = meta.value()?.parse()?;
    let span = expr.span();
    let positive = match &expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) if lit.suffix().is_empty() || lit.suffix() == "u64" => {
            lit.base10_parse::<u64>().ok().filter(|n| *n > 0)
        }
        _ => None,
    };
    match positive {
        Some(value) => Ok(Spanned { value, span }),
        None => Err(syn::Error::new_spanned(&expr, HOW)),
    }
}

/// `#[view(...)]` on a view struct.
#[derive(Default)]
pub struct ViewAttrs {
    pub key: Option<LitStr>,
    pub reads: Vec<syn::Path>,
    pub reads_all: Vec<syn::Path>,
    pub ttl: Option<Spanned<u64>>,
    pub name: Option<Spanned<String>>,
    pub krate: Option<syn::Path>,
    /// Whether `reads(...)` / `reads_all(...)` were given (even empty).
    pub seen_reads: bool,
}

fn path_string(path: &syn::Path) -> String {
    quote::quote!(#path).to_string().replace(' ', "")
}

/// Parses `reads(A, B, ...)` into `out`, rejecting an entity listed twice in either list.
fn entity_list(
    meta: &ParseNestedMeta<'_>,
    list: &str,
    out: &mut Vec<syn::Path>,
    other: &[syn::Path],
) -> syn::Result<()> {
    meta.parse_nested_meta(|entity| {
        let name = path_string(&entity.path);
        if out.iter().chain(other).any(|p| path_string(p) == name) {
            return Err(entity.error(format!(
                "`{name}` is listed twice in `reads(...)`/`reads_all(...)`; list each entity once"
            )));
        }
        if entity.input.peek(syn::Token![=]) || entity.input.peek(syn::token::Paren) {
            return Err(entity.error(format!(
                "`{list}(...)` takes entity type names, like `{list}(Story, Chapter)`"
            )));
        }
        out.push(entity.path.clone());
        Ok(())
    })
}

impl ViewAttrs {
    pub fn parse(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut out = ViewAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("view")) {
            let result = attr.parse_nested_meta(|meta| {
                let path = &meta.path;
                if path.is_ident("key") {
                    let s = string(&meta, "key")?;
                    set(&mut out.key, s, &meta, "view", "key")
                } else if path.is_ident("reads") {
                    out.seen_reads = true;
                    let other = out.reads_all.clone();
                    entity_list(&meta, "reads", &mut out.reads, &other)
                } else if path.is_ident("reads_all") {
                    out.seen_reads = true;
                    let other = out.reads.clone();
                    entity_list(&meta, "reads_all", &mut out.reads_all, &other)
                } else if path.is_ident("ttl") {
                    let v = ttl(&meta)?;
                    set(&mut out.ttl, v, &meta, "view", "ttl")
                } else if path.is_ident("name") {
                    let s = string(&meta, "name")?;
                    let v = Spanned {
                        value: s.value(),
                        span: s.span(),
                    };
                    set(&mut out.name, v, &meta, "view", "name")
                } else if path.is_ident("crate") {
                    let s = string(&meta, "crate")?;
                    let p: syn::Path = s.parse()?;
                    set(&mut out.krate, p, &meta, "view", "crate")
                } else {
                    Err(unknown_key(&meta, "view", VIEW_KEYS, &[]))
                }
            });
            if let Err(err) = result {
                cx.syn_error(err);
            }
        }
        out
    }
}

impl StructAttrs {
    pub fn parse(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut out = StructAttrs::default();
        for attr in attrs.iter().filter(|a| is_cache(a)) {
            let result = attr.parse_nested_meta(|meta| {
                let path = &meta.path;
                if path.is_ident("table") || path.is_ident("collection") {
                    // `collection` is the MongoDB word for the same thing; one of the two.
                    let key = if path.is_ident("table") {
                        "table"
                    } else {
                        "collection"
                    };
                    let s = string(&meta, key)?;
                    let v = Spanned {
                        value: s.value(),
                        span: s.span(),
                    };
                    if out.table.is_some() {
                        return Err(meta.error(
                            "the table is already named: use one `table = \"...\"` (SQL) or \
                             `collection = \"...\"` (MongoDB), not both",
                        ));
                    }
                    set(&mut out.table, v, &meta, "cache", key)
                } else if path.is_ident("ttl") {
                    let v = ttl(&meta)?;
                    set(&mut out.ttl, v, &meta, "cache", "ttl")
                } else if path.is_ident("relates_to") {
                    let s = string(&meta, "relates_to")?;
                    if out.relates_to.iter().any(|r| r.value() == s.value()) {
                        return Err(syn::Error::new(
                            s.span(),
                            format!(
                                "duplicate `relates_to = \"{}\"`; remove one of them",
                                s.value()
                            ),
                        ));
                    }
                    out.relates_to.push(s);
                    Ok(())
                } else if path.is_ident("name") {
                    let s = string(&meta, "name")?;
                    let v = Spanned {
                        value: s.value(),
                        span: s.span(),
                    };
                    set(&mut out.name, v, &meta, "cache", "name")
                } else if path.is_ident("crate") {
                    let s = string(&meta, "crate")?;
                    let p: syn::Path = s.parse()?;
                    set(&mut out.krate, p, &meta, "cache", "crate")
                } else {
                    Err(unknown_key(&meta, "struct", STRUCT_KEYS, FIELD_KEYS))
                }
            });
            if let Err(err) = result {
                cx.syn_error(err);
            }
        }
        out
    }
}

impl FieldAttrs {
    pub fn parse(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut out = FieldAttrs::default();
        for attr in attrs.iter().filter(|a| is_cache(a)) {
            let result = attr.parse_nested_meta(|meta| {
                let span = meta.path.span();
                let path = &meta.path;
                if path.is_ident("id") {
                    set(&mut out.id, span, &meta, "cache", "id")
                } else if path.is_ident("index") {
                    set(&mut out.index, span, &meta, "cache", "index")
                } else if path.is_ident("skip") {
                    set(&mut out.skip, span, &meta, "cache", "skip")
                } else if path.is_ident("references") {
                    let s = string(&meta, "references")?;
                    set(&mut out.references, s, &meta, "cache", "references")
                } else {
                    Err(unknown_key(&meta, "field", FIELD_KEYS, STRUCT_KEYS))
                }
            });
            if let Err(err) = result {
                cx.syn_error(err);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(
            suggestion("tll", STRUCT_KEYS).as_deref(),
            Some("; did you mean `ttl`?")
        );
        assert_eq!(
            suggestion("relate_to", STRUCT_KEYS).as_deref(),
            Some("; did you mean `relates_to`?")
        );
        assert_eq!(suggestion("colour", STRUCT_KEYS), None);
    }
}
