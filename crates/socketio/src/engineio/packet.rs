//! One Engine.IO [`Packet`]: decoded from a WebSocket message or a polling segment, encoded
//! to either. The server calls it for every frame in and out; it never allocates more than
//! the limit it is given and never panics on input.

use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose::STANDARD},
};
use bytes::{BufMut, Bytes, BytesMut};

use crate::{Str, engineio::Handshake};

/// Base64 as Node's `Buffer.from(text, "base64")` reads it: padding optional.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The payload of one WebSocket message, before (or after) WebSocket framing.
///
/// Encoders return frames so that the server frames each one once and shares the bytes
/// among every socket it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message (always UTF-8 when built by this crate).
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
}

/// The data of an Engine.IO message packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Text data (a Socket.IO packet, for Socket.IO).
    Text(Str),
    /// Binary data (a Socket.IO attachment, or a MessagePack-encoded Socket.IO packet).
    Binary(Bytes),
}

/// An Engine.IO v4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0`: the server's handshake, first packet of a session.
    Open(Handshake),
    /// `1`: the session is closing.
    Close,
    /// `2`: a heartbeat (sent by the server) or, with data `probe`, a client testing a new
    /// WebSocket during an upgrade.
    Ping(Str),
    /// `3`: the answer to a ping, with the same data.
    Pong(Str),
    /// `4` (text) or a binary frame / `b`+base64 (binary): application data.
    Message(Message),
    /// `5`: the client switches to the probed WebSocket.
    Upgrade,
    /// `6`: sent to end a pending poll during an upgrade.
    Noop,
}

/// Why bytes are not an Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// The text was empty (no type digit).
    #[error("empty packet")]
    Empty,
    /// The first byte is not a packet type digit (`0`–`6`) nor `b`.
    #[error("unknown packet type {0:#04x}")]
    UnknownType(u8),
    /// A text packet or polling payload was not UTF-8.
    #[error("packet text is not UTF-8")]
    InvalidUtf8,
    /// A `b` packet's data was not base64.
    #[error("binary packet is not valid base64")]
    InvalidBase64,
    /// An open packet's data was not a handshake object.
    #[error("open packet without a valid handshake")]
    InvalidHandshake,
    /// The packet or payload is larger than the limit (`maxPayload`); nothing was allocated
    /// for it.
    #[error("packet exceeds the limit of {max_payload_bytes} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        max_payload_bytes: usize,
    },
}

// === impl Packet ===

impl Packet {
    /// The data of a ping or pong sent while probing a WebSocket for an upgrade.
    pub const PROBE: &'static str = "probe";

    /// A heartbeat ping (`2`).
    pub fn ping() -> Self {
        Self::Ping(Str::default())
    }

    /// Whether this is the ping or pong of an upgrade probe (`2probe`, `3probe`).
    pub fn is_probe(&self) -> bool {
        matches!(self, Self::Ping(data) | Self::Pong(data) if data == Self::PROBE)
    }

    /// A text message (`4…`).
    pub fn text(text: impl Into<Str>) -> Self {
        Self::Message(Message::Text(text.into()))
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::Message(Message::Binary(data.into()))
    }

    /// Decodes one WebSocket message. Text is decoded as by [`Packet::decode_text`]; a binary
    /// message is binary data. Either is refused above `max_payload_bytes`.
    pub fn decode(frame: Frame, max_payload_bytes: usize) -> Result<Self, PacketError> {
        match frame {
            Frame::Text(text) => Self::decode_text(text, max_payload_bytes),
            Frame::Binary(data) if data.len() > max_payload_bytes => {
                Err(PacketError::TooLarge { max_payload_bytes })
            }
            Frame::Binary(data) => Ok(Self::binary(data)),
        }
    }

    /// Decodes a packet in its text form (a WebSocket text message, or one segment of a
    /// polling payload): a type digit and its data, or `b` and base64. The length is checked
    /// against `max_payload_bytes` before anything is allocated.
    pub fn decode_text(text: Bytes, max_payload_bytes: usize) -> Result<Self, PacketError> {
        if text.len() > max_payload_bytes {
            return Err(PacketError::TooLarge { max_payload_bytes });
        }
        let text = Str::from_utf8(text).map_err(|_| PacketError::InvalidUtf8)?;
        let Some(&kind) = text.as_bytes().first() else {
            return Err(PacketError::Empty);
        };
        if !matches!(kind, b'0'..=b'6' | b'b') {
            return Err(PacketError::UnknownType(kind));
        }
        // The type is one ASCII byte, so the data starts on a character boundary.
        let data = text.slice(1..text.len());
        Ok(match kind {
            b'0' => Self::Open(
                serde_json::from_str(data.as_str()).map_err(|_| PacketError::InvalidHandshake)?,
            ),
            b'1' => Self::Close,
            b'2' => Self::Ping(data),
            b'3' => Self::Pong(data),
            b'4' => Self::Message(Message::Text(data)),
            b'5' => Self::Upgrade,
            b'6' => Self::Noop,
            _ => Self::binary(decode_base64(data.as_bytes())?),
        })
    }

    /// The WebSocket message for this packet: binary data as a binary message, everything
    /// else as text.
    pub fn to_frame(&self) -> Frame {
        match self {
            Self::Message(Message::Binary(data)) => Frame::Binary(data.clone()),
            other => Frame::Text(other.to_text()),
        }
    }

    /// The packet's text form, as it goes in a polling payload (binary data as `b`+base64).
    pub fn to_text(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.write_text(&mut out);
        out.freeze()
    }

    /// Appends the packet's text form to `out`.
    pub fn write_text(&self, out: &mut BytesMut) {
        let (digit, data): (u8, &[u8]) = match self {
            Self::Open(handshake) => {
                out.put_u8(b'0');
                out.put_slice(handshake.to_json().as_bytes());
                return;
            }
            Self::Message(Message::Binary(data)) => {
                write_base64(out, data);
                return;
            }
            Self::Close => (b'1', b""),
            Self::Ping(data) => (b'2', data.as_bytes()),
            Self::Pong(data) => (b'3', data.as_bytes()),
            Self::Message(Message::Text(text)) => (b'4', text.as_bytes()),
            Self::Upgrade => (b'5', b""),
            Self::Noop => (b'6', b""),
        };
        out.reserve(1 + data.len());
        out.put_u8(digit);
        out.put_slice(data);
    }
}

/// Appends `b` and `data` in padded base64: a binary message in a polling payload.
pub(crate) fn write_base64(out: &mut BytesMut, data: &[u8]) {
    let start = out.len();
    let len = base64::encoded_len(data.len(), true).unwrap_or(usize::MAX);
    out.resize(start + 1 + len, 0);
    out[start] = b'b';
    let written = STANDARD
        .encode_slice(data, &mut out[start + 1..])
        .expect("the buffer was sized with base64::encoded_len");
    out.truncate(start + 1 + written);
}

fn decode_base64(text: &[u8]) -> Result<Bytes, PacketError> {
    let mut out = Vec::new();
    // Base64 only shrinks, and the text is already within the limit.
    out.try_reserve_exact(text.len() / 4 * 3 + 3)
        .map_err(|_| PacketError::InvalidBase64)?;
    LENIENT_BASE64
        .decode_vec(text, &mut out)
        .map_err(|_| PacketError::InvalidBase64)?;
    Ok(Bytes::from(out))
}
