//! The invalidation fold proven against the live collations.
//!
//! The fold (`cached_runtime`'s `collation` module) is exact only where it can be proven: text
//! of printable ASCII folds to its lower case with trailing spaces trimmed; any other text
//! (a non-ASCII or a control character anywhere) folds to one class per column, and a write
//! of such a value drops every query of its entity (and of a text id, every entry): the
//! collations here call `x²` and `x2`, `㎏` and `kg`, `ǧog` and `gog` equal, and no practical
//! fold follows every one of them.
//!
//! So what must hold is: whenever a collation calls two printable-ASCII strings equal, the
//! fold puts them in one class. This test asks each collation, over every printable ASCII
//! character, each with one and two trailing spaces, and every two-character string over an
//! alphabet of letters, digits, punctuation and the space, which of them are equal (a
//! self-join on `=`), and checks every equal pair. It runs on SQLite `NOCASE`, MariaDB's
//! `utf8mb4_general_ci`, `utf8mb4_unicode_ci`, `utf8mb4_unicode_520_ci` (and
//! `utf8mb4_uca1400_ai_ci` where the server has it), and PostgreSQL ICU nondeterministic
//! collations at level 1 and level 2. It also checks the other half of the claim on the same
//! data: every non-ASCII spelling the issue reports as equal to an ASCII one folds to the
//! column-wide class, never to an ASCII class.

use crate::common;

use cached_runtime::__fold;
use common::Backend;

/// The probe strings: every printable ASCII character, each with one and two trailing spaces,
/// and every two-character string over a small alphabet.
fn probes() -> Vec<String> {
    let mut out: Vec<String> = (0x20u8..=0x7E).map(|b| (b as char).to_string()).collect();
    for b in 0x21u8..=0x7E {
        out.push(format!("{} ", b as char));
        out.push(format!("{}  ", b as char));
    }
    let alphabet = [
        'a', 'A', 's', 'S', 'i', 'I', 'k', 'g', '1', '-', '\'', ' ', '.',
    ];
    for x in alphabet {
        for y in alphabet {
            out.push(format!("{x}{y}"));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Asserts that every pair the database called equal folds alike; returns how many pairs
/// of different strings it called equal.
fn check_pairs(collation: &str, pairs: &[(String, String)]) -> usize {
    let mut equal = 0;
    for (a, b) in pairs {
        if a == b {
            continue;
        }
        equal += 1;
        assert_eq!(
            __fold(a),
            __fold(b),
            "{collation} calls {a:?} and {b:?} equal, but they fold apart"
        );
    }
    eprintln!("{collation}: {equal} equal pairs of different strings, every one folds alike");
    equal
}

const INSERT_BATCH: usize = 100;

/// Fills `probe (s)` with the probe strings, `INSERT_BATCH` at a time.
async fn fill(db: &common::TestDb, table: &str) {
    let probes = probes();
    for chunk in probes.chunks(INSERT_BATCH) {
        // A quote is doubled everywhere; a backslash escapes in MySQL's literals only.
        let mysql = db.backend == Backend::MySql;
        let values: Vec<String> = chunk
            .iter()
            .map(|s| {
                let s = s.replace('\'', "''");
                let s = if mysql { s.replace('\\', "\\\\") } else { s };
                format!("('{s}')")
            })
            .collect();
        db.execute(&format!(
            "INSERT INTO {table} (s) VALUES {}",
            values.join(", ")
        ))
        .await;
    }
}

/// The pairs of rows of `table` whose `s` the column's collation calls equal.
async fn equal_pairs(db: &common::TestDb, table: &str) -> Vec<(String, String)> {
    let sql = format!("SELECT a.s, b.s FROM {table} a JOIN {table} b ON a.s = b.s");
    let sql = sqlx::AssertSqlSafe(sql);
    match db.store.raw_unchecked() {
        cached_runtime::RawStore::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        cached_runtime::RawStore::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        cached_runtime::RawStore::MySql(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        _ => unreachable!("SQL only"),
    }
}

async fn prove(db: &common::TestDb, collation: &str, column: &str) -> usize {
    let table = format!(
        "probe_{}",
        collation.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    db.execute(&format!("CREATE TABLE {table} (s {column})"))
        .await;
    fill(db, &table).await;
    let pairs = equal_pairs(db, &table).await;
    check_pairs(collation, &pairs)
}

#[tokio::test]
async fn sqlite_nocase_equalities_fold_alike() {
    let db = common::database(Backend::Sqlite, 2).await.unwrap();
    let equal = prove(&db, "NOCASE", "TEXT COLLATE NOCASE").await;
    assert!(
        equal >= 26 * 2,
        "NOCASE equates upper and lower case ({equal})"
    );
}

#[tokio::test]
async fn mariadb_collation_equalities_fold_alike() {
    let Some(db) = common::database(Backend::MySql, 2).await else {
        return;
    };
    let available = |name: &'static str| {
        let db = &db;
        async move {
            let sql = format!(
                "SELECT COUNT(*) FROM information_schema.COLLATIONS WHERE COLLATION_NAME = '{name}'"
            );
            let RawStore::MySql(p) = db.store.raw_unchecked() else {
                unreachable!()
            };
            let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_one(p)
                .await
                .unwrap();
            n > 0
        }
    };
    use cached_runtime::RawStore;
    let mut proven = Vec::new();
    for collation in [
        "utf8mb4_general_ci",
        "utf8mb4_unicode_ci",
        "utf8mb4_unicode_520_ci",
        "utf8mb4_uca1400_ai_ci",
    ] {
        if !available(collation).await {
            eprintln!("{collation}: not on this server");
            continue;
        }
        let column = format!("VARCHAR(8) CHARACTER SET utf8mb4 COLLATE {collation}");
        let equal = prove(&db, collation, &column).await;
        assert!(
            equal > 26 * 2,
            "{collation} ignores case and pads ({equal})"
        );
        proven.push(collation);
    }
    assert!(proven.len() >= 3, "{proven:?}");
}

#[tokio::test]
async fn postgres_icu_nondeterministic_equalities_fold_alike() {
    let Some(db) = common::database(Backend::Postgres, 2).await else {
        return;
    };
    for (name, level) in [("ci_level1", 1), ("ci_level2", 2)] {
        db.execute(&format!(
            "CREATE COLLATION {name} (provider = icu, \
             locale = 'und-u-ks-level{level}', deterministic = false)"
        ))
        .await;
        let equal = prove(&db, name, &format!("TEXT COLLATE {name}")).await;
        assert!(equal >= 26 * 2, "{name} ignores case ({equal})");
    }
}

/// The non-ASCII spellings these collations call equal to ASCII text never fold into an
/// ASCII class: they go to the column-wide class that every write of the column reaches.
#[test]
fn non_ascii_spellings_fold_to_the_column_wide_class() {
    let wide = __fold("é");
    let more = [("tab", "tab\t"), ("ab", "a\u{200B}b")];
    for (ascii, other) in common::EQUAL_BEYOND_CASE.into_iter().chain(more) {
        assert_eq!(__fold(other), wide, "{other:?}");
        if ascii.is_ascii() {
            assert_ne!(__fold(ascii), wide, "{ascii:?} keeps an exact class");
        }
    }
}
