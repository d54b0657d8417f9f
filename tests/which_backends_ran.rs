//! Prints, outside the test harness's captured output, which backends the integration suite
//! ran against and which it skipped, and how to enable the skipped ones. Each server test
//! skips exactly when its URL variable is unset (see `tests/common/mod.rs`), so the summary
//! reads the same variables. With `CACHED_REQUIRE_SERVICES=1` (CI) an unset variable fails
//! here too.
//!
//! A plain `main` (`harness = false` in `Cargo.toml`): its output is never captured.

const SERVICES: [(&str, &str, &str, &str); 5] = [
    (
        "PostgreSQL",
        "CACHED_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
        "every `postgres::` test",
    ),
    (
        "MySQL/MariaDB",
        "CACHED_MYSQL_URL",
        "mysql://root@127.0.0.1:3306/test",
        "every `mysql::` test",
    ),
    (
        "MongoDB",
        "CACHED_MONGODB_URL",
        "mongodb://127.0.0.1:27017/?directConnection=true",
        "every `mongo::` test (a replica set: writes use transactions)",
    ),
    (
        "Redis",
        "CACHED_REDIS_URL",
        "redis://127.0.0.1:6379",
        "the broadcast tests (tests/broadcast.rs, tests/broadcast_loss.rs, tests/outbox.rs, tests/shared_cache/)",
    ),
    (
        "Redis Cluster",
        "CACHED_REDIS_CLUSTER_URLS",
        "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003",
        "the cluster tests (tests/cluster.rs; `.ci/redis-cluster` starts one on loopback)",
    ),
];

fn main() {
    let mut skipped = Vec::new();
    println!("\n=== backends of this test run");
    println!("  SQLite (embedded)    ran");
    for (name, var, example, what) in SERVICES {
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => println!("  {name:<20} ran against {var}"),
            _ => {
                println!("  {name:<20} SKIPPED: {what}; to run it: {var}={example}");
                skipped.push(var);
            }
        }
    }
    match std::env::var("CACHED_MODEL_CASES") {
        Ok(cases) => println!("  model test           CACHED_MODEL_CASES={cases}"),
        Err(_) => println!(
            "  model test           quick pass (4 cases on SQLite, 2 per server); all of them: \
             CACHED_MODEL_CASES=full"
        ),
    }
    if skipped.is_empty() {
        println!("=== every backend ran\n");
        return;
    }
    println!(
        "=== {} of {} server backends were skipped (their tests passed without running)\n",
        skipped.len(),
        SERVICES.len()
    );
    if std::env::var("CACHED_REQUIRE_SERVICES").as_deref() == Ok("1") {
        eprintln!(
            "CACHED_REQUIRE_SERVICES=1 requires every server, but {} unset",
            skipped.join(", ")
        );
        std::process::exit(1);
    }
}
