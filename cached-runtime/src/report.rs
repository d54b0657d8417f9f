//! What a commit (or a manual invalidation) did to the cache, as the caller sees it.

use std::fmt;

use crate::key::CacheKey;

/// What a commit did to the cache: the keys it dropped or rewrote (queries first).
///
/// Forward these to whatever else caches the same data (an HTTP layer's client caches, say).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitReport {
    pub(crate) keys: Vec<CacheKey>,
    pub(crate) entities: Vec<&'static str>,
    /// The namespace names of `entities`, in the same order: unique where type names need not
    /// be (two modules may each have a `Ticket`).
    pub(crate) namespaces: Vec<&'static str>,
}

impl CommitReport {
    /// The keys invalidated, queries first.
    pub fn keys(&self) -> &[CacheKey] {
        &self.keys
    }

    /// The keys as strings (`scene:42`, `scene?status=draft`, ...).
    pub fn key_strings(&self) -> Vec<String> {
        self.keys.iter().map(ToString::to_string).collect()
    }

    /// Entities and views invalidated as a whole (by type name): `invalidate_entity`, a view
    /// declared `reads_all`, a raw write that `touches_all`.
    pub fn entities(&self) -> &[&'static str] {
        &self.entities
    }

    /// Whether the commit invalidated nothing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.entities.is_empty()
    }

    /// Whether the commit invalidated this key.
    pub fn contains(&self, key: &CacheKey) -> bool {
        self.keys.contains(key)
    }
}

impl fmt::Display for CommitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalidated {} key(s)", self.keys.len())?;
        for (i, key) in self.keys.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { ", " })?;
            write!(f, "{key}")?;
        }
        for entity in &self.entities {
            write!(f, "; all of {entity}")?;
        }
        Ok(())
    }
}
