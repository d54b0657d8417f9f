//! Which view instances a transaction's writes invalidate.
//!
//! Each write leaves a [`ViewSeed`] (the row's id and its key-forming values before and after)
//! when some view reads its entity. At commit, before the database commit, each seed is walked
//! along the `relates_to` path of every view that reads the entity: the first foreign key is in
//! the seed; each further hop reads the intermediate row's foreign key through the transaction
//! (so it sees the transaction's own writes) with a shared lock (so no concurrent transaction
//! can move the intermediate row to another key before this one commits). The result is the
//! exact set of view keys, plus a whole-view bump for `reads_all` views.
//!
//! MongoDB has no shared row locks (and a no-op write does not conflict), so on that store the
//! chains are walked a second time right after the database commit and before the cache apply,
//! outside the transaction ([`recheck_chains`]): a concurrent move of an intermediate row that
//! the first walk missed is then seen, and its view instance is dropped by the commit's one
//! apply, under the same stale-fill guard.

use crate::cache::Bump;
use crate::entity::EntityMeta;
use crate::error::Result;
use crate::key::CacheKey;
use crate::store::Exec;
use crate::value::KeyValue;
use crate::view::registry::{readers, Reach};

/// What a write tells the view graph: the row, and its key-forming values before and/or after.
#[derive(Clone)]
pub(crate) struct ViewSeed {
    pub meta: &'static EntityMeta,
    pub id: KeyValue,
    pub values: Vec<Vec<KeyValue>>,
}

impl ViewSeed {
    /// A seed if any view reads `meta`, else `None` (the common case costs one lookup).
    pub fn new(
        meta: &'static EntityMeta,
        id: KeyValue,
        old: Option<Vec<KeyValue>>,
        new: Option<Vec<KeyValue>>,
    ) -> Option<Self> {
        if readers(meta).is_empty() {
            return None;
        }
        let mut values: Vec<Vec<KeyValue>> = old.into_iter().collect();
        if let Some(new) = new {
            if !values.contains(&new) {
                values.push(new);
            }
        }
        Some(ViewSeed { meta, id, values })
    }
}

/// The view keys and whole-view bumps the seeds lead to.
pub(crate) async fn resolve(
    exec: &mut Exec<'_>,
    seeds: &[ViewSeed],
) -> Result<(Vec<CacheKey>, Vec<Bump>)> {
    walk(exec, seeds, false).await
}

/// After a commit on a store without shared row locks: the view keys that chains (paths of
/// two hops or more) lead to now, and the views to bump as a whole. If the walk fails, every
/// view reached through a chain is bumped as a whole, which is never wrong.
pub(crate) async fn recheck_chains(
    store: &crate::store::Store,
    seeds: &[ViewSeed],
) -> (Vec<CacheKey>, Vec<Bump>) {
    match walk(&mut Exec::Pool(store), seeds, true).await {
        Ok(found) => found,
        Err(_) => {
            let mut bumps: Vec<Bump> = Vec::new();
            for seed in seeds {
                for reader in readers(seed.meta) {
                    if matches!(&reader.reach, Reach::Path(hops) if hops.len() > 1) {
                        push_bump(&mut bumps, Bump::Entity(reader.view.entity));
                    }
                }
            }
            (Vec::new(), bumps)
        }
    }
}

/// Adds a whole-view bump unless the same bump is already there.
pub(crate) fn push_bump(bumps: &mut Vec<Bump>, bump: Bump) {
    let known = bumps.iter().any(|b| match (b, &bump) {
        (Bump::Entity(x), Bump::Entity(y)) | (Bump::Queries(x), Bump::Queries(y)) => {
            std::ptr::eq(*x, *y)
        }
        _ => false,
    });
    if !known {
        bumps.push(bump);
    }
}

async fn walk(
    exec: &mut Exec<'_>,
    seeds: &[ViewSeed],
    chains_only: bool,
) -> Result<(Vec<CacheKey>, Vec<Bump>)> {
    let mut keys: Vec<CacheKey> = Vec::new();
    let mut bumps: Vec<Bump> = Vec::new();
    for seed in seeds {
        for reader in readers(seed.meta) {
            let view = reader.view.entity;
            let hops = match &reader.reach {
                Reach::Path(hops) if chains_only && hops.len() < 2 => continue,
                Reach::All if chains_only => continue,
                Reach::All => {
                    push_bump(&mut bumps, Bump::Entity(view));
                    continue;
                }
                Reach::Path(hops) => hops,
            };
            let Some((first, rest)) = hops.split_first() else {
                push_unique(&mut keys, CacheKey::row(view, seed.id.clone()));
                continue;
            };
            let position = seed
                .meta
                .index_position(first.column)
                .expect("a relates_to foreign key is key-forming");
            for values in &seed.values {
                let mut id = values[position].clone();
                let mut from = first.target;
                for hop in rest {
                    if id == KeyValue::Null {
                        break;
                    }
                    id = exec
                        .fetch_column(from, hop.column, &id)
                        .await?
                        .unwrap_or(KeyValue::Null);
                    from = hop.target;
                }
                if id != KeyValue::Null {
                    push_unique(&mut keys, CacheKey::row(view, id));
                }
            }
        }
    }
    Ok((keys, bumps))
}

fn push_unique(keys: &mut Vec<CacheKey>, key: CacheKey) {
    if !keys.contains(&key) {
        keys.push(key);
    }
}
