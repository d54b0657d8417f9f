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
//! | `P:run` | a random value set by the first read after Redis started empty |
//!
//! An entry's stamp is the run, the epoch and the bump counts of the entities it is stamped
//! with: a clear or a bump makes every older stamp wrong, and a read finding one deletes the
//! entry; a Redis restarted empty (its counters and stamps gone) gets a new run, so no load
//! that took its snapshot before the restart can store after it.
//! A store is refused if the stamp moved, or if any key the load read was invalidated after
//! the read's snapshot (`P:s:<dep>` greater than the snapshot's `P:inv`): the memcache lease
//! rule, made exact for values derived from many keys. An invalidation deletes every entry
//! that read one of its keys, stamps those keys, and publishes the broadcast message, in one
//! script: no instance can hear of the commit before the shared entries it reaches are gone.

use redis::Value;

/// On a miss in process: the entry if it is there and current, else a snapshot to store
/// under and, if no other load holds it, the lease.
/// ARGV: prefix, key, lease ms, lease nonce, stamped entities...
pub(super) const READ: &str = r#"
local p = ARGV[1]
local run = redis.call('GET', p .. 'run')
if not run then
  run = ARGV[4]
  redis.call('SET', p .. 'run', run)
end
local stamp = run .. '|' .. (redis.call('GET', p .. 'epoch') or '0')
for i = 5, #ARGV do
  stamp = stamp .. '|' .. (redis.call('GET', p .. 'b:' .. ARGV[i]) or '0')
end
local vk = p .. 'v:' .. ARGV[2]
local held = redis.call('HMGET', vk, 'v', 's')
if held[1] then
  if held[2] == stamp then return {1, held[1]} end
  redis.call('DEL', vk)
end
local inv = redis.call('GET', p .. 'inv') or '0'
local lease = redis.call('SET', p .. 'l:' .. ARGV[2], ARGV[4], 'NX', 'PX', ARGV[3])
if lease then return {0, inv, stamp, 1} end
return {0, inv, stamp, 0}
"#;

/// Stores a loaded entry unless its snapshot is out of date or another load holds the lease.
/// Returns 1 stored, 0 someone else's lease, -1 out of date.
/// ARGV: prefix, key, nonce, snapshot inv, snapshot stamp, ttl ms, bytes, n, n stamped
/// entities, deps...
pub(super) const FILL: &str = r#"
local p = ARGV[1]
local lk = p .. 'l:' .. ARGV[2]
local holder = redis.call('GET', lk)
if holder and holder ~= ARGV[3] then return 0 end
local n = tonumber(ARGV[8])
local stamp = (redis.call('GET', p .. 'run') or '') .. '|' .. (redis.call('GET', p .. 'epoch') or '0')
for i = 9, 8 + n do
  stamp = stamp .. '|' .. (redis.call('GET', p .. 'b:' .. ARGV[i]) or '0')
end
local ok = stamp == ARGV[5]
local inv = tonumber(ARGV[4])
for i = 9 + n, #ARGV do
  if not ok then break end
  local s = redis.call('GET', p .. 's:' .. ARGV[i])
  if s and tonumber(s) > inv then ok = false end
end
if holder then redis.call('DEL', lk) end
if not ok then return -1 end
local vk = p .. 'v:' .. ARGV[2]
redis.call('HSET', vk, 'v', ARGV[7], 's', stamp)
redis.call('PEXPIRE', vk, ARGV[6])
local ttl = tonumber(ARGV[6])
for i = 9 + n, #ARGV do
  local dk = p .. 'd:' .. ARGV[i]
  redis.call('SADD', dk, ARGV[2])
  if redis.call('PTTL', dk) < ttl then redis.call('PEXPIRE', dk, ttl) end
end
return 1
"#;

/// Drops the shared entries an invalidation reaches and publishes its message, numbered.
/// Returns the number. ARGV: prefix, channel, message ('' for none), clear (0/1), n, n deps,
/// bumped entities...
pub(super) const INVALIDATE: &str = r#"
local p = ARGV[1]
local inv = redis.call('INCR', p .. 'inv')
if ARGV[4] == '1' then redis.call('INCR', p .. 'epoch') end
local n = tonumber(ARGV[5])
for i = 6, 5 + n do
  local d = ARGV[i]
  redis.call('SET', p .. 's:' .. d, inv, 'PX', 60000)
  local dk = p .. 'd:' .. d
  for _, member in ipairs(redis.call('SMEMBERS', dk)) do
    redis.call('DEL', p .. 'v:' .. member)
  end
  redis.call('DEL', dk, p .. 'v:' .. d)
end
for i = 6 + n, #ARGV do
  redis.call('INCR', p .. 'b:' .. ARGV[i])
end
local message = ARGV[3]
if message ~= '' then
  redis.call('PUBLISH', ARGV[2], '{"l2":' .. inv .. ',' .. string.sub(message, 2))
end
return inv
"#;

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
