//! What keeps a commit whole when its caller goes away: it runs on a task of its own, and if
//! even that task is stopped during the database commit, the keys it touched are dropped.

use std::future::Future;

use crate::cache::{Bump, Change};
use crate::engine::Engine;
use crate::error::Error;
use crate::hooks::Source;
use crate::key::CacheKey;
use crate::store::TxOps;

/// Drops the keys of a commit whose database outcome is unknown because its future was
/// dropped during the database commit (see [`Transaction::commit`]). Forgotten once the
/// database answered.
pub(super) struct UnknownOutcome<'a> {
    pub engine: &'a Engine,
    pub changes: &'a [(CacheKey, Change)],
    pub bumps: &'a [Bump],
}

impl Drop for UnknownOutcome<'_> {
    fn drop(&mut self) {
        let drops = self
            .changes
            .iter()
            .map(|(key, _)| (key.clone(), Change::Remove))
            .collect();
        self.engine
            .apply(drops, self.bumps.to_vec(), Source::FailedCommit);
    }
}

/// Rolls back after `err`, and returns `err` whatever the rollback did: a failing rollback
/// must not hide why the transaction failed (the connection is closed either way).
pub(super) async fn rollback_after(conn: Box<dyn TxOps>, err: Error) -> Error {
    let _ = conn.rollback().await;
    err
}

/// Runs `work` on a task of its own and waits for it, so that dropping the caller's future
/// does not stop it halfway (a commit between the database and the cache, a `BEGIN` in
/// flight). `None` if the runtime shut down first. Outside a Tokio runtime it runs inline.
pub(super) async fn to_completion<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> Option<T> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return Some(work.await);
    };
    match runtime.spawn(work).await {
        Ok(done) => Some(done),
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(_) => None,
    }
}
