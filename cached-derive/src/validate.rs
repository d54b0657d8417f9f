//! Cross-field rules: exactly one id, attribute combinations that make sense, identifiers that
//! are safe to put in SQL, and every `relates_to` edge resolved to its foreign-key field.

use heck::ToSnakeCase;
use syn::LitStr;

use crate::ast::{Entity, Relation, View};
use crate::attr::Spanned;
use crate::ctxt::Ctxt;
use crate::names::{last_segment, path_string};

/// Why a field forms query keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    Index,
    ForeignKey,
}

/// A validated entity, ready to expand.
pub struct Model<'a> {
    pub entity: Entity<'a>,
    /// Index of the id field in `entity.fields`.
    pub id: usize,
    pub relations: Vec<Relation>,
    /// Key-forming fields in field order.
    pub indexes: Vec<(usize, IndexKind)>,
    /// Integer fields that get `increment_`/`decrement_`.
    pub counters: Vec<usize>,
    /// List fields (`Vec<T>`) that get `append_`/`remove_`.
    pub lists: Vec<usize>,
    /// The `#[cache(version)]` field.
    pub version: Option<usize>,
    /// Whether the id is `#[cache(id, generated)]`: inserts take `NewScene`, without it.
    pub generated: bool,
    /// `#[cache(unique)]` fields: `get_by_<field>`.
    pub uniques: Vec<usize>,
    /// `index(a, b)` / `unique(a, b)` on the struct.
    pub composites: Vec<Composite>,
    /// Declared orders for keyset pages.
    pub orders: Vec<Order>,
}

/// An `order_by`: pages of the rows sharing field `by`'s value (or of every row), ordered by
/// field `column`.
pub struct Order {
    pub by: Option<usize>,
    pub column: usize,
    pub descending: bool,
}

/// A composite lookup: `find_by_a_and_b` / `count_by_a_and_b`, and `get_by_a_and_b` if unique.
pub struct Composite {
    /// The fields, in the order written.
    pub fields: Vec<usize>,
    pub unique: bool,
}

impl Model<'_> {
    /// Each distinct composite field list, in declaration order: an `index(a, b)` and a
    /// `unique(a, b)` share one query variant and one `find_by_a_and_b`.
    pub fn composite_lists(&self) -> Vec<&[usize]> {
        let mut lists: Vec<&[usize]> = Vec::new();
        for c in &self.composites {
            if !lists.contains(&c.fields.as_slice()) {
                lists.push(&c.fields);
            }
        }
        lists
    }
}

/// `story_id_and_status`: the method-name part of a lookup on `fields`.
pub fn lookup_name(entity: &Entity<'_>, fields: &[usize]) -> String {
    fields
        .iter()
        .map(|&i| entity.fields[i].column())
        .collect::<Vec<_>>()
        .join("_and_")
}

fn is_sql_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// `name = "..."` is spliced into every cache key: it must be a plain identifier.
fn check_key_prefix(cx: &Ctxt, name: Option<&Spanned<String>>, example: &str) {
    if let Some(name) = name {
        if !is_sql_identifier(&name.value) {
            cx.syn_error(syn::Error::new(
                name.span,
                format!(
                    "`name` is the cache key prefix and must look like `{example}` \
                     (letters, digits and `_`, not starting with a digit)"
                ),
            ));
        }
    }
}

fn check_names(cx: &Ctxt, entity: &Entity<'_>) {
    if let Some(table) = &entity.attrs.table {
        // Spliced into SQL as quoted identifiers, so nothing that could close a quote; `-` is
        // allowed because MongoDB collection names often have one.
        let part = |p: &str| {
            let mut chars = p.chars();
            matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
                && chars.all(|c| c == '_' || c == '-' || c.is_ascii_alphanumeric())
        };
        if !table.value.split('.').all(part) || table.value.split('.').count() > 2 {
            cx.syn_error(syn::Error::new(
                table.span,
                "`table` / `collection` must be a plain name like `scenes`, `scene-docs` or \
                 `schema.scenes` (letters, digits, `_` and `-`, starting with a letter or `_`)",
            ));
        }
    }
    check_key_prefix(cx, entity.attrs.name.as_ref(), "scene");
    if let (Some(swr), None) = (&entity.attrs.stale_while_revalidate, &entity.attrs.ttl) {
        cx.syn_error(syn::Error::new(
            swr.span,
            "`stale_while_revalidate` extends a `ttl`, and this entity has none (its entries \
             live until invalidated): add `ttl = <seconds>` or remove `stale_while_revalidate`",
        ));
    }
}

fn find_id(cx: &Ctxt, entity: &Entity<'_>) -> Option<usize> {
    let ids: Vec<usize> = (0..entity.fields.len())
        .filter(|&i| entity.fields[i].is_id())
        .collect();
    match ids.as_slice() {
        [] => {
            cx.error_spanned_by(
                entity.ident,
                format!(
                    "`{}` has no id field; mark its primary key with `#[cache(id)]`",
                    entity.ident
                ),
            );
            None
        }
        [one] => Some(*one),
        [first, rest @ ..] => {
            let first_name = entity.fields[*first].ident;
            for &i in rest {
                let field = &entity.fields[i];
                cx.syn_error(syn::Error::new(
                    field.attrs.id.expect("id field"),
                    format!(
                        "`{}` has two `#[cache(id)]` fields (`{first_name}` and `{}`); \
                         a cached entity has exactly one id: keep the primary key's",
                        entity.ident, field.ident
                    ),
                ));
            }
            None
        }
    }
}

fn check_combinations(cx: &Ctxt, entity: &Entity<'_>) {
    for field in &entity.fields {
        let a = &field.attrs;
        if let Some(skip) = a.skip {
            let conflict = [
                (a.id.is_some(), "id"),
                (a.index.is_some(), "index"),
                (a.unique.is_some(), "unique"),
                (a.references.is_some(), "references"),
            ];
            for (_, what) in conflict.iter().filter(|(on, _)| *on) {
                cx.syn_error(syn::Error::new(
                    skip,
                    format!(
                        "the field `{}` cannot be both `#[cache(skip)]` and `#[cache({what})]`: \
                         a skipped field is not stored, so it cannot identify or find rows",
                        field.ident
                    ),
                ));
            }
        }
        if let (None, Some(generated)) = (a.id, a.generated) {
            cx.syn_error(syn::Error::new(
                generated,
                format!(
                    "`generated` says the database makes the id, but `{}` is not the id; put \
                     it beside `id`: `#[cache(id, generated)]`",
                    field.ident
                ),
            ));
        }
        if let (Some(_), Some(unique)) = (a.id, a.unique) {
            cx.syn_error(syn::Error::new(
                unique,
                format!(
                    "`{}` is the id, which is already unique (`get`); remove `unique`",
                    field.ident
                ),
            ));
        }
        if let (Some(_), Some(index)) = (a.id, a.index) {
            cx.syn_error(syn::Error::new(
                index,
                format!(
                    "`{}` is the id, which is always a key (`get`, `get_many`); remove `index`",
                    field.ident
                ),
            ));
        }
        if let (Some(_), Some(references)) = (a.id, &a.references) {
            cx.error_spanned_by(
                references,
                format!(
                    "`{}` is the id and cannot also be a foreign key; put the reference on another field",
                    field.ident
                ),
            );
        }
    }
}

/// The `#[cache(version)]` field: at most one, a signed integer, not the id and not a key.
fn find_version(cx: &Ctxt, entity: &Entity<'_>, relations: &[Relation]) -> Option<usize> {
    let marked: Vec<usize> = (0..entity.fields.len())
        .filter(|&i| entity.fields[i].attrs.version.is_some())
        .collect();
    let mut version = None;
    for &i in &marked {
        let field = &entity.fields[i];
        let span = field.attrs.version.expect("a version field");
        let refuse = |why: String| cx.syn_error(syn::Error::new(span, why));
        let name = field.ident;
        if let Some(&first) = marked.first().filter(|&&first| first != i) {
            refuse(format!(
                "`{}` has two `#[cache(version)]` fields (`{}` and `{name}`); an entity has one \
                 version: keep one of them",
                entity.ident, entity.fields[first].ident
            ));
        } else if field.is_id() {
            refuse(format!(
                "`{name}` is the id, which never changes, so it cannot be the version; add a \
                 separate integer field `#[cache(version)] version: i64`"
            ));
        } else if field.attrs.skip.is_some() {
            refuse(format!(
                "`{name}` cannot be both `#[cache(skip)]` and `#[cache(version)]`: the version \
                 is stored with the row"
            ));
        } else if field.attrs.index.is_some() || relations.iter().any(|r| r.field == i) {
            refuse(format!(
                "`{name}` forms query keys (an index or a foreign key), so it cannot be the \
                 version, which every write changes; use a field of its own"
            ));
        } else if !field.is_signed_integer() {
            refuse(format!(
                "`{name}` is the version, which must be an integer field (`i64`, `i32` or \
                 `i16`): every write adds 1 to it in the database"
            ));
        } else {
            version = Some(i);
        }
    }
    version
}

/// `index(a, b)` / `unique(a, b)`: each field exists, is stored and is not the id; each list
/// appears once.
fn resolve_composites(cx: &Ctxt, entity: &Entity<'_>) -> Vec<Composite> {
    let mut out: Vec<Composite> = Vec::new();
    for attr in &entity.attrs.composites {
        let key = if attr.unique { "unique" } else { "index" };
        let mut fields = Vec::new();
        for ident in &attr.fields {
            let name = ident.to_string();
            let Some(i) = entity.fields.iter().position(|f| f.column() == name) else {
                let names: Vec<String> = entity.fields.iter().map(|f| f.column()).collect();
                let known: Vec<&str> = names.iter().map(String::as_str).collect();
                let hint = crate::attr::suggestion(&name, &known).unwrap_or_default();
                cx.error_spanned_by(
                    ident,
                    format!("`{}` has no field `{name}`{hint}", entity.ident),
                );
                continue;
            };
            let field = &entity.fields[i];
            if field.attrs.skip.is_some() {
                cx.error_spanned_by(
                    ident,
                    format!(
                        "`{name}` is `#[cache(skip)]`, so it is not stored and cannot be part \
                         of `{key}(...)`"
                    ),
                );
            } else if field.is_id() {
                cx.error_spanned_by(
                    ident,
                    format!(
                        "`{name}` is the id, which is already unique (`get`): a lookup with it \
                         finds one row at most; leave it out of `{key}(...)`"
                    ),
                );
            } else {
                fields.push(i);
            }
        }
        if fields.len() != attr.fields.len() {
            continue;
        }
        if out
            .iter()
            .any(|c| c.fields == fields && c.unique == attr.unique)
        {
            cx.syn_error(syn::Error::new(
                attr.span,
                format!("this `{key}(...)` is declared twice; remove one of them"),
            ));
            continue;
        }
        out.push(Composite {
            fields,
            unique: attr.unique,
        });
    }
    out
}

/// `order_by = "column"` / `"column desc"` (on `by`, or on the struct when `by` is `None`).
fn resolve_order(
    cx: &Ctxt,
    entity: &Entity<'_>,
    lit: &LitStr,
    by: Option<usize>,
    key_forming: &[usize],
) -> Option<Order> {
    let text = lit.value();
    let mut words = text.split_whitespace();
    let (name, direction) = (words.next().unwrap_or(""), words.next());
    let descending = match direction.map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => {
            cx.error_spanned_by(
                lit,
                "`order_by` takes a field and an optional direction, like \
                 `order_by = \"position\"` or `order_by = \"created_at desc\"`",
            );
            return None;
        }
    };
    if words.next().is_some() {
        cx.error_spanned_by(
            lit,
            "`order_by` takes one field (ties are broken by the id)",
        );
        return None;
    }
    let Some(column) = entity.fields.iter().position(|f| f.column() == name) else {
        let names: Vec<String> = entity.fields.iter().map(|f| f.column()).collect();
        let known: Vec<&str> = names.iter().map(String::as_str).collect();
        let hint = crate::attr::suggestion(name, &known).unwrap_or_default();
        cx.error_spanned_by(
            lit,
            format!(
                "`order_by` names `{name}`, but `{}` has no such field{hint}",
                entity.ident
            ),
        );
        return None;
    };
    let field = &entity.fields[column];
    if field.attrs.skip.is_some() {
        cx.error_spanned_by(
            lit,
            format!("`{name}` is `#[cache(skip)]`, so it is not stored and cannot order pages"),
        );
        return None;
    }
    if field.is_option() {
        cx.error_spanned_by(
            lit,
            format!(
                "`{name}` is an `Option`: keyset pages need an order column without nulls \
                 (make the field non-optional, or order by another field)"
            ),
        );
        return None;
    }
    if let Some(by) = by {
        if !key_forming.contains(&by) {
            cx.error_spanned_by(
                lit,
                format!(
                    "`order_by` on `{}` pages the rows sharing its value, so `{}` must be \
                     key-forming: add `index` to it (or declare the edge it is the foreign key of)",
                    entity.fields[by].ident, entity.fields[by].ident
                ),
            );
            return None;
        }
    }
    Some(Order {
        by,
        column,
        descending,
    })
}

fn parse_target(cx: &Ctxt, lit: &LitStr, key: &str) -> Option<syn::Path> {
    match lit.parse::<syn::Path>() {
        Ok(path) => Some(path),
        Err(_) => {
            cx.error_spanned_by(
                lit,
                format!("`{key}` takes the name of an entity type, like `{key} = \"Chapter\"`"),
            );
            None
        }
    }
}

fn resolve_relations(cx: &Ctxt, entity: &Entity<'_>) -> Vec<Relation> {
    let mut relations: Vec<Relation> = Vec::new();
    for lit in &entity.attrs.relates_to {
        let Some(target) = parse_target(cx, lit, "relates_to") else {
            continue;
        };
        let by_reference = entity.fields.iter().position(|f| {
            f.attrs
                .references
                .as_ref()
                .is_some_and(|r| r.value() == lit.value())
        });
        let conventional = format!("{}_id", last_segment(&target).to_snake_case());
        let field = by_reference.or_else(|| {
            entity
                .fields
                .iter()
                .position(|f| f.column() == conventional && f.attrs.references.is_none())
        });
        match field {
            Some(field) if entity.fields[field].attrs.skip.is_some() => cx.error_spanned_by(
                lit,
                format!(
                    "the foreign key of `relates_to = \"{}\"` is `{}`, which is `#[cache(skip)]`; \
                     a foreign key must be stored",
                    lit.value(),
                    entity.fields[field].ident
                ),
            ),
            Some(field) if entity.fields[field].is_id() => cx.error_spanned_by(
                lit,
                format!(
                    "the foreign key of `relates_to = \"{}\"` cannot be the id field",
                    lit.value()
                ),
            ),
            Some(field) => relations.push(Relation {
                target,
                lit: lit.clone(),
                field,
            }),
            None => cx.error_spanned_by(
                lit,
                format!(
                    "`relates_to = \"{target}\"` needs a foreign-key field: add `{conventional}` \
                     (the id of the related `{target}`) to `{ident}`, or mark the field that holds it \
                     `#[cache(references = \"{target}\")]`",
                    target = lit.value(),
                    ident = entity.ident,
                ),
            ),
        }
    }
    // A `references` with no matching `relates_to` declares the edge on its own.
    for (i, field) in entity.fields.iter().enumerate() {
        let Some(lit) = &field.attrs.references else {
            continue;
        };
        if let Some(other) = relations.iter().find(|r| r.lit.value() == lit.value()) {
            if other.field != i {
                cx.error_spanned_by(
                    lit,
                    format!(
                        "two fields reference `{}` (`{}` and `{}`); an entity has one edge per related type",
                        lit.value(),
                        entity.fields[other.field].ident,
                        field.ident
                    ),
                );
            }
            continue;
        }
        if let Some(target) = parse_target(cx, lit, "references") {
            relations.push(Relation {
                target,
                lit: lit.clone(),
                field: i,
            });
        }
    }
    relations
}

/// Validates the entity and resolves what expansion needs.
pub fn validate<'a>(cx: &Ctxt, entity: Entity<'a>) -> Option<Model<'a>> {
    check_names(cx, &entity);
    check_combinations(cx, &entity);
    let id = find_id(cx, &entity);
    let relations = resolve_relations(cx, &entity);
    let id = id?;
    let indexes = (0..entity.fields.len())
        .filter_map(|i| {
            if relations.iter().any(|r| r.field == i) {
                Some((i, IndexKind::ForeignKey))
            } else if !entity.fields[i].is_id()
                && (entity.fields[i].attrs.index.is_some()
                    || entity.fields[i].attrs.unique.is_some())
            {
                Some((i, IndexKind::Index))
            } else {
                None
            }
        })
        .collect::<Vec<_>>();
    let version = find_version(cx, &entity, &relations);
    let counters = (0..entity.fields.len())
        .filter(|&i| {
            let f = &entity.fields[i];
            f.is_integer()
                && !f.is_id()
                && f.attrs.version.is_none()
                && f.attrs.skip.is_none()
                && !relations.iter().any(|r| r.field == i)
        })
        .collect();
    let lists = (0..entity.fields.len())
        .filter(|&i| {
            let f = &entity.fields[i];
            f.list_item().is_some() && !f.is_id() && f.attrs.skip.is_none()
        })
        .collect();
    let generated = entity.fields[id].attrs.generated.is_some();
    let uniques = (0..entity.fields.len())
        .filter(|&i| {
            let f = &entity.fields[i];
            f.attrs.unique.is_some() && !f.is_id() && f.attrs.skip.is_none()
        })
        .collect();
    let composites = resolve_composites(cx, &entity);
    let key_forming: Vec<usize> = indexes.iter().map(|(i, _)| *i).collect();
    let mut orders = Vec::new();
    for (i, field) in entity.fields.iter().enumerate() {
        if let Some(lit) = &field.attrs.order_by {
            orders.extend(resolve_order(cx, &entity, lit, Some(i), &key_forming));
        }
    }
    if let Some(lit) = &entity.attrs.order_by {
        orders.extend(resolve_order(cx, &entity, lit, None, &key_forming));
    }
    Some(Model {
        entity,
        id,
        relations,
        indexes,
        counters,
        lists,
        version,
        generated,
        uniques,
        composites,
        orders,
    })
}

/// A validated view, ready to expand.
pub struct ViewModel<'a> {
    pub view: View<'a>,
    /// The key entity, spanned at the user's string literal.
    pub key: syn::Path,
    /// Entities read precisely, the key entity first.
    pub reads: Vec<syn::Path>,
    /// Entities read coarsely.
    pub reads_all: Vec<syn::Path>,
}

fn same_path(a: &syn::Path, b: &syn::Path) -> bool {
    path_string(a) == path_string(b)
}

/// Validates a view's attributes: a key entity is required, names must be valid.
pub fn validate_view<'a>(cx: &Ctxt, view: View<'a>) -> Option<ViewModel<'a>> {
    check_key_prefix(cx, view.attrs.name.as_ref(), "story_outline");
    let Some(lit) = view.attrs.key.clone() else {
        cx.error_spanned_by(
            view.ident,
            format!(
                "`{}` needs `#[view(key = \"Entity\", reads(...))]`: the entity whose id keys the \
                 view, and the entities its loader reads",
                view.ident
            ),
        );
        return None;
    };
    let key = parse_target(cx, &lit, "key")?;
    if view.attrs.reads_all.iter().any(|p| same_path(p, &key)) {
        cx.error_spanned_by(
            &lit,
            "the key entity is read precisely (by its id); remove it from `reads_all(...)`",
        );
    }
    let mut reads = vec![key.clone()];
    reads.extend(
        view.attrs
            .reads
            .iter()
            .filter(|p| !same_path(p, &key))
            .cloned(),
    );
    let reads_all = view.attrs.reads_all.clone();
    Some(ViewModel {
        view,
        key,
        reads,
        reads_all,
    })
}

#[cfg(test)]
mod tests {
    use super::is_sql_identifier;

    #[test]
    fn sql_identifiers() {
        assert!(is_sql_identifier("scenes"));
        assert!(is_sql_identifier("_x9"));
        assert!(!is_sql_identifier("9x"));
        assert!(!is_sql_identifier("a-b"));
        assert!(!is_sql_identifier("a\"; drop"));
        assert!(!is_sql_identifier(""));
    }
}
