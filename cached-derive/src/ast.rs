//! The entity model: the struct, its fields and their attributes, keeping the user's tokens so
//! that every error and every generated item points back at them.

use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Fields, Ident, LitStr, Type, Visibility};

use crate::attr::{FieldAttrs, StructAttrs, ViewAttrs};
use crate::ctxt::Ctxt;
use crate::names;

/// A struct deriving `CachedEntity`.
pub struct Entity<'a> {
    pub ident: &'a Ident,
    pub vis: &'a Visibility,
    pub attrs: StructAttrs,
    pub fields: Vec<Field<'a>>,
}

/// One named field.
pub struct Field<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
    pub attrs: FieldAttrs,
}

/// A `relates_to` edge resolved to its foreign-key field.
pub struct Relation {
    /// The target type, spanned at the user's string literal.
    pub target: syn::Path,
    pub lit: LitStr,
    /// Index of the foreign-key field in [`Entity::fields`].
    pub field: usize,
}

impl<'a> Entity<'a> {
    /// Reads the struct. Returns `None` (with errors recorded) for shapes that cannot be
    /// entities: enums, unions, tuple and unit structs.
    pub fn from_syn(cx: &Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let attrs = StructAttrs::parse(cx, &input.attrs);
        let ident = &input.ident;
        let named = match &input.data {
            Data::Struct(s) => match &s.fields {
                Fields::Named(named) => named,
                Fields::Unnamed(_) => {
                    cx.error_spanned_by(
                        &s.fields,
                        format!(
                            "`#[derive(CachedEntity)]` needs named fields, but `{ident}` is a tuple struct; \
                             name its fields (they become the table's columns)"
                        ),
                    );
                    return None;
                }
                Fields::Unit => {
                    cx.error_spanned_by(
                        ident,
                        format!(
                            "`#[derive(CachedEntity)]` needs named fields, but `{ident}` has none; \
                             add the table's columns as fields"
                        ),
                    );
                    return None;
                }
            },
            Data::Enum(e) => {
                cx.error_spanned_by(
                    e.enum_token,
                    format!(
                        "`#[derive(CachedEntity)]` only supports structs with named fields, and `{ident}` is an enum; \
                         an entity is one table row (to store an enum in a column, implement `cached_runtime::ToValue` for it)"
                    ),
                );
                return None;
            }
            Data::Union(u) => {
                cx.error_spanned_by(
                    u.union_token,
                    "`#[derive(CachedEntity)]` only supports structs with named fields",
                );
                return None;
            }
        };
        if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
            cx.error_spanned_by(
                &input.generics,
                format!("a cached entity cannot be generic; give `{ident}` concrete field types"),
            );
        }
        let fields = named
            .named
            .iter()
            .map(|f| Field {
                ident: f.ident.as_ref().expect("named field"),
                ty: &f.ty,
                attrs: FieldAttrs::parse(cx, &f.attrs),
            })
            .collect();
        Some(Entity {
            ident,
            vis: &input.vis,
            attrs,
            fields,
        })
    }

    /// The key prefix: `name`, or the snake_case type name.
    pub fn key_name(&self) -> String {
        names::key_name(self.attrs.name.as_ref(), self.ident)
    }

    /// The table: `table`, or the snake_case type name plus `s`.
    pub fn table(&self) -> String {
        match &self.attrs.table {
            Some(table) => table.value.clone(),
            None => format!("{}s", names::key_name(None, self.ident)),
        }
    }

    /// The runtime crate's path (`::cached_runtime` unless `crate = "..."`).
    pub fn krate(&self) -> syn::Path {
        names::krate(self.attrs.krate.as_ref())
    }

    /// The persisted fields (all but `skip`).
    pub fn persisted(&self) -> impl Iterator<Item = &Field<'a>> {
        self.fields.iter().filter(|f| f.attrs.skip.is_none())
    }

    /// A name derived from the type (`SceneKey` from `Scene` + `Key`), spanned at the type.
    pub fn derived_ident(&self, suffix: &str) -> Ident {
        names::derived_ident(self.ident, suffix)
    }
}

impl Field<'_> {
    /// The column (the field name without `r#`).
    pub fn column(&self) -> String {
        self.ident.unraw().to_string()
    }

    pub fn is_id(&self) -> bool {
        self.attrs.id.is_some()
    }

    /// A primitive integer type written as such (`i64`, `i32`, ...): gets atomic add operations.
    pub fn is_integer(&self) -> bool {
        const INTS: &[&str] = &["i8", "i16", "i32", "i64", "u8", "u16", "u32"];
        match self.ty {
            Type::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
                let seg = &p.path.segments[0];
                seg.arguments.is_none() && INTS.iter().any(|i| seg.ident == i)
            }
            _ => false,
        }
    }

    /// Whether the field is `i16`, `i32` or `i64` (what a version may be: every SQL backend
    /// has the type, and it widens to `i64` without loss).
    pub fn is_signed_integer(&self) -> bool {
        matches!(self.ty, Type::Path(p) if p.qself.is_none()
            && ["i16", "i32", "i64"].iter().any(|i| p.path.is_ident(i)))
    }

    /// Whether the field's type is written `Option<...>`.
    pub fn is_option(&self) -> bool {
        matches!(self.ty, Type::Path(p) if p.qself.is_none()
            && p.path.segments.last().is_some_and(|s| s.ident == "Option"))
    }

    /// The item type of a `Vec<T>` field (a list field), `Vec<u8>` (bytes) excepted.
    pub fn list_item(&self) -> Option<&Type> {
        let Type::Path(p) = self.ty else {
            return None;
        };
        let seg = p.path.segments.last()?;
        if p.qself.is_some() || seg.ident != "Vec" {
            return None;
        }
        let syn::PathArguments::AngleBracketed(args) = &seg.arguments else {
            return None;
        };
        match args.args.first() {
            Some(syn::GenericArgument::Type(item)) if args.args.len() == 1 => {
                let bytes = matches!(item, Type::Path(t) if t.path.is_ident("u8"));
                (!bytes).then_some(item)
            }
            _ => None,
        }
    }
}

/// A type deriving `CachedView`.
pub struct View<'a> {
    pub ident: &'a Ident,
    pub vis: &'a Visibility,
    pub attrs: ViewAttrs,
}

impl<'a> View<'a> {
    /// Reads the view type; any struct or enum without generics can be a view.
    pub fn from_syn(cx: &Ctxt, input: &'a DeriveInput) -> Self {
        if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
            cx.error_spanned_by(
                &input.generics,
                format!(
                    "a cached view cannot be generic; give `{}` concrete types",
                    input.ident
                ),
            );
        }
        View {
            ident: &input.ident,
            vis: &input.vis,
            attrs: ViewAttrs::parse(cx, &input.attrs),
        }
    }

    /// The key prefix: `name`, or the snake_case type name.
    pub fn key_name(&self) -> String {
        names::key_name(self.attrs.name.as_ref(), self.ident)
    }

    /// The runtime crate's path.
    pub fn krate(&self) -> syn::Path {
        names::krate(self.attrs.krate.as_ref())
    }
}
