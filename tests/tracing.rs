//! Tracing: a database load is a `cached.load` span (entity, key, rows read), a commit is an
//! `invalidated` event (source, keys, apply time), and a hit records nothing at DEBUG. With no
//! subscriber, nothing is formatted (the hit path's cost is measured in `benches/cache.rs`).
//! Everything is under the target `cached`, so a filter such as `cached=debug` selects it.

#[macro_use]
mod common;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::domain::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Records every span and event of target `cached` at `level` or above, as one line each.
struct Capture {
    level: Level,
    lines: Arc<Mutex<Vec<String>>>,
    next: AtomicU64,
}

/// `name=value` pairs, in the order recorded.
#[derive(Default)]
struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={}", field.name(), value);
    }
}

impl Capture {
    fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "cached" && *metadata.level() <= self.level
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields::default();
        span.record(&mut fields);
        self.push(format!("span {}{}", span.metadata().name(), fields.0));
        Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        self.push(format!("record{}", fields.0));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.push(format!("event {}{}", event.metadata().level(), fields.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn capture(level: Level) -> (Capture, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let capture = Capture {
        level,
        lines: lines.clone(),
        next: AtomicU64::new(0),
    };
    (capture, lines)
}

backend_tests! {
    #[tokio::test]
    async fn loads_are_spans_commits_are_events_and_hits_are_silent_at_debug(backend) {
        let (ctx, _db) = seeded!(backend);
        let (subscriber, lines) = capture(Level::DEBUG);
        let _default = tracing::subscriber::set_default(subscriber);

        Scene::repo(&ctx).get(1).await.unwrap();
        Scene::repo(&ctx).get(1).await.unwrap();
        Scene::repo(&ctx).find_by_chapter_id(1).await.unwrap();
        let taken: Vec<String> = std::mem::take(&mut *lines.lock().unwrap());
        let loads: Vec<&String> = taken.iter().filter(|l| l.starts_with("span cached.load")).collect();
        assert_eq!(loads.len(), 2, "one span per load, none for the hit: {taken:#?}");
        assert!(loads[0].contains("entity=Scene") && loads[0].contains("key=scene:1"), "{taken:#?}");
        assert!(loads[1].contains("key=scene?chapter_id=1"), "{taken:#?}");
        assert!(taken.contains(&"record rows=1".to_string()), "{taken:#?}");
        assert!(taken.contains(&"record rows=2".to_string()), "chapter 1 has 2 scenes: {taken:#?}");

        let mut tx = ctx.begin().await.unwrap();
        Scene::repo(&mut tx).update(1, SceneUpdate::default().status("final")).await.unwrap();
        tx.commit().await.unwrap();
        let taken: Vec<String> = std::mem::take(&mut *lines.lock().unwrap());
        let invalidated: Vec<&String> =
            taken.iter().filter(|l| l.contains("message=invalidated")).collect();
        assert_eq!(invalidated.len(), 1, "{taken:#?}");
        let line = invalidated[0];
        assert!(line.starts_with("event DEBUG") && line.contains("source=Commit"), "{line}");
        assert!(line.contains("keys=6") && line.contains("apply_us="), "{line}");
    }
}

/// At INFO, a load and a commit record nothing: everything above is DEBUG.
#[tokio::test]
async fn nothing_is_recorded_above_debug() {
    let (ctx, _db) = seeded!(common::Backend::Sqlite);
    let (subscriber, lines) = capture(Level::INFO);
    let _default = tracing::subscriber::set_default(subscriber);
    Scene::repo(&ctx).get(1).await.unwrap();
    Scene::repo(&ctx)
        .update(1, SceneUpdate::default().title("x"))
        .await
        .unwrap();
    assert!(
        lines.lock().unwrap().is_empty(),
        "{:?}",
        lines.lock().unwrap()
    );
}
