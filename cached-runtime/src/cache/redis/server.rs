//! Which Redis the broadcast talks to: one server, or a Redis Cluster.
//!
//! On a cluster, the channel is an ordinary pub/sub channel (Redis propagates a `PUBLISH` to
//! every node, so a listener subscribes on any node and moves to another when its node goes),
//! and every key of the shared cache carries the channel as its hash tag (`{channel}:...`):
//! one slot, so that one script can delete the entries of many entities atomically. The slot's
//! master does that work for the whole deployment; a failover moves it to the replica, and
//! the cluster client follows.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use redis::aio::{ConnectionLike, MultiplexedConnection, PubSub};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// One Redis server or a cluster (cheap to clone).
#[derive(Clone)]
pub(crate) struct Server(Arc<Kind>);

enum Kind {
    One(redis::Client),
    Cluster {
        client: Box<ClusterClient>,
        /// Each node, to subscribe on: the listener tries them in turn.
        nodes: Vec<redis::Client>,
        next: AtomicUsize,
    },
}

impl Server {
    /// The server at `url`.
    pub fn one(url: &str) -> RedisResult<Server> {
        Ok(Server(Arc::new(Kind::One(redis::Client::open(url)?))))
    }

    /// The cluster reachable through `urls` (some of its nodes; every node is found from them).
    pub fn cluster(urls: &[&str]) -> RedisResult<Server> {
        let client = ClusterClient::builder(urls.iter().copied())
            .connection_timeout(std::time::Duration::from_secs(1))
            .response_timeout(std::time::Duration::from_secs(1))
            .build()?;
        let nodes = urls
            .iter()
            .map(|url| redis::Client::open(*url))
            .collect::<RedisResult<Vec<_>>>()?;
        Ok(Server(Arc::new(Kind::Cluster {
            client: Box::new(client),
            nodes,
            next: AtomicUsize::new(0),
        })))
    }

    /// A connection for commands (on a cluster, one that routes each to its slot's master).
    pub async fn connect(&self) -> RedisResult<Conn> {
        match &*self.0 {
            Kind::One(client) => Ok(Conn::One(client.get_multiplexed_async_connection().await?)),
            Kind::Cluster { client, .. } => Ok(Conn::Cluster(client.get_async_connection().await?)),
        }
    }

    /// A pub/sub connection (on a cluster, on the next node that answers).
    pub async fn pubsub(&self) -> RedisResult<PubSub> {
        match &*self.0 {
            Kind::One(client) => client.get_async_pubsub().await,
            Kind::Cluster { nodes, next, .. } => {
                let mut last = None;
                for _ in 0..nodes.len() {
                    let node = &nodes[next.fetch_add(1, Relaxed) % nodes.len()];
                    match node.get_async_pubsub().await {
                        Ok(pubsub) => return Ok(pubsub),
                        Err(err) => last = Some(err),
                    }
                }
                Err(last.expect("a cluster has at least one node"))
            }
        }
    }
}

/// A command connection to one server or to a cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    One(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::One(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::One(conn) => conn.req_packed_commands(cmd, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::One(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}
