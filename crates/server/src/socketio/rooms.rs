//! The room ↔ channel mapping and the event ↔ publication conversion (`docs/socketio.md`,
//! "Rooms and channels").
//!
//! - namespace `/`, room `lobby` ↔ channel `lobby`; namespace `/chat`, room `lobby` ↔
//!   `/chat:lobby`; the whole namespace ↔ `/` or `/chat`.
//! - Room bytes outside the channel alphabet (and `=`) are written `=XX`; a root room's
//!   leading `/` too, so root rooms never look like namespaced channels.
//! - An event `name(a, b)` is the publication `["name",a,b]` (JSON), or that array in
//!   MessagePack when it has binary arguments. Data of any other shape reaches Socket.IO
//!   clients as event `message`.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use switchboard_core::{ChannelName, Payload};
use switchboard_socketio::{JsonText, Limits, Str, msgpack, socketio::Packet};

/// Why a room cannot be a channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RoomError {
    /// The room name is empty.
    #[error("room name is empty")]
    Empty,
    /// The mapped channel name is longer than channels may be.
    #[error("room name is too long (its channel name would exceed 255 bytes)")]
    TooLong,
}

/// Whether `namespace` can name a Socket.IO namespace here: `/` followed by channel-name
/// characters other than `:`, at most 128 bytes.
pub(crate) fn valid_namespace(namespace: &str) -> bool {
    namespace.starts_with('/')
        && namespace.len() <= 128
        && namespace
            .bytes()
            .all(|b| b != b':' && b != b'=' && is_channel_byte(b))
}

fn is_channel_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-' | b'.' | b'/' | b'@' | b',' | b'#')
}

/// The channel every socket of `namespace` is subscribed to (`io.of(ns).emit`).
pub(crate) fn namespace_channel(namespace: &str) -> Option<ChannelName> {
    ChannelName::parse(namespace).ok()
}

/// The channel of `room` in `namespace` (a valid namespace).
pub(crate) fn room_channel(namespace: &str, room: &str) -> Result<ChannelName, RoomError> {
    if room.is_empty() {
        return Err(RoomError::Empty);
    }
    let mut name = String::with_capacity(namespace.len() + room.len() + 1);
    if namespace != "/" {
        name.push_str(namespace);
        name.push(':');
    }
    for (i, b) in room.bytes().enumerate() {
        let escape = b == b'=' || !is_channel_byte(b) || (i == 0 && b == b'/' && namespace == "/");
        if escape {
            let _ = write!(name, "={b:02X}");
        } else {
            name.push(char::from(b));
        }
        if name.len() > switchboard_core::MAX_CHANNEL_NAME_BYTES {
            return Err(RoomError::TooLong);
        }
    }
    ChannelName::parse(&name).map_err(|_| RoomError::TooLong)
}

/// Where a channel belongs: its namespace and its room (`None` for the namespace channel).
pub(crate) fn channel_room(channel: &str) -> (&str, Option<String>) {
    if let Some(rest) = channel.strip_prefix('/') {
        match rest.split_once(':') {
            Some((ns, room)) => (&channel[..ns.len() + 1], Some(unescape(room))),
            None => (channel, None),
        }
    } else {
        ("/", Some(unescape(channel)))
    }
}

fn unescape(room: &str) -> String {
    let bytes = room.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len() + 1
            && let Some(hex) = room.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The event a publication's data stands for: `(data, attachments)` of an EVENT packet
/// (`None` only for data the hub should never hold: JSON that does not parse).
pub(crate) fn event_of(payload: &Payload, limits: &Limits) -> Option<(JsonText, Vec<Bytes>)> {
    match payload {
        Payload::Json(bytes) => {
            let text = JsonText::parse(bytes.clone()).ok()?;
            if is_event(&text) {
                Some((text, Vec::new()))
            } else {
                Some((wrap_message(text.as_bytes())?, Vec::new()))
            }
        }
        Payload::Binary(bytes) => match msgpack::decode_value(bytes, limits) {
            Ok((text, attachments)) if is_event(&text) => Some((text, attachments)),
            _ => Some((
                wrap_message(br#"{"_placeholder":true,"num":0}"#)?,
                vec![bytes.clone()],
            )),
        },
    }
}

fn is_event(text: &JsonText) -> bool {
    Packet::event("/", text.clone()).event_name().is_some()
}

fn wrap_message(inner: &[u8]) -> Option<JsonText> {
    let mut out = BytesMut::with_capacity(inner.len() + 12);
    out.put_slice(br#"["message","#);
    out.put_slice(inner);
    out.put_u8(b']');
    JsonText::parse(out.freeze()).ok()
}

/// The publication data of an event with `data` (`["name",…]`) and its attachments.
pub(crate) fn payload_of(data: &JsonText, attachments: &[Bytes]) -> Result<Payload, String> {
    if attachments.is_empty() {
        Payload::json(data.as_bytes().clone()).map_err(|e| e.to_string())
    } else {
        msgpack::encode_value(data, attachments)
            .map(Payload::Binary)
            .map_err(|e| e.to_string())
    }
}

/// `["name", args…]` split into its elements (raw JSON each).
pub(crate) fn split_args(data: &JsonText) -> Option<Vec<&serde_json::value::RawValue>> {
    serde_json::from_str(data.as_str()).ok()
}

/// Builds the JSON array of `items` (raw JSON texts).
pub(crate) fn join_array<'a>(items: impl IntoIterator<Item = &'a str>) -> Option<JsonText> {
    let mut out = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
    JsonText::parse(Bytes::from(out)).ok()
}

/// A JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The namespace as a `Str` for packets.
pub(crate) fn ns_str(namespace: &str) -> Str {
    Str::from(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_map_to_channels_one_to_one() {
        let cases = [
            ("/", "lobby", "lobby"),
            ("/chat", "lobby", "/chat:lobby"),
            ("/", "General Chat", "General=20Chat"),
            ("/", "/chat:x", "=2Fchat:x"),
            ("/", "a=b", "a=3Db"),
            ("/chat", "/x", "/chat:/x"),
            ("/", "héllo", "h=C3=A9llo"),
        ];
        for (ns, room, channel) in cases {
            let c = room_channel(ns, room).unwrap();
            assert_eq!(c.as_str(), channel, "{ns} {room}");
            assert_eq!(channel_room(c.as_str()), (ns, Some(room.to_owned())));
        }
        assert_eq!(channel_room("/chat"), ("/chat", None));
        assert_eq!(channel_room("/"), ("/", None));
        assert_eq!(room_channel("/", ""), Err(RoomError::Empty));
        assert_eq!(room_channel("/", &"é".repeat(60)), Err(RoomError::TooLong));
    }

    #[test]
    fn namespaces_must_be_channel_safe() {
        assert!(valid_namespace("/"));
        assert!(valid_namespace("/chat"));
        assert!(valid_namespace("/a/b-c"));
        assert!(!valid_namespace("chat"));
        assert!(!valid_namespace("/a:b"));
        assert!(!valid_namespace("/a b"));
    }

    #[test]
    fn publications_become_events() {
        let limits = Limits::default();
        let ev = |p: Payload| event_of(&p, &limits).unwrap();
        let (d, a) = ev(Payload::json(&br#"["news",{"a":1}]"#[..]).unwrap());
        assert_eq!(d.as_str(), r#"["news",{"a":1}]"#);
        assert!(a.is_empty());
        let (d, _) = ev(Payload::json(&br#"{"a":1}"#[..]).unwrap());
        assert_eq!(d.as_str(), r#"["message",{"a":1}]"#);
        let (d, _) = ev(Payload::json(&b"[1,2]"[..]).unwrap());
        assert_eq!(d.as_str(), r#"["message",[1,2]]"#);
        let (d, a) = ev(Payload::Binary(Bytes::from_static(b"\x01\x02")));
        assert_eq!(d.as_str(), r#"["message",{"_placeholder":true,"num":0}]"#);
        assert_eq!(a, [Bytes::from_static(b"\x01\x02")]);
        // A binary event round-trips through MessagePack.
        let data = JsonText::parse(Bytes::from_static(
            br#"["file",{"_placeholder":true,"num":0}]"#,
        ))
        .unwrap();
        let p = payload_of(&data, &[Bytes::from_static(b"xyz")]).unwrap();
        let (d, a) = ev(p);
        assert_eq!(d.as_str(), data.as_str());
        assert_eq!(a, [Bytes::from_static(b"xyz")]);
    }
}
