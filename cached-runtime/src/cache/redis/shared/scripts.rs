//! The three Lua scripts the shared cache runs in Redis, each atomic there, and their replies.
//!
//! Keys live under the broadcast channel's prefix (`{<channel>}:` below as `P`: the channel is
//! the hash tag, so that on a cluster every key is in one slot; each script names `P:inv` as
//! its one key, for routing):
//!
//! | key | what it holds |
//! |---|---|
//! | `P:v:<key>` | a hash: `v`, the entry's bytes; `s`, the stamp it was stored under |
//! | `P:l:<key>` | the lease of the one load that may store `<key>` |
//! | `P:d:<dep>` | the set of shared keys whose load read `<dep>` |
//! | `P:s:<dep>` | the number of the last invalidation of `<dep>` (kept a minute) |
//! | `P:b:<Entity>` | how many whole-entity invalidations `Entity` has had |
//! | `P:epoch` | how many clears there were |
//! | `P:inv` | how many invalidations there were: each one's number |
//!
//! An entry's stamp is the run, the epoch and the bump counts of the entities it is stamped
//! with: a clear or a bump makes every older stamp wrong, and a read finding one deletes the
//! entry. The run is the serving Redis process's own `run_id` (from `INFO server`, a few
//! microseconds per call): it changes whenever another process serves the keys, so nothing
//! stored before one of these events is ever read after it, and no load that took its
//! snapshot before it can store after it:
//!
//! - Redis restarted empty (its counters and stamps gone);
//! - Redis restarted from a snapshot on disk older than its last writes (an RDB or AOF that
//!   misses the deletions of the last invalidations);
//! - a replica took over from a failed master (Cluster or Sentinel) before it received the
//!   master's last writes: replication is asynchronous, so an invalidation's deletions that
//!   the old master acknowledged can be missing there.
//!
//! A key holding the run (as an earlier version did) cannot tell these apart from an ordinary
//! day: it is restored or replicated with the entries it vouches for. The invalidation's
//! message carries the run with its number (`l2run`), so that an instance compares numbers of
//! one run only (`super::watermark`).
//! A store is refused if the stamp moved, or if any key the load read was invalidated after
//! the read's snapshot (`P:s:<dep>` greater than the snapshot's `P:inv`): the memcache lease
//! rule, made exact for values derived from many keys. An invalidation deletes every entry
//! that read one of its keys, stamps those keys, and publishes the broadcast message, in one
//! script: no instance can hear of the commit before the shared entries it reaches are gone.

use redis::Value;

/// The Lua function every script starts with: `run(p, source)`, the run the stamps use. The
/// source is `ARGV[2]`: `i`, the serving process's `run_id`; `o`, the same or `false` if the
/// user may not run `INFO` (asked once, at connect); `k` (the design this replaced, kept for
/// a user denied `INFO`, and for the tests' controls), a value kept in the key `P:run`, set
/// by the first script after Redis started empty.
macro_rules! run_fn {
    () => {
        r#"
local function run(p, source)
  if source == 'i' then
    return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  end
  if source == 'o' then
    local info = redis.pcall('INFO', 'server')
    if type(info) ~= 'string' then return false end
    return string.match(info, 'run_id:(%x+)')
  end
  local held = redis.call('GET', p .. 'run')
  if held then return held end
  local t = redis.call('TIME')
  held = 'k' .. t[1] .. t[2]
  redis.call('SET', p .. 'run', held)
  return held
end
"#
    };
}

/// On a miss in process: the entry if it is there and current, else a snapshot to store
/// under and, if no other load holds it, the lease.
/// ARGV: prefix, run source, key, lease ms, lease nonce, stamped entities...
pub(super) const READ: &str = concat!(
    run_fn!(),
    r#"
local p = ARGV[1]
local stamp = run(p, ARGV[2]) .. '|' .. (redis.call('GET', p .. 'epoch') or '0')
for i = 6, #ARGV do
  stamp = stamp .. '|' .. (redis.call('GET', p .. 'b:' .. ARGV[i]) or '0')
end
local vk = p .. 'v:' .. ARGV[3]
local held = redis.call('HMGET', vk, 'v', 's')
if held[1] then
  if held[2] == stamp then return {1, held[1]} end
  redis.call('DEL', vk)
end
local inv = redis.call('GET', p .. 'inv') or '0'
local lease = redis.call('SET', p .. 'l:' .. ARGV[3], ARGV[5], 'NX', 'PX', ARGV[4])
if lease then return {0, inv, stamp, 1} end
return {0, inv, stamp, 0}
"#
);

/// Stores a loaded entry unless its snapshot is out of date or another load holds the lease.
/// Returns 1 stored, 0 someone else's lease, -1 out of date.
/// ARGV: prefix, run source, key, nonce, snapshot inv, snapshot stamp, ttl ms, bytes, n, n
/// stamped entities, deps...
pub(super) const FILL: &str = concat!(
    run_fn!(),
    r#"
local p = ARGV[1]
local lk = p .. 'l:' .. ARGV[3]
local holder = redis.call('GET', lk)
if holder and holder ~= ARGV[4] then return 0 end
local n = tonumber(ARGV[9])
local stamp = run(p, ARGV[2]) .. '|' .. (redis.call('GET', p .. 'epoch') or '0')
for i = 10, 9 + n do
  stamp = stamp .. '|' .. (redis.call('GET', p .. 'b:' .. ARGV[i]) or '0')
end
local ok = stamp == ARGV[6]
local inv = tonumber(ARGV[5])
for i = 10 + n, #ARGV do
  if not ok then break end
  local s = redis.call('GET', p .. 's:' .. ARGV[i])
  if s and tonumber(s) > inv then ok = false end
end
if holder then redis.call('DEL', lk) end
if not ok then return -1 end
local vk = p .. 'v:' .. ARGV[3]
redis.call('HSET', vk, 'v', ARGV[8], 's', stamp)
redis.call('PEXPIRE', vk, ARGV[7])
local ttl = tonumber(ARGV[7])
for i = 10 + n, #ARGV do
  local dk = p .. 'd:' .. ARGV[i]
  redis.call('SADD', dk, ARGV[3])
  if redis.call('PTTL', dk) < ttl then redis.call('PEXPIRE', dk, ttl) end
end
return 1
"#
);

/// Drops the shared entries an invalidation reaches and publishes its message, numbered.
/// Returns the number. The message names the number and the run (`l2run`; not in the test
/// source `k`, whose numbers, as before, knew no runs).
/// ARGV: prefix, run source, channel, message ('' for none), clear (0/1), n, n deps, bumped
/// entities...
pub(super) const INVALIDATE: &str = concat!(
    run_fn!(),
    r#"
local p = ARGV[1]
local inv = redis.call('INCR', p .. 'inv')
if ARGV[5] == '1' then redis.call('INCR', p .. 'epoch') end
local n = tonumber(ARGV[6])
for i = 7, 6 + n do
  local d = ARGV[i]
  redis.call('SET', p .. 's:' .. d, inv, 'PX', 60000)
  local dk = p .. 'd:' .. d
  for _, member in ipairs(redis.call('SMEMBERS', dk)) do
    redis.call('DEL', p .. 'v:' .. member)
  end
  redis.call('DEL', dk, p .. 'v:' .. d)
end
for i = 7 + n, #ARGV do
  redis.call('INCR', p .. 'b:' .. ARGV[i])
end
local message = ARGV[4]
if message ~= '' then
  local head = '{"l2":' .. inv .. ','
  if ARGV[2] == 'i' then head = head .. '"l2run":"' .. run(p, 'i') .. '",' end
  redis.call('PUBLISH', ARGV[3], head .. string.sub(message, 2))
end
return inv
"#
);

/// The run (`nil` for source `o` if `INFO` is denied), and the number of the last
/// invalidation (0 if none): where an instance's count starts when it subscribes.
/// ARGV: prefix, run source.
pub(super) const LAST: &str = concat!(
    run_fn!(),
    r#"
local p = ARGV[1]
return {run(p, ARGV[2]), redis.call('GET', p .. 'inv') or '0'}
"#
);

/// How long an invalidation's stamp on a key lives (the `PX` above): a load that took
/// longer than half of it stores nothing.
pub(crate) const STAMP_LIFE: std::time::Duration = std::time::Duration::from_secs(60);

/// What [`READ`] answered.
pub(crate) enum ReadReply {
    /// The entry's bytes.
    Hit(Vec<u8>),
    /// Not there (or out of date): what a load must store under.
    Miss(Snapshot),
}

/// The state a load's store is checked against.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub inv: u64,
    pub stamp: String,
    /// This load holds the lease.
    pub leased: bool,
}

impl Snapshot {
    /// The run the snapshot was taken in (the stamp's first part).
    pub fn run(&self) -> &str {
        self.stamp.split('|').next().unwrap_or("")
    }
}

impl ReadReply {
    pub(super) fn parse(value: Value) -> Option<ReadReply> {
        let Value::Array(items) = value else {
            return None;
        };
        match items.as_slice() {
            [Value::Int(1), bytes] => Some(ReadReply::Hit(bulk(bytes)?)),
            [Value::Int(0), inv, stamp, Value::Int(leased)] => Some(ReadReply::Miss(Snapshot {
                inv: std::str::from_utf8(&bulk(inv)?).ok()?.parse().ok()?,
                stamp: String::from_utf8(bulk(stamp)?).ok()?,
                leased: *leased == 1,
            })),
            _ => None,
        }
    }
}

fn bulk(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes.clone()),
        Value::SimpleString(text) => Some(text.clone().into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

/// The scripts' SHA-1 digests, for `EVALSHA`.
pub(crate) struct Scripts {
    pub read: String,
    pub fill: String,
    pub invalidate: String,
}

impl Scripts {
    pub fn new() -> Scripts {
        let sha = |code: &str| redis::Script::new(code).get_hash().to_owned();
        Scripts {
            read: sha(READ),
            fill: sha(FILL),
            invalidate: sha(INVALIDATE),
        }
    }

    /// Loads every script into the server (after a restart, or on a replica just promoted,
    /// it knows none); on a cluster, into every master.
    pub async fn load(conn: &mut super::Conn) -> redis::RedisResult<()> {
        for code in [READ, FILL, INVALIDATE] {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(code)
                .query_async::<redis::Value>(conn)
                .await?;
        }
        Ok(())
    }
}

/// Whether Redis did not know a script (it restarted, or its script cache was flushed).
pub(crate) fn is_noscript(err: &redis::RedisError) -> bool {
    err.code() == Some("NOSCRIPT")
}
