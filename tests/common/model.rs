//! The machinery of the model-based test (`tests/model.rs`, which documents the model): a
//! seeded PRNG, the spellings of case-insensitive text, the operations as plain data
//! (printable, so a failing case shows its log) and their generator, the harness (dropping
//! a future after n polls, waiting for a commit to reach the cache, background readers, a
//! second pool for fresh reads), running a case step by step with a check after each, and
//! the runners of the model and of its negative controls.
//!
//! Nothing here names a cached entity: the schema-specific half is a [`World`], implemented
//! in `tests/model.rs` (entities declared here would register in every test binary and
//! change what `graph()` lists there).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use cached_runtime::{
    Context, ContextBuilder, Error, Handle, RawStore, Result, Source, Store, Transaction,
};
use sqlx::mysql::MySqlPoolOptions;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::SqlitePoolOptions;

use super::{Backend, TestDb};

/// The environment variable that replays one seed.
pub const SEED_VAR: &str = "CACHED_MODEL_SEED";

/// Player ids the generator uses (`1..=PLAYERS`); the seed data holds `1..=SEEDED_PLAYERS`.
pub const PLAYERS: i64 = 10;
pub const SEEDED_PLAYERS: i64 = 6;
/// Team ids (`1..=TEAMS`); the seed data holds `1..TEAMS`, so team `TEAMS` starts absent.
pub const TEAMS: i64 = 4;
/// Levels (a key-forming integer) run from 0 to this.
pub const MAX_LEVEL: i64 = 3;
/// The addresses players are given, each written in many spellings.
pub const ADDRESSES: [&str; 4] = ["ann@x.io", "bob@x.io", "zoë@x.io", "sofie.ross@x.io"];
/// Tag codes (a case-insensitive text primary key); the seed data holds the first two.
pub const CODES: [&str; 3] = ["red", "blue", "jade"];

// ---------------------------------------------------------------------------------------
// Randomness and seeds
// ---------------------------------------------------------------------------------------

/// SplitMix64: small, fast, and the same sequence for the same seed on every platform.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An index into `weights`, each index as likely as its weight.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut roll = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if roll < u64::from(w) {
                return i;
            }
            roll -= u64::from(w);
        }
        unreachable!("the roll is below the total")
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }

    /// An independent stream, so that one consumer's draws do not shift another's.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next())
    }
}

/// The seed in [`SEED_VAR`] (decimal or `0x` hex) if set, else `defaults`.
pub fn seeds(defaults: &[u64]) -> Vec<u64> {
    match std::env::var(SEED_VAR) {
        Ok(text) if !text.trim().is_empty() => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            vec![parsed.unwrap_or_else(|e| panic!("{SEED_VAR}={text:?} is not a u64: {e}"))]
        }
        _ => defaults.to_vec(),
    }
}

// ---------------------------------------------------------------------------------------
// Spellings
// ---------------------------------------------------------------------------------------

/// Which spellings of an address the generator writes and reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alphabet {
    /// Case, accents, `ß`/`ss`, a trailing space: what the library documents it folds.
    Documented,
    /// Also characters that case-insensitive collations equate with plain letters but that
    /// lower-casing leaves alone: `ſ` (long s; `s` under MariaDB's `utf8mb4_general_ci`),
    /// the ligature `ﬁ` and a left-to-right mark (equal to `fi` and to nothing under
    /// PostgreSQL's ICU level-2 collation).
    UnicodeEdges,
}

/// Upper-cases the first letter.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Without diacritics (the few this test uses).
fn unaccented(text: &str) -> String {
    text.replace('ë', "e").replace('Ë', "E")
}

/// The spellings beyond case that `alphabet` allows for `base`.
fn variants(base: &str, alphabet: Alphabet) -> Vec<String> {
    let mut out = Vec::new();
    if base != unaccented(base) {
        out.push(unaccented(base));
    }
    if base.starts_with('b') {
        out.push(format!("{base} "));
    }
    if base.contains("ss") {
        out.push(base.replacen("ss", "ß", 1));
    }
    if alphabet == Alphabet::UnicodeEdges {
        if base.contains('s') {
            out.push(base.replacen('s', "ſ", 1));
        }
        if base.contains("fi") {
            out.push(base.replacen("fi", "ﬁ", 1));
        }
        let mut marked = base.to_string();
        marked.insert(1, '\u{200E}');
        out.push(marked);
    }
    out
}

/// The fixed spellings of `base` every check reads: lower, upper, capitalized, and each
/// variant the alphabet allows.
pub fn probe_spellings(base: &str, alphabet: Alphabet) -> Vec<String> {
    let mut out = vec![base.to_string(), base.to_uppercase(), capitalized(base)];
    out.extend(variants(base, alphabet));
    out
}

/// A random spelling of `base`: each letter's case at random, sometimes a variant.
pub fn spell(rng: &mut Rng, base: &str, alphabet: Alphabet) -> String {
    let variants = variants(base, alphabet);
    let text = if !variants.is_empty() && rng.chance(30) {
        rng.pick(&variants).clone()
    } else {
        base.to_string()
    };
    text.chars()
        .flat_map(|c| {
            let upper = rng.chance(50);
            let out: Vec<char> = if upper {
                c.to_uppercase().collect()
            } else {
                vec![c]
            };
            out
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------

/// The fields a player patch assigns.
#[derive(Clone, Debug, Default)]
pub struct Patch {
    pub team: Option<i64>,
    pub email: Option<String>,
    pub level: Option<i64>,
    pub score: Option<i64>,
    pub note: Option<String>,
}

/// A player row: `(id, team, email, level, score, note)`.
#[derive(Clone, Debug)]
pub struct NewPlayer {
    pub id: i64,
    pub team: i64,
    pub email: String,
    pub level: i64,
    pub score: i64,
    pub note: String,
}

/// A query of players.
#[derive(Clone, Debug)]
pub enum Query {
    Email(String),
    Team(i64),
    Level(i64),
    All,
}

/// A read through the cache: an operation, and one of the probes every check compares.
#[derive(Clone, Debug)]
pub enum Read {
    Player(i64),
    Players(Vec<i64>),
    Find(Query),
    Count(Query),
    Team(i64),
    Teams,
    Tag(String),
    Tags,
    View(i64),
}

/// A repository write, through `&ctx` or a transaction.
#[derive(Clone, Debug)]
pub enum Write {
    Insert(NewPlayer),
    InsertMany(Vec<NewPlayer>),
    /// `update(id, patch)`; key-forming when the patch sets team, email or level.
    Update(i64, Patch),
    /// `increment_score` (positive) or `decrement_score` (negative): not key-forming.
    AddScore(i64, i64),
    /// `increment_level` / `decrement_level`: key-forming.
    AddLevel(i64, i64),
    UpdateManyByTeam(i64, Patch),
    UpdateManyByEmail(String, Patch),
    Delete(i64),
    DeleteMany(Vec<i64>),
    InsertTeam(i64, String),
    RenameTeam(i64, String),
    DeleteTeam(i64),
    InsertTag(String, i64, String),
    RetitleTag(String, String),
    DeleteTag(String),
}

/// A raw SQL write inside a transaction, with what it declares it touches.
#[derive(Clone, Debug)]
pub enum Raw {
    /// `score = score + by` of one player; touches that player.
    AddScore(i64, i64),
    /// A new email for one player (key-forming); touches that player.
    SetEmail(i64, String),
    /// `level = level + 1` for a whole team; touches every player.
    BumpLevels(i64),
    /// Deletes one player; touches that player.
    DeletePlayer(i64),
    /// Renames a team; touches that team.
    RenameTeam(i64, String),
    /// Retitles a tag by any spelling of its code; touches that spelling.
    RetitleTag(String, String),
}

/// One statement of a transaction.
#[derive(Clone, Debug)]
pub enum TxItem {
    Write(Write),
    Raw(Raw),
    /// A read through the transaction (never fills the shared cache).
    Read(Read),
}

/// How a transaction ends.
#[derive(Clone, Copy, Debug)]
pub enum TxEnd {
    Commit,
    Rollback,
    Drop,
    /// `commit()` polled this many times, then dropped.
    CommitDroppedAfter(usize),
    /// The statements run as the body of `ctx.transaction(...)`: the first error rolls back,
    /// otherwise it commits (and a retryable conflict runs the body again).
    Closure,
}

/// An entity, for whole-entity invalidation.
#[derive(Clone, Copy, Debug)]
pub enum Entity {
    Player,
    Team,
    Tag,
}

/// A manual call on the context.
#[derive(Clone, Debug)]
pub enum Manual {
    Invalidate(i64),
    InvalidateTeam(i64),
    InvalidateTag(String),
    InvalidateQuery(Query),
    InvalidateEntity(Entity),
    Refresh(i64),
    /// `invalidate_key` of a view instance.
    InvalidateView(i64),
    Preload(Vec<i64>),
    Clear,
}

/// A write straight to the database, behind the cache's back, followed by the manual call
/// that tells the cache what changed.
#[derive(Clone, Debug)]
pub enum Behind {
    /// `score += by`, then `refresh` (or `invalidate`) of the row.
    Score { id: i64, by: i64, refresh: bool },
    /// A new email, then `invalidate` of the row and `invalidate_query` of its old and new
    /// address.
    Email(i64, String),
    /// A new team name, then `invalidate` of the team.
    TeamName(i64, String),
    /// Deletes a player, then `invalidate_entity::<Player>()`.
    DeleteThenEntity(i64),
}

/// One step of a case.
#[derive(Clone, Debug)]
pub enum Op {
    Write(Write),
    /// A write through `&ctx` whose future is dropped after this many polls.
    WriteDroppedAfter(Write, usize),
    Tx(Vec<TxItem>, TxEnd),
    Manual(Manual),
    Behind(Behind),
    Read(Read),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Write(w) => write!(f, "ctx {w:?}"),
            Op::WriteDroppedAfter(w, n) => write!(f, "ctx {w:?}, dropped after {n} poll(s)"),
            Op::Tx(items, end) => {
                write!(f, "tx [")?;
                for (i, item) in items.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "; " };
                    match item {
                        TxItem::Write(w) => write!(f, "{sep}{w:?}")?,
                        TxItem::Raw(r) => write!(f, "{sep}raw {r:?}")?,
                        TxItem::Read(r) => write!(f, "{sep}read {r:?}")?,
                    }
                }
                write!(f, "] then {end:?}")
            }
            Op::Manual(m) => write!(f, "manual {m:?}"),
            Op::Behind(b) => write!(f, "behind the cache: {b:?}"),
            Op::Read(r) => write!(f, "read {r:?}"),
        }
    }
}

/// What the backend supports.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// Raw SQL writes (not on MongoDB).
    pub raw_sql: bool,
}

/// Which operations the generator favours: none, or the ones a negative control needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Balanced,
    /// Many commits dropped after a few polls.
    DroppedCommits,
    /// Many writes of addresses and tag codes.
    Spellings,
}

/// The seeded generator of operations.
pub struct Gen {
    rng: Rng,
    caps: Caps,
    focus: Focus,
    alphabet: Alphabet,
}

impl Gen {
    pub fn new(rng: Rng, caps: Caps, focus: Focus, alphabet: Alphabet) -> Self {
        Gen {
            rng,
            caps,
            focus,
            alphabet,
        }
    }

    /// How many steps the case runs.
    pub fn steps(&mut self) -> usize {
        self.rng.range(40, 80) as usize
    }

    fn player_id(&mut self) -> i64 {
        self.rng.range(1, PLAYERS)
    }

    fn team_id(&mut self) -> i64 {
        self.rng.range(1, TEAMS)
    }

    /// A team for a new or moved row: mostly one of the seeded teams, so that most inserts
    /// succeed (team `TEAMS` starts absent: a foreign key violation until it is inserted).
    fn parent_team(&mut self) -> i64 {
        if self.rng.chance(85) {
            self.rng.range(1, TEAMS - 1)
        } else {
            TEAMS
        }
    }

    pub fn email(&mut self) -> String {
        let base = *self.rng.pick(&ADDRESSES);
        spell(&mut self.rng, base, self.alphabet)
    }

    fn code(&mut self) -> String {
        let base = *self.rng.pick(&CODES);
        spell(&mut self.rng, base, self.alphabet)
    }

    fn word(&mut self, prefix: &str) -> String {
        format!("{prefix}{}", self.rng.below(1000))
    }

    fn polls(&mut self) -> usize {
        self.rng.range(1, 6) as usize
    }

    /// A new player row (its id may exist already, its team may not).
    pub fn new_player(&mut self) -> NewPlayer {
        NewPlayer {
            id: self.player_id(),
            team: self.parent_team(),
            email: self.email(),
            level: self.rng.range(0, MAX_LEVEL),
            score: self.rng.range(0, 100),
            note: self.word("note "),
        }
    }

    fn patch(&mut self) -> Patch {
        let mut patch = Patch::default();
        if self.rng.chance(3) {
            return patch;
        }
        // At least one field; key-forming ones about half the time.
        while patch.team.is_none()
            && patch.email.is_none()
            && patch.level.is_none()
            && patch.score.is_none()
            && patch.note.is_none()
        {
            let spellings = if self.focus == Focus::Spellings {
                70
            } else {
                25
            };
            if self.rng.chance(spellings) {
                patch.email = Some(self.email());
            }
            if self.rng.chance(15) {
                patch.team = Some(self.parent_team());
            }
            if self.rng.chance(15) {
                patch.level = Some(self.rng.range(0, MAX_LEVEL));
            }
            if self.rng.chance(35) {
                patch.score = Some(self.rng.range(0, 500));
            }
            if self.rng.chance(25) {
                patch.note = Some(self.word("note "));
            }
        }
        patch
    }

    fn query(&mut self) -> Query {
        match self.rng.below(4) {
            0 => Query::Email(self.email()),
            1 => Query::Team(self.team_id()),
            2 => Query::Level(self.rng.range(0, MAX_LEVEL)),
            _ => Query::All,
        }
    }

    /// A repository write.
    pub fn write(&mut self) -> Write {
        // Insert, InsertMany, Update, AddScore, AddLevel, UpdateManyByTeam, UpdateManyByEmail,
        // Delete, DeleteMany, InsertTeam, RenameTeam, DeleteTeam, InsertTag, RetitleTag,
        // DeleteTag: deletes are rarer than inserts, so that the tables do not run dry.
        let weights: &[u32] = match self.focus {
            Focus::Spellings => &[2, 1, 8, 2, 1, 1, 4, 1, 1, 0, 1, 0, 3, 2, 2],
            _ => &[5, 3, 8, 4, 3, 2, 2, 2, 1, 1, 2, 1, 2, 2, 1],
        };
        match self.rng.weighted(weights) {
            0 => Write::Insert(self.new_player()),
            1 => {
                let n = self.rng.range(1, 3);
                Write::InsertMany((0..n).map(|_| self.new_player()).collect())
            }
            2 => Write::Update(self.player_id(), self.patch()),
            3 => Write::AddScore(self.player_id(), self.rng.range(-20, 20)),
            4 => Write::AddLevel(self.player_id(), *self.rng.pick(&[-1, 1])),
            5 => Write::UpdateManyByTeam(self.team_id(), self.patch()),
            6 => Write::UpdateManyByEmail(self.email(), self.patch()),
            7 => Write::Delete(self.player_id()),
            8 => {
                let n = self.rng.range(1, 3);
                Write::DeleteMany((0..n).map(|_| self.player_id()).collect())
            }
            9 => Write::InsertTeam(self.team_id(), self.word("team ")),
            10 => Write::RenameTeam(self.team_id(), self.word("team ")),
            11 => Write::DeleteTeam(self.team_id()),
            12 => Write::InsertTag(self.code(), self.parent_team(), self.word("tag ")),
            13 => Write::RetitleTag(self.code(), self.word("tag ")),
            _ => Write::DeleteTag(self.code()),
        }
    }

    fn raw(&mut self) -> Raw {
        // In the order of the variants.
        match self.rng.weighted(&[3, 3, 2, 1, 2, 2]) {
            0 => Raw::AddScore(self.player_id(), self.rng.range(-9, 9)),
            1 => Raw::SetEmail(self.player_id(), self.email()),
            2 => Raw::BumpLevels(self.team_id()),
            3 => Raw::DeletePlayer(self.player_id()),
            4 => Raw::RenameTeam(self.team_id(), self.word("raw ")),
            _ => Raw::RetitleTag(self.code(), self.word("raw ")),
        }
    }

    /// A read through the cache (or, inside a transaction, through the transaction).
    pub fn read(&mut self, views: bool) -> Read {
        match self.rng.below(if views { 8 } else { 7 }) {
            0 => Read::Player(self.player_id()),
            1 => Read::Players((0..3).map(|_| self.player_id()).collect()),
            2 => Read::Find(self.query()),
            3 => Read::Count(self.query()),
            4 => Read::Team(self.team_id()),
            5 => Read::Tag(self.code()),
            6 => Read::Teams,
            _ => Read::View(self.team_id()),
        }
    }

    fn tx(&mut self) -> Op {
        let n = self.rng.range(2, 5);
        let items = (0..n)
            .map(|_| match self.rng.below(10) {
                0 | 1 if self.caps.raw_sql => TxItem::Raw(self.raw()),
                2 => TxItem::Read(self.read(false)),
                _ => TxItem::Write(self.write()),
            })
            .collect();
        // Commit, Rollback, Drop, CommitDroppedAfter, Closure.
        let weights: &[u32] = match self.focus {
            Focus::DroppedCommits => &[1, 0, 0, 6, 0],
            _ => &[6, 1, 1, 2, 2],
        };
        let end = match self.rng.weighted(weights) {
            0 => TxEnd::Commit,
            1 => TxEnd::Rollback,
            2 => TxEnd::Drop,
            3 => TxEnd::CommitDroppedAfter(self.polls()),
            _ => TxEnd::Closure,
        };
        Op::Tx(items, end)
    }

    fn manual(&mut self) -> Manual {
        match self.rng.below(9) {
            0 => Manual::Invalidate(self.player_id()),
            1 => Manual::InvalidateTeam(self.team_id()),
            2 => Manual::InvalidateTag(self.code()),
            3 => Manual::InvalidateQuery(self.query()),
            4 => Manual::InvalidateEntity(*self.rng.pick(&[
                Entity::Player,
                Entity::Team,
                Entity::Tag,
            ])),
            5 => Manual::Refresh(self.player_id()),
            6 => Manual::InvalidateView(self.team_id()),
            7 => Manual::Preload((0..3).map(|_| self.player_id()).collect()),
            _ if self.rng.chance(30) => Manual::Clear,
            _ => Manual::Invalidate(self.player_id()),
        }
    }

    fn behind(&mut self) -> Behind {
        match self.rng.weighted(&[3, 3, 2, 1]) {
            0 => Behind::Score {
                id: self.player_id(),
                by: self.rng.range(1, 9),
                refresh: self.rng.chance(50),
            },
            1 => Behind::Email(self.player_id(), self.email()),
            2 => Behind::TeamName(self.team_id(), self.word("renamed ")),
            _ => Behind::DeleteThenEntity(self.player_id()),
        }
    }

    /// The next operation.
    pub fn op(&mut self) -> Op {
        // write, write dropped, transaction, manual, behind, read
        let weights: &[u32] = match self.focus {
            Focus::DroppedCommits => &[2, 4, 10, 1, 1, 1],
            Focus::Spellings => &[8, 1, 3, 1, 2, 1],
            Focus::Balanced => &[8, 2, 6, 2, 2, 2],
        };
        match self.rng.weighted(weights) {
            0 => Op::Write(self.write()),
            1 => {
                let polls = self.polls();
                Op::WriteDroppedAfter(self.write(), polls)
            }
            2 => self.tx(),
            3 => Op::Manual(self.manual()),
            4 => Op::Behind(self.behind()),
            _ => Op::Read(self.read(true)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// Polls `fut` at most `polls` times, then drops it, as a caller that stops waiting does.
/// Returns whether it was dropped before it finished.
pub async fn drop_after<F: Future>(polls: usize, fut: F) -> bool {
    let mut fut = pin!(fut);
    let mut left = polls;
    std::future::poll_fn(|cx| {
        if left == 0 {
            return Poll::Ready(true);
        }
        left -= 1;
        fut.as_mut().poll(cx).map(|_| false)
    })
    .await
}

/// Counts the commits a context applies (its `on_invalidate` hook, commits only), so that a
/// test can wait for a commit whose caller stopped waiting.
#[derive(Clone)]
pub struct Applies(Arc<AtomicU64>);

impl Applies {
    pub fn attach(ctx: &Context) -> Self {
        let count = Arc::new(AtomicU64::new(0));
        let seen = count.clone();
        ctx.on_invalidate(move |inv| {
            if matches!(inv.source, Source::Commit | Source::FailedCommit) {
                seen.fetch_add(1, SeqCst);
            }
        });
        Applies(count)
    }

    pub fn count(&self) -> u64 {
        self.0.load(SeqCst)
    }

    /// Waits until more than `before` commits have applied, at most `limit`; whether they did.
    pub async fn wait_past(&self, before: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.count() <= before {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }
}

/// How many reads a background reader makes between two 1 ms pauses.
const READER_BURST: u64 = 32;

/// Background readers hammering the cache while the steps run. While `evicting` is set they
/// also drop what they are about to read now and then, so that loads keep racing the
/// writes (an evictor, as in the torture test); the runner sets it only while an operation
/// runs, never while it compares.
pub struct Readers {
    stop: Arc<AtomicBool>,
    pub evicting: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Readers {
    /// Starts `n` readers; each calls `read(r, evict)` in a loop with a fresh random `r`, and
    /// collects the errors it returns.
    pub fn spawn<F, Fut>(n: usize, seed: u64, read: F) -> Self
    where
        F: Fn(u64, bool) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let evicting = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let tasks = (0..n as u64)
            .map(|i| {
                let (stop, evicting, reads, read) =
                    (stop.clone(), evicting.clone(), reads.clone(), read.clone());
                let mut rng = Rng::new(seed ^ (i + 1).wrapping_mul(0xA076_1D64_78BD_642F));
                tokio::spawn(async move {
                    let mut errors = Vec::new();
                    while !stop.load(SeqCst) {
                        let evict = evicting.load(SeqCst) && rng.chance(25);
                        if let Err(e) = read(rng.next(), evict).await {
                            errors.push(e);
                        }
                        // Cache hits never wait: pause now and then, so that two readers
                        // do not starve the database server on a small machine.
                        if reads.fetch_add(1, SeqCst) % READER_BURST == 0 {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        } else {
                            tokio::task::yield_now().await;
                        }
                    }
                    errors
                })
            })
            .collect();
        Readers {
            stop,
            evicting,
            reads,
            tasks,
        }
    }

    /// Stops the readers; how many reads they made, and their errors.
    pub async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, SeqCst);
        let mut errors = Vec::new();
        for task in self.tasks {
            errors.extend(task.await.expect("a reader panicked"));
        }
        (self.reads.load(SeqCst), errors)
    }
}

/// A second pool on the test's database that shares no connection with the context's, for
/// the check's fresh reads: a connection that a cancelled operation left in an odd state (an
/// open transaction, say) must not make the database look older than it is. The same
/// database handle on MongoDB (its sessions are explicit).
pub async fn independent_store(db: &TestDb) -> Store {
    macro_rules! second {
        ($options:ty, $pool:expr) => {
            <$options>::new()
                .max_connections(COLD_READERS as u32)
                .connect_with((*$pool.connect_options()).clone())
                .await
                .expect("a second pool")
                .into()
        };
    }
    match db.store.raw_unchecked() {
        RawStore::Sqlite(p) => second!(SqlitePoolOptions, p),
        RawStore::Postgres(p) => second!(PgPoolOptions, p),
        RawStore::MySql(p) => second!(MySqlPoolOptions, p),
        _ => db.store.clone(),
    }
}

/// Closes a pool made by [`independent_store`] (not MongoDB's shared handle).
pub async fn close(store: &Store) {
    match store.raw_unchecked() {
        RawStore::Sqlite(p) => p.close().await,
        RawStore::Postgres(p) => p.close().await,
        RawStore::MySql(p) => p.close().await,
        _ => {}
    }
}

/// A bind parameter of a direct statement.
pub enum Bind {
    Int(i64),
    Text(String),
}

/// `sql` with `?` placeholders numbered `$1, $2, ...` on PostgreSQL.
pub fn placeholders(backend: Backend, sql: &str) -> String {
    if backend != Backend::Postgres {
        return sql.to_string();
    }
    let mut out = String::new();
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs one SQL statement with parameters straight on `store` (a pool of its own, see
/// [`independent_store`]), as another client of the database would.
pub async fn direct(store: &Store, backend: Backend, sql: &str, binds: &[Bind]) {
    let sql = placeholders(backend, sql);
    macro_rules! run {
        ($pool:expr) => {{
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for bind in binds {
                query = match bind {
                    Bind::Int(v) => query.bind(*v),
                    Bind::Text(v) => query.bind(v.clone()),
                };
            }
            query.execute($pool).await.map(|_| ())
        }};
    }
    match store.raw_unchecked() {
        RawStore::Sqlite(p) => run!(p),
        RawStore::Postgres(p) => run!(p),
        RawStore::MySql(p) => run!(p),
        _ => unreachable!("direct SQL needs a SQL store"),
    }
    .expect("direct statement");
}

// ---------------------------------------------------------------------------------------
// The world: what a schema provides to the model
// ---------------------------------------------------------------------------------------

/// The database outside the cache under test: the test's database, a pool of its own on it
/// ([`independent_store`]) and a cold context on that pool (cleared before each use).
pub struct Outside<'a> {
    pub db: &'a TestDb,
    pub oracle: &'a Store,
    pub cold: &'a Context,
}

/// The schema-specific half of the model: how each operation and each read maps onto the
/// entities of one test binary.
pub trait World: Send + Sync + 'static {
    /// A fresh database with the schema, and a context on it built by `configure`.
    fn setup(
        backend: Backend,
        configure: impl FnOnce(ContextBuilder) -> ContextBuilder,
    ) -> impl Future<Output = Option<(Context, TestDb)>>;
    /// Writes the seed data (spelled with `rng`), then empties the cache.
    fn seed(ctx: &Context, rng: &mut Rng, alphabet: Alphabet) -> impl Future<Output = ()>;
    /// What every check reads.
    fn probes(alphabet: Alphabet) -> Vec<Read>;
    /// What `ctx` answers to a read (views included), as text.
    fn answer(ctx: &Context, read: &Read) -> impl Future<Output = Result<String>> + Send;
    /// What a handle answers to a read of entities (a transaction reads no view).
    fn read<H: Handle>(h: H, read: &Read) -> impl Future<Output = Result<String>>;
    /// Drops what `read` reads (the background readers' evictor).
    fn evict(ctx: &Context, read: &Read);
    /// A repository write through a handle (`&ctx` or `&mut tx`).
    fn write<H: Handle>(h: H, write: &Write) -> impl Future<Output = Result<String>>;
    /// A raw SQL write in a transaction, with what it touches.
    fn raw(
        tx: &mut Transaction,
        backend: Backend,
        raw: &Raw,
    ) -> impl Future<Output = Result<String>>;
    /// A manual call on the context.
    fn manual(ctx: &Context, manual: &Manual) -> impl Future<Output = String>;
    /// A write behind the cache's back (through `outside`), then the matching manual call.
    fn behind(
        ctx: &Context,
        outside: &Outside<'_>,
        behind: &Behind,
    ) -> impl Future<Output = String>;
}

/// A result as a line of the log.
pub fn shown(result: Result<String>) -> String {
    match result {
        Ok(text) => text,
        Err(e) => format!("error: {e}"),
    }
}

// ---------------------------------------------------------------------------------------
// Protections and how a case runs
// ---------------------------------------------------------------------------------------

/// One load in this many pauses between its database read and its fill, for this long (as
/// in the torture test: a few slow readers among fast ones widen the races).
const FILL_EVERY: u64 = 4;
const FILL_PAUSE: Duration = Duration::from_millis(2);

/// A protection of the library, which a negative control switches off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    ReadTracking,
    CommitGuard,
    TextFolding,
    StaleFills,
}

/// How a case runs.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub off: Option<Protection>,
    pub focus: Focus,
    pub alphabet: Alphabet,
}

impl Config {
    /// Every protection on, the documented spellings.
    pub const PROTECTED: Config = Config {
        off: None,
        focus: Focus::Balanced,
        alphabet: Alphabet::Documented,
    };

    /// One protection off, the generator biased toward what it protects.
    pub fn without(protection: Protection) -> Self {
        let focus = match protection {
            Protection::CommitGuard => Focus::DroppedCommits,
            Protection::TextFolding => Focus::Spellings,
            Protection::ReadTracking | Protection::StaleFills => Focus::Balanced,
        };
        Config {
            off: Some(protection),
            focus,
            ..Config::PROTECTED
        }
    }

    /// Slow fills, and the protection switched off, if any.
    fn configure(self, b: ContextBuilder) -> ContextBuilder {
        let b = b.__fill_delay_every(FILL_EVERY, FILL_PAUSE);
        match self.off {
            None => b,
            Some(Protection::ReadTracking) => b.__disable_read_tracking(),
            Some(Protection::CommitGuard) => b.__unguarded_commits(),
            Some(Protection::TextFolding) => b.__disable_text_folding(),
            Some(Protection::StaleFills) => b.__disable_stale_fill_protection(),
        }
    }

    /// How long a commit whose caller dropped it may take to apply. Unguarded, a dropped
    /// commit never applies: waiting long would only slow the control down.
    fn commit_wait(self) -> Duration {
        match self.off {
            Some(Protection::CommitGuard) => Duration::from_millis(300),
            _ => Duration::from_secs(10),
        }
    }
}

/// How long to wait for a dropped `&ctx` write to apply (it may never: it may have been
/// dropped before its commit), and for how long after the drop a check waits for the cache
/// to catch up with the database before it calls a difference stale: a commit under way on
/// a task of its own may land in the database before it reaches the cache.
fn settle(backend: Backend) -> (Duration, Duration) {
    match backend {
        Backend::Mongo => (Duration::from_secs(1), Duration::from_secs(10)),
        _ => (Duration::from_millis(300), Duration::from_secs(5)),
    }
}

// ---------------------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------------------

/// Two readers of random probes through `ctx`, evicting when told to.
fn spawn_readers<W: World>(ctx: &Context, probes: &Arc<Vec<Read>>, seed: u64) -> Readers {
    let (ctx, probes) = (ctx.clone(), probes.clone());
    Readers::spawn(2, seed, move |r, evict_first| {
        let (ctx, probes) = (ctx.clone(), probes.clone());
        async move {
            let probe = &probes[(r % probes.len() as u64) as usize];
            if evict_first {
                W::evict(&ctx, probe);
            }
            W::answer(&ctx, probe)
                .await
                .map(drop)
                .map_err(|e| format!("{probe:?}: {e}"))
        }
    })
}

/// How many tasks read the probes' cold answers at once (the cold pool has as many
/// connections): the cold reads are round trips, and a check is mostly waiting for them.
const COLD_READERS: usize = 4;

/// Every probe through the cache (in a random order, one after another) and through `cold`
/// (cleared first; [`COLD_READERS`] at a time, alongside); the answers that differ. Nothing
/// writes while a check runs (apart from a dropped write still committing, which [`check`]
/// waits out), so both sides answer for the same database.
async fn compare<W: World>(
    ctx: &Context,
    cold: &Context,
    probes: &Arc<Vec<Read>>,
    rng: &mut Rng,
) -> Vec<String> {
    cold.clear();
    let next = Arc::new(AtomicUsize::new(0));
    let stored: Vec<_> = (0..COLD_READERS)
        .map(|_| {
            let (cold, probes, next) = (cold.clone(), probes.clone(), next.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                loop {
                    let i = next.fetch_add(1, SeqCst);
                    let Some(probe) = probes.get(i) else {
                        return answers;
                    };
                    answers.push((i, W::answer(&cold, probe).await));
                }
            })
        })
        .collect();
    let mut order: Vec<usize> = (0..probes.len()).collect();
    rng.shuffle(&mut order);
    let mut cached: Vec<Option<Result<String>>> = (0..probes.len()).map(|_| None).collect();
    for i in order {
        cached[i] = Some(W::answer(ctx, &probes[i]).await);
    }
    let mut diffs = Vec::new();
    for task in stored {
        for (i, stored) in task.await.expect("a cold reader panicked") {
            match (cached[i].take().expect("every probe read"), stored) {
                (Ok(cached), Ok(stored)) if cached == stored => {}
                (cached, stored) => diffs.push((
                    i,
                    format!(
                        "{:?}: cached {}, stored {}",
                        probes[i],
                        shown(cached),
                        shown(stored)
                    ),
                )),
            }
        }
    }
    diffs.sort();
    diffs.into_iter().map(|(_, diff)| diff).collect()
}

/// [`compare`]; with a grace period (soon after a dropped `&ctx` write, whose commit may
/// still be under way), compares again until the answers agree or the period is over.
async fn check<W: World>(
    ctx: &Context,
    cold: &Context,
    probes: &Arc<Vec<Read>>,
    rng: &mut Rng,
    grace: Option<Duration>,
) -> Vec<String> {
    let deadline = Instant::now() + grace.unwrap_or_default();
    loop {
        let diffs = compare::<W>(ctx, cold, probes, rng).await;
        if diffs.is_empty() || Instant::now() >= deadline {
            return diffs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What one case runs against.
struct Harness<'a, W> {
    ctx: &'a Context,
    outside: Outside<'a>,
    applies: &'a Applies,
    /// Whether the background readers evict: on while an operation runs, off while it waits
    /// for a dropped commit (an evictor would hide a commit that never applies) and while
    /// the check runs.
    evicting: &'a AtomicBool,
    /// Until when a dropped `&ctx` write may still be committing (see [`settle`]).
    unsettled_until: Cell<Option<Instant>>,
    cfg: Config,
    world: PhantomData<W>,
}

impl<W: World> Harness<'_, W> {
    fn backend(&self) -> Backend {
        self.outside.db.backend
    }

    /// Runs one operation: what it returned (for the log), and the grace period the check
    /// after it needs, if any.
    async fn execute(&self, op: &Op) -> (String, Option<Duration>) {
        let ctx = self.ctx;
        let note = match op {
            Op::Write(w) => shown(W::write(ctx, w).await),
            Op::WriteDroppedAfter(w, polls) => self.write_dropped(w, *polls).await,
            Op::Tx(items, TxEnd::Closure) => self.closure(items).await,
            Op::Tx(items, end) => self.transaction(items, *end).await,
            Op::Manual(m) => W::manual(ctx, m).await,
            Op::Behind(b) => W::behind(ctx, &self.outside, b).await,
            Op::Read(r) => shown(W::answer(ctx, r).await),
        };
        let grace = self
            .unsettled_until
            .get()
            .and_then(|until| until.checked_duration_since(Instant::now()));
        (note, grace)
    }

    /// A `&ctx` write dropped after `polls` polls. Its commit may be under way on a task of
    /// its own, or it may never have started: wait a little for it, and let the checks of
    /// the next few seconds wait for the cache to catch up.
    async fn write_dropped(&self, w: &Write, polls: usize) -> String {
        let before = self.applies.count();
        if !drop_after(polls, W::write(self.ctx, w)).await {
            return "finished within its polls".into();
        }
        self.evicting.store(false, SeqCst);
        let (wait, window) = settle(self.backend());
        self.unsettled_until.set(Some(Instant::now() + window));
        let applied = self.applies.wait_past(before, wait).await;
        format!("dropped; applied: {applied}")
    }

    /// One statement of a transaction.
    async fn item(&self, tx: &mut Transaction, item: &TxItem) -> Result<String> {
        match item {
            TxItem::Write(w) => W::write(tx, w).await,
            TxItem::Raw(r) => W::raw(tx, self.backend(), r).await,
            TxItem::Read(r) => W::read(tx, r).await,
        }
    }

    /// A transaction of several statements and its end (not [`TxEnd::Closure`]).
    async fn transaction(&self, items: &[TxItem], end: TxEnd) -> String {
        let mut tx = match self.ctx.begin().await {
            Ok(tx) => tx,
            Err(e) => return format!("begin failed: {e}"),
        };
        let (mut notes, mut failed, mut raw_ok) = (Vec::new(), false, false);
        for item in items {
            let result = self.item(&mut tx, item).await;
            raw_ok |= matches!(item, TxItem::Raw(_)) && result.is_ok();
            failed |= matches!(&result, Err(e) if !matches!(e, Error::NotFound { .. }));
            notes.push(shown(result));
        }
        // A commit applies (and runs the hooks) when it recorded anything and nothing failed.
        let applies = !failed && (raw_ok || !tx.pending_keys().is_empty());
        let ending = match end {
            TxEnd::Commit => shown(tx.commit().await.map(|r| r.to_string())),
            TxEnd::Rollback => shown(tx.rollback().await.map(|()| "rolled back".into())),
            TxEnd::Drop => {
                drop(tx);
                "dropped".into()
            }
            TxEnd::CommitDroppedAfter(polls) => self.commit_dropped(tx, polls, applies).await,
            TxEnd::Closure => unreachable!("run by `closure`"),
        };
        format!("[{}] => {ending}", notes.join("; "))
    }

    /// The statements as the body of `ctx.transaction(...)`; the first error ends the body.
    async fn closure(&self, items: &[TxItem]) -> String {
        let result = self
            .ctx
            .transaction(async |tx| {
                let mut notes = Vec::new();
                for item in items {
                    notes.push(self.item(tx, item).await?);
                }
                Ok(notes)
            })
            .await;
        match result {
            Ok((notes, report)) => format!("[{}] => {report}", notes.join("; ")),
            Err(e) => format!("body or commit failed: {e}"),
        }
    }

    /// `commit()` dropped after `polls` polls; then waits until it applied, if it has
    /// anything to apply.
    async fn commit_dropped(&self, tx: Transaction, polls: usize, applies: bool) -> String {
        let before = self.applies.count();
        if !drop_after(polls, tx.commit()).await {
            return "commit finished within its polls".into();
        }
        if !applies {
            return "commit dropped (nothing to apply)".into();
        }
        self.evicting.store(false, SeqCst);
        let applied = self.applies.wait_past(before, self.cfg.commit_wait()).await;
        format!("commit dropped; applied: {applied}")
    }
}

/// Runs one case: a fresh database, the seed data, then the generated steps with a check
/// after each, up to the first check that finds a stale answer. `None` when the backend is
/// skipped.
pub async fn run_case<W: World>(backend: Backend, seed: u64, cfg: Config) -> Option<Case> {
    let (ctx, db) = W::setup(backend, |b| cfg.configure(b)).await?;
    let oracle = independent_store(&db).await;
    let cold = Context::new(oracle.clone());
    let mut rng = Rng::new(seed);
    let (mut seeding, mut checks, ops) = (rng.fork(), rng.fork(), rng.fork());
    W::seed(&ctx, &mut seeding, cfg.alphabet).await;
    let probes = Arc::new(W::probes(cfg.alphabet));
    let applies = Applies::attach(&ctx);
    let readers = spawn_readers::<W>(&ctx, &probes, seed);
    let caps = Caps {
        raw_sql: !backend.is_mongo(),
    };
    let mut gen = Gen::new(ops, caps, cfg.focus, cfg.alphabet);
    let steps = gen.steps();
    let harness = Harness::<W> {
        ctx: &ctx,
        outside: Outside {
            db: &db,
            oracle: &oracle,
            cold: &cold,
        },
        applies: &applies,
        evicting: &readers.evicting,
        unsettled_until: Cell::new(None),
        cfg,
        world: PhantomData,
    };
    let (mut log, mut outcome) = (Vec::new(), Outcome::Clean);
    let mut times = (Duration::ZERO, Duration::ZERO);
    for step in 0..steps {
        let op = gen.op();
        let started = Instant::now();
        readers.evicting.store(true, SeqCst);
        let (note, grace) = harness.execute(&op).await;
        readers.evicting.store(false, SeqCst);
        log.push(format!("{step}: {op} => {note}"));
        let checking = Instant::now();
        let diffs = check::<W>(&ctx, &cold, &probes, &mut checks, grace).await;
        times.0 += checking - started;
        times.1 += checking.elapsed();
        if !diffs.is_empty() {
            outcome = Outcome::Stale { step, diffs };
            break;
        }
    }
    let (background_reads, reader_errors) = readers.stop().await;
    close(&oracle).await;
    Some(Case {
        seed,
        steps: log.len(),
        outcome,
        log,
        background_reads,
        reader_errors,
        stale_fills_rejected: ctx.stats().stale_fills_rejected,
        op_time: times.0,
        check_time: times.1,
    })
}

// ---------------------------------------------------------------------------------------
// Outcomes and runners
// ---------------------------------------------------------------------------------------

/// How one case ended.
pub enum Outcome {
    /// Every check agreed with the database.
    Clean,
    /// The first step whose check found differences, and the differences.
    Stale { step: usize, diffs: Vec<String> },
}

/// What one case did.
pub struct Case {
    pub seed: u64,
    pub steps: usize,
    pub outcome: Outcome,
    /// Every executed operation and what it returned.
    pub log: Vec<String>,
    /// Reads the background readers made.
    pub background_reads: u64,
    pub reader_errors: Vec<String>,
    /// Fills the guard refused in the cached context.
    pub stale_fills_rejected: u64,
    /// Time spent running operations (with their waits) and checking.
    pub op_time: Duration,
    pub check_time: Duration,
}

impl Case {
    /// The failure report: what differed, the replay command (`filter` selects the test)
    /// and the operation log.
    pub fn report(&self, backend: Backend, filter: &str) -> String {
        let mut out = String::new();
        if let Outcome::Stale { step, diffs } = &self.outcome {
            out.push_str(&format!(
                "{backend:?}: seed {} found {} stale answer(s) after step {step}:\n  {}\n",
                self.seed,
                diffs.len(),
                diffs.join("\n  ")
            ));
        }
        if !self.reader_errors.is_empty() {
            out.push_str(&format!(
                "{backend:?}: seed {}: background readers failed: {:?}\n",
                self.seed,
                &self.reader_errors[..self.reader_errors.len().min(5)]
            ));
        }
        out.push_str(&format!(
            "replay: {SEED_VAR}={} cargo test --test suite model::{filter}\noperation log:\n  {}",
            self.seed,
            self.log.join("\n  ")
        ));
        out
    }
}

/// Set to print every case's operation log.
pub const LOG_VAR: &str = "CACHED_MODEL_LOG";

/// Runs `seeds` (or the replayed seed) on `backend` with every protection on, up to the
/// first case that finds a stale answer or whose readers failed: its report, with `filter`
/// (the test) in the replay command. Prints what the run did.
pub async fn model<W: World>(
    backend: Backend,
    cfg: Config,
    seeds_run: &[u64],
    filter: &str,
) -> std::result::Result<(), String> {
    let started = Instant::now();
    let (mut cases, mut steps, mut reads, mut refused) = (0, 0, 0, 0);
    let (mut op_time, mut check_time) = (Duration::ZERO, Duration::ZERO);
    for seed in seeds(seeds_run) {
        let Some(case) = run_case::<W>(backend, seed, cfg).await else {
            return Ok(());
        };
        if !matches!(case.outcome, Outcome::Clean) || !case.reader_errors.is_empty() {
            return Err(case.report(backend, filter));
        }
        if std::env::var_os(LOG_VAR).is_some() {
            eprintln!("{backend:?}, seed {seed}:\n  {}", case.log.join("\n  "));
        }
        cases += 1;
        steps += case.steps;
        reads += case.background_reads;
        refused += case.stale_fills_rejected;
        op_time += case.op_time;
        check_time += case.check_time;
    }
    eprintln!(
        "model {backend:?}: {cases} case(s), {steps} steps, 0 stale answers; {reads} \
         background reads, {refused} stale fills refused; {:.1?} ({op_time:.1?} running \
         operations, {check_time:.1?} checking)",
        started.elapsed()
    );
    Ok(())
}

/// What a negative control found on one backend.
#[derive(Debug)]
pub struct Found {
    pub backend: Backend,
    pub cases: usize,
    pub stale_cases: usize,
    pub stale: usize,
}

/// Runs `seeds_run` (or the replayed seed) on `backend` with `cfg` until `enough` cases found
/// stale answers; prints the first stale answer and the totals. `None` when skipped.
pub async fn control<W: World>(
    backend: Backend,
    cfg: Config,
    seeds_run: &[u64],
    enough: usize,
) -> Option<Found> {
    let started = Instant::now();
    let off = cfg.off.map_or("nothing".into(), |p| format!("{p:?}"));
    let mut found = Found {
        backend,
        cases: 0,
        stale_cases: 0,
        stale: 0,
    };
    for seed in seeds(seeds_run) {
        let case = run_case::<W>(backend, seed, cfg).await?;
        found.cases += 1;
        if let Outcome::Stale { step, diffs } = &case.outcome {
            if found.stale_cases == 0 {
                eprintln!(
                    "{off} off, {backend:?}, seed {seed}: first stale answer after step {step} \
                     ({}):\n  {}",
                    case.log[*step], diffs[0]
                );
            }
            found.stale_cases += 1;
            found.stale += diffs.len();
            if found.stale_cases == enough {
                break;
            }
        }
    }
    eprintln!(
        "{off} off, {backend:?}: {} stale answer(s) in {} of {} case(s); {:.1?}",
        found.stale,
        found.stale_cases,
        found.cases,
        started.elapsed()
    );
    Some(found)
}
