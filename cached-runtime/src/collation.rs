//! Text keys the way databases compare them.
//!
//! A database decides which text values are equal, and many of them ignore case, accents,
//! widths and more: MySQL/MariaDB's default collations (`utf8mb4_general_ci`,
//! `utf8mb4_unicode_ci`, `utf8mb4_uca1400_ai_ci`), SQLite's `COLLATE NOCASE`, PostgreSQL's
//! ICU nondeterministic collations and `citext`. There, `find_by_email("Bob@X.com")` matches
//! the row stored as `bob@x.com`, and a write to that row must drop the entry cached under
//! `Bob@X.com` too.
//!
//! Entries stay keyed by the exact text asked for; invalidation works on the [`fold`] of the
//! text, which must put every two values a collation calls equal in one class. It is exact
//! only where that is proven (`tests/collation_proof.rs` asks every supported collation):
//!
//! - **Plain text** (printable ASCII only) folds to its ASCII lower case with trailing spaces
//!   trimmed: the collations above call two plain strings equal only when these agree.
//! - **Any other text** (a non-ASCII or a control character anywhere) folds to one class,
//!   [`WIDE`]: collations equate such text with plain text in ways no small fold follows
//!   (`x²`/`x2`, `㎏`/`kg`, `①`/`1`, `ǧog`/`gog`, `ß`/`ss`, ignorable characters, kana). So
//!   every write of a column drops the cached spellings of that column in the wide class, and
//!   a write whose own value is wide drops every query of its entity (every entry, for a text
//!   id) at once, by generation: sound first, precise second.
//!
//! The fold does not depend on the database, so nothing has to be configured; a
//! case-sensitive column loses nothing but the rare extra drop.

use std::borrow::Cow;

/// The class of every text that is not plain (see the module documentation). No plain text
/// folds to it: it is not ASCII.
pub(crate) const WIDE: &str = "\u{FFFF}";

/// Whether `text` is plain: printable ASCII only (space to `~`), the text the fold handles
/// exactly.
#[inline]
pub(crate) fn is_plain(text: &str) -> bool {
    text.bytes().all(|b| (0x20..=0x7E).contains(&b))
}

/// The invalidation fold of `text`: for plain text its ASCII lower case without trailing
/// spaces (borrowed when `text` is already that: the common case, no allocation), for any
/// other text [`WIDE`].
pub(crate) fn fold(text: &str) -> Cow<'_, str> {
    if !is_plain(text) {
        return Cow::Owned(WIDE.to_string());
    }
    let trimmed = text.trim_end_matches(' ');
    if trimmed.len() == text.len() && !text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(trimmed.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::{fold, is_plain, WIDE};

    #[track_caller]
    fn same(a: &str, b: &str) {
        assert_eq!(fold(a), fold(b), "{a:?} and {b:?} should fold alike");
    }

    #[test]
    fn plain_text_folds_case_and_trailing_spaces() {
        same("Bob@X.com", "bob@x.com");
        same("BOB@X.COM", "bob@x.com");
        same("padded  ", "padded");
        same("PADDED ", "padded");
        assert_eq!(fold("Draft"), "draft");
        assert_ne!(fold("draft"), fold("final"));
        assert_ne!(fold("ab"), fold("a b"));
        assert_ne!(fold(" a"), fold("a"), "leading spaces count");
        assert_ne!(fold("strasse"), fold("strase"), "plain text is exact");
    }

    #[test]
    fn other_text_folds_to_the_wide_class() {
        for text in [
            "José",
            "Straße",
            "x²",
            "㎏",
            "①",
            "カナ",
            "b\u{200E}ob",
            "tab\t",
            WIDE,
        ] {
            assert!(!is_plain(text), "{text:?}");
            assert_eq!(fold(text), WIDE, "{text:?}");
        }
        assert_ne!(fold("jose"), WIDE);
    }

    #[test]
    fn folded_text_is_borrowed_and_folding_is_idempotent() {
        assert!(matches!(fold("draft"), std::borrow::Cow::Borrowed(_)));
        assert!(matches!(fold("bob@x.com"), std::borrow::Cow::Borrowed(_)));
        for text in ["Straße", "ABC  ", "José", "the", "MiXeD"] {
            let once = fold(text).into_owned();
            assert_eq!(fold(&once), once, "{text:?}");
        }
    }
}
