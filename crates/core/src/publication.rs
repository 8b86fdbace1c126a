//! What flows through the hub: [`Publication`]s with their stream position, the [`Payload`]
//! they carry, the [`ClientInfo`] of who published or joined, and [`Prepared`], the
//! once-per-wire-format frame cache that lets one encoding reach every subscriber.

use std::{
    collections::HashSet,
    fmt,
    ops::Deref,
    sync::{Arc, OnceLock},
};

use bytes::Bytes;
use serde::{Serialize, Serializer};
use tokio::time::Instant;

use crate::names::{ChannelName, ClientId, UserId};

/// The data of a publication or message. The hub never interprets it.
#[derive(Clone, PartialEq, Eq)]
pub enum Payload {
    /// UTF-8 JSON text, validated when it entered the server.
    Json(Bytes),
    /// Opaque bytes.
    Binary(Bytes),
}

/// Why bytes were refused as a JSON payload.
#[derive(Debug, thiserror::Error)]
#[error("data is not valid JSON: {0}")]
pub struct InvalidJson(#[from] serde_json::Error);

/// Checks that `text` is one JSON value every wire format can carry: valid syntax, and
/// also numbers within the range of a 64-bit float and strings without lone surrogates
/// (`1e400`, `"\ud800"`), which pass a syntax check but have no MessagePack form, so
/// MessagePack subscribers would silently get `nil`. Strings are decoded but not kept.
pub fn validate_json(text: &[u8]) -> Result<(), InvalidJson> {
    serde_json::from_slice::<Strict>(text)?;
    Ok(())
}

/// A JSON value read through `deserialize_any`, so numbers and escapes are decoded (and
/// checked) rather than skipped, and dropped as it goes.
struct Strict;

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Strict, E> {
        if v.is_finite() {
            Ok(Strict)
        } else {
            Err(E::custom("number out of range"))
        }
    }

    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        while map.next_entry::<Strict, Strict>()?.is_some() {}
        Ok(Strict)
    }
}

impl Payload {
    /// Checks that `text` is one JSON value every wire format can carry
    /// ([`validate_json`]) and wraps it.
    pub fn json(text: impl Into<Bytes>) -> Result<Self, InvalidJson> {
        let text = text.into();
        validate_json(&text)?;
        Ok(Self::Json(text))
    }

    /// Serializes `value` to JSON. Only fails for values serde_json cannot represent
    /// (such as maps with non-string keys).
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, InvalidJson> {
        Ok(Self::Json(Bytes::from(serde_json::to_vec(value)?)))
    }

    /// Size of the payload in bytes.
    pub fn len(&self) -> usize {
        match self {
            Self::Json(b) | Self::Binary(b) => b.len(),
        }
    }

    /// Whether the payload has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw bytes (JSON text or binary).
    pub fn bytes(&self) -> &Bytes {
        match self {
            Self::Json(b) | Self::Binary(b) => b,
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(b) => write!(f, "Json({})", String::from_utf8_lossy(b)),
            Self::Binary(b) => write!(f, "Binary({} bytes)", b.len()),
        }
    }
}

/// A stream epoch: changes whenever a channel's stream restarts (the channel was dropped and
/// created again, or its store lost it). Offsets are only comparable within one epoch.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Epoch(Arc<str>);

impl Epoch {
    /// A new random epoch.
    pub fn generate() -> Self {
        Self(Arc::from(crate::random::token(8)))
    }

    /// Wraps an epoch received from a client (only compared, never trusted).
    pub fn from_client(epoch: &str) -> Self {
        Self(Arc::from(epoch))
    }

    /// The epoch as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Epoch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A position in a channel's stream: the offset of the last publication in `epoch`
/// (0 when nothing was published yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamPosition {
    /// Offset of the last publication; publications are numbered 1, 2, 3… without gaps.
    pub offset: u64,
    /// The stream's epoch.
    pub epoch: Epoch,
}

/// Who a connection is, as shown to others in presence and on publications.
#[derive(Debug, Clone, Serialize)]
pub struct ClientInfo {
    /// The connection's id.
    pub client: ClientId,
    /// The user, when the connection is authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    /// Connection info given at connect time (JSON), shown in presence.
    #[serde(skip_serializing_if = "Option::is_none", rename = "info")]
    pub conn_info: Option<RawJson>,
}

/// JSON text that serializes as itself (not as a string).
#[derive(Clone, PartialEq, Eq)]
pub struct RawJson(Bytes);

impl RawJson {
    /// Wraps already-validated JSON text. Use [`Payload::json`] to validate first.
    pub fn new(validated: Bytes) -> Self {
        Self(validated)
    }

    /// The JSON text.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(&self.0))
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(&self.0).map_err(serde::ser::Error::custom)?;
        let raw: &serde_json::value::RawValue =
            serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

/// One message in a channel's stream.
#[derive(Debug, Clone)]
pub struct Publication {
    /// The channel it was published to.
    pub channel: ChannelName,
    /// Its offset in the channel's stream (1, 2, 3… within `epoch`).
    pub offset: u64,
    /// The stream's epoch at the time of publication.
    pub epoch: Epoch,
    /// The data.
    pub data: Payload,
    /// Who published it, when published by a client connection.
    pub info: Option<Arc<ClientInfo>>,
    /// When the hub accepted it (for delivery-latency metrics and the history cache's TTL).
    pub published_at: Instant,
    /// When the hub accepted it, in unix milliseconds (kept by stores).
    pub time_ms: u64,
    /// Connections it is not delivered to live (a Socket.IO broadcast's sender and
    /// `except` rooms). Not kept by stores: recovery from history does not apply it.
    pub except: Option<Arc<HashSet<ClientId>>>,
    /// A connection that cannot take it at once may skip it (Socket.IO's volatile emits:
    /// a polling client between two requests). Not kept by stores.
    pub volatile: bool,
}

/// A presence change pushed to subscribers that asked for join/leave events.
#[derive(Debug, Clone)]
pub struct PresenceEvent {
    /// The channel.
    pub channel: ChannelName,
    /// Who joined or left.
    pub info: Arc<ClientInfo>,
}

/// A message addressed to a user (every connection of that user), outside any channel stream.
#[derive(Debug, Clone)]
pub struct UserMessage {
    /// The data.
    pub data: Payload,
}

/// Number of distinct wire formats a [`Prepared`] value can cache.
pub const FRAME_SLOTS: usize = 8;

/// Names one cached wire encoding (for example "native JSON over WebSocket").
///
/// Each protocol declares its slots as constants; the list lives in one place in the
/// server so two formats never share a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSlot(usize);

impl FrameSlot {
    /// Slot `index`. Panics at compile time (in a const) or at start-up when out of range,
    /// which only constants we control can cause.
    pub const fn new(index: usize) -> Self {
        assert!(index < FRAME_SLOTS, "frame slot out of range");
        Self(index)
    }
}

/// A value shared by every recipient, with its encodings cached once per wire format.
///
/// The first recipient that needs slot `s` encodes the value (frame header included); every
/// other recipient gets the same [`Bytes`] (a reference-count increment).
pub struct Prepared<T> {
    value: T,
    frames: [OnceLock<Bytes>; FRAME_SLOTS],
}

impl<T> Prepared<T> {
    /// Wraps `value` with an empty frame cache.
    pub fn new(value: T) -> Self {
        Self {
            value,
            frames: Default::default(),
        }
    }

    /// The encoding for `slot`, made by `encode` on first use.
    pub fn frame(&self, slot: FrameSlot, encode: impl FnOnce(&T) -> Bytes) -> Bytes {
        self.frames[slot.0]
            .get_or_init(|| encode(&self.value))
            .clone()
    }
}

impl<T> Deref for Prepared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Prepared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.value, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_prepared_value_is_encoded_once_per_slot() {
        let calls = AtomicUsize::new(0);
        let p = Prepared::new(7u32);
        let enc = |v: &u32| {
            calls.fetch_add(1, Ordering::Relaxed);
            Bytes::from(v.to_string())
        };
        let a = p.frame(FrameSlot::new(0), enc);
        let b = p.frame(FrameSlot::new(0), enc);
        assert_eq!(a, b);
        assert_eq!(a.as_ptr(), b.as_ptr(), "same bytes are shared");
        p.frame(FrameSlot::new(1), enc);
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn json_payloads_are_validated() {
        assert!(Payload::json(&b"{\"a\":1}"[..]).is_ok());
        assert!(Payload::json(&b"{a:1}"[..]).is_err());
        assert!(Payload::json(&b"1 2"[..]).is_err());
    }

    #[test]
    fn raw_json_serializes_as_json() {
        let r = RawJson::new(Bytes::from_static(b"{\"x\":[1,2]}"));
        assert_eq!(serde_json::to_string(&r).unwrap(), "{\"x\":[1,2]}");
    }
}
