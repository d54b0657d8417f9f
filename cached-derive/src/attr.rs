//! Typed `#[cache(...)]` attributes. Every key is checked while parsing: unknown keys (with a
//! suggestion), duplicates, and values of the wrong shape are errors spanned at the token.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned as _;
use syn::{Attribute, Expr, ExprLit, Lit, LitStr};

use crate::ctxt::Ctxt;
use crate::names::path_string;
use crate::symbol::*;

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
    pub negative_ttl: Option<Spanned<u64>>,
    pub stale_while_revalidate: Option<Spanned<u64>>,
    pub relates_to: Vec<LitStr>,
    /// `index(a, b)` and `unique(a, b)`: composite lookups, in the order written.
    pub composites: Vec<CompositeAttr>,
    /// `order_by = "column [desc]"`: keyset pages of every row.
    pub order_by: Option<LitStr>,
    pub name: Option<Spanned<String>>,
    pub krate: Option<syn::Path>,
}

/// `#[cache(index(a, b))]` or `#[cache(unique(a, b))]` on the struct.
pub struct CompositeAttr {
    pub fields: Vec<syn::Ident>,
    pub unique: bool,
    pub span: Span,
}

/// `#[cache(...)]` on a field.
#[derive(Default)]
pub struct FieldAttrs {
    pub id: Option<Span>,
    pub generated: Option<Span>,
    pub index: Option<Span>,
    pub unique: Option<Span>,
    /// `order_by = "column [desc]"`: keyset pages of the rows sharing this field's value.
    pub order_by: Option<LitStr>,
    pub references: Option<LitStr>,
    pub skip: Option<Span>,
    pub version: Option<Span>,
}

fn is_cache(attr: &Attribute) -> bool {
    attr.path().is_ident(CACHE)
}

/// The closest known key (or field name), if the typo is small: `; did you mean `ttl`?`.
pub fn suggestion(unknown: &str, known: &[&str]) -> Option<String> {
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
    let key = path_string(&meta.path);
    let hint = if other.contains(&key.as_str()) {
        format!(
            "; `{key}` belongs on the {}",
            if what == "struct" { "field" } else { "struct" }
        )
    } else {
        suggestion(&key, known).unwrap_or_default()
    };
    let attr = if what == "view" { VIEW } else { CACHE };
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
    seconds(meta, HOW, 1)
}

fn negative_ttl(meta: &ParseNestedMeta<'_>) -> syn::Result<Spanned<u64>> {
    const HOW: &str = "`negative_ttl` is a whole number of seconds, like `negative_ttl = 5`, \
                       or `negative_ttl = 0` to never cache that an id does not exist; leave it \
                       out to cache absent ids like rows";
    seconds(meta, HOW, 0)
}

fn stale_while_revalidate(meta: &ParseNestedMeta<'_>) -> syn::Result<Spanned<u64>> {
    const HOW: &str = "`stale_while_revalidate` is a positive whole number of seconds, like \
                       `stale_while_revalidate = 30`: how long past its `ttl` an entry may be \
                       served while one background refresh runs";
    seconds(meta, HOW, 1)
}

/// A whole number of seconds, at least `min`; otherwise the error `how`.
fn seconds(meta: &ParseNestedMeta<'_>, how: &str, min: u64) -> syn::Result<Spanned<u64>> {
    let expr: Expr = meta.value()?.parse()?;
    let span = expr.span();
    let value = match &expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) if lit.suffix().is_empty() || lit.suffix() == "u64" => {
            lit.base10_parse::<u64>().ok().filter(|n| *n >= min)
        }
        _ => None,
    };
    match value {
        Some(value) => Ok(Spanned { value, span }),
        None => Err(syn::Error::new_spanned(&expr, how)),
    }
}

/// `index(a, b)` / `unique(a, b)` on the struct: the field names, at least two.
fn composite(meta: &ParseNestedMeta<'_>, unique: bool) -> syn::Result<CompositeAttr> {
    let key = if unique { UNIQUE } else { INDEX };
    let how = format!(
        "on the struct, `{key}(...)` lists the fields of a composite lookup, like \
         `{key}(story_id, status)`; for one field, put `#[cache({key})]` on the field"
    );
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(how));
    }
    let span = meta.path.span();
    let mut fields = Vec::new();
    meta.parse_nested_meta(|field| {
        match field.path.get_ident() {
            Some(ident) if !field.input.peek(syn::Token![=]) => {
                if fields.iter().any(|f: &syn::Ident| f == ident) {
                    return Err(field.error(format!(
                        "`{ident}` is listed twice in `{key}(...)`; list each field once"
                    )));
                }
                fields.push(ident.clone());
            }
            _ => return Err(field.error(how.clone())),
        }
        Ok(())
    })?;
    if fields.len() < 2 {
        return Err(syn::Error::new(span, how));
    }
    Ok(CompositeAttr {
        fields,
        unique,
        span,
    })
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

/// Parses `reads(A, B, ...)` into `out`. An entity listed twice is reported and parsing goes
/// on; listed in both lists, it is kept in `reads_all` (coarse is always correct), so that the
/// view still expands and the one mistake is the one error.
fn entity_list(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    list: &str,
    out: &mut Vec<syn::Path>,
    other: &[syn::Path],
) -> syn::Result<()> {
    meta.parse_nested_meta(|entity| {
        if entity.input.peek(syn::Token![=]) || entity.input.peek(syn::token::Paren) {
            return Err(entity.error(format!(
                "`{list}(...)` takes entity type names, like `{list}(Story, Chapter)`"
            )));
        }
        let name = path_string(&entity.path);
        let listed = |paths: &[syn::Path]| paths.iter().any(|p| path_string(p) == name);
        if listed(out) || listed(other) {
            cx.syn_error(entity.error(format!(
                "`{name}` is listed twice in `reads(...)`/`reads_all(...)`; list each entity once"
            )));
            if listed(out) || list == READS {
                return Ok(());
            }
        }
        out.push(entity.path.clone());
        Ok(())
    })
}

impl ViewAttrs {
    pub fn parse(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut out = ViewAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident(VIEW)) {
            let result = attr.parse_nested_meta(|meta| {
                let path = &meta.path;
                if path.is_ident(KEY) {
                    let s = string(&meta, KEY)?;
                    set(&mut out.key, s, &meta, VIEW, KEY)
                } else if path.is_ident(READS) {
                    out.seen_reads = true;
                    let other = out.reads_all.clone();
                    entity_list(cx, &meta, READS, &mut out.reads, &other)
                } else if path.is_ident(READS_ALL) {
                    out.seen_reads = true;
                    let other = out.reads.clone();
                    entity_list(cx, &meta, READS_ALL, &mut out.reads_all, &other)
                } else if path.is_ident(TTL) {
                    let v = ttl(&meta)?;
                    set(&mut out.ttl, v, &meta, VIEW, TTL)
                } else if path.is_ident(NAME) {
                    let s = string(&meta, NAME)?;
                    let v = Spanned {
                        value: s.value(),
                        span: s.span(),
                    };
                    set(&mut out.name, v, &meta, VIEW, NAME)
                } else if path.is_ident(CRATE) {
                    let s = string(&meta, CRATE)?;
                    let p: syn::Path = s.parse()?;
                    set(&mut out.krate, p, &meta, VIEW, CRATE)
                } else {
                    Err(unknown_key(&meta, VIEW, VIEW_KEYS, &[]))
                }
            });
            if let Err(err) = result {
                cx.syn_error(err);
            }
        }
        // An entity in both lists (reported above) is read coarsely.
        let coarse: Vec<String> = out.reads_all.iter().map(path_string).collect();
        out.reads.retain(|p| !coarse.contains(&path_string(p)));
        out
    }
}

impl StructAttrs {
    pub fn parse(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut out = StructAttrs::default();
        for attr in attrs.iter().filter(|a| is_cache(a)) {
            let result = attr.parse_nested_meta(|meta| {
                let path = &meta.path;
                if path.is_ident(TABLE) || path.is_ident(COLLECTION) {
                    // `collection` is the MongoDB word for the same thing; one of the two.
                    let key = if path.is_ident(TABLE) {
                        TABLE
                    } else {
                        COLLECTION
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
                    set(&mut out.table, v, &meta, CACHE, key)
                } else if path.is_ident(TTL) {
                    let v = ttl(&meta)?;
                    set(&mut out.ttl, v, &meta, CACHE, TTL)
                } else if path.is_ident(NEGATIVE_TTL) {
                    let v = negative_ttl(&meta)?;
                    set(&mut out.negative_ttl, v, &meta, CACHE, NEGATIVE_TTL)
                } else if path.is_ident(STALE_WHILE_REVALIDATE) {
                    let v = stale_while_revalidate(&meta)?;
                    set(
                        &mut out.stale_while_revalidate,
                        v,
                        &meta,
                        CACHE,
                        STALE_WHILE_REVALIDATE,
                    )
                } else if path.is_ident(RELATES_TO) {
                    let s = string(&meta, RELATES_TO)?;
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
                } else if path.is_ident(ORDER_BY) {
                    let s = string(&meta, ORDER_BY)?;
                    set(&mut out.order_by, s, &meta, CACHE, ORDER_BY)
                } else if path.is_ident(INDEX) || path.is_ident(UNIQUE) {
                    let composite = composite(&meta, path.is_ident(UNIQUE))?;
                    out.composites.push(composite);
                    Ok(())
                } else if path.is_ident(NAME) {
                    let s = string(&meta, NAME)?;
                    let v = Spanned {
                        value: s.value(),
                        span: s.span(),
                    };
                    set(&mut out.name, v, &meta, CACHE, NAME)
                } else if path.is_ident(CRATE) {
                    let s = string(&meta, CRATE)?;
                    let p: syn::Path = s.parse()?;
                    set(&mut out.krate, p, &meta, CACHE, CRATE)
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
                if path.is_ident(ID) {
                    set(&mut out.id, span, &meta, CACHE, ID)
                } else if path.is_ident(GENERATED) {
                    set(&mut out.generated, span, &meta, CACHE, GENERATED)
                } else if path.is_ident(INDEX) {
                    set(&mut out.index, span, &meta, CACHE, INDEX)
                } else if path.is_ident(UNIQUE) {
                    set(&mut out.unique, span, &meta, CACHE, UNIQUE)
                } else if path.is_ident(ORDER_BY) {
                    let s = string(&meta, ORDER_BY)?;
                    set(&mut out.order_by, s, &meta, CACHE, ORDER_BY)
                } else if path.is_ident(SKIP) {
                    set(&mut out.skip, span, &meta, CACHE, SKIP)
                } else if path.is_ident(VERSION) {
                    set(&mut out.version, span, &meta, CACHE, VERSION)
                } else if path.is_ident(REFERENCES) {
                    let s = string(&meta, REFERENCES)?;
                    set(&mut out.references, s, &meta, CACHE, REFERENCES)
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
