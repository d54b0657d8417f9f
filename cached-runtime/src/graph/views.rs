//! Which whole views a write invalidates.
//!
//! View instances are dropped by what their loads read (see `cache::deps`): the commit only
//! records the keys it changes, and the apply finds the instances that read them. What is left
//! here is the explicit, coarse declaration `reads_all(Entity)`: any write to `Entity` drops
//! every instance of the view at once (a generation bump, O(1)).

use crate::cache::Bump;
use crate::entity::EntityMeta;
use crate::registry::coarse_readers;

/// Adds a whole-view bump for every view that declared `reads_all` of `meta`.
pub(crate) fn coarse_bumps(meta: &'static EntityMeta, bumps: &mut Vec<Bump>) {
    for view in coarse_readers(meta) {
        Bump::push(bumps, Bump::Entity(&view.namespace));
    }
}
