//! Link-time registration of entities and views: the list of them, each one's slot (its
//! position, which indexes per-cache tables), the index from an entity to the views that
//! declare they read it, and the compile-time path check of the view derive.

mod fingerprint;

use std::collections::HashMap;
use std::sync::OnceLock;

use std::any::Any;

use crate::entity::{CachedEntity, EntityMeta, Namespace, ViewMeta};
use crate::value::Value;

pub(crate) use fingerprint::{fingerprint, Fnv1a};

/// An entity, registered by its derive: its description, and how to compare a cached row
/// with a stored one ([`RowCodec`]).
#[doc(hidden)]
pub struct EntityRegistration(pub fn() -> &'static EntityMeta, pub RowCodec);

/// A cached row and a stored one, both as the values the entity writes (so that they compare
/// whatever the driver's representation): what the auditor needs of an entity type it does
/// not know statically.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct RowCodec {
    cached: fn(&(dyn Any + Send + Sync)) -> Option<Vec<Value>>,
    stored: fn(Vec<Value>) -> Option<Vec<Value>>,
}

impl RowCodec {
    /// No codec: a description registered without an entity type (the auditor skips its
    /// rows).
    pub const NONE: RowCodec = RowCodec {
        cached: |_| None,
        stored: |_| None,
    };

    /// The codec of `E`.
    pub const fn of<E: CachedEntity>() -> Self {
        RowCodec {
            cached: |row| row.downcast_ref::<E>().map(E::values),
            stored: |row| E::from_values(row).ok().map(|row| row.values()),
        }
    }

    /// A cached row's values, if it is a row of this entity.
    pub(crate) fn cached(&self, row: &(dyn Any + Send + Sync)) -> Option<Vec<Value>> {
        (self.cached)(row)
    }

    /// A stored row's values as the entity would write them, if it decodes.
    pub(crate) fn stored(&self, row: Vec<Value>) -> Option<Vec<Value>> {
        (self.stored)(row)
    }
}

/// The row codec of a registered entity.
pub(crate) fn codec_of(meta: &EntityMeta) -> Option<RowCodec> {
    inventory::iter::<EntityRegistration>()
        .find(|r| std::ptr::eq((r.0)(), meta))
        .map(|r| r.1)
}

/// A view, registered by its derive.
#[doc(hidden)]
pub struct ViewRegistration(pub fn() -> &'static ViewMeta);

inventory::collect!(EntityRegistration);
inventory::collect!(ViewRegistration);

/// Every registered entity, in no particular order.
pub(crate) fn entities() -> impl Iterator<Item = &'static EntityMeta> {
    inventory::iter::<EntityRegistration>().map(|r| (r.0)())
}

/// Every registered view.
pub(crate) fn views() -> impl Iterator<Item = &'static ViewMeta> {
    inventory::iter::<ViewRegistration>().map(|r| (r.0)())
}

/// Every registered entity's and view's namespace, each once, and each one's slot.
struct Namespaces {
    all: Vec<&'static Namespace>,
    slots: HashMap<usize, usize>,
}

fn types() -> &'static Namespaces {
    static TYPES: OnceLock<Namespaces> = OnceLock::new();
    TYPES.get_or_init(|| {
        let mut types = Namespaces {
            all: Vec::new(),
            slots: HashMap::new(),
        };
        let entities = entities().map(|meta| &meta.namespace);
        for meta in entities.chain(views().map(|view| &view.namespace)) {
            if let std::collections::hash_map::Entry::Vacant(slot) = types.slots.entry(addr(meta)) {
                types.all.push(meta);
                slot.insert(types.all.len());
            }
        }
        if let Some(clash) = clash(&types.all) {
            panic!("{clash}");
        }
        types
    })
}

/// Two registered types that share a namespace name, described for the developer: keys are
/// named by it outside the process (the broadcast, the shared cache, `Cache-Invalidate`, the
/// admin router), where one type's entry would be taken for the other's. `None` if every name
/// is its type's own. A link-time error no derive can see (the two types are in different
/// modules or crates): reported when the first context is built.
fn clash(all: &[&'static Namespace]) -> Option<String> {
    let mut seen: HashMap<&str, &Namespace> = HashMap::new();
    for &meta in all {
        if let Some(first) = seen.insert(meta.name, meta) {
            let (a, b) = (first.type_name, meta.type_name);
            let who = match a == b {
                true => format!("two types named `{a}`"),
                false => format!("`{a}` and `{b}`"),
            };
            return Some(format!(
                "{} share the cache namespace `{}`: keys such as `{}:1` are named by it in the \
                 broadcast, the shared cache and `Cache-Invalidate`, where one type's entry would be \
                 taken for the other's. Give one of them its own with `#[cache(name = \"...\")]`",
                who,
                meta.name,
                meta.name
            ));
        }
    }
    None
}

/// Every registered entity's and view's namespace, each once.
pub(crate) fn namespaces() -> &'static [&'static Namespace] {
    &types().all
}

/// How many slots a per-cache table needs: one per registered type, plus the unused 0.
pub(crate) fn slot_count() -> usize {
    namespaces().len() + 1
}

/// The slot of a registered entity or view (`1..slot_count()`), remembered in its state after
/// the first lookup.
#[inline]
pub(crate) fn slot(meta: &Namespace) -> usize {
    match meta.__state.slot() {
        0 => first_slot(meta),
        slot => slot,
    }
}

#[cold]
fn first_slot(meta: &Namespace) -> usize {
    let slot = *types().slots.get(&addr(meta)).unwrap_or_else(|| {
        panic!(
            "`{}` is not registered; entities and views get their metadata only from \
             `#[derive(CachedEntity)]` / `#[derive(CachedView)]`",
            meta.type_name
        )
    });
    meta.__state.remember_slot(slot);
    slot
}

fn addr<T>(item: &T) -> usize {
    std::ptr::from_ref(item) as usize
}

/// The registered entity whose namespace this is, if it is an entity's (not a view's).
pub(crate) fn entity_of(namespace: &Namespace) -> Option<&'static EntityMeta> {
    entities().find(|meta| std::ptr::eq(&meta.namespace, namespace))
}

/// The other registered entities over the same table as `meta` (a narrow read model beside
/// the full entity, say): a write through any of them changes the rows the others cache.
/// Tables are compared by the name the entities give (`table`/`collection`), exactly.
pub(crate) fn same_table(meta: &'static EntityMeta) -> &'static [&'static EntityMeta] {
    static INDEX: OnceLock<HashMap<usize, Vec<&'static EntityMeta>>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let all: Vec<&'static EntityMeta> = entities().collect();
        let mut index: HashMap<usize, Vec<&'static EntityMeta>> = HashMap::new();
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                if i != j && a.table == b.table && !std::ptr::eq(*a, *b) {
                    index.entry(addr(*a)).or_default().push(b);
                }
            }
        }
        index
    });
    index.get(&addr(meta)).map_or(&[], Vec::as_slice)
}

/// The views that declared an entity in `reads(...)` and in `reads_all(...)`.
#[derive(Default)]
struct Readers {
    declared: Vec<&'static ViewMeta>,
    coarse: Vec<&'static ViewMeta>,
}

fn index() -> &'static HashMap<usize, Readers> {
    static INDEX: OnceLock<HashMap<usize, Readers>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut index: HashMap<usize, Readers> = HashMap::new();
        for view in views() {
            for entity in view.reads.iter().map(|f| f()) {
                index.entry(addr(entity)).or_default().declared.push(view);
            }
            for entity in view.reads_all.iter().map(|f| f()) {
                index.entry(addr(entity)).or_default().coarse.push(view);
            }
        }
        for readers in index.values_mut() {
            readers.declared.sort_by_key(|v| v.type_name);
            readers.coarse.sort_by_key(|v| v.type_name);
        }
        index
    })
}

/// The views that declared `reads(meta)`: their instances are dropped by what they read.
pub(crate) fn declared_readers(meta: &'static EntityMeta) -> &'static [&'static ViewMeta] {
    index().get(&addr(meta)).map_or(&[], |r| &r.declared)
}

/// The views that declared `reads_all(meta)`: any write to `meta` drops all their instances.
pub(crate) fn coarse_readers(meta: &'static EntityMeta) -> &'static [&'static ViewMeta] {
    index().get(&addr(meta)).map_or(&[], |r| &r.coarse)
}

/// Compile-time path check used by the view derive: whether `from` and `to` are connected in
/// `graph`, a list of `(type name, relates_to type names)`, by edges in either direction: a
/// child reaches its parent (Scene -> Chapter -> Story) and a parent its child (Post -> its
/// author User, read from the Post's foreign key). Invalidation does not depend on it (each
/// instance is dropped by what its load read); it documents what the view is about.
#[doc(hidden)]
pub const fn reaches(graph: &[(&str, &[&str])], from: &str, to: &str) -> bool {
    // Breadth-first over at most `graph.len()` rounds, marking reached nodes.
    let n = graph.len();
    assert!(n <= 64, "a view reads at most 64 entities");
    let mut reached: u64 = 0;
    let mut i = 0;
    while i < n {
        if str_eq(graph[i].0, from) {
            reached |= 1 << i;
        }
        i += 1;
    }
    let mut round = 0;
    while round < n {
        let mut i = 0;
        while i < n {
            if reached & (1 << i) != 0 {
                if str_eq(graph[i].0, to) {
                    return true;
                }
                let mut j = 0;
                while j < n {
                    if linked(graph, i, j) || linked(graph, j, i) {
                        reached |= 1 << j;
                    }
                    j += 1;
                }
            }
            i += 1;
        }
        round += 1;
    }
    false
}

/// Whether node `i` has a `relates_to` edge to node `j`.
const fn linked(graph: &[(&str, &[&str])], i: usize, j: usize) -> bool {
    let edges = graph[i].1;
    let mut e = 0;
    while e < edges.len() {
        if str_eq(edges[e], graph[j].0) {
            return true;
        }
        e += 1;
    }
    false
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::reaches;

    const GRAPH: &[(&str, &[&str])] = &[
        ("Story", &[]),
        ("Chapter", &["Story", "Part"]),
        ("Part", &["Story"]),
        ("Scene", &["Chapter"]),
        ("Character", &[]),
    ];

    #[test]
    fn finds_direct_and_chained_paths_in_either_direction_only() {
        assert!(reaches(GRAPH, "Chapter", "Story"));
        assert!(reaches(GRAPH, "Scene", "Story"));
        assert!(reaches(GRAPH, "Scene", "Part"));
        assert!(reaches(GRAPH, "Story", "Story"));
        // A parent read from a child's key (a post and its author): the edge points up.
        assert!(reaches(GRAPH, "Story", "Scene"));
        assert!(reaches(GRAPH, "Part", "Chapter"));
        assert!(!reaches(GRAPH, "Character", "Story"));
        assert!(!reaches(GRAPH, "Story", "Character"));
    }
}
