//! MongoDB only: faults injected with `configureFailPoint` / `failCommand` (the server must run
//! with test commands enabled) prove that a failed, aborted or retried commit never leaves the
//! cache diverged from the database, and that the cache is invalidated exactly once per
//! committed transaction and never for an aborted one.
//!
//! Each test drives its context through a client with its own `appName` and scopes its fail
//! point to that name, so nothing else on the server is affected; the tests in this file take
//! turns (a fail point is server-wide state, and turning one off kills every session).

#[macro_use]
mod common;

use std::sync::{Arc, Mutex};

use cached_runtime::{Context, Error, Source};
use common::domain::*;
use common::{Backend, TestDb};
use mongodb::bson::{doc, Document};

/// The invalidations a context applied: what caused each, and its keys.
type Events = Arc<Mutex<Vec<(Source, Vec<String>)>>>;

/// One fail point at a time.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A seeded database, a context on it through a client named `app`, and the invalidation
/// events that context applies.
struct Rig {
    db: TestDb,
    ctx: Context,
    admin: mongodb::Client,
    app: String,
    events: Events,
}

async fn rig(app: &str) -> Option<Rig> {
    let (_, db) = common::seeded_with(Backend::Mongo, |b| b).await?;
    let url = std::env::var("CACHED_MONGODB_URL").expect("set when the database exists");
    let mut options = mongodb::options::ClientOptions::parse(&url).await.unwrap();
    options.app_name = Some(app.to_string());
    let client = mongodb::Client::with_options(options).unwrap();
    let ctx = Context::new(client.database(db.mongo().name()));
    let events: Events = Arc::default();
    let sink = events.clone();
    ctx.on_invalidate(move |event| {
        let keys = event.keys.iter().map(ToString::to_string).collect();
        sink.lock().unwrap().push((event.source, keys));
    });
    let admin = db.mongo().client().clone();
    Some(Rig {
        db,
        ctx,
        admin,
        app: app.to_string(),
        events,
    })
}

impl Rig {
    /// Makes the next `times` runs of `command` by this rig's client fail with `code` and
    /// `labels`.
    async fn fail(&self, command: &str, times: i32, code: i32, labels: &[&str]) {
        self.admin
            .database("admin")
            .run_command(doc! {
                "configureFailPoint": "failCommand",
                "mode": { "times": times },
                "data": {
                    "failCommands": [command],
                    "errorCode": code,
                    "errorLabels": labels,
                    "appName": &self.app,
                },
            })
            .await
            .expect("configureFailPoint (start the server with test commands enabled)");
    }

    /// Turns the fail point off and kills every server session, which aborts the
    /// transactions a failed `commitTransaction` left open on the server (a real server
    /// aborts them itself after `transactionLifetimeLimitSeconds`; until then they would hold
    /// their locks against dropping the test database).
    async fn off(&self) {
        let admin = self.admin.database("admin");
        admin
            .run_command(doc! { "configureFailPoint": "failCommand", "mode": "off" })
            .await
            .expect("configureFailPoint off");
        admin
            .run_command(doc! { "killAllSessions": [] })
            .await
            .expect("killAllSessions");
    }

    /// The title of scene 1 in the database, read behind the cache's back.
    async fn title_in_db(&self) -> String {
        self.db.scene(1).await.unwrap().title
    }

    async fn cached_title(&self) -> String {
        Scene::repo(&self.ctx)
            .get(1)
            .await
            .unwrap()
            .unwrap()
            .title
            .clone()
    }

    fn events(&self) -> Vec<(Source, Vec<String>)> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

async fn failing_update(rig: &Rig, title: &str) -> Result<cached_runtime::CommitReport, Error> {
    let mut tx = rig.ctx.begin().await?;
    Scene::repo(&mut tx)
        .update(1, SceneUpdate::default().title(title))
        .await?;
    tx.commit().await
}

#[tokio::test]
async fn an_unknown_commit_result_is_retried_and_applied_once() {
    let _turn = TURN.lock().await;
    let Some(rig) = rig("cached-unknown-commit").await else {
        return;
    };
    assert_eq!(rig.cached_title().await, "Scene 1");
    // MaxTimeMSExpired with the UnknownTransactionCommitResult label, more times than the
    // driver's own single commit retry absorbs: the store's retry loop must carry the commit
    // through. (Not a "node is shutting down" code, which would also make the driver wait
    // for the server's next heartbeat.)
    rig.fail(
        "commitTransaction",
        3,
        50,
        &["UnknownTransactionCommitResult"],
    )
    .await;
    let report = failing_update(&rig, "Retried").await;
    rig.off().await;
    let report = report.expect("the commit goes through on a retry");
    assert!(report.key_strings().contains(&"scene:1".to_string()));
    let events = rig.events();
    assert_eq!(
        events.len(),
        1,
        "one apply per committed transaction: {events:?}"
    );
    assert_eq!(events[0].0, Source::Commit);
    assert_eq!(rig.title_in_db().await, "Retried");
    assert_eq!(rig.cached_title().await, "Retried");
}

#[tokio::test]
async fn an_aborted_commit_touches_nothing_and_a_retried_transaction_applies_once() {
    let _turn = TURN.lock().await;
    let Some(rig) = rig("cached-aborted-commit").await else {
        return;
    };
    assert_eq!(rig.cached_title().await, "Scene 1");
    rig.fail("commitTransaction", 1, 112, &["TransientTransactionError"])
        .await;
    let err = failing_update(&rig, "Aborted").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        rig.events().is_empty(),
        "no invalidation for an aborted transaction"
    );
    assert_eq!(rig.title_in_db().await, "Scene 1");
    assert_eq!(rig.cached_title().await, "Scene 1");

    // The same fault under `Context::transaction`: the body runs again and commits once.
    rig.fail("commitTransaction", 1, 112, &["TransientTransactionError"])
        .await;
    let mut runs = 0;
    let result = rig
        .ctx
        .transaction(async |tx| {
            runs += 1;
            Scene::repo(&mut *tx)
                .update(1, SceneUpdate::default().title("Second try"))
                .await
        })
        .await;
    rig.off().await;
    let (row, report) = result.unwrap();
    assert_eq!((runs, row.title.as_str()), (2, "Second try"));
    assert!(report.key_strings().contains(&"scene:1".to_string()));
    assert_eq!(
        rig.events().len(),
        1,
        "applied once, by the attempt that committed"
    );
    assert_eq!(rig.title_in_db().await, "Second try");
    assert_eq!(rig.cached_title().await, "Second try");
}

#[tokio::test]
async fn a_commit_of_unknown_outcome_drops_what_it_touched() {
    let _turn = TURN.lock().await;
    let Some(rig) = rig("cached-lost-commit").await else {
        return;
    };
    assert_eq!(rig.cached_title().await, "Scene 1");
    // Every commit attempt fails with an unknown result: the store gives up.
    rig.fail(
        "commitTransaction",
        50,
        50,
        &["UnknownTransactionCommitResult"],
    )
    .await;
    let err = failing_update(&rig, "Lost").await.unwrap_err();
    rig.off().await;
    assert!(!err.is_retryable(), "{err}");
    let events = rig.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, Source::FailedCommit);
    assert!(
        !rig.ctx.is_cached(SceneKey(1)),
        "the key is dropped, not rewritten"
    );
    // Whatever the server did, the next read is the database's value.
    assert_eq!(rig.cached_title().await, rig.title_in_db().await);
}

#[tokio::test]
async fn a_failed_write_aborts_and_touches_nothing() {
    let _turn = TURN.lock().await;
    let Some(rig) = rig("cached-failed-write").await else {
        return;
    };
    assert_eq!(rig.cached_title().await, "Scene 1");
    Scene::repo(&rig.ctx).find_by_status("draft").await.unwrap();
    rig.fail("findAndModify", 1, 2, &[]).await;
    let err = Scene::repo(&rig.ctx)
        .update(1, SceneUpdate::default().status("final"))
        .await
        .unwrap_err();
    rig.off().await;
    assert!(matches!(err, Error::Mongo(_)), "{err}");
    assert!(rig.events().is_empty());
    assert!(rig
        .ctx
        .is_cached(cached_runtime::QueryKey::list_key(&SceneQuery::ByStatus(
            "draft".into()
        ))));
    assert_eq!(rig.db.scene(1).await.unwrap().status, "draft");
    assert_eq!(
        Scene::repo(&rig.ctx).get(1).await.unwrap().unwrap().status,
        "draft"
    );
}

#[tokio::test]
async fn transient_write_errors_are_retried_by_context_writes() {
    let _turn = TURN.lock().await;
    let Some(rig) = rig("cached-transient-write").await else {
        return;
    };
    Scene::repo(&rig.ctx).get(1).await.unwrap();
    rig.fail("findAndModify", 2, 112, &["TransientTransactionError"])
        .await;
    let row = Scene::repo(&rig.ctx).increment_word_count(1, 5).await;
    rig.off().await;
    assert_eq!(
        row.unwrap().word_count,
        105,
        "applied once, not three times"
    );
    assert_eq!(rig.events().len(), 1);
    assert_eq!(rig.db.scene(1).await.unwrap().word_count, 105);
    assert_eq!(
        Scene::repo(&rig.ctx)
            .get(1)
            .await
            .unwrap()
            .unwrap()
            .word_count,
        105
    );
}

#[tokio::test]
async fn documents_use_the_id_as_underscore_id() {
    let _turn = TURN.lock().await;
    let Some(rig) = rig("cached-layout").await else {
        return;
    };
    let raw = rig
        .db
        .mongo()
        .collection::<Document>("characters")
        .find_one(doc! { "_id": 1i64 })
        .await
        .unwrap()
        .expect("character 1");
    assert!(
        raw.get("id").is_none(),
        "the id is stored once, as _id: {raw}"
    );
    assert_eq!(raw.get_str("name").unwrap(), "Mara");
    assert!(raw.get_array("traits").unwrap().is_empty());
}
