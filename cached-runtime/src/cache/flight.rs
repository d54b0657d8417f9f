//! Single flight: concurrent misses on one key run one database load.
//!
//! The first task to miss becomes the leader: it registers a [`Flight`] in the key's stripe,
//! takes the fill token and runs the load. Tasks that miss meanwhile subscribe to the flight and
//! receive the leader's result. A task only joins a flight that no commit has overtaken (the
//! stripe's stamp is not newer than the flight's token): a read that starts after a commit
//! returned never receives a value loaded before it. If the leader fails or is cancelled, the
//! waiting tasks start over and one of them leads a new load.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

use super::{Loaded, LocalCache, Token};
use crate::error::Result;
use crate::key::CacheKey;
use crate::stats::Counters;

/// The outcome a leader publishes: the load, or `Err(())` when it failed (followers retry).
type Outcome = Option<Result<Arc<Loaded>, ()>>;

/// A load in progress.
pub(crate) struct Flight {
    token: Token,
    outcome: watch::Sender<Outcome>,
}

enum Role {
    Lead(Arc<Flight>),
    Follow(Token, watch::Receiver<Outcome>),
}

/// Removes the leader's flight from its stripe, also when the leader is cancelled.
struct Unregister<'a> {
    cache: &'a LocalCache,
    key: &'a CacheKey,
    flight: &'a Arc<Flight>,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        let mut stripe = self.cache.stripe(self.key);
        if stripe
            .flights
            .get(self.key)
            .is_some_and(|f| Arc::ptr_eq(f, self.flight))
        {
            stripe.flights.remove(self.key);
            // An idle stripe holds no table: 4096 of them, each keeping the capacity of its
            // busiest moment, cost a megabyte however small the cache.
            if stripe.flights.is_empty() {
                stripe.flights.shrink_to(0);
            }
        }
    }
}

impl LocalCache {
    /// Loads `key` with `load` (given the fill token), sharing the load with concurrent callers,
    /// and fills the cache with the result unless a commit made it stale meanwhile.
    pub async fn load<F, Fut>(&self, key: &CacheKey, load: F) -> Result<Arc<Loaded>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded>>,
    {
        let mut load = Some(load);
        loop {
            match self.role(key) {
                Role::Follow(token, mut rx) => {
                    Counters::add(&self.counters.flight_joins, 1);
                    let outcome = match rx.wait_for(Option::is_some).await {
                        Ok(outcome) => outcome.clone(),
                        Err(_) => None,
                    };
                    match outcome {
                        Some(Ok(loaded)) if self.rows_still_current(&loaded, &token) => {
                            return Ok(loaded);
                        }
                        // The leader failed or was cancelled, or a commit changed one of the
                        // rows it returned (a non-key update leaves the query key alone):
                        // start over.
                        _ => {}
                    }
                }
                Role::Lead(flight) => {
                    let _unregister = Unregister {
                        cache: self,
                        key,
                        flight: &flight,
                    };
                    let load = load.take().expect("a caller leads at most one load");
                    Counters::add(&self.counters.loads, 1);
                    let result = load().await;
                    return match result {
                        Ok(loaded) => {
                            let loaded = Arc::new(loaded);
                            self.fill_loaded(key, &loaded, &flight.token);
                            flight.outcome.send_replace(Some(Ok(loaded.clone())));
                            Ok(loaded)
                        }
                        Err(err) => {
                            flight.outcome.send_replace(Some(Err(())));
                            Err(err)
                        }
                    };
                }
            }
        }
    }

    /// Whether no commit touched any row of a query result, or anything a view load read,
    /// since the load's token was taken. A follower checks this because it may have joined
    /// after such a commit returned.
    fn rows_still_current(&self, loaded: &Loaded, token: &Token) -> bool {
        loaded
            .rows
            .iter()
            .all(|(key, _)| self.admits_key(key, token))
            && loaded
                .reads
                .as_ref()
                .is_none_or(|reads| self.reads_current(reads, token))
    }

    fn role(&self, key: &CacheKey) -> Role {
        // A text key is also changed through its canonical form: read that stamp first (one
        // stripe lock at a time).
        let canonical = self
            .canonical(key)
            .map(|canonical| self.stripe(&canonical).stamp());
        let mut stripe = self.stripe(key);
        if let Some(flight) = stripe.flights.get(key) {
            let current = |stamp| self.admits(stamp, &flight.token, key);
            if current(stripe.stamp()) && canonical.is_none_or(current) {
                return Role::Follow(flight.token, flight.outcome.subscribe());
            }
        }
        let flight = Arc::new(Flight {
            token: self.token(key.namespace()),
            outcome: watch::channel(None).0,
        });
        stripe.flights.insert(key.clone(), flight.clone());
        Role::Lead(flight)
    }
}
