//! Client-cache headers (the `axum` feature): a `tower` layer that tells the client of a
//! request which cache keys the request's writes invalidated, so that a browser-side cache
//! (or a CDN, or a client SDK) drops exactly those entries.
//!
//! ```text
//! PATCH /scenes/42          ->  200 OK
//!                               Cache-Invalidate: scene:42, scene?status=draft, scene#count?status=draft
//! ```
//!
//! The convention it follows: the response to an unsafe request names what it made stale,
//! as the "invalidates" link relation of *Linked Cache Invalidation*
//! (draft-nottingham-linked-cache-inv-04, section 3) does for URIs; the names are cache
//! keys, in the comma-separated list syntax of RFC 9110 section 5.6.1, as CDN tag headers
//! use them (Cloudflare's `Cache-Tag`, Fastly's `Surrogate-Key`) to tag responses. Each key
//! is the one [`CacheKey`]'s `Display` shows, percent-encoded where it holds a comma, a
//! percent sign or a character outside visible ASCII (`decodeURIComponent` reads it back).
//!
//! Every invalidation applied by the handler's own task counts: its commits, the writes
//! through the context, manual invalidations (a write the handler hands to a task it spawns
//! is not seen: await it in the handler). A list longer than the cap (4 KiB by default,
//! [`InvalidationHeadersLayer::max_bytes`]) is sent as one `name:*` per entity instead
//! (drop everything of that entity), and if even that is too long, as `*`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use axum::http::{HeaderName, HeaderValue, Request, Response};

use crate::hooks::{Collected, REQUEST};
use crate::key::CacheKey;

/// The header's name.
pub const CACHE_INVALIDATE: HeaderName = HeaderName::from_static("cache-invalidate");

/// The default cap on the header's length, in bytes.
pub const DEFAULT_MAX_BYTES: usize = 4096;

/// Adds `Cache-Invalidate` to the response of every request whose handler invalidated cache
/// entries (see the module docs). `Router::layer(InvalidationHeadersLayer::new())`.
#[derive(Clone, Copy, Debug)]
pub struct InvalidationHeadersLayer {
    max_bytes: usize,
}

impl InvalidationHeadersLayer {
    /// The layer, with a cap of [`DEFAULT_MAX_BYTES`].
    pub fn new() -> Self {
        InvalidationHeadersLayer {
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// Caps the header at `max_bytes`: a longer list goes as one `name:*` per entity.
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }
}

impl Default for InvalidationHeadersLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> tower_layer::Layer<S> for InvalidationHeadersLayer {
    type Service = InvalidationHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InvalidationHeaders {
            inner,
            max_bytes: self.max_bytes,
        }
    }
}

/// The service [`InvalidationHeadersLayer`] wraps around a handler.
#[derive(Clone, Debug)]
pub struct InvalidationHeaders<S> {
    inner: S,
    max_bytes: usize,
}

impl<S, B, R> tower_service::Service<Request<B>> for InvalidationHeaders<S>
where
    S: tower_service::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let collected = Arc::new(Mutex::new(Collected::default()));
        let future = REQUEST.sync_scope(collected.clone(), || self.inner.call(request));
        let max_bytes = self.max_bytes;
        Box::pin(async move {
            let mut response = REQUEST.scope(collected.clone(), future).await?;
            let collected = collected.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(value) = header_value(&collected, max_bytes) {
                response.headers_mut().append(CACHE_INVALIDATE, value);
            }
            Ok(response)
        })
    }
}

/// `key` as one list item: percent-encoded where it holds `,`, `%` or anything outside
/// visible ASCII.
fn encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        match byte {
            b',' | b'%' => out.push_str(&format!("%{byte:02X}")),
            0x21..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The header for what a request invalidated; `None` if nothing.
fn header_value(collected: &Collected, max_bytes: usize) -> Option<HeaderValue> {
    if collected.keys.is_empty() && collected.namespaces.is_empty() {
        return None;
    }
    let mut items: Vec<String> = Vec::new();
    let mut push = |item: String| {
        if !items.contains(&item) {
            items.push(item);
        }
    };
    let whole = |namespace: &str| format!("{}:*", encode(namespace));
    for namespace in &collected.namespaces {
        push(whole(namespace));
    }
    for key in &collected.keys {
        push(encode(&key.to_string()));
    }
    let mut text = items.join(", ");
    if text.len() > max_bytes {
        // One `name:*` per entity named instead.
        let mut names: Vec<String> = collected.namespaces.iter().map(|n| whole(n)).collect();
        for key in &collected.keys {
            let item = entity_wide(key);
            if !names.contains(&item) {
                names.push(item);
            }
        }
        text = names.join(", ");
        if text.len() > max_bytes {
            text = "*".to_string();
        }
    }
    HeaderValue::from_str(&text).ok()
}

/// `name:*`: every entry of `key`'s entity.
fn entity_wide(key: &CacheKey) -> String {
    format!("{}:*", encode(key.namespace().name))
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn keys_are_encoded_only_where_the_list_syntax_needs_it() {
        assert_eq!(encode("scene?status=draft"), "scene?status=draft");
        assert_eq!(encode("tag?label=a,b"), "tag?label=a%2Cb");
        assert_eq!(encode("tag?label=100%"), "tag?label=100%25");
        assert_eq!(encode("tag?label=é x"), "tag?label=%C3%A9%20x");
    }
}
