//! The attribute names the derives accept, defined once: the parser matches on these, and the
//! "expected one of ..." lists and typo suggestions are built from the same constants.

/// The entity attribute, `#[cache(...)]`.
pub const CACHE: &str = "cache";
/// The view attribute, `#[view(...)]`.
pub const VIEW: &str = "view";

/// `#[cache(table = "...")]` (SQL).
pub const TABLE: &str = "table";
/// `#[cache(collection = "...")]` (MongoDB; the same as `table`).
pub const COLLECTION: &str = "collection";
/// `#[cache(ttl = 60)]` / `#[view(ttl = 60)]`.
pub const TTL: &str = "ttl";
/// `#[cache(negative_ttl = 5)]`: how long an absent id stays cached (0: never).
pub const NEGATIVE_TTL: &str = "negative_ttl";
/// `#[cache(stale_while_revalidate = 30)]`: how long past its TTL an entry may be served while
/// one background refresh runs.
pub const STALE_WHILE_REVALIDATE: &str = "stale_while_revalidate";
/// `#[cache(order_by = "position")]` on a key-forming field (`page_by_<field>`), or
/// `#[cache(order_by = "created_at desc")]` on the struct (`page`).
pub const ORDER_BY: &str = "order_by";
/// `#[cache(relates_to = "Entity")]`.
pub const RELATES_TO: &str = "relates_to";
/// `#[cache(name = "...")]` / `#[view(name = "...")]`: the key prefix.
pub const NAME: &str = "name";
/// `#[cache(crate = "...")]` / `#[view(crate = "...")]`: the runtime crate's path.
pub const CRATE: &str = "crate";

/// `#[cache(id)]` on a field.
pub const ID: &str = "id";
/// `#[cache(id, generated)]`: the database (or, for an `ObjectId`, the client) makes the id.
pub const GENERATED: &str = "generated";
/// `#[cache(index)]` on a field, or `#[cache(index(a, b))]` (a composite index) on the struct.
pub const INDEX: &str = "index";
/// `#[cache(unique)]` on a field, or `#[cache(unique(a, b))]` on the struct: `get_by_<...>`.
pub const UNIQUE: &str = "unique";
/// `#[cache(references = "Entity")]` on a field.
pub const REFERENCES: &str = "references";
/// `#[cache(skip)]` on a field.
pub const SKIP: &str = "skip";
/// `#[cache(version)]` on a field: the optimistic-locking version.
pub const VERSION: &str = "version";

/// `#[view(key = "Entity")]`.
pub const KEY: &str = "key";
/// `#[view(reads(...))]`.
pub const READS: &str = "reads";
/// `#[view(reads_all(...))]`.
pub const READS_ALL: &str = "reads_all";

/// The keys `#[cache(...)]` accepts on a struct.
pub const STRUCT_KEYS: &[&str] = &[
    TABLE,
    COLLECTION,
    TTL,
    NEGATIVE_TTL,
    STALE_WHILE_REVALIDATE,
    RELATES_TO,
    INDEX,
    UNIQUE,
    ORDER_BY,
    NAME,
    CRATE,
];
/// The keys `#[cache(...)]` accepts on a field.
pub const FIELD_KEYS: &[&str] = &[
    ID, GENERATED, INDEX, UNIQUE, ORDER_BY, REFERENCES, SKIP, VERSION,
];
/// The keys `#[view(...)]` accepts.
pub const VIEW_KEYS: &[&str] = &[KEY, READS, READS_ALL, TTL, NAME, CRATE];
