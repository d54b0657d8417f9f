//! Text keys the way databases compare them.
//!
//! A database decides which text values are equal, and many of them ignore case or accents:
//! MySQL/MariaDB's default collations (`utf8mb4_general_ci`, `utf8mb4_unicode_ci`,
//! `utf8mb4_uca1400_ai_ci`), SQLite's `COLLATE NOCASE`, PostgreSQL's `citext`. There,
//! `find_by_email("Bob@X.com")` matches the row stored as `bob@x.com`, and a write to that
//! row must drop the entry cached under `Bob@X.com` too.
//!
//! Entries stay keyed by the exact text asked for (a query for `é` never shares an entry with
//! a query for `e`), but invalidation works on [`fold`]ed text: a change to a key drops every
//! cached spelling with the same fold. The fold is deliberately at least as coarse as any
//! common collation's equality (case, accents, width, trailing spaces, ignorable characters),
//! so values the database calls equal always fold alike; values it calls different but that
//! fold alike only cost an extra drop. The fold does not depend on the database, so nothing
//! has to be configured or read from the catalog, and a case-sensitive column loses nothing
//! but the rare extra drop.

use std::borrow::Cow;

/// The invalidation fold of `text`: lower case, Latin/Greek/Cyrillic diacritics removed,
/// full-width forms narrowed, ligatures, `ſ` and `ß` spelled out with runs of `s` collapsed
/// (`ß`, `ss` and `s` all fold to `s`), ignorable characters (controls, format characters
/// such as zero-width and bidirectional marks) dropped, trailing spaces trimmed.
/// Borrowed when `text` is already folded (the common case: no allocation).
pub(crate) fn fold(text: &str) -> Cow<'_, str> {
    if is_folded(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        for lower in c.to_lowercase() {
            push_folded(&mut out, lower);
        }
    }
    let trimmed = out.trim_end_matches(' ').len();
    out.truncate(trimmed);
    Cow::Owned(out)
}

/// Whether `text` is its own fold: lower-case ASCII letters, digits and punctuation, with no
/// doubled `s` and no trailing space. Checked without allocating.
fn is_folded(text: &str) -> bool {
    let plain = text
        .bytes()
        .all(|b| (b.is_ascii_graphic() && !b.is_ascii_uppercase()) || b == b' ');
    plain && !text.ends_with(' ') && !text.contains("ss")
}

/// Appends the fold of one lower-case character.
fn push_folded(out: &mut String, c: char) {
    let spelled: &str = match c {
        // Ligatures and letters that collations expand or equate to plain letters.
        'ß' => "s",
        'æ' => "ae",
        'œ' => "oe",
        'þ' => "th",
        'ĳ' => "ij",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' | 'ﬆ' => "st",
        // Characters the Unicode collation algorithm ignores (format characters: soft hyphen,
        // zero-width and bidirectional marks, variation selectors), and control characters.
        '\u{00AD}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' => return,
        // Combining diacritical marks (a decomposed `é` is `e` + U+0301).
        '\u{0300}'..='\u{036F}' => return,
        c if c.is_control() => return,
        // Full-width ASCII forms.
        '\u{FF01}'..='\u{FF5E}' => {
            let narrow = char::from_u32(c as u32 - 0xFEE0).unwrap_or(c);
            return push_folded(out, narrow.to_ascii_lowercase());
        }
        c => {
            let base = base_letter(c);
            return push_letter(out, base);
        }
    };
    for c in spelled.chars() {
        push_letter(out, c);
    }
}

/// Appends a letter, collapsing a run of `s` into one, so that `ss`, `ß` and `s` meet
/// (collations disagree on whether `ß` equals `ss` or `s`).
fn push_letter(out: &mut String, c: char) {
    if c == 's' && out.ends_with('s') {
        return;
    }
    out.push(c);
}

/// The base letter of a lower-case letter with a diacritic; other characters unchanged.
fn base_letter(c: char) -> char {
    match c {
        'à'..='å' | 'ā' | 'ă' | 'ą' | 'ǎ' | 'ạ' | 'ả' | 'ấ'..='ặ' => 'a',
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => 'c',
        'ď' | 'đ' | 'ð' => 'd',
        'è'..='ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' | 'ẹ' | 'ẻ' | 'ẽ' | 'ế'..='ệ' => {
            'e'
        }
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => 'g',
        'ĥ' | 'ħ' => 'h',
        'ì'..='ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' | 'ǐ' | 'ỉ' | 'ị' => 'i',
        'ĵ' => 'j',
        'ķ' => 'k',
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => 'l',
        'ñ' | 'ń' | 'ņ' | 'ň' => 'n',
        'ò'..='ö' | 'ø' | 'ō' | 'ŏ' | 'ő' | 'ơ' | 'ǒ' | 'ọ' | 'ỏ' | 'ố'..='ợ' => {
            'o'
        }
        'ŕ' | 'ŗ' | 'ř' => 'r',
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' | 'ſ' => 's',
        'ţ' | 'ť' | 'ŧ' | 'ț' => 't',
        'ù'..='ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' | 'ư' | 'ǔ' | 'ụ' | 'ủ' | 'ứ'..='ự' => {
            'u'
        }
        'ŵ' => 'w',
        'ý' | 'ÿ' | 'ŷ' | 'ỳ' | 'ỵ' | 'ỷ' | 'ỹ' => 'y',
        'ź' | 'ż' | 'ž' => 'z',
        // Greek: tonos and dialytika, final sigma.
        'ά' => 'α',
        'έ' => 'ε',
        'ή' => 'η',
        'ί' | 'ϊ' | 'ΐ' => 'ι',
        'ό' => 'ο',
        'ύ' | 'ϋ' | 'ΰ' => 'υ',
        'ώ' => 'ω',
        'ς' => 'σ',
        // Cyrillic letters that accent-insensitive collations equate.
        'ё' => 'е',
        'й' => 'и',
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::fold;

    #[track_caller]
    fn same(a: &str, b: &str) {
        assert_eq!(fold(a), fold(b), "{a:?} and {b:?} should fold alike");
    }

    #[test]
    fn what_case_insensitive_collations_call_equal_folds_alike() {
        same("Bob@X.com", "bob@x.com");
        same("BOB@X.COM", "bob@x.com");
        same("José", "jose");
        same("JOSÉ", "josé");
        same("Ångström", "angstrom");
        same("Straße", "strasse");
        same("Straße", "strase");
        same("Æsir", "aesir");
        same("Œuvre", "oeuvre");
        same("ΣΟΦΊΑ", "σοφια");
        same("e\u{301}te\u{301}", "été");
        same("Ёлка", "елка");
        same("ＡＢＣ", "abc");
        same("co\u{00AD}operate", "cooperate");
        same("b\u{200E}ob", "bob");
        same("ſofie", "sofie");
        same("ﬁle", "file");
        same("padded  ", "padded");
    }

    #[test]
    fn folded_text_is_borrowed_and_different_text_differs() {
        assert!(matches!(fold("draft"), std::borrow::Cow::Borrowed(_)));
        assert!(matches!(fold("bob@x.com"), std::borrow::Cow::Borrowed(_)));
        assert_ne!(fold("draft"), fold("final"));
        assert_ne!(fold("a"), fold("b"));
        assert_ne!(fold("ab"), fold("a b"));
        assert_eq!(fold("Draft"), "draft");
    }

    #[test]
    fn folding_is_idempotent() {
        for text in [
            "Straße",
            "ÆSIR",
            "ＡＢＣ  ",
            "José",
            "ΣΟΦΊΑ",
            "mississippi",
            "the",
        ] {
            let once = fold(text).into_owned();
            assert_eq!(fold(&once), once, "{text:?}");
        }
    }
}
