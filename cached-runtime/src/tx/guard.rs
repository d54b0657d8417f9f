//! What keeps a commit whole when its caller goes away: it moves to a task of its own, and if
//! even that task is stopped during the database commit, the keys it touched are dropped.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

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

/// Runs `work` to its end even if the caller stops waiting: polled in place while the caller
/// waits (no task, no scheduler hop on the normal path), and handed to a task of its own if
/// the caller's future is dropped first (a timeout, a client that hung up), so that a commit
/// cannot stop between the database and the cache, nor a `BEGIN` halfway. If no runtime can
/// take it (it is shutting down), `work` is dropped, and its own guards run
/// ([`UnknownOutcome`]).
pub(crate) struct RunToEnd<T: Send + 'static> {
    work: Option<Pin<Box<dyn Future<Output = T> + Send + 'static>>>,
}

impl<T: Send + 'static> RunToEnd<T> {
    pub fn new(work: impl Future<Output = T> + Send + 'static) -> Self {
        RunToEnd {
            work: Some(Box::pin(work)),
        }
    }
}

impl<T: Send + 'static> Future for RunToEnd<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        // Taken out while it is polled: if the poll panics, the work is dropped with the
        // unwinding stack (its own guards run) and `Drop` below finds nothing to hand to a
        // task, so a panicked future is never polled again.
        let mut work = self.work.take().expect("RunToEnd polled after it finished");
        match work.as_mut().poll(cx) {
            Poll::Ready(done) => Poll::Ready(done),
            Poll::Pending => {
                self.work = Some(work);
                Poll::Pending
            }
        }
    }
}

impl<T: Send + 'static> Drop for RunToEnd<T> {
    fn drop(&mut self) {
        let Some(work) = self.work.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                work.await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use super::RunToEnd;

    /// A future that counts its polls and panics on the first.
    struct Panics(Arc<AtomicUsize>);

    impl Future for Panics {
        type Output = ();

        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            self.0.fetch_add(1, SeqCst);
            panic!("the work panicked");
        }
    }

    #[tokio::test]
    async fn a_panicked_future_is_never_polled_again() {
        let polls = Arc::new(AtomicUsize::new(0));
        let work = RunToEnd::new(Panics(polls.clone()));
        let caller = tokio::spawn(work);
        assert!(caller.await.unwrap_err().is_panic());
        // Had `Drop` found the work still there, it would have spawned it again.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(polls.load(SeqCst), 1);
    }
}
