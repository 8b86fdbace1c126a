//! The `socket.io-msgpack-parser` wire format: each Socket.IO packet is one MessagePack map
//! `{"type":…,"data":…,"id":…,"nsp":…}` sent as one binary Engine.IO message, binary values
//! inline (so there are no BINARY_EVENT/BINARY_ACK types and no separate attachments).
//!
//! It decodes into the same [`Packet`] as the default parser: data becomes JSON text, each
//! MessagePack binary becomes a `{"_placeholder":true,"num":N}` placeholder and attachment N.
//! Encoding reverses that and writes what the reference encoder (notepack.io) writes, so a
//! room shared by clients of both parsers costs one encoding per parser.
//!
//! ```
//! use switchboard_socketio::{JsonText, Limits, msgpack, socketio::Packet};
//!
//! let packet = Packet::event("/", JsonText::parse(r#"["hi",1]"#.into()).unwrap());
//! let encoded = msgpack::encode(&packet).unwrap();
//! let switchboard_socketio::engineio::Frame::Binary(bytes) = &encoded.websocket()[0] else {
//!     panic!("MessagePack packets are binary messages");
//! };
//! assert_eq!(msgpack::decode(bytes, &Limits::default()), Ok(packet));
//! ```

mod read;
#[cfg(test)]
mod tests;
mod write;

use bytes::{Bytes, BytesMut};

use crate::{
    JsonText, Limits, Str,
    engineio::Frame,
    json::Node,
    socketio::{EncodeError, Encoded, Packet, PacketKind},
};
use read::{ReadError, read};
use write::{write_len, write_node, write_str, write_uint};

/// Why a binary message is not a MessagePack Socket.IO packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message is larger than [`Limits::max_payload_bytes`]; nothing was parsed.
    #[error("packet exceeds the limit of {max_payload_bytes} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        max_payload_bytes: usize,
    },
    /// Not one well-formed MessagePack value (truncated, trailing bytes, invalid UTF-8…).
    #[error("malformed MessagePack")]
    Malformed,
    /// Nested more than 100 levels deep.
    #[error("MessagePack nested too deeply")]
    TooDeep,
    /// An extension type, a non-string map key, or a float with no JSON form.
    #[error("MessagePack value with no JSON form")]
    Unsupported,
    /// The value is not a map.
    #[error("packet is not a map")]
    NotAMap,
    /// `type` is missing or not an integer from 0 to 4.
    #[error("invalid packet type")]
    InvalidType,
    /// `nsp` is missing or not a string.
    #[error("invalid namespace")]
    InvalidNamespace,
    /// `data` does not have the shape the packet type requires.
    #[error("invalid payload for the packet type")]
    InvalidPayload,
    /// `data` holds an object shaped like a binary placeholder (`"_placeholder":true`),
    /// which the shared packet model reserves for binaries.
    #[error("data holds a placeholder object")]
    PlaceholderInData,
    /// `id` is present but not an unsigned integer.
    #[error("invalid ack id")]
    InvalidAckId,
}

impl From<ReadError> for DecodeError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Malformed => Self::Malformed,
            ReadError::TooDeep => Self::TooDeep,
            ReadError::Unsupported => Self::Unsupported,
        }
    }
}

/// Decodes one binary message into a packet, checked as the reference parser checks it
/// (`type` 0–4, `nsp` a string, `data` shaped for the type, `id` an integer). The length is
/// checked against `limits` first; declared lengths inside are checked against the bytes
/// left before allocating.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Packet, DecodeError> {
    if bytes.len() > limits.max_payload_bytes {
        return Err(DecodeError::TooLarge {
            max_payload_bytes: limits.max_payload_bytes,
        });
    }
    let Node::Map(entries) = read(bytes)? else {
        return Err(DecodeError::NotAMap);
    };
    // Later keys win, as in a JavaScript object.
    let field = |name: &str| {
        entries
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    };
    let kind = match field("type") {
        Some(Node::UInt(n)) => u8::try_from(*n)
            .ok()
            .filter(|&n| n <= 4)
            .and_then(PacketKind::from_wire_type)
            .map(|(kind, _)| kind),
        _ => None,
    }
    .ok_or(DecodeError::InvalidType)?;
    let namespace = match field("nsp") {
        Some(Node::Str(nsp)) => Str::from(nsp.as_ref()),
        _ => return Err(DecodeError::InvalidNamespace),
    };
    // notepack writes `data: undefined` (socket.io-client's CONNECT without `auth`) as its
    // undefined extension, read as null; the reference parser takes any `typeof "object"`
    // (null included) for CONNECT, and undefined for DISCONNECT.
    let data = field("data").filter(|d| {
        !(matches!(d, Node::Null) && matches!(kind, PacketKind::Connect | PacketKind::Disconnect))
    });
    let valid = matches!(
        (kind, data),
        (PacketKind::Connect, None | Some(Node::Map(_)))
            | (PacketKind::Disconnect, None)
            | (PacketKind::ConnectError, Some(Node::Str(_) | Node::Map(_)))
            | (PacketKind::Event | PacketKind::Ack, Some(Node::Array(_)))
    );
    if !valid {
        return Err(DecodeError::InvalidPayload);
    }
    let id = match field("id") {
        None => None,
        Some(Node::UInt(id)) => Some(*id),
        Some(_) => return Err(DecodeError::InvalidAckId),
    };
    let mut attachments = Vec::new();
    let data = match data {
        Some(node) => {
            node.each_placeholder(&|| DecodeError::PlaceholderInData, &mut |_| {
                Err(DecodeError::PlaceholderInData)
            })?;
            let mut text = Vec::new();
            node.write_json(&mut text, &mut attachments)
                .map_err(|_| DecodeError::Unsupported)?;
            let text = String::from_utf8(text).expect("the JSON writer writes UTF-8");
            Some(JsonText::new_unchecked(Str::from(text)))
        }
        None => None,
    };
    Ok(Packet {
        kind,
        namespace,
        id,
        data,
        attachments,
    })
}

/// Encodes a packet as one binary message, attachments inline where their placeholders
/// are; keys in the order `type`, `data`, `id`, `nsp`.
pub fn encode(packet: &Packet) -> Result<Encoded, EncodeError> {
    // JsonText is checked JSON, but that check skips over nested values: depth and
    // number range are only met here.
    let data = packet
        .data
        .as_ref()
        .map(|d| Node::parse_json(d.as_str()))
        .transpose()
        .map_err(|_| EncodeError::UnsupportedData)?;
    let mut out = BytesMut::with_capacity(
        packet.data.as_ref().map_or(0, |d| d.as_bytes().len())
            + packet.attachments.iter().map(Bytes::len).sum::<usize>()
            + packet.namespace.len()
            + 32,
    );
    let fields = 2 + usize::from(data.is_some()) + usize::from(packet.id.is_some());
    write_len(&mut out, fields, 0x80, 0xde);
    write_str(&mut out, "type");
    write_uint(&mut out, u64::from(packet.kind.wire_type(false)));
    if let Some(data) = &data {
        write_str(&mut out, "data");
        write_node(&mut out, data, &packet.attachments)?;
    }
    if let Some(id) = packet.id {
        write_str(&mut out, "id");
        write_uint(&mut out, id);
    }
    write_str(&mut out, "nsp");
    write_str(&mut out, &packet.namespace);
    Ok(Encoded::new(vec![Frame::Binary(out.freeze())]))
}

/// Writes `data` (JSON text whose placeholders point into `attachments`) as one MessagePack
/// value with the attachments inline: how a Socket.IO event with binary arguments is kept as
/// one opaque value (for example `["file", <bin>]` as a hub publication).
pub fn encode_value(data: &JsonText, attachments: &[Bytes]) -> Result<Bytes, EncodeError> {
    let node = Node::parse_json(data.as_str()).map_err(|_| EncodeError::UnsupportedData)?;
    let mut out = BytesMut::with_capacity(
        data.as_bytes().len() + attachments.iter().map(Bytes::len).sum::<usize>() + 8,
    );
    write_node(&mut out, &node, attachments)?;
    Ok(out.freeze())
}

/// Reads one MessagePack value back into JSON text with a placeholder for each binary, and
/// the binaries in placeholder order ([`encode_value`] reversed). Refused above
/// [`Limits::max_payload_bytes`], or when the value holds a placeholder-shaped object.
pub fn decode_value(bytes: &[u8], limits: &Limits) -> Result<(JsonText, Vec<Bytes>), DecodeError> {
    if bytes.len() > limits.max_payload_bytes {
        return Err(DecodeError::TooLarge {
            max_payload_bytes: limits.max_payload_bytes,
        });
    }
    let node = read(bytes)?;
    node.each_placeholder(&|| DecodeError::PlaceholderInData, &mut |_| {
        Err(DecodeError::PlaceholderInData)
    })?;
    let mut attachments = Vec::new();
    let mut text = Vec::new();
    node.write_json(&mut text, &mut attachments)
        .map_err(|_| DecodeError::Unsupported)?;
    let text = String::from_utf8(text).map_err(|_| DecodeError::Malformed)?;
    Ok((JsonText::new_unchecked(Str::from(text)), attachments))
}
