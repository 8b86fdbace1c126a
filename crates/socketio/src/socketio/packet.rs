//! One Socket.IO [`Packet`] and its text form: the header (type, attachment count, namespace,
//! ack id) and the JSON data, checked the way the reference parser checks it. The
//! [`Decoder`](crate::socketio::Decoder) calls [`decode_text`] on each text message; the
//! data stays raw JSON text. Never panics on input.

use std::{borrow::Cow, fmt};

use bytes::Bytes;
use serde::de::{self, IgnoredAny, SeqAccess, Visitor};

use crate::{JsonText, Limits, Str, json::Node};

/// Event names a client may not emit: the reference libraries use them for their own events.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// What a Socket.IO packet does. The wire types BINARY_EVENT (`5`) and BINARY_ACK (`6`) are
/// [`Event`](Self::Event) and [`Ack`](Self::Ack) packets with attachments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// `0`: join a namespace (client, data: optional auth object) or accept the join
    /// (server, data: `{"sid":…}`).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2` (or `5` with attachments): an event; data is `[name, ...args]`.
    Event,
    /// `3` (or `6` with attachments): the answer to the event with the same ack id; data is
    /// an array of arguments.
    Ack,
    /// `4`: the server refuses a namespace join; data is an object (`{"message":…}`) or a
    /// string.
    ConnectError,
}

impl PacketKind {
    /// The type digit on the wire; events and acks with attachments use their binary types.
    pub fn wire_type(self, binary: bool) -> u8 {
        match (self, binary) {
            (Self::Connect, _) => 0,
            (Self::Disconnect, _) => 1,
            (Self::Event, false) => 2,
            (Self::Ack, false) => 3,
            (Self::ConnectError, _) => 4,
            (Self::Event, true) => 5,
            (Self::Ack, true) => 6,
        }
    }

    /// The kind and binary flag of a wire type digit's value.
    pub fn from_wire_type(wire_type: u8) -> Option<(Self, bool)> {
        Some(match wire_type {
            0 => (Self::Connect, false),
            1 => (Self::Disconnect, false),
            2 => (Self::Event, false),
            3 => (Self::Ack, false),
            4 => (Self::ConnectError, false),
            5 => (Self::Event, true),
            6 => (Self::Ack, true),
            _ => return None,
        })
    }
}

/// A Socket.IO packet, decoded or about to be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// What the packet does.
    pub kind: PacketKind,
    /// The namespace, `/` by default.
    pub namespace: Str,
    /// The ack id: on an event, the sender wants an ack with this id; on an ack, the event
    /// it answers.
    pub id: Option<u64>,
    /// The data, as JSON text; binary values appear as placeholders.
    pub data: Option<JsonText>,
    /// Binary attachments, in placeholder order (only on events and acks).
    pub attachments: Vec<Bytes>,
}

/// Why a message is not (part of) a valid Socket.IO packet. Every variant means the peer
/// broke the protocol; the reference server closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The text was empty.
    #[error("empty packet")]
    Empty,
    /// The first character is not a packet type (`0`–`6`).
    #[error("unknown packet type {0:#04x}")]
    UnknownType(u8),
    /// A binary packet's attachment count is missing, not a number, zero, or not followed
    /// by `-`.
    #[error("illegal attachment count")]
    InvalidAttachmentCount,
    /// A binary packet declares more attachments than [`Limits::max_attachments`].
    #[error("packet declares more than {max_attachments} attachments")]
    TooManyAttachments {
        /// The limit that was exceeded.
        max_attachments: usize,
    },
    /// The ack id does not fit in 64 bits (or, in MessagePack, is not an unsigned integer).
    #[error("invalid ack id")]
    InvalidAckId,
    /// The data is not JSON.
    #[error("packet data is not valid JSON")]
    InvalidJson,
    /// The data does not have the shape its packet type requires (an object for CONNECT,
    /// none for DISCONNECT, an array starting with an event name for EVENT…).
    #[error("invalid payload for the packet type")]
    InvalidPayload,
    /// An event is named with one of the [`RESERVED_EVENTS`].
    #[error("reserved event name")]
    ReservedEvent,
    /// A placeholder lacks a valid `num`, or points past the declared attachment count.
    #[error("placeholder does not match a declared attachment")]
    InvalidPlaceholder,
    /// A binary message arrived with no binary packet waiting for attachments.
    #[error("binary message without a binary packet to attach it to")]
    UnexpectedBinary,
    /// A text packet arrived while a binary packet still waited for attachments.
    #[error("text packet while attachments are still expected")]
    UnexpectedText,
    /// A packet's attachments together exceed [`Limits::max_attachment_bytes`].
    #[error("attachments exceed the limit of {max_attachment_bytes} bytes")]
    AttachmentsTooLarge {
        /// The limit that was exceeded.
        max_attachment_bytes: usize,
    },
}

// === impl Packet ===

impl Packet {
    /// The default namespace.
    pub const DEFAULT_NAMESPACE: &'static str = "/";

    fn new(kind: PacketKind, namespace: impl Into<Str>, data: Option<JsonText>) -> Self {
        Self {
            kind,
            namespace: namespace.into(),
            id: None,
            data,
            attachments: Vec::new(),
        }
    }

    /// CONNECT, with the client's auth object or the server's `{"sid":…}`.
    pub fn connect(namespace: impl Into<Str>, data: Option<JsonText>) -> Self {
        Self::new(PacketKind::Connect, namespace, data)
    }

    /// DISCONNECT.
    pub fn disconnect(namespace: impl Into<Str>) -> Self {
        Self::new(PacketKind::Disconnect, namespace, None)
    }

    /// EVENT with `data` already in its `[name, ...args]` form.
    pub fn event(namespace: impl Into<Str>, data: JsonText) -> Self {
        Self::new(PacketKind::Event, namespace, Some(data))
    }

    /// EVENT `name` with arguments already in JSON: writes `["name",arg,…]` without parsing
    /// the arguments again (what a broadcast of a publication needs).
    pub fn event_with_args(namespace: impl Into<Str>, name: &str, args: &[&JsonText]) -> Self {
        let len = name.len() + 4 + args.iter().map(|a| a.as_bytes().len() + 1).sum::<usize>();
        let mut text = Vec::with_capacity(len);
        text.push(b'[');
        serde_json::to_writer(&mut text, name).expect("writing a string to a Vec cannot fail");
        for arg in args {
            text.push(b',');
            text.extend_from_slice(arg.as_bytes());
        }
        text.push(b']');
        let text = String::from_utf8(text).expect("JSON pieces are UTF-8");
        Self::event(namespace, JsonText::new_unchecked(Str::from(text)))
    }

    /// ACK of event `id` with `data`, an array of arguments.
    pub fn ack(namespace: impl Into<Str>, id: u64, data: JsonText) -> Self {
        Self::new(PacketKind::Ack, namespace, Some(data)).with_id(id)
    }

    /// CONNECT_ERROR with an object (`{"message":…}`) or a string.
    pub fn connect_error(namespace: impl Into<Str>, data: JsonText) -> Self {
        Self::new(PacketKind::ConnectError, namespace, Some(data))
    }

    /// The same packet asking for (or answering) ack `id`.
    pub fn with_id(mut self, id: u64) -> Self {
        self.id = Some(id);
        self
    }

    /// The same packet with binary attachments; `data` must hold a placeholder
    /// (`{"_placeholder":true,"num":N}`) for each.
    pub fn with_attachments(mut self, attachments: Vec<Bytes>) -> Self {
        self.attachments = attachments;
        self
    }

    /// Whether the packet goes on the wire as BINARY_EVENT or BINARY_ACK.
    pub fn is_binary(&self) -> bool {
        matches!(self.kind, PacketKind::Event | PacketKind::Ack) && !self.attachments.is_empty()
    }

    /// An event's name: the first element of its data when that is a string.
    pub fn event_name(&self) -> Option<Cow<'_, str>> {
        if self.kind != PacketKind::Event {
            return None;
        }
        match shape(self.data.as_ref()?.as_str()).ok()? {
            Shape::Array(Some(First::Str(name))) => Some(name),
            _ => None,
        }
    }
}

/// Decodes the text form of a packet into the packet (attachments still empty) and the
/// number of attachments it declares.
pub(crate) fn decode_text(text: &Str, limits: &Limits) -> Result<(Packet, usize), DecodeError> {
    let bytes = text.as_bytes();
    let Some(&digit) = bytes.first() else {
        return Err(DecodeError::Empty);
    };
    let (kind, binary) = digit
        .checked_sub(b'0')
        .and_then(PacketKind::from_wire_type)
        .ok_or(DecodeError::UnknownType(digit))?;
    let mut at = 1;
    let mut declared = 0;
    if binary {
        let count_len = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if count_len == 0 || bytes.get(at + count_len) != Some(&b'-') {
            return Err(DecodeError::InvalidAttachmentCount);
        }
        declared = parse_decimal(&bytes[at..at + count_len])
            .filter(|&n| n >= 1)
            .ok_or(DecodeError::InvalidAttachmentCount)?;
        if declared > limits.max_attachments as u64 {
            return Err(DecodeError::TooManyAttachments {
                max_attachments: limits.max_attachments,
            });
        }
        at += count_len + 1;
    }
    let namespace = if bytes.get(at) == Some(&b'/') {
        let end = bytes[at..]
            .iter()
            .position(|&b| b == b',')
            .map_or(bytes.len(), |i| at + i);
        let namespace = text.slice(at..end);
        at = (end + 1).min(bytes.len());
        namespace
    } else {
        Str::from_static(Packet::DEFAULT_NAMESPACE)
    };
    let id_len = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let id = if id_len > 0 {
        let id = parse_decimal(&bytes[at..at + id_len]).ok_or(DecodeError::InvalidAckId)?;
        at += id_len;
        Some(id)
    } else {
        None
    };
    let data = if at < bytes.len() {
        let data = text.slice(at..bytes.len());
        check_data(kind, data.as_str(), binary.then_some(declared))?;
        Some(JsonText::new_unchecked(data))
    } else {
        None
    };
    let packet = Packet {
        kind,
        namespace,
        id,
        data,
        attachments: Vec::new(),
    };
    let declared = usize::try_from(declared).expect("declared is at most max_attachments");
    Ok((packet, declared))
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Checks data the way the reference parser does for the packet kind, and, for a binary
/// packet declaring `attachments`, that every placeholder points to one of them.
pub(crate) fn check_data(
    kind: PacketKind,
    text: &str,
    attachments: Option<u64>,
) -> Result<(), DecodeError> {
    let shape = shape(text).map_err(|_| DecodeError::InvalidJson)?;
    let valid = match (kind, &shape) {
        (PacketKind::Connect, Shape::Object) => true,
        (PacketKind::ConnectError, Shape::Object | Shape::Str) => true,
        (PacketKind::Event, Shape::Array(Some(First::Str(name)))) => {
            if RESERVED_EVENTS.contains(&name.as_ref()) {
                return Err(DecodeError::ReservedEvent);
            }
            true
        }
        (PacketKind::Event, Shape::Array(Some(First::Number))) => true,
        (PacketKind::Ack, Shape::Array(_)) => true,
        _ => false,
    };
    if !valid {
        return Err(DecodeError::InvalidPayload);
    }
    if let Some(declared) = attachments {
        let node = Node::parse_json(text).map_err(|_| DecodeError::InvalidJson)?;
        node.each_placeholder(&|| DecodeError::InvalidPlaceholder, &mut |num| {
            if num < declared {
                Ok(())
            } else {
                Err(DecodeError::InvalidPlaceholder)
            }
        })?;
    }
    Ok(())
}

/// The top-level shape of a JSON value, found in one pass that checks the whole text.
pub(crate) enum Shape<'a> {
    Object,
    Array(Option<First<'a>>),
    Str,
    Other,
}

/// The first element of a top-level array.
pub(crate) enum First<'a> {
    Str(Cow<'a, str>),
    Number,
    Other,
}

pub(crate) fn shape(text: &str) -> Result<Shape<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let shape = de::Deserializer::deserialize_any(&mut de, ShapeVisitor)?;
    de.end()?;
    Ok(shape)
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Shape<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Shape::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape<'de>, A::Error> {
        let first = seq.next_element_seed(FirstSeed)?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::Array(first))
    }

    fn visit_str<E>(self, _: &str) -> Result<Shape<'de>, E> {
        Ok(Shape::Str)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape<'de>, E> {
        Ok(Shape::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Shape<'de>, E> {
        Ok(Shape::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Shape<'de>, E> {
        Ok(Shape::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Shape<'de>, E> {
        Ok(Shape::Other)
    }

    fn visit_unit<E>(self) -> Result<Shape<'de>, E> {
        Ok(Shape::Other)
    }
}

struct FirstSeed;

impl<'de> de::DeserializeSeed<'de> for FirstSeed {
    type Value = First<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<First<'de>, D::Error> {
        d.deserialize_any(FirstVisitor)
    }
}

struct FirstVisitor;

impl<'de> Visitor<'de> for FirstVisitor {
    type Value = First<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<First<'de>, E> {
        Ok(First::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<First<'de>, E> {
        Ok(First::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_i64<E>(self, _: i64) -> Result<First<'de>, E> {
        Ok(First::Number)
    }

    fn visit_u64<E>(self, _: u64) -> Result<First<'de>, E> {
        Ok(First::Number)
    }

    fn visit_f64<E>(self, _: f64) -> Result<First<'de>, E> {
        Ok(First::Number)
    }

    fn visit_bool<E>(self, _: bool) -> Result<First<'de>, E> {
        Ok(First::Other)
    }

    fn visit_unit<E>(self) -> Result<First<'de>, E> {
        Ok(First::Other)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<First<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(First::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<First<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(First::Other)
    }
}
