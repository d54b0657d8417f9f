//! A model-based randomized test of the whole cache, in which the model is the database
//! itself: after every step, every answer the cache gives must be the database's.
//!
//! Each case gets a fresh database with a small schema of its own: teams; their players,
//! with a case-insensitive `email` index (SQLite `NOCASE`, MariaDB's default collation, a
//! PostgreSQL ICU collation) and a key-forming integer `level`; and tags, whose id is
//! case-insensitive text. A view, [`TeamPage`], reads far outside its key's foreign-key chain
//! (a count over all players, another team's row, player 1 whatever its team, the experts of
//! every team, a tag and an address count by upper-case spellings). The seeded generator and
//! the harness live in `tests/common/model.rs`; this file is the schema-specific half (a
//! [`World`]) and the tests.
//!
//! A case seeds the database, then runs 40 to 80 steps drawn from every way of changing or
//! reading the cache: each repository write (insert, insert_many, update of key-forming and
//! other fields, increment/decrement, update_many_by_*, delete, delete_many) through `&ctx`
//! and inside transactions that commit, roll back, are dropped, have their `commit()`
//! dropped after 1 to 6 polls, or run as a `ctx.transaction(...)` body; `&ctx` writes
//! dropped after 1 to 6 polls; raw SQL writes with what they touch (not on MongoDB); manual
//! invalidations, refreshes, preloads and clears; writes behind the cache's back followed by
//! the manual call that matches them; and reads of rows, queries under many spellings,
//! counts and view instances. Two background readers read through the same context all
//! along (and, while an operation runs, evict what they read, so that loads keep racing the
//! writes), and one load in four pauses 2 ms before its fill.
//!
//! After every step, once its writes have returned and a dropped commit has applied, every
//! probe (each row, present or not; a `get_many`; each query and count under several
//! spellings of its text; each list; each view instance) is answered by the cache and by a
//! cold context on a pool of its own, cleared just before: a difference is a stale answer.
//! The case stops there and the test fails with the seed, the step, the differences and the
//! operation log; `CACHED_MODEL_SEED=<seed> cargo test --test suite model::<test>` replays it, and
//! `CACHED_MODEL_LOG=1` prints the log of every passing case too.
//!
//! The negative controls run the same generator and the same check with one protection
//! switched off (read tracking, the commit guard, text folding, the stale-fill guard), biased
//! toward the operations it protects, and must find stale answers: otherwise the check could
//! not tell the protection from its absence.

use crate::common;

use cached_runtime::prelude::*;
use cached_runtime::{ContextBuilder, Handle};
use common::model::*;
use common::{Backend, TestDb};

/// The seeds the model runs, one case each: all of them on SQLite, the first
/// [`case_count`]`(backend)` on a server (each of their statements is a round trip).
const SEEDS: [u64; 12] = [
    1,
    2,
    3,
    0x5EED,
    0xC0FFEE,
    0xDEAD_BEEF,
    4,
    5,
    6,
    7,
    0xFACADE,
    0xB0BA,
];
/// The seeds a negative control runs on each backend, until [`CONTROL_FINDS`] cases have
/// found stale answers.
const CONTROL_SEEDS: [u64; 6] = [11, 12, 13, 14, 15, 16];
const CONTROL_FINDS: usize = 2;

/// How many of [`SEEDS`] run on `backend`. With `CACHED_MODEL_CASES=full` (`.ci/run` sets
/// it) every seed runs on SQLite and the first 6 (MongoDB: 4) on a server, each backend's run
/// well under two minutes in a debug build on a 2-core machine. Unset, a quicker pass for a
/// local `cargo test --workspace` runs the first 4 on SQLite and 2 on each server; a number
/// runs that many on every backend. The negative controls always run in full: they stop once
/// they have found what they must find.
fn case_count(backend: Backend) -> usize {
    let (full, quick) = match backend {
        Backend::Sqlite => (SEEDS.len(), 4),
        Backend::Postgres | Backend::MySql => (6, 2),
        Backend::Mongo => (4, 2),
    };
    match std::env::var(CASES_VAR).as_deref() {
        Err(_) => quick,
        Ok("full") => full,
        Ok(n) => n
            .parse::<usize>()
            .unwrap_or_else(|_| panic!("{CASES_VAR} is `full` or a number of cases, not {n:?}"))
            .min(SEEDS.len()),
    }
}

/// The variable that sets [`case_count`].
const CASES_VAR: &str = "CACHED_MODEL_CASES";

/// A team: the key of [`TeamPage`].
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "teams")]
pub struct Team {
    #[cache(id)]
    pub id: i64,
    pub name: String,
}

/// A player: a case-insensitive address and a level, both key-forming.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "players", relates_to = "Team")]
pub struct Player {
    #[cache(id)]
    pub id: i64,
    pub team_id: i64,
    #[cache(index)]
    pub email: String,
    #[cache(index)]
    pub level: i64,
    pub score: i64,
    pub note: String,
}

/// A tag, keyed by case-insensitive text.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "tags", relates_to = "Team", name = "team_tag")]
pub struct Tag {
    #[cache(id)]
    pub code: String,
    pub team_id: i64,
    pub title: String,
}

/// A team's page. Besides its roster it reads what no foreign key leads to from the team:
/// the number of players everywhere, how many have one address (spelled in upper case), the
/// experts of every team, another team's row, player 1 whatever its team, and a tag by an
/// upper-case spelling of its code.
#[derive(CachedView, Clone, Debug, PartialEq)]
#[view(key = "Team", reads(Team, Player, Tag))]
pub struct TeamPage {
    pub name: String,
    pub roster: Vec<(i64, String, i64, i64)>,
    pub everyone: i64,
    pub namesakes: i64,
    pub experts: Vec<i64>,
    pub rival: Option<String>,
    pub star: Option<(i64, i64)>,
    pub mascot: Option<String>,
}

impl LoadView for TeamPage {
    async fn load(ctx: &mut ViewCtx<'_, Self>, team: i64) -> Result<Option<Self>> {
        let Some(row) = ctx.get::<Team>(team).await? else {
            return Ok(None);
        };
        let roster = ctx.find(PlayerQuery::ByTeamId(team)).await?;
        let roster = roster
            .iter()
            .map(|p| (p.id, p.email.clone(), p.level, p.score))
            .collect();
        let everyone = ctx.count(PlayerQuery::All).await?;
        let address = ADDRESSES[team.rem_euclid(ADDRESSES.len() as i64) as usize];
        let namesakes = ctx
            .count(PlayerQuery::ByEmail(address.to_uppercase()))
            .await?;
        let experts = ctx.find(PlayerQuery::ByLevel(MAX_LEVEL)).await?;
        let experts = experts.iter().map(|p| p.id).collect();
        let rival = ctx.get::<Team>(team % TEAMS + 1).await?;
        let star = ctx.get::<Player>(1).await?;
        let code = CODES[team.rem_euclid(CODES.len() as i64) as usize].to_uppercase();
        let mascot = ctx.get::<Tag>(code).await?;
        Ok(Some(TeamPage {
            name: row.name.clone(),
            roster,
            everyone,
            namesakes,
            experts,
            rival: rival.map(|t| t.name.clone()),
            star: star.map(|p| (p.team_id, p.score)),
            mascot: mascot.map(|t| t.title.clone()),
        }))
    }
}

const SQLITE: &str = "
CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE players (id INTEGER PRIMARY KEY, team_id INTEGER NOT NULL REFERENCES teams(id),
    email TEXT NOT NULL COLLATE NOCASE, level INTEGER NOT NULL, score INTEGER NOT NULL,
    note TEXT NOT NULL);
CREATE INDEX players_email ON players(email);
CREATE TABLE tags (code TEXT PRIMARY KEY COLLATE NOCASE,
    team_id INTEGER NOT NULL REFERENCES teams(id), title TEXT NOT NULL);";
/// The case-insensitive ICU collation of `tests/collation.rs`.
const POSTGRES: &str = "
CREATE TABLE teams (id BIGINT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE players (id BIGINT PRIMARY KEY, team_id BIGINT NOT NULL REFERENCES teams(id),
    email TEXT COLLATE public.ci NOT NULL, level BIGINT NOT NULL, score BIGINT NOT NULL,
    note TEXT NOT NULL);
CREATE INDEX players_email ON players(email);
CREATE TABLE tags (code TEXT COLLATE public.ci PRIMARY KEY,
    team_id BIGINT NOT NULL REFERENCES teams(id), title TEXT NOT NULL);";
/// The database's default collation (`utf8mb4_general_ci` on a stock MariaDB).
const MYSQL: &str = "
CREATE TABLE teams (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL);
CREATE TABLE players (id BIGINT PRIMARY KEY, team_id BIGINT NOT NULL,
    email VARCHAR(100) NOT NULL, level BIGINT NOT NULL, score BIGINT NOT NULL,
    note VARCHAR(100) NOT NULL, INDEX players_email (email),
    FOREIGN KEY (team_id) REFERENCES teams(id));
CREATE TABLE tags (code VARCHAR(100) PRIMARY KEY, team_id BIGINT NOT NULL,
    title VARCHAR(100) NOT NULL, FOREIGN KEY (team_id) REFERENCES teams(id));";

/// The typed query of a generated one.
fn player_query(query: &Query) -> PlayerQuery {
    match query {
        Query::Email(email) => PlayerQuery::ByEmail(email.clone()),
        Query::Team(team) => PlayerQuery::ByTeamId(*team),
        Query::Level(level) => PlayerQuery::ByLevel(*level),
        Query::All => PlayerQuery::All,
    }
}

/// The row of a generated player.
fn player(p: &NewPlayer) -> Player {
    Player {
        id: p.id,
        team_id: p.team,
        email: p.email.clone(),
        level: p.level,
        score: p.score,
        note: p.note.clone(),
    }
}

/// The typed patch of a generated one.
fn update(patch: &Patch) -> PlayerUpdate {
    let mut update = PlayerUpdate::default();
    if let Some(team) = patch.team {
        update = update.team_id(team);
    }
    if let Some(email) = &patch.email {
        update = update.email(email.clone());
    }
    if let Some(level) = patch.level {
        update = update.level(level);
    }
    if let Some(score) = patch.score {
        update = update.score(score);
    }
    if let Some(note) = &patch.note {
        update = update.note(note.clone());
    }
    update
}

/// Writes straight to the database, behind the cache's back (through another pool).
async fn direct_write(outside: &Outside<'_>, behind: &Behind) {
    let db = outside.db;
    if db.backend.is_mongo() {
        use mongodb::bson::{doc, Document};
        let players = db.mongo().collection::<Document>("players");
        let teams = db.mongo().collection::<Document>("teams");
        let done = match behind {
            Behind::Score { id, by, .. } => players
                .update_one(doc! { "_id": id }, doc! { "$inc": { "score": by } })
                .await
                .map(drop),
            Behind::Email(id, email) => players
                .update_one(doc! { "_id": id }, doc! { "$set": { "email": email } })
                .await
                .map(drop),
            Behind::TeamName(id, name) => teams
                .update_one(doc! { "_id": id }, doc! { "$set": { "name": name } })
                .await
                .map(drop),
            Behind::DeleteThenEntity(id) => players.delete_one(doc! { "_id": id }).await.map(drop),
        };
        done.expect("direct write");
        return;
    }
    let (sql, binds) = match behind {
        Behind::Score { id, by, .. } => (
            "UPDATE players SET score = score + ? WHERE id = ?",
            vec![Bind::Int(*by), Bind::Int(*id)],
        ),
        Behind::Email(id, email) => (
            "UPDATE players SET email = ? WHERE id = ?",
            vec![Bind::Text(email.clone()), Bind::Int(*id)],
        ),
        Behind::TeamName(id, name) => (
            "UPDATE teams SET name = ? WHERE id = ?",
            vec![Bind::Text(name.clone()), Bind::Int(*id)],
        ),
        Behind::DeleteThenEntity(id) => ("DELETE FROM players WHERE id = ?", vec![Bind::Int(*id)]),
    };
    direct(outside.oracle, db.backend, sql, &binds).await;
}

/// The world of teams, players and tags.
struct League;

impl World for League {
    async fn setup(
        backend: Backend,
        configure: impl FnOnce(ContextBuilder) -> ContextBuilder,
    ) -> Option<(Context, TestDb)> {
        common::database_with(backend, 8, [SQLITE, POSTGRES, MYSQL], configure).await
    }

    /// Teams `1..TEAMS`, players `1..=SEEDED_PLAYERS` spread over them, tags `red` and
    /// `blue`; then an empty cache.
    async fn seed(ctx: &Context, rng: &mut Rng, alphabet: Alphabet) {
        let teams: Vec<Team> = (1..TEAMS)
            .map(|id| Team {
                id,
                name: format!("team {id}"),
            })
            .collect();
        let players: Vec<Player> = (1..=SEEDED_PLAYERS)
            .map(|id| Player {
                id,
                team_id: (id - 1) % (TEAMS - 1) + 1,
                email: spell(rng, ADDRESSES[id as usize % ADDRESSES.len()], alphabet),
                level: id % (MAX_LEVEL + 1),
                score: 10 * id,
                note: "seeded".into(),
            })
            .collect();
        let tags: Vec<Tag> = [(CODES[0], 1), (CODES[1], 2)]
            .into_iter()
            .map(|(code, team_id)| Tag {
                code: spell(rng, code, alphabet),
                team_id,
                title: format!("{code} tag"),
            })
            .collect();
        let mut tx = ctx.begin().await.expect("begin");
        Team::repo(&mut tx)
            .insert_many(&teams)
            .await
            .expect("teams");
        Player::repo(&mut tx)
            .insert_many(&players)
            .await
            .expect("players");
        Tag::repo(&mut tx).insert_many(&tags).await.expect("tags");
        tx.commit().await.expect("seed");
        ctx.clear();
    }

    /// Each row (and absent ones), a `get_many`, each query and count under every probe
    /// spelling of its text, the lists, and each view instance.
    fn probes(alphabet: Alphabet) -> Vec<Read> {
        let mut out = vec![Read::Players(vec![4, 11, 1, 7, 2, 9, 4])];
        out.extend((1..=PLAYERS).map(Read::Player));
        out.extend((1..=TEAMS).map(Read::Team));
        out.extend([Read::Teams, Read::Tags]);
        for code in CODES {
            out.extend(probe_spellings(code, alphabet).into_iter().map(Read::Tag));
        }
        let mut queries = vec![Query::All];
        for address in ADDRESSES {
            let spellings = probe_spellings(address, alphabet);
            queries.extend(spellings.into_iter().map(Query::Email));
        }
        queries.extend((1..=TEAMS).map(Query::Team));
        queries.extend((0..=MAX_LEVEL).map(Query::Level));
        for query in queries {
            out.push(Read::Find(query.clone()));
            out.push(Read::Count(query));
        }
        out.extend((1..=TEAMS).map(Read::View));
        out
    }

    async fn answer(ctx: &Context, read: &Read) -> Result<String> {
        match read {
            Read::View(team) => Ok(format!("{:?}", TeamPage::get(ctx, *team).await?)),
            _ => Self::read(ctx, read).await,
        }
    }

    async fn read<H: Handle>(h: H, read: &Read) -> Result<String> {
        Ok(match read {
            Read::Player(id) => format!("{:?}", Player::repo(h).get(*id).await?),
            Read::Players(ids) => format!("{:?}", Player::repo(h).get_many(ids).await?),
            Read::Find(query) => {
                let mut players = Player::repo(h);
                let rows = match query {
                    Query::Email(email) => players.find_by_email(email.clone()).await?,
                    Query::Team(team) => players.find_by_team_id(*team).await?,
                    Query::Level(level) => players.find_by_level(*level).await?,
                    Query::All => players.list().await?,
                };
                format!("{rows:?}")
            }
            Read::Count(query) => {
                let mut players = Player::repo(h);
                let n = match query {
                    Query::Email(email) => players.count_by_email(email.clone()).await?,
                    Query::Team(team) => players.count_by_team_id(*team).await?,
                    Query::Level(level) => players.count_by_level(*level).await?,
                    Query::All => players.count().await?,
                };
                n.to_string()
            }
            Read::Team(id) => format!("{:?}", Team::repo(h).get(*id).await?),
            Read::Teams => format!("{:?}", Team::repo(h).list().await?),
            Read::Tag(code) => format!("{:?}", Tag::repo(h).get(code.clone()).await?),
            Read::Tags => format!("{:?}", Tag::repo(h).list().await?),
            Read::View(_) => unreachable!("views are read through a context"),
        })
    }

    fn evict(ctx: &Context, read: &Read) {
        match read {
            Read::Player(id) => ctx.invalidate::<Player>(*id),
            Read::Players(ids) => ctx.invalidate::<Player>(ids[0]),
            Read::Find(query) | Read::Count(query) => ctx.invalidate_query(&player_query(query)),
            Read::Team(id) => ctx.invalidate::<Team>(*id),
            Read::Teams => ctx.invalidate_query(&TeamQuery::All),
            Read::Tag(code) => ctx.invalidate::<Tag>(code.clone()),
            Read::Tags => ctx.invalidate_query(&TagQuery::All),
            Read::View(team) => ctx.invalidate_key(TeamPageKey::new(*team)),
        };
    }

    async fn write<H: Handle>(h: H, write: &Write) -> Result<String> {
        let rows = |n: usize| format!("{n} row(s)");
        Ok(match write {
            Write::Insert(p) => format!("{:?}", Player::repo(h).insert(&player(p)).await?),
            Write::InsertMany(ps) => {
                let ps: Vec<Player> = ps.iter().map(player).collect();
                rows(Player::repo(h).insert_many(&ps).await?.len())
            }
            Write::Update(id, patch) => {
                format!("{:?}", Player::repo(h).update(*id, update(patch)).await?)
            }
            Write::AddScore(id, by) if *by >= 0 => {
                format!("{:?}", Player::repo(h).increment_score(*id, *by).await?)
            }
            Write::AddScore(id, by) => {
                format!("{:?}", Player::repo(h).decrement_score(*id, -by).await?)
            }
            Write::AddLevel(id, by) if *by >= 0 => {
                format!("{:?}", Player::repo(h).increment_level(*id, *by).await?)
            }
            Write::AddLevel(id, by) => {
                format!("{:?}", Player::repo(h).decrement_level(*id, -by).await?)
            }
            Write::UpdateManyByTeam(team, patch) => rows(
                Player::repo(h)
                    .update_many_by_team_id(*team, update(patch))
                    .await?
                    .len(),
            ),
            Write::UpdateManyByEmail(email, patch) => {
                let mut players = Player::repo(h);
                rows(
                    players
                        .update_many_by_email(email.clone(), update(patch))
                        .await?
                        .len(),
                )
            }
            Write::Delete(id) => format!("{:?}", Player::repo(h).delete(*id).await?),
            Write::DeleteMany(ids) => rows(Player::repo(h).delete_many(ids).await? as usize),
            Write::InsertTeam(id, name) => {
                let team = Team {
                    id: *id,
                    name: name.clone(),
                };
                format!("{:?}", Team::repo(h).insert(&team).await?)
            }
            Write::RenameTeam(id, name) => {
                let patch = TeamUpdate::default().name(name.clone());
                format!("{:?}", Team::repo(h).update(*id, patch).await?)
            }
            Write::DeleteTeam(id) => format!("{:?}", Team::repo(h).delete(*id).await?),
            Write::InsertTag(code, team, title) => {
                let tag = Tag {
                    code: code.clone(),
                    team_id: *team,
                    title: title.clone(),
                };
                format!("{:?}", Tag::repo(h).insert(&tag).await?)
            }
            Write::RetitleTag(code, title) => {
                let patch = TagUpdate::default().title(title.clone());
                format!("{:?}", Tag::repo(h).update(code.clone(), patch).await?)
            }
            Write::DeleteTag(code) => format!("{:?}", Tag::repo(h).delete(code.clone()).await?),
        })
    }

    async fn raw(tx: &mut Transaction, backend: Backend, raw: &Raw) -> Result<String> {
        let sql = |text: &str| sqlx::AssertSqlSafe(placeholders(backend, text));
        let n = match raw {
            Raw::AddScore(id, by) => {
                tx.raw_write(sql("UPDATE players SET score = score + ? WHERE id = ?"))
                    .bind(*by)
                    .bind(*id)
                    .touches::<Player>([*id])
                    .execute()
                    .await?
            }
            Raw::SetEmail(id, email) => {
                tx.raw_write(sql("UPDATE players SET email = ? WHERE id = ?"))
                    .bind(email.clone())
                    .bind(*id)
                    .touches::<Player>([*id])
                    .execute()
                    .await?
            }
            Raw::BumpLevels(team) => {
                tx.raw_write(sql(
                    "UPDATE players SET level = level + 1 WHERE team_id = ?",
                ))
                .bind(*team)
                .touches_all::<Player>()
                .execute()
                .await?
            }
            Raw::DeletePlayer(id) => {
                tx.raw_write(sql("DELETE FROM players WHERE id = ?"))
                    .bind(*id)
                    .touches::<Player>([*id])
                    .execute()
                    .await?
            }
            Raw::RenameTeam(id, name) => {
                tx.raw_write(sql("UPDATE teams SET name = ? WHERE id = ?"))
                    .bind(name.clone())
                    .bind(*id)
                    .touches::<Team>([*id])
                    .execute()
                    .await?
            }
            Raw::RetitleTag(code, title) => {
                tx.raw_write(sql("UPDATE tags SET title = ? WHERE code = ?"))
                    .bind(title.clone())
                    .bind(code.clone())
                    .touches::<Tag>([code.clone()])
                    .execute()
                    .await?
            }
        };
        Ok(format!("{n} row(s)"))
    }

    async fn manual(ctx: &Context, manual: &Manual) -> String {
        let report = match manual {
            Manual::Invalidate(id) => ctx.invalidate::<Player>(*id),
            Manual::InvalidateTeam(id) => ctx.invalidate::<Team>(*id),
            Manual::InvalidateTag(code) => ctx.invalidate::<Tag>(code.clone()),
            Manual::InvalidateQuery(query) => ctx.invalidate_query(&player_query(query)),
            Manual::InvalidateEntity(Entity::Player) => ctx.invalidate_entity::<Player>(),
            Manual::InvalidateEntity(Entity::Team) => ctx.invalidate_entity::<Team>(),
            Manual::InvalidateEntity(Entity::Tag) => ctx.invalidate_entity::<Tag>(),
            Manual::InvalidateView(team) => ctx.invalidate_key(TeamPageKey::new(*team)),
            Manual::Preload(ids) => {
                return shown(
                    ctx.preload::<Player>(ids.clone())
                        .await
                        .map(|n| format!("{n} found")),
                );
            }
            Manual::Refresh(id) => {
                return shown(ctx.refresh::<Player>(*id).await.map(|r| format!("{r:?}")));
            }
            Manual::Clear => {
                ctx.clear();
                return "cleared".into();
            }
        };
        report.to_string()
    }

    /// The direct write, then: `refresh` or `invalidate` of a row whose score changed; of a
    /// row whose address changed, `invalidate` and `invalidate_query` of the old and the new
    /// address; `invalidate` of a renamed team; `invalidate_entity` after a delete.
    async fn behind(ctx: &Context, outside: &Outside<'_>, behind: &Behind) -> String {
        let old_email = match behind {
            Behind::Email(id, _) => {
                outside.cold.clear();
                let old = Player::repo(outside.cold).get(*id).await;
                old.expect("read the old row").map(|p| p.email.clone())
            }
            _ => None,
        };
        direct_write(outside, behind).await;
        match behind {
            Behind::Score {
                id, refresh: true, ..
            } => shown(ctx.refresh::<Player>(*id).await.map(|r| format!("{r:?}"))),
            Behind::Score { id, .. } => ctx.invalidate::<Player>(*id).to_string(),
            Behind::Email(id, email) => {
                let mut keys = ctx.invalidate::<Player>(*id).key_strings();
                for address in old_email.into_iter().chain([email.clone()]) {
                    let query = PlayerQuery::ByEmail(address);
                    keys.extend(ctx.invalidate_query(&query).key_strings());
                }
                format!("invalidated {keys:?}")
            }
            Behind::TeamName(id, _) => ctx.invalidate::<Team>(*id).to_string(),
            Behind::DeleteThenEntity(_) => ctx.invalidate_entity::<Player>().to_string(),
        }
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn model(backend) {
        let filter = format!("{}::model", format!("{backend:?}").to_lowercase());
        let seeds = &SEEDS[..case_count(backend)];
        if let Err(report) = common::model::model::<League>(backend, Config::PROTECTED, seeds, &filter).await {
            panic!("{report}");
        }
    }
}

const SQL: [Backend; 3] = [Backend::Sqlite, Backend::Postgres, Backend::MySql];
const ALL: [Backend; 4] = [
    Backend::Sqlite,
    Backend::Postgres,
    Backend::MySql,
    Backend::Mongo,
];

/// Negative control: the model with `protection` off must find stale answers on every
/// backend of `backends` that runs (`test` names the test, for the replay command).
async fn negative_control(protection: Protection, backends: &[Backend], test: &str) {
    let cfg = Config::without(protection);
    let mut found = Vec::new();
    for &backend in backends {
        found.extend(control::<League>(backend, cfg, &CONTROL_SEEDS, CONTROL_FINDS).await);
    }
    let missed: Vec<Backend> = found
        .iter()
        .filter(|f| f.stale == 0)
        .map(|f| f.backend)
        .collect();
    assert!(
        missed.is_empty(),
        "with {protection:?} off the model found no stale answer on {missed:?} ({found:?}): \
         it cannot tell the protection from its absence (replay one seed: {SEED_VAR}=<seed> \
         cargo test --test suite model::{test})"
    );
}

/// Without read tracking, views that read what a write changed stay cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_read_tracking_the_model_finds_stale_views() {
    negative_control(Protection::ReadTracking, &ALL, "without_read_tracking").await;
}

/// Without the commit guard, a dropped `commit()` leaves the cache behind the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_commit_guard_the_model_finds_stale_entries() {
    negative_control(Protection::CommitGuard, &SQL, "without_the_commit_guard").await;
}

/// Without text folding, other spellings of a written address or code stay cached (MongoDB
/// compares text exactly: nothing to find there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_text_folding_the_model_finds_stale_spellings() {
    negative_control(Protection::TextFolding, &SQL, "without_text_folding").await;
}

/// Without the stale-fill guard, loads overtaken by a commit are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stale_fill_protection_the_model_finds_stale_fills() {
    negative_control(Protection::StaleFills, &SQL, "without_stale_fill").await;
}

/// Spellings beyond the documented ones that the servers' case-insensitive collations call
/// equal: `ſ` is `s` under MariaDB's `utf8mb4_general_ci`; `ﬁ` is `fi` and a left-to-right
/// mark is nothing under PostgreSQL's ICU level-2 collation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spellings_the_servers_call_equal() {
    let cfg = Config {
        alphabet: Alphabet::UnicodeEdges,
        ..Config::PROTECTED
    };
    let mut failures = Vec::new();
    for backend in [Backend::MySql, Backend::Postgres] {
        let seeds = &SEEDS[..case_count(backend)];
        let filter = "spellings_the_servers_call_equal";
        if let Err(report) = common::model::model::<League>(backend, cfg, seeds, filter).await {
            failures.push(report);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
