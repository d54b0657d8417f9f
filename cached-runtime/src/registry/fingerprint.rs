//! A fingerprint of this binary's invalidation graph, carried by every broadcast message.
//!
//! Two builds compute the same query keys for a write only if they agree on the entities,
//! their tables, key-forming fields, composite lookups, orders and relations, and on the views
//! and what they read. During a rolling deploy they may not: a receiver whose fingerprint
//! differs from the sender's applies the message conservatively (see `cache::wire`); it lives with the registry, which every layer above may read. The
//! fingerprint is a 64-bit FNV-1a hash of a canonical, sorted description of the graph: the
//! same in every process of one build, whatever the registration order or the addresses.

use std::sync::OnceLock;

/// This binary's graph fingerprint (never 0: 0 on the wire means "unknown").
pub(crate) fn fingerprint() -> u64 {
    static FINGERPRINT: OnceLock<u64> = OnceLock::new();
    *FINGERPRINT.get_or_init(|| fnv1a(describe().as_bytes()).max(1))
}

/// One line per entity and view, sorted.
fn describe() -> String {
    let mut lines: Vec<String> = super::entities()
        .map(|e| {
            let indexes: Vec<&str> = e.indexes.iter().map(|i| i.column).collect();
            let composites: Vec<&[&str]> = e.composites.iter().map(|c| c.columns).collect();
            let orders: Vec<_> = e
                .orders
                .iter()
                .map(|o| (o.by, o.column, o.descending))
                .collect();
            let relations: Vec<_> = e.relations.iter().map(|r| (r.target, r.column)).collect();
            format!(
                "entity {} {} table={} id={} indexes={indexes:?} composites={composites:?} \
                 orders={orders:?} relations={relations:?}",
                e.type_name, e.name, e.table, e.id_column
            )
        })
        .collect();
    lines.extend(super::views().map(|v| {
        let names = |metas: &[fn() -> &'static crate::entity::EntityMeta]| {
            let mut names: Vec<&str> = metas.iter().map(|m| m().type_name).collect();
            names.sort_unstable();
            names
        };
        format!(
            "view {} {} key={} reads={:?} reads_all={:?}",
            v.type_name,
            v.name,
            (v.key)().type_name,
            names(v.reads),
            names(v.reads_all)
        )
    }));
    lines.sort_unstable();
    lines.join("\n")
}

/// FNV-1a, 64 bits: stable across processes and builds (unlike `std`'s `RandomState`).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = Fnv1a::default();
    hash.add(bytes);
    hash.0
}

/// FNV-1a fed piece by piece; also a `fmt::Write`, so that `write!` hashes formatted text
/// without building a string.
pub(crate) struct Fnv1a(pub u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn add(&mut self, bytes: &[u8]) {
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(PRIME);
        }
    }
}

impl std::fmt::Write for Fnv1a {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.add(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_fingerprint_is_stable_within_a_build() {
        assert_eq!(fingerprint(), fingerprint());
        assert_ne!(fingerprint(), 0);
    }
}
