//! The traits `#[derive(CachedEntity)]` implements, and the static description of an entity.
//!
//! An entity's [`EntityMeta`] is the compile-time half of the invalidation graph: its table,
//! columns, the fields that form query keys (indexes and foreign keys) and its `relates_to`
//! edges. The runtime reads it to build SQL, keys and invalidation plans; nothing about an
//! entity is registered at start-up.

use std::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::value::{DecodeError, KeyPart, KeyValue, ToValue, Value, ValueKind};

/// A database row type with a cache in front of it. Derive it: `#[derive(CachedEntity)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a cached entity",
    label = "`{Self}` does not derive `CachedEntity`",
    note = "add `#[derive(CachedEntity)]` (with `#[cache(table = \"...\")]` and an `#[cache(id)]` field) to `{Self}`"
)]
pub trait CachedEntity: Clone + Send + Sync + Unpin + 'static {
    /// The type of the `#[cache(id)]` field.
    type Id: KeyPart;
    /// The generated patch struct (`SceneUpdate` for `Scene`).
    type Update: Patch<Self>;

    /// The type name, for compile-time graph checks.
    const TYPE_NAME: &'static str;
    /// The type names of the `relates_to` targets, for compile-time graph checks.
    const RELATES_TO: &'static [&'static str];

    /// The static description of this entity.
    fn meta() -> &'static EntityMeta;

    /// This row's id.
    fn id(&self) -> &Self::Id;

    /// The persisted fields' values, in the order of [`EntityMeta::columns`].
    fn values(&self) -> Vec<Value>;

    /// The entity from one value per column, in the order of [`EntityMeta::columns`] (the
    /// inverse of [`CachedEntity::values`]; `skip` fields get their `Default`). Every store
    /// decodes rows through it.
    fn from_values(row: Vec<Value>) -> Result<Self, DecodeError>;

    /// The key-forming fields' values, in the order of [`EntityMeta::indexes`], followed by
    /// each composite's values (in the order of [`EntityMeta::composites`] and their columns),
    /// then each order's column value (in the order of [`EntityMeta::orders`]).
    fn index_values(&self) -> Vec<KeyValue>;

    /// The `#[cache(version)]` field's value, if the entity has one.
    fn version(&self) -> Option<i64> {
        None
    }

    /// The bytes this row's fields own on the heap (strings, lists, bytes), for a cache
    /// bounded by bytes. The derive sums [`ToValue::heap_size`] over the fields.
    fn heap_size(&self) -> usize {
        self.values().iter().map(Value::heap_size).sum()
    }
}

/// The insert shape of an entity whose id the database generates (`#[cache(id, generated)]`):
/// the generated `NewScene` for `Scene`, every persisted field but the id and the version.
pub trait NewRow: Send + Sync {
    /// The entity a stored row of this shape is.
    type Entity: CachedEntity;

    /// One value per column of the entity, in the order of [`EntityMeta::columns`]: the id's
    /// slot holds a null when the database makes the id, or the id made here
    /// ([`GeneratedId::generate`]).
    fn values(&self) -> Vec<Value>;
}

/// An id type the database (or, for an `ObjectId`, this process) can generate:
/// `#[cache(id, generated)]` requires it of the id field.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a generated id",
    label = "`#[cache(id, generated)]` needs an integer or an `ObjectId` id",
    note = "a generated id is an `i64` or `i32` (PostgreSQL `BIGSERIAL`/identity, MySQL `AUTO_INCREMENT`, SQLite `INTEGER PRIMARY KEY`) or a `bson::oid::ObjectId` (made by the client, on any store); for any other id, remove `generated` and supply the id in the row you insert"
)]
pub trait GeneratedId: KeyPart + ToValue {
    /// The id's slot in an inserted row: `Value::Null` when the database makes it (integers),
    /// or a new id made here (`ObjectId`).
    fn generate() -> Value;
}

impl GeneratedId for i64 {
    fn generate() -> Value {
        Value::Null(ValueKind::Int)
    }
}

impl GeneratedId for i32 {
    fn generate() -> Value {
        Value::Null(ValueKind::Int)
    }
}

#[cfg(feature = "mongo")]
impl GeneratedId for mongodb::bson::oid::ObjectId {
    fn generate() -> Value {
        Value::ObjectId(mongodb::bson::oid::ObjectId::new().bytes())
    }
}

/// A `relates_to` edge: `Scene: RelatesTo<Chapter>` means a scene belongs to a chapter.
pub trait RelatesTo<T: CachedEntity>: CachedEntity {
    /// The name of the foreign-key field.
    const FOREIGN_KEY: &'static str;

    /// The id of the related row, or `None` when the foreign key is null.
    fn related_id(&self) -> Option<T::Id>;
}

/// The generated patch struct of an entity: each field `Some(new value)` or `None` (unchanged).
pub trait Patch<E>: Default + Clone + Send + Sync + 'static {
    /// The `(column, value)` pairs this patch assigns. Whether they change any cache key is
    /// the runtime's to decide, from the entity's metadata ([`EntityMeta::forms_keys`]).
    fn assignments(&self) -> Vec<(&'static str, Value)>;
}

/// What entities and views share: the cache namespace their entries live in (keys
/// `name:...`, one TTL, one generation to invalidate them all at once).
#[derive(Debug)]
pub struct Namespace {
    /// Key prefix (`scene`, `story_outline`): the `name` attribute, or the snake_case type
    /// name.
    pub name: &'static str,
    /// The Rust type name (`Scene`, `StoryOutline`).
    pub type_name: &'static str,
    /// How long entries live in the cache; `None` means until invalidated.
    pub ttl: Option<Duration>,
    /// How long the knowledge that an id does not exist (a negative entry) lives: `None` for
    /// as long as any entry ([`Namespace::ttl`]); `Some(Duration::ZERO)` to never cache it.
    pub negative_ttl: Option<Duration>,
    /// How long past its TTL an entry may still be served while one background refresh runs
    /// (`#[cache(stale_while_revalidate = 30)]`); never an invalidated entry.
    pub stale_while_revalidate: Option<Duration>,
    #[doc(hidden)]
    pub __state: EntityState,
}

/// What the derive knows about an entity, as static data: its namespace (reachable as
/// `meta.name`, `meta.type_name`, `meta.ttl`) and the shape of its table.
#[derive(Debug)]
pub struct EntityMeta {
    /// The entity's cache namespace.
    pub namespace: Namespace,
    /// The table (or collection) the rows live in.
    pub table: &'static str,
    /// The id column.
    pub id_column: &'static str,
    /// The persisted columns in field order (the id included, `skip` fields excluded).
    pub columns: &'static [&'static str],
    /// The kind of each column's value, in the order of [`EntityMeta::columns`]: how a store
    /// reads the column back.
    pub kinds: &'static [ValueKind],
    /// The key-forming fields: each `#[cache(index)]` field and each foreign key.
    pub indexes: &'static [IndexMeta],
    /// The composite lookups (`#[cache(index(a, b))]`, `#[cache(unique(a, b))]`): their
    /// values follow the single fields' in [`CachedEntity::index_values`].
    pub composites: &'static [CompositeMeta],
    /// The declared orders (`order_by`): each gives `page_by_<by>` (or `page` for the whole
    /// table); their columns' values follow the composites' in
    /// [`CachedEntity::index_values`].
    pub orders: &'static [OrderMeta],
    /// The `relates_to` edges.
    pub relations: &'static [RelationMeta],
    /// Integer fields that have `increment_`/`decrement_` operations.
    pub counters: &'static [&'static str],
    /// The `#[cache(version)]` column, if any: set to 1 by an insert and incremented by every
    /// write through the repository, in the same statement.
    pub version: Option<&'static str>,
}

impl Deref for EntityMeta {
    type Target = Namespace;

    fn deref(&self) -> &Namespace {
        &self.namespace
    }
}

/// A field that forms query keys.
#[derive(Debug)]
pub struct IndexMeta {
    /// The column (and field) name.
    pub column: &'static str,
    /// Whether the field was marked `#[cache(index)]` or is the foreign key of an edge.
    pub kind: IndexKind,
}

/// A lookup on several fields together: `find_by_story_id_and_status`, cached as
/// `scene?story_id=3&status=draft`.
#[derive(Debug)]
pub struct CompositeMeta {
    /// The columns, in the order declared.
    pub columns: &'static [&'static str],
    /// Declared `unique(...)`: also generates `get_by_<a>_and_<b>`.
    pub unique: bool,
}

/// An order for keyset pages: `#[cache(index, order_by = "position")]` on a field (pages of
/// the rows sharing that field's value) or `#[cache(order_by = "created_at desc")]` on the
/// struct (pages of every row). Ties are broken by the id.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct OrderMeta {
    /// The key-forming column whose value selects the rows (`None`: every row).
    pub by: Option<&'static str>,
    /// The column the rows are ordered by.
    pub column: &'static str,
    /// Descending (`"... desc"`).
    pub descending: bool,
}

/// Why a field forms query keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// `#[cache(index)]`.
    Index,
    /// The foreign key of a `relates_to` edge.
    ForeignKey,
}

/// A `relates_to` edge in the invalidation graph.
#[derive(Debug)]
pub struct RelationMeta {
    /// The related entity's type name.
    pub target: &'static str,
    /// The foreign-key column on this entity.
    pub column: &'static str,
    /// The related entity's description.
    pub target_meta: fn() -> &'static EntityMeta,
}

/// What the derive knows about a view.
#[derive(Debug)]
pub struct ViewMeta {
    /// The view's cache namespace (its keys are `name:<key id>`, its TTL is the view's).
    pub namespace: Namespace,
    /// The key entity.
    pub key: fn() -> &'static EntityMeta,
    /// Entities read precisely (each reaches the key entity); the key entity included.
    pub reads: &'static [fn() -> &'static EntityMeta],
    /// Entities any write to which invalidates every instance of the view.
    pub reads_all: &'static [fn() -> &'static EntityMeta],
}

impl Deref for ViewMeta {
    type Target = Namespace;

    fn deref(&self) -> &Namespace {
        &self.namespace
    }
}

/// Mutable per-namespace state kept beside the static description.
#[doc(hidden)]
#[derive(Debug)]
pub struct EntityState {
    /// This entity's position among the registered entities and views, plus one (0 until
    /// first used): indexes per-cache tables such as generations.
    slot: AtomicU32,
}

impl EntityState {
    /// A fresh state, for generated `static` items.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        EntityState {
            slot: AtomicU32::new(0),
        }
    }

    /// The slot remembered by [`EntityState::remember_slot`], 0 if none yet.
    #[inline]
    pub(crate) fn slot(&self) -> usize {
        self.slot.load(Ordering::Relaxed) as usize
    }

    /// Remembers the slot the registry assigned.
    pub(crate) fn remember_slot(&self, slot: usize) {
        self.slot.store(slot as u32, Ordering::Relaxed);
    }
}

impl EntityMeta {
    /// The position of a column in [`EntityMeta::columns`].
    pub(crate) fn column_position(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| *c == column)
    }

    /// The kind a store reads `column` as, as a one-element slice of [`EntityMeta::kinds`]
    /// (what a statement reading that one column is told); `None` if there is no such
    /// column.
    pub(crate) fn column_kind(&self, column: &str) -> Option<&[ValueKind]> {
        let at = self.column_position(column)?;
        Some(&self.kinds[at..=at])
    }

    /// Whether a write that assigns `column` can change which cache keys the row belongs to:
    /// the column is an `#[cache(index)]` field or a foreign key, part of a composite or
    /// unique lookup, or the selector or the sort column of an order (`order_by`). This is
    /// the one definition of "key-forming" every write path asks (patches, increments,
    /// decrements, conditional updates); the graph's `query_keys` then says which keys.
    pub fn forms_keys(&self, column: &str) -> bool {
        self.indexes.iter().any(|i| i.column == column)
            || self.composites.iter().any(|c| c.columns.contains(&column))
            || self
                .orders
                .iter()
                .any(|o| o.column == column || o.by == Some(column))
    }

    /// Whether any of these assignments writes a key-forming column ([`EntityMeta::forms_keys`]).
    pub(crate) fn assigns_keys(&self, assignments: &[(&'static str, Value)]) -> bool {
        assignments
            .iter()
            .any(|(column, _)| self.forms_keys(column))
    }

    /// The position of a key-forming column in [`EntityMeta::indexes`].
    pub fn index_position(&self, column: &str) -> Option<usize> {
        self.indexes.iter().position(|i| i.column == column)
    }
}
