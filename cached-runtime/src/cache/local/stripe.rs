//! Stripes: the per-key-hash state behind the stale-fill guard (the last apply to touch
//! the stripe, the fences over it, the loads in flight for its keys).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, MutexGuard};

use super::{LocalCache, STRIPES};
use crate::cache::flight::Flight;
use crate::key::CacheKey;

/// Per-stripe state: the last applied commit, and the loads in flight for keys of the stripe.
#[derive(Default)]
pub(crate) struct Stripe {
    /// The sequence number of the last apply that touched the stripe.
    pub(super) last: u64,
    /// The stamp before the commit that set `last` (read while that commit applies).
    pub(super) prior: u64,
    /// Another instance's commits under way that reach the stripe ([`Fence`]).
    pub(super) fences: u32,
    pub flights: HashMap<CacheKey, Arc<Flight>>,
}

impl Stripe {
    /// What a value read under a token is checked against: the last apply to touch the
    /// stripe, or, while a fence is up, a stamp no token is older than (nothing is filled).
    #[inline]
    pub fn stamp(&self) -> u64 {
        match self.fences {
            0 => self.last,
            _ => u64::MAX,
        }
    }

    /// The stamp of the last commit other than `seq` (the one applying) to touch the stripe;
    /// `u64::MAX` while fenced (a write-through then turns into a drop).
    pub(super) fn before(&self, seq: u64) -> u64 {
        if self.fences > 0 {
            u64::MAX
        } else if self.last < seq {
            self.last
        } else {
            self.prior
        }
    }

    /// Marks the stripe touched by commit `seq` (applies are serialized, and `seq` is above
    /// every stamp set before).
    pub(super) fn raise(&mut self, seq: u64) {
        if self.last < seq {
            self.prior = self.last;
            self.last = seq;
        }
    }
}

impl LocalCache {
    pub(crate) fn stripe(&self, key: &CacheKey) -> MutexGuard<'_, Stripe> {
        self.stripe_at(self.stripe_index(key))
    }

    pub(super) fn stripe_index(&self, key: &CacheKey) -> usize {
        (self.hasher.hash_one(key) as usize) % STRIPES
    }

    pub(super) fn stripe_at(&self, i: usize) -> MutexGuard<'_, Stripe> {
        self.stripes[i].lock().unwrap_or_else(|e| e.into_inner())
    }
}
