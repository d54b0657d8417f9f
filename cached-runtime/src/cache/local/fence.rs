//! Fences: another instance's commit under way, announced before its database commit.
//!
//! A broadcast writer sends its invalidation *before* `COMMIT` (so that Redis's round trip
//! overlaps the database's) and a release after it. A receiver applies the first as usual
//! (drops the keys, stamps their stripes, bumps the entities) and also raises a fence over
//! everything that apply touched: until the release, no value of those stripes or entities
//! is stored, because a load may still read the database from before the commit. The
//! release applies the same keys again (refusing every load that read while the fence was
//! up) and only then lowers the fence. Counting per stripe and per entity slot keeps it
//! O(keys) and lets fences of several commits overlap.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::MutexGuard;

use super::{LocalCache, Stripe};
use crate::entity::Namespace;
use crate::key::CacheKey;
use crate::registry;

/// What one fenced apply raised: the stripes and entity slots to lower on its release.
#[derive(Debug, Default)]
pub(crate) struct Fence {
    pub(super) stripes: Vec<usize>,
    pub(super) slots: Vec<usize>,
}

impl LocalCache {
    /// Lowers a fence. Call it after the apply that ends it (the release), never before: a
    /// load that read while the fence was up is then refused by that apply's stamps.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn unfence(&self, fence: Fence) {
        for i in fence.stripes {
            let mut stripe = self.stripe_at(i);
            stripe.fences = stripe.fences.saturating_sub(1);
        }
        for i in fence.slots {
            let _ = self.fenced[i].fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1));
        }
    }

    /// Whether a fence is up over `meta` (over its queries too, for a query key).
    #[inline]
    pub(super) fn entity_fenced(&self, meta: &Namespace, query: bool) -> bool {
        let slot = 2 * registry::slot(meta);
        self.fenced[slot].load(SeqCst) != 0 || (query && self.fenced[slot + 1].load(SeqCst) != 0)
    }

    /// The stripe of `key`, locked; with `fence`, fenced first (and recorded there).
    pub(super) fn fence_stripe(
        &self,
        key: &CacheKey,
        fence: Option<&mut Fence>,
    ) -> MutexGuard<'_, Stripe> {
        let i = self.stripe_index(key);
        let mut stripe = self.stripe_at(i);
        if let Some(fence) = fence {
            stripe.fences += 1;
            fence.stripes.push(i);
        }
        stripe
    }
}
