//! A many-to-many relation through a join entity: `Casting` relates a `Movie` and an `Actor`
//! (two `relates_to` edges, and `unique(movie_id, actor_id)`). Attaching or detaching an actor
//! drops exactly the cast of that movie and the filmography of that actor (their lists and
//! counts), the pages of that movie, and nothing of other movies or actors; renaming an actor
//! drops the pages of the movies that show the name. After each step every answer the cache
//! gives equals a cold read of the database.

use crate::common;

use cached_runtime::prelude::*;
use common::Backend;

#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "movies")]
pub struct Movie {
    #[cache(id)]
    pub id: i64,
    pub title: String,
}

#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(table = "actors")]
pub struct Actor {
    #[cache(id)]
    pub id: i64,
    pub name: String,
}

/// The join entity: one row per (movie, actor) pair.
#[derive(CachedEntity, Clone, Debug, PartialEq)]
#[cache(
    table = "castings",
    relates_to = "Movie",
    relates_to = "Actor",
    unique(movie_id, actor_id)
)]
pub struct Casting {
    #[cache(id)]
    pub id: i64,
    pub movie_id: i64,
    pub actor_id: i64,
    pub role: String,
}

/// A movie's page: its title and the names of its cast, read through the join entity.
#[derive(CachedView, Clone, Debug, PartialEq)]
#[view(key = "Movie", reads(Movie, Casting, Actor))]
pub struct MoviePage {
    pub title: String,
    pub cast: Vec<String>,
}

impl LoadView for MoviePage {
    async fn load(ctx: &mut ViewCtx<'_, Self>, movie: i64) -> Result<Option<Self>> {
        let Some(found) = ctx.get::<Movie>(movie).await? else {
            return Ok(None);
        };
        let castings = ctx.find(CastingQuery::ByMovieId(movie)).await?;
        let ids: Vec<i64> = castings.iter().map(|c| c.actor_id).collect();
        let actors = ctx.get_many::<Actor>(&ids).await?;
        let cast = actors
            .into_iter()
            .flatten()
            .map(|a| a.name.clone())
            .collect();
        Ok(Some(MoviePage {
            title: found.title.clone(),
            cast,
        }))
    }
}

const TABLES: &str = "
CREATE TABLE movies (id BIGINT PRIMARY KEY, title VARCHAR(100) NOT NULL);
CREATE TABLE actors (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL);
CREATE TABLE castings (id BIGINT PRIMARY KEY, movie_id BIGINT NOT NULL REFERENCES movies(id),
  actor_id BIGINT NOT NULL REFERENCES actors(id), role VARCHAR(100) NOT NULL,
  UNIQUE (movie_id, actor_id));";

async fn setup(backend: Backend) -> Option<(Context, common::TestDb)> {
    let (ctx, db) = common::database_with(backend, 4, [TABLES; 3], |b| b).await?;
    if backend.is_mongo() {
        // MongoDB enforces uniqueness only through an index.
        use mongodb::bson::{doc, Document};
        let unique = mongodb::options::IndexOptions::builder()
            .unique(true)
            .build();
        let index = mongodb::IndexModel::builder()
            .keys(doc! { "movie_id": 1, "actor_id": 1 })
            .options(unique)
            .build();
        let castings = db.mongo().collection::<Document>("castings");
        castings.create_index(index).await.unwrap();
    }
    let movies = [(1, "Alien"), (2, "Heat")].map(|(id, t)| Movie {
        id,
        title: t.into(),
    });
    let actors =
        [(1, "Ripley"), (2, "Dallas"), (3, "Hanna")].map(|(id, n)| Actor { id, name: n.into() });
    Movie::repo(&ctx).insert_many(&movies).await.unwrap();
    Actor::repo(&ctx).insert_many(&actors).await.unwrap();
    // Alien: Ripley and Dallas; Heat: Hanna.
    Casting::repo(&ctx)
        .insert_many(&[casting(1, 1, 1), casting(2, 1, 2), casting(3, 2, 3)])
        .await
        .unwrap();
    Some((ctx, db))
}

fn casting(id: i64, movie_id: i64, actor_id: i64) -> Casting {
    Casting {
        id,
        movie_id,
        actor_id,
        role: format!("role {id}"),
    }
}

/// Every answer the test probes: casts, filmographies, counts, pair lookups and pages.
async fn answers(ctx: &Context) -> Vec<String> {
    let mut out = Vec::new();
    for movie in [1, 2] {
        let cast = Casting::repo(ctx).find_by_movie_id(movie).await.unwrap();
        let n = Casting::repo(ctx).count_by_movie_id(movie).await.unwrap();
        let page = MoviePage::get(ctx, movie).await.unwrap();
        out.push(format!(
            "movie {movie}: {:?} #{n} page {:?}",
            cast.iter().map(|c| c.actor_id).collect::<Vec<_>>(),
            page.as_deref()
        ));
    }
    for movie in [1, 2] {
        let actors = Casting::repo(ctx).actors_by_movie_id(movie).await.unwrap();
        let names: Vec<&str> = actors.iter().map(|a| a.name.as_str()).collect();
        out.push(format!("actors of {movie}: {names:?}"));
    }
    for actor in [1, 2, 3] {
        let movies = Casting::repo(ctx).movies_by_actor_id(actor).await.unwrap();
        let titles: Vec<&str> = movies.iter().map(|m| m.title.as_str()).collect();
        out.push(format!("movies of {actor}: {titles:?}"));
    }
    for actor in [1, 2, 3] {
        let films = Casting::repo(ctx).find_by_actor_id(actor).await.unwrap();
        out.push(format!(
            "actor {actor}: {:?}",
            films.iter().map(|c| c.movie_id).collect::<Vec<_>>()
        ));
        for movie in [1, 2] {
            let pair = Casting::repo(ctx)
                .get_by_movie_id_and_actor_id(movie, actor)
                .await;
            out.push(format!(
                "({movie}, {actor}): {:?}",
                pair.unwrap().map(|c| c.id)
            ));
        }
    }
    out
}

async fn assert_fresh(ctx: &Context, db: &common::TestDb, step: &str) {
    let cold = Context::new(db.store.clone());
    assert_eq!(answers(ctx).await, answers(&cold).await, "after {step}");
}

backend_tests! {
    #[tokio::test]
    async fn attach_and_detach_drop_both_sides_and_the_pages_precisely(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        assert_fresh(&ctx, &db, "seeding").await;
        let page = |movie: i64| CacheKey::from(MoviePageKey::new(movie));

        // Attach Hanna (3) to Alien (1): Alien's cast and Hanna's filmography change.
        let report = Casting::repo(&ctx).insert(&casting(4, 1, 3)).await;
        report.unwrap();
        assert!(!ctx.is_cached(CastingQuery::ByMovieId(1).list_key()));
        assert!(!ctx.is_cached(CastingQuery::ByMovieId(1).count_key()));
        assert!(!ctx.is_cached(CastingQuery::ByActorId(3).list_key()));
        assert!(!ctx.is_cached(page(1)), "Alien's page read Alien's cast");
        assert!(ctx.is_cached(CastingQuery::ByMovieId(2).list_key()), "Heat's cast is unchanged");
        assert!(ctx.is_cached(CastingQuery::ByActorId(1).list_key()), "Ripley's films are unchanged");
        assert!(ctx.is_cached(page(2)), "Heat's page is unchanged");
        assert_fresh(&ctx, &db, "attaching Hanna to Alien").await;

        // Detach Dallas (2) from Alien, found by the pair.
        let pair = Casting::repo(&ctx).get_by_movie_id_and_actor_id(1, 2).await.unwrap().unwrap();
        let mut tx = ctx.begin().await.unwrap();
        Casting::repo(&mut tx).delete(pair.id).await.unwrap();
        let report = tx.commit().await.unwrap();
        assert!(report.contains(&page(1)), "{report}");
        assert!(!report.contains(&page(2)), "{report}");
        assert!(ctx.is_cached(CastingQuery::ByActorId(3).list_key()));
        assert_fresh(&ctx, &db, "detaching Dallas from Alien").await;

        // Renaming Ripley drops the page that shows her name, not Heat's.
        Actor::repo(&ctx).update(1, ActorUpdate::default().name("Ellen Ripley")).await.unwrap();
        assert!(!ctx.is_cached(page(1)) && ctx.is_cached(page(2)));
        assert!(ctx.is_cached(CastingQuery::ByMovieId(1).list_key()), "the cast ids did not change");
        assert_fresh(&ctx, &db, "renaming Ripley").await;

        // Attaching the same pair twice is a unique violation that changes nothing.
        let err = Casting::repo(&ctx).insert(&casting(5, 1, 3)).await.unwrap_err();
        assert!(matches!(err, Error::Constraint { .. }), "{err}");
        assert_fresh(&ctx, &db, "a refused duplicate pair").await;

        // `detach(movie, actor)`, generated for the unique pair of foreign keys: Hanna leaves
        // Alien; Alien's cast and Hanna's films are dropped, Heat's cast stays; a second
        // detach finds nothing.
        answers(&ctx).await;
        assert!(Casting::repo(&ctx).detach(1, 3).await.unwrap());
        assert!(!ctx.is_cached(CastingQuery::ByMovieId(1).list_key()));
        assert!(!ctx.is_cached(CastingQuery::ByActorId(3).list_key()));
        assert!(ctx.is_cached(CastingQuery::ByMovieId(2).list_key()), "Heat's cast is unchanged");
        assert!(ctx.is_cached(page(2)), "Heat's page is unchanged");
        assert!(!Casting::repo(&ctx).detach(1, 3).await.unwrap(), "nothing left to detach");
        assert_fresh(&ctx, &db, "detach(1, 3)").await;
    }

    // `attach(row)` inserts unless the pair is joined, and returns the row that joins it;
    // `actors_by_movie_id` / `movies_by_actor_id` read the other side through the join, one
    // lookup on a hit, fresh after attaching, detaching, moving a join row and renaming.
    #[tokio::test]
    async fn attach_and_the_other_side_read_through_the_join(backend) {
        let Some((ctx, db)) = setup(backend).await else { return };
        let names = |actors: Vec<std::sync::Arc<Actor>>| {
            actors.iter().map(|a| a.name.clone()).collect::<Vec<_>>()
        };
        let cast = Casting::repo(&ctx).actors_by_movie_id(1).await.unwrap();
        assert_eq!(names(cast), ["Ripley", "Dallas"]);
        let before = ctx.stats();
        let cast = Casting::repo(&ctx).actors_by_movie_id(1).await.unwrap();
        let after = ctx.stats();
        assert_eq!(names(cast), ["Ripley", "Dallas"]);
        assert_eq!((after.hits - before.hits, after.misses - before.misses), (1, 0), "one lookup");
        assert_fresh(&ctx, &db, "seeding").await;

        // Attach Hanna to Alien; attaching the pair again returns the row there is.
        let attached = Casting::repo(&ctx).attach(&casting(4, 1, 3)).await.unwrap();
        assert_eq!((attached.id, attached.role.as_str()), (4, "role 4"));
        assert_eq!(names(Casting::repo(&ctx).actors_by_movie_id(1).await.unwrap()), ["Ripley", "Dallas", "Hanna"]);
        let again = Casting::repo(&ctx).attach(&casting(9, 1, 3)).await.unwrap();
        assert_eq!((again.id, again.role.as_str()), (4, "role 4"), "the pair was joined already");
        assert_eq!(Casting::repo(&ctx).count_by_movie_id(1).await.unwrap(), 3);
        assert_fresh(&ctx, &db, "attach").await;

        // Renaming an actor shows in every movie that joins her, and nowhere else.
        Actor::repo(&ctx).update(3, ActorUpdate::default().name("Vincent Hanna")).await.unwrap();
        assert_fresh(&ctx, &db, "renaming Hanna").await;

        // A join row moved to another actor: the movie's actors change with no change to its
        // list of join rows.
        Casting::repo(&ctx).update(1, CastingUpdate::default().actor_id(2)).await.unwrap_err();
        Casting::repo(&ctx).update(4, CastingUpdate::default().actor_id(2)).await.unwrap_err();
        Casting::repo(&ctx).update(3, CastingUpdate::default().actor_id(1)).await.unwrap();
        assert_eq!(names(Casting::repo(&ctx).actors_by_movie_id(2).await.unwrap()), ["Ripley"]);
        assert_fresh(&ctx, &db, "moving a join row to another actor").await;

        // Inside a transaction the read sees the transaction's own attach.
        let mut tx = ctx.begin().await.unwrap();
        Casting::repo(&mut tx).attach(&casting(5, 2, 2)).await.unwrap();
        let inside = Casting::repo(&mut tx).actors_by_movie_id(2).await.unwrap();
        assert_eq!(names(inside), ["Ripley", "Dallas"]);
        tx.commit().await.unwrap();
        assert_fresh(&ctx, &db, "an attach in a transaction").await;

        assert!(Casting::repo(&ctx).detach(2, 1).await.unwrap());
        assert_eq!(names(Casting::repo(&ctx).actors_by_movie_id(2).await.unwrap()), ["Dallas"]);
        assert_fresh(&ctx, &db, "detach").await;
    }
}
