//! Step 12 of the tour: rows whose ids the database makes (notes, appearances), read a page
//! at a time, and a join entity between scenes and characters.

use cached_runtime::prelude::*;

use crate::domain::*;

/// Step 12: notes get their ids from the database (`NewNote` has no id), and a scene's notes
/// are read in pages that follow each other by cursor; a new note drops that scene's pages.
pub async fn notes(ctx: &Context) -> Result<()> {
    use cached_runtime::Page;
    let new: Vec<NewNote> = ["too long", "lovely ending", "check the dates"]
        .into_iter()
        .map(|body| NewNote {
            scene_id: 1,
            body: body.into(),
        })
        .collect();
    let stored = match Note::repo(ctx).insert_many(&new).await {
        Ok(stored) => stored,
        Err(err @ Error::Unsupported { .. }) => {
            println!("   {err}");
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    let ids: Vec<i64> = stored.iter().map(|n| n.id).collect();
    println!("   insert_many(NewNote x3) -> ids {ids:?}, given by the database");
    let first = Note::repo(ctx).page_by_scene_id(1, Page::first(2)).await?;
    let bodies = |page: &cached_runtime::Paged<Note>| {
        page.rows.iter().map(|n| n.body.clone()).collect::<Vec<_>>()
    };
    println!(
        "   page_by_scene_id(1, Page::first(2)) -> {:?}",
        bodies(&first)
    );
    // The cursor as an HTTP client gets it and sends it back (`?after=...`).
    let token = first.next.as_ref().expect("a third note").to_string();
    let cursor: cached_runtime::Cursor = token.parse()?;
    println!("   next page's cursor, as a client sees it: ?after={token}");
    let second = Note::repo(ctx)
        .page_by_scene_id(1, Page::after(cursor.clone(), 2))
        .await?;
    println!(
        "   page_by_scene_id(1, Page::after(cursor, 2)) -> {:?}, next: {:?}",
        bodies(&second),
        second.next.as_ref().map(|_| "more")
    );
    if let Err(err) = Note::repo(ctx)
        .page_by_scene_id(2, Page::after(cursor.clone(), 2))
        .await
    {
        println!(
            "   scene 1's cursor sent for scene 2 -> {} {err}",
            err.http_status()
        );
    }
    if let Err(err) = Note::repo(ctx).require(9_999).await {
        println!("   require(9999) -> {} {err}", err.http_status());
    }
    let loads = ctx.stats().loads;
    Note::repo(ctx).page_by_scene_id(1, Page::first(2)).await?;
    println!(
        "   the first page again: {} database loads (cached)",
        ctx.stats().loads - loads
    );
    let extra = NewNote {
        scene_id: 1,
        body: "one more".into(),
    };
    let last = Note::repo(ctx).max_id_by_scene_id(1).await?;
    println!("   max_id_by_scene_id(1) -> {last:?} (cached; dropped with scene 1's pages)");
    let added = Note::repo(ctx).insert(&extra).await?;
    let second = Note::repo(ctx)
        .page_by_scene_id(1, Page::after(cursor, 2))
        .await?;
    println!(
        "   insert note {} -> scene 1's pages dropped; the second page now {:?}",
        added.id,
        bodies(&second)
    );
    Ok(())
}

/// Step 12, continued: which characters appear in which scene, through the join entity
/// `Appearance`. `attach` is idempotent, `characters_by_scene_id` is one cached entry, and a
/// rename of a character who appears drops it.
pub async fn appearances(ctx: &Context) -> Result<()> {
    Character::repo(ctx)
        .insert(&Character {
            id: 2,
            story_id: 1,
            name: "Tom".into(),
            role: "sailor".into(),
            traits: Vec::new(),
        })
        .await?;
    let attach = |character_id| NewAppearance {
        scene_id: 1,
        character_id,
    };
    let first = match Appearance::repo(ctx).attach(&attach(1)).await {
        Ok(first) => first,
        Err(err @ Error::Unsupported { .. }) => {
            println!("   {err}");
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    let again = Appearance::repo(ctx).attach(&attach(1)).await?;
    Appearance::repo(ctx).attach(&attach(2)).await?;
    println!(
        "   attach(scene 1, Mara) twice -> appearance {}, then the same {}; attach(scene 1, Tom)",
        first.id, again.id
    );
    let names = |characters: Vec<std::sync::Arc<Character>>| {
        characters
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
    };
    let cast = Appearance::repo(ctx).characters_by_scene_id(1).await?;
    println!("   characters_by_scene_id(1) -> {:?}", names(cast));
    let loads = ctx.stats().loads;
    Appearance::repo(ctx).characters_by_scene_id(1).await?;
    println!(
        "   again: {} database loads (one cached entry)",
        ctx.stats().loads - loads
    );
    Character::repo(ctx)
        .update(2, CharacterUpdate::default().name("Thomas"))
        .await?;
    let cast = Appearance::repo(ctx).characters_by_scene_id(1).await?;
    println!(
        "   rename Tom -> Thomas: characters_by_scene_id(1) -> {:?}",
        names(cast)
    );
    Appearance::repo(ctx).detach(1, 1).await?;
    let cast = Appearance::repo(ctx).characters_by_scene_id(1).await?;
    println!("   detach(scene 1, Mara) -> {:?}", names(cast));
    Ok(())
}
