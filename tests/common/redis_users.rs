//! Redis for the broadcast tests: the server's URL, channels of their own, and users a test
//! can lock out (a real outage of one instance's connections, on demand).

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

pub fn redis_url() -> Option<String> {
    super::service_url("Redis", "CACHED_REDIS_URL", "redis://127.0.0.1:6379")
}

/// A channel no other test (or earlier run) uses.
pub fn channel() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "cached-test:{}:{}",
        std::process::id(),
        N.fetch_add(1, SeqCst)
    )
}

/// A Redis user of its own for one instance, that a test can lock out (`ACL SETUSER ... off`
/// and `CLIENT KILL USER ...`): a real outage of that instance's connections, on demand.
pub struct LockableUser {
    admin: redis::aio::MultiplexedConnection,
    name: String,
    /// The Redis URL that logs in as this user.
    pub url: String,
}

impl LockableUser {
    pub async fn new(url: &str, role: &str) -> Self {
        let client = redis::Client::open(url).unwrap();
        let mut admin = client.get_multiplexed_async_connection().await.unwrap();
        // Users left by test processes that died before deleting theirs (where /proc tells).
        let users: Vec<String> = redis::cmd("ACL")
            .arg("USERS")
            .query_async(&mut admin)
            .await
            .unwrap();
        for user in users {
            let Some(pid) = user
                .strip_prefix("cached_test_")
                .and_then(|u| u.rsplit('_').next())
            else {
                continue;
            };
            let proc = std::path::Path::new("/proc");
            if proc.join("self").exists() && !proc.join(pid).exists() {
                let _: i64 = redis::cmd("ACL")
                    .arg("DELUSER")
                    .arg(&user)
                    .query_async(&mut admin)
                    .await
                    .unwrap();
            }
        }
        let name = format!("cached_test_{role}_{}", std::process::id());
        let user_url = url.replacen("redis://", &format!("redis://{name}:{PASSWORD}@"), 1);
        let mut user = LockableUser {
            admin,
            name,
            url: user_url,
        };
        user.set(true).await;
        user
    }

    pub async fn set(&mut self, on: bool) {
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&self.name)
            .arg("reset")
            .arg(if on { "on" } else { "off" })
            .arg(format!(">{PASSWORD}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .query_async(&mut self.admin)
            .await
            .unwrap();
    }

    /// Takes one command away from the user (`ACL SETUSER name -<command>`): Redis answers it
    /// with NOPERM from then on, on the connections it has.
    pub async fn deny(&mut self, command: &str) {
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&self.name)
            .arg(format!("-{command}"))
            .query_async(&mut self.admin)
            .await
            .unwrap();
    }

    /// Locks the user out and closes its connections.
    pub async fn lock_out(&mut self) {
        self.set(false).await;
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("USER")
            .arg(&self.name)
            .query_async(&mut self.admin)
            .await
            .unwrap();
        assert!(
            killed >= 1,
            "the instance's connections run as {}",
            self.name
        );
    }

    pub async fn delete(mut self) {
        let _: i64 = redis::cmd("ACL")
            .arg("DELUSER")
            .arg(&self.name)
            .query_async(&mut self.admin)
            .await
            .unwrap();
    }
}

const PASSWORD: &str = "cached-test-password";
