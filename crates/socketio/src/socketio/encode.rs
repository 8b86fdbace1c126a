//! Encoding a Socket.IO packet once for every socket it goes to: [`Encoded`] holds the
//! complete Engine.IO messages (the `4` prefix included) for WebSocket and, built on first
//! use, the polling form. A broadcast encodes once per parser and hands the same `Bytes` to
//! each socket's queue; the server adds the WebSocket frame header once too.

use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};

use crate::{
    engineio::{Frame, RECORD_SEPARATOR, write_base64},
    socketio::{Packet, PacketKind},
};

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Attachments were given on a packet that is not an event or an ack (the default
    /// parser has no wire type for them).
    #[error("attachments on a {0:?} packet")]
    AttachmentsNotAllowed(PacketKind),
    /// The data nests deeper than 128 levels or holds a number out of the 64-bit float
    /// range, which the MessagePack parser cannot write.
    #[error("data has no MessagePack form")]
    UnsupportedData,
    /// A placeholder in the data points past the attachments (MessagePack parser).
    #[error("placeholder for missing attachment {0}")]
    MissingAttachment(u64),
}

/// A packet encoded for every transport, shareable among all the sockets it goes to.
#[derive(Debug, Clone)]
pub struct Encoded {
    frames: Vec<Frame>,
    polling: OnceLock<Bytes>,
}

impl Encoded {
    pub(crate) fn new(frames: Vec<Frame>) -> Self {
        Self {
            frames,
            polling: OnceLock::new(),
        }
    }

    /// The WebSocket messages, in order: the packet, then one binary message per attachment.
    pub fn websocket(&self) -> &[Frame] {
        &self.frames
    }

    /// The packet as one segment of a polling payload (its messages joined by `\x1e`,
    /// binary ones as `b`+base64); join segments with
    /// [`join_payload`](crate::engineio::join_payload). Built on the first call, then shared.
    pub fn polling(&self) -> &Bytes {
        self.polling.get_or_init(|| match self.frames.as_slice() {
            [Frame::Text(text)] => text.clone(),
            frames => {
                let mut out = BytesMut::new();
                for (i, frame) in frames.iter().enumerate() {
                    if i > 0 {
                        out.put_u8(RECORD_SEPARATOR);
                    }
                    match frame {
                        Frame::Text(text) => out.put_slice(text),
                        Frame::Binary(data) => write_base64(&mut out, data),
                    }
                }
                out.freeze()
            }
        })
    }
}

// === impl Packet ===

impl Packet {
    /// Encodes the packet with the default (JSON text) parser, Engine.IO message prefix
    /// included: `42["chat","hi"]`, then each attachment as a binary message.
    ///
    /// ```
    /// use switchboard_socketio::{JsonText, engineio::Frame, socketio::Packet};
    ///
    /// let args = JsonText::parse(r#"{"text":"hi"}"#.into()).unwrap();
    /// let encoded = Packet::event_with_args("/chat", "message", &[&args]).encode().unwrap();
    /// let expected = r#"42/chat,["message",{"text":"hi"}]"#;
    /// assert_eq!(encoded.websocket(), [Frame::Text(expected.into())]);
    /// assert_eq!(encoded.polling(), expected);
    /// ```
    pub fn encode(&self) -> Result<Encoded, EncodeError> {
        let binary = self.is_binary();
        if !self.attachments.is_empty() && !binary {
            return Err(EncodeError::AttachmentsNotAllowed(self.kind));
        }
        let data = self.data.as_ref().map_or(&b""[..], |d| d.as_bytes());
        let mut out = BytesMut::with_capacity(self.namespace.len() + data.len() + 32);
        out.put_u8(b'4');
        out.put_u8(b'0' + self.kind.wire_type(binary));
        if binary {
            out.put_slice(self.attachments.len().to_string().as_bytes());
            out.put_u8(b'-');
        }
        if self.namespace != Self::DEFAULT_NAMESPACE && !self.namespace.is_empty() {
            out.put_slice(self.namespace.as_bytes());
            out.put_u8(b',');
        }
        if let Some(id) = self.id {
            out.put_slice(id.to_string().as_bytes());
        }
        out.put_slice(data);
        let mut frames = Vec::with_capacity(1 + self.attachments.len());
        frames.push(Frame::Text(out.freeze()));
        frames.extend(self.attachments.iter().cloned().map(Frame::Binary));
        Ok(Encoded::new(frames))
    }
}
