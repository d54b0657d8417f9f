//! A writer in a process of its own, for tests that kill it with `kill -9`: it opens a SQLite
//! file, joins a broadcast channel, commits when told, says what happened, and waits to die.
//!
//! A test binary that uses it declares the child as a test of its own,
//! `#[tokio::test] async fn child_writer() { common::child::writer().await }`, which does
//! nothing unless [`Writer::spawn`] started it.

use std::io::{BufRead, BufReader, Lines, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use cached_runtime::{Context, Outbox, RedisBroadcast};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::domain::*;

const SETUP: &str = "CACHED_CHILD_WRITER";

/// The child's side: opens the file, joins the channel (with an outbox when asked), updates
/// scene 2 (so that the other instances know of it), says `ready`, updates scene 1's title to
/// "From the dead" when a line comes, says `committed` (or `refused: ...`), and sleeps.
pub async fn writer() {
    let Ok(setup) = std::env::var(SETUP) else {
        return;
    };
    let [file, redis, channel, outbox]: [&str; 4] =
        setup.split('\n').collect::<Vec<_>>().try_into().unwrap();
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(file)
                .busy_timeout(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    let mut bus = RedisBroadcast::connect(redis, channel).await.unwrap();
    if outbox == "outbox" {
        // `commit()` returns at once: the message is in the outbox, not (yet) in Redis.
        bus = bus.outbox(Outbox::new()).commit_wait(Duration::ZERO);
    }
    let ctx = Context::builder(pool).broadcast(bus).build();
    // A commit waits for the first heartbeat: the other instances know of this one.
    Scene::repo(&ctx)
        .update(2, SceneUpdate::default().title("Child was here"))
        .await
        .unwrap();
    println!("ready");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let outcome = Scene::repo(&ctx)
        .update(1, SceneUpdate::default().title("From the dead"))
        .await;
    match outcome {
        Ok(_) => println!("committed"),
        Err(err) => println!("refused: {err}"),
    }
    std::io::stdout().flush().unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// The file behind a SQLite store, for a child process to open.
pub async fn sqlite_file(ctx: &Context) -> String {
    let cached_runtime::RawStore::Sqlite(pool) = ctx.store().raw_unchecked() else {
        unreachable!("a child writer opens a SQLite file")
    };
    sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The parent's handle on a child writer.
pub struct Writer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Writer {
    /// Starts the child on SQLite `file`, broadcasting on `channel` of Redis at `redis`; waits
    /// until it says `ready`.
    pub fn spawn(file: &str, redis: &str, channel: &str, outbox: bool) -> Writer {
        let mode = if outbox { "outbox" } else { "plain" };
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env(SETUP, format!("{file}\n{redis}\n{channel}\n{mode}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut writer = Writer { child, lines };
        assert_eq!(writer.next("ready"), "ready");
        writer
    }

    /// The child's next line that says `wanted` (or `refused`), from that word on.
    fn next(&mut self, wanted: &str) -> String {
        loop {
            // (libtest prints the test's name on the same line, before its first output)
            let line = self
                .lines
                .next()
                .expect("the writer says what it did")
                .unwrap();
            if let Some(at) = line.find(wanted).or_else(|| line.find("refused")) {
                return line[at..].to_string();
            }
        }
    }

    /// Tells the child to commit; what it said (`committed`, or `refused: ...`).
    pub fn commit(&mut self) -> String {
        writeln!(self.child.stdin.as_mut().unwrap(), "commit").unwrap();
        self.next("committed")
    }

    /// `kill -9`: whatever the child had not sent dies with it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}
