//! Link-time registration of entities and views, and the index from an entity to the views
//! that read it (with the `relates_to` path from the entity to each view's key).

use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;

use super::ViewMeta;
use crate::entity::EntityMeta;

/// An entity, registered by its derive.
#[doc(hidden)]
pub struct EntityRegistration(pub fn() -> &'static EntityMeta);

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

/// One `relates_to` edge followed from a row towards a view's key entity.
#[derive(Debug, Clone)]
pub(crate) struct Hop {
    /// The foreign-key column on the entity the hop starts from.
    pub column: &'static str,
    /// The entity the hop leads to.
    pub target: &'static EntityMeta,
}

/// How writes to an entity reach one view.
#[derive(Debug, Clone)]
pub(crate) enum Reach {
    /// Through these edges to the key entity (none: the entity is the key entity).
    Path(Vec<Hop>),
    /// Any write invalidates every instance (`reads_all`).
    All,
}

/// A view that reads an entity, and how.
#[derive(Debug, Clone)]
pub(crate) struct Reader {
    pub view: &'static ViewMeta,
    pub reach: Reach,
}

fn addr(meta: &'static EntityMeta) -> usize {
    std::ptr::from_ref(meta) as usize
}

/// The shortest `relates_to` path from `from` to `to` through the entities in `allowed`.
pub(crate) fn path(
    from: &'static EntityMeta,
    to: &'static EntityMeta,
    allowed: &[&'static EntityMeta],
) -> Option<Vec<Hop>> {
    let mut queue = VecDeque::from([(from, Vec::<Hop>::new())]);
    let mut seen = vec![addr(from)];
    while let Some((at, hops)) = queue.pop_front() {
        if addr(at) == addr(to) {
            return Some(hops);
        }
        for edge in at.relations {
            let target = (edge.target_meta)();
            let known = allowed.iter().any(|m| addr(m) == addr(target));
            if known && !seen.contains(&addr(target)) {
                seen.push(addr(target));
                let mut next = hops.clone();
                next.push(Hop {
                    column: edge.column,
                    target,
                });
                queue.push_back((target, next));
            }
        }
    }
    None
}

/// The views reading `meta`, built once from the registrations.
pub(crate) fn readers(meta: &'static EntityMeta) -> &'static [Reader] {
    static INDEX: OnceLock<HashMap<usize, Vec<Reader>>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let mut index: HashMap<usize, Vec<Reader>> = HashMap::new();
        for view in views() {
            let key = (view.key)();
            let declared: Vec<&'static EntityMeta> = view.reads.iter().map(|f| f()).collect();
            for &entity in &declared {
                // The compile-time check guarantees a path; without one, fall back to coarse.
                let reach = path(entity, key, &declared).map_or(Reach::All, Reach::Path);
                index
                    .entry(addr(entity))
                    .or_default()
                    .push(Reader { view, reach });
            }
            for entity in view.reads_all.iter().map(|f| f()) {
                index.entry(addr(entity)).or_default().push(Reader {
                    view,
                    reach: Reach::All,
                });
            }
        }
        for readers in index.values_mut() {
            readers.sort_by_key(|r| r.view.type_name);
        }
        index
    });
    index.get(&addr(meta)).map_or(&[], Vec::as_slice)
}

/// Compile-time path check used by the view derive: whether `from` reaches `to` in `graph`,
/// a list of `(type name, relates_to type names)`.
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
                let edges = graph[i].1;
                let mut e = 0;
                while e < edges.len() {
                    let mut j = 0;
                    while j < n {
                        if str_eq(graph[j].0, edges[e]) {
                            reached |= 1 << j;
                        }
                        j += 1;
                    }
                    e += 1;
                }
            }
            i += 1;
        }
        round += 1;
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
    fn finds_direct_and_chained_paths_only() {
        assert!(reaches(GRAPH, "Chapter", "Story"));
        assert!(reaches(GRAPH, "Scene", "Story"));
        assert!(reaches(GRAPH, "Scene", "Part"));
        assert!(reaches(GRAPH, "Story", "Story"));
        assert!(!reaches(GRAPH, "Character", "Story"));
        assert!(!reaches(GRAPH, "Story", "Scene"));
    }
}
