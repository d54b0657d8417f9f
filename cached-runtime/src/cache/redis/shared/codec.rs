//! How a shared entry travels: a format version, a compression flag, and JSON holding the
//! value (and, for a view instance, the keys its load read). An entry this build cannot read
//! (another format version, damaged bytes, a type that changed shape) is a miss, never an
//! error to the caller.

use std::any::Any;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::cache::wire::WireKey;
use crate::cache::AnyRow;
use crate::entity::Namespace;
use crate::key::CacheKey;

/// The first byte of every shared entry: bumped when the layout below changes.
const FORMAT: u8 = 1;
/// The second byte: how the JSON that follows is stored.
const PLAIN: u8 = 0;
const LZ4: u8 = 1;
/// The largest value decompressed (a damaged size prefix must not allocate gigabytes).
const MAX_DECOMPRESSED: usize = 64 << 20;

/// How the values of one shared entity or view become bytes and back, and which entities'
/// whole-entity invalidations drop them.
/// Turns a value's JSON back into the value (as a cache entry's row).
type FromJson = Arc<dyn Fn(&RawValue) -> Option<AnyRow> + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Codec {
    to_json: fn(&AnyRow) -> Option<Box<RawValue>>,
    from_json: FromJson,
    /// The entities (and the view itself) a bump of which drops every shared entry of it.
    pub stamped: Arc<[&'static Namespace]>,
    /// Whether its entries carry the keys their load read (view instances).
    pub carries_reads: bool,
}

impl Codec {
    /// The codec of a view `V` whose values own `heap_of` bytes besides their struct; a bump
    /// of any of `stamped` drops its shared instances.
    pub fn view<V>(heap_of: fn(&V) -> usize, stamped: Vec<&'static Namespace>) -> Codec
    where
        V: Serialize + DeserializeOwned + Any + Send + Sync,
    {
        Codec {
            to_json: to_json::<V>,
            from_json: Arc::new(move |raw: &RawValue| {
                let value: V = serde_json::from_str(raw.get()).ok()?;
                let heap = heap_of(&value);
                Some(AnyRow::new(Arc::new(value), heap))
            }),
            stamped: stamped.into(),
            carries_reads: true,
        }
    }

    /// The codec of an entity's rows.
    pub fn rows<E>(meta: &'static Namespace) -> Codec
    where
        E: crate::entity::CachedEntity + Serialize + DeserializeOwned,
    {
        Codec {
            to_json: to_json::<E>,
            from_json: Arc::new(row_from_json::<E>),
            stamped: Arc::from(vec![meta]),
            carries_reads: false,
        }
    }
}

fn to_json<T: Serialize + Any + Send + Sync>(row: &AnyRow) -> Option<Box<RawValue>> {
    let value = row.as_any().downcast_ref::<T>()?;
    serde_json::value::to_raw_value(value).ok()
}

fn row_from_json<E>(raw: &RawValue) -> Option<AnyRow>
where
    E: crate::entity::CachedEntity + DeserializeOwned,
{
    let row: E = serde_json::from_str(raw.get()).ok()?;
    Some(AnyRow::row(Arc::new(row)))
}

/// The JSON body of an entry.
#[derive(Serialize)]
struct Body<'a> {
    /// The keys the load read (view instances only).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    d: &'a [WireKey],
    v: &'a RawValue,
}

#[derive(Deserialize)]
struct BodyIn<'a> {
    #[serde(default)]
    d: Vec<WireKey>,
    #[serde(borrow)]
    v: &'a RawValue,
}

/// A decoded entry: the value and the keys its load read.
pub(crate) struct Decoded {
    pub value: AnyRow,
    pub reads: Vec<CacheKey>,
}

impl Codec {
    /// `row` and what its load read as an entry's bytes, compressed past `compress_over`
    /// bytes; `None` if the value is not of this codec's type or does not serialize.
    pub fn encode(
        &self,
        row: &AnyRow,
        reads: &[CacheKey],
        compress_over: usize,
    ) -> Option<Vec<u8>> {
        let value = (self.to_json)(row)?;
        let d: Vec<WireKey> = reads.iter().map(WireKey::from_key).collect();
        let json = serde_json::to_vec(&Body { d: &d, v: &value }).ok()?;
        let mut out = Vec::with_capacity(json.len().min(compress_over) + 2);
        out.push(FORMAT);
        if json.len() > compress_over {
            out.push(LZ4);
            out.extend_from_slice(&lz4_flex::block::compress_prepend_size(&json));
        } else {
            out.push(PLAIN);
            out.extend_from_slice(&json);
        }
        Some(out)
    }

    /// The entry stored as `bytes`, or `None` if this build cannot read it (another format,
    /// damaged bytes, a value that no longer deserializes, a key it does not know).
    pub fn decode(&self, bytes: &[u8]) -> Option<Decoded> {
        let (&format, rest) = bytes.split_first()?;
        let (&compression, body) = rest.split_first()?;
        if format != FORMAT {
            return None;
        }
        let inflated;
        let json: &[u8] = match compression {
            PLAIN => body,
            LZ4 => {
                let size = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
                if size > MAX_DECOMPRESSED {
                    return None;
                }
                inflated = lz4_flex::block::decompress_size_prepended(body).ok()?;
                &inflated
            }
            _ => return None,
        };
        let parsed: BodyIn<'_> = serde_json::from_slice(json).ok()?;
        let value = (self.from_json)(parsed.v)?;
        let mut reads = Vec::with_capacity(parsed.d.len());
        for key in &parsed.d {
            reads.push(key.resolve_one()?);
        }
        Some(Decoded { value, reads })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Outline {
        titles: Vec<String>,
    }

    fn codec() -> Codec {
        Codec::view::<Outline>(|o| o.titles.len(), Vec::new())
    }

    fn outline(n: usize) -> AnyRow {
        let titles = (0..n).map(|i| format!("scene number {i}")).collect();
        AnyRow::new(Arc::new(Outline { titles }), 0)
    }

    fn back(codec: &Codec, bytes: &[u8]) -> Option<Arc<Outline>> {
        codec.decode(bytes)?.value.downcast::<Outline>().ok()
    }

    #[test]
    fn small_values_go_plain_and_large_ones_compressed_and_both_come_back() {
        let codec = codec();
        for (n, compressed) in [(2, false), (500, true)] {
            let row = outline(n);
            let bytes = codec.encode(&row, &[], 1024).unwrap();
            assert_eq!(bytes[1] == LZ4, compressed, "{n} titles");
            let expected = row.downcast::<Outline>().ok().unwrap();
            assert_eq!(back(&codec, &bytes).as_deref(), Some(&*expected));
        }
    }

    #[test]
    fn anything_this_build_cannot_read_is_none_never_a_panic() {
        let codec = codec();
        let good = codec.encode(&outline(500), &[], 1024).unwrap();
        let mut other_format = good.clone();
        other_format[0] = FORMAT + 1;
        let mut huge_prefix = good.clone();
        huge_prefix[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
        let other_shape = [&[FORMAT, PLAIN][..], br#"{"v":{"titles":7}}"#].concat();
        for bad in [
            &[][..],
            &[FORMAT][..],
            &other_format,
            &huge_prefix,
            &good[..good.len() / 2],
            &other_shape,
            b"\x01\x00not json",
        ] {
            assert!(back(&codec, bad).is_none());
        }
        // Every one-byte cut of a good entry is read or refused, never a panic.
        for cut in 0..good.len() {
            let _ = back(&codec, &good[..cut]);
        }
    }
}
