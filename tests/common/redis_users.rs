//! Redis for the broadcast tests: the server's URL, channels of their own, users a test can
//! lock out (a real outage of one instance's connections, on demand), a channel that echoes
//! every message late, and a rename that retries while the broadcast refuses commits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Renames scene `id` on `ctx`, retrying while the broadcast refuses commits (Redis not
/// taking this instance's messages yet, or again: a restart, a failover).
pub async fn rename_scene(ctx: &cached_runtime::Context, id: i64, title: &str) {
    use super::domain::{Scene, SceneUpdate};
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = async {
            let mut tx = ctx.begin().await?;
            Scene::repo(&mut tx)
                .update(id, SceneUpdate::default().title(title))
                .await?;
            tx.commit().await
        }
        .await;
        match attempt {
            Ok(_) => return,
            Err(cached_runtime::Error::BroadcastUnreachable { .. })
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("rename: {err}"),
        }
    }
}

/// A fault on the channel itself: every message published there is published again after a
/// pseudo-random delay of up to `max_delay`, so each receiver gets it twice, the second time
/// after later messages (a duplicate that is also late, as a retried publish or a relay would
/// deliver it). A test-side thread with connections of its own; no hook in the library.
pub struct Echo {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Echo {
    /// Subscribes (before it returns) and echoes until [`Echo::stop`].
    pub fn start(url: &str, channel: &str, max_delay: Duration) -> Echo {
        let client = redis::Client::open(url).unwrap();
        let mut listening = client.get_connection().unwrap();
        let mut publishing = client.get_connection().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (subscribed, ready) = std::sync::mpsc::channel();
        let thread = {
            let (stop, channel) = (stop.clone(), channel.to_owned());
            std::thread::spawn(move || {
                let mut pubsub = listening.as_pubsub();
                pubsub.subscribe(&channel).unwrap();
                pubsub
                    .set_read_timeout(Some(Duration::from_millis(2)))
                    .unwrap();
                subscribed.send(()).unwrap();
                // Messages waiting for their echo, and echoes to not echo again.
                let mut due: Vec<(Instant, Vec<u8>)> = Vec::new();
                let mut own: HashMap<Vec<u8>, u32> = HashMap::new();
                let mut state = 0x9E37_79B9_7F4A_7C15_u64;
                let mut echoed = 0;
                while !stop.load(SeqCst) {
                    match pubsub.get_message() {
                        Ok(message) => {
                            let payload: Vec<u8> = message.get_payload().unwrap();
                            match own.get_mut(&payload) {
                                Some(n) if *n > 0 => *n -= 1,
                                _ => {
                                    state = state
                                        .wrapping_mul(6_364_136_223_846_793_005)
                                        .wrapping_add(1_442_695_040_888_963_407);
                                    let fraction = (state >> 11) as f64 / (1u64 << 53) as f64;
                                    due.push((
                                        Instant::now() + max_delay.mul_f64(fraction),
                                        payload,
                                    ));
                                }
                            }
                        }
                        Err(err) if err.is_timeout() => {}
                        Err(err) => panic!("the echo's subscription: {err}"),
                    }
                    let now = Instant::now();
                    let (ready, waiting): (Vec<_>, Vec<_>) =
                        due.drain(..).partition(|(at, _)| *at <= now);
                    due = waiting;
                    for (_, payload) in ready {
                        *own.entry(payload.clone()).or_default() += 1;
                        let _: i64 = redis::cmd("PUBLISH")
                            .arg(&channel)
                            .arg(payload)
                            .query(&mut publishing)
                            .unwrap();
                        echoed += 1;
                    }
                }
                echoed
            })
        };
        ready.recv().unwrap();
        Echo {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops echoing; how many messages it published again.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
    }
}

/// A Redis server of a test's own on a loopback port, to stop and start again. It writes to
/// disk only when asked ([`OwnRedis::save`]), in a directory of its own: a start after a save
/// restores that snapshot, as a Redis with RDB persistence does after a crash.
pub struct OwnRedis {
    port: u16,
    dir: std::path::PathBuf,
}

impl OwnRedis {
    /// Starts one, empty (a snapshot left by an earlier run is removed first).
    pub fn start() -> OwnRedis {
        let port = 6400 + (std::process::id() % 500) as u16;
        let dir = std::env::temp_dir().join(format!("cached-test-redis-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for the test's Redis");
        let redis = OwnRedis { port, dir };
        redis.up();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (from its last snapshot, if [`OwnRedis::save`] wrote one; else empty) and
    /// waits until it answers.
    pub fn up(&self) {
        let port = self.port.to_string();
        let dir = self.dir.to_str().expect("a UTF-8 temporary directory");
        let status = std::process::Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--daemonize", "yes"])
            .args(["--save", "", "--appendonly", "no", "--dir", dir])
            .args(["--logfile", &format!("{dir}/redis.log")])
            .status()
            .expect("redis-server runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers(&self) -> bool {
        self.cli(&["ping"]).starts_with(b"PONG")
    }

    /// Writes a snapshot of everything it holds now to disk (`SAVE`).
    pub fn save(&self) {
        assert!(self.cli(&["save"]).starts_with(b"OK"), "SAVE");
    }

    /// Stops it at once, losing everything it held since its last snapshot.
    pub fn down(&self) {
        self.cli(&["shutdown", "nosave"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.answers() {
            assert!(Instant::now() < deadline, "redis-server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn cli(&self, args: &[&str]) -> Vec<u8> {
        std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .map_or_else(|_| Vec::new(), |out| out.stdout)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
