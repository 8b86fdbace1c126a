//! [`Decoder`]: one connection's Socket.IO decoding state. A text message is a whole packet,
//! unless it is a BINARY_EVENT or BINARY_ACK: then the decoder holds it until the declared
//! number of binary messages has arrived, bounded by [`Limits`]. The server keeps one per
//! connection and feeds it every Engine.IO message in order.

use bytes::Bytes;

use crate::{
    Limits, Str,
    engineio::Message,
    socketio::{
        Packet,
        packet::{DecodeError, decode_text},
    },
};

/// Decodes a connection's Engine.IO messages into Socket.IO packets (default parser),
/// reassembling binary packets with their attachments.
///
/// After an error the decoder is empty again, but the connection should be closed: the
/// reference server does.
///
/// ```
/// use bytes::Bytes;
/// use switchboard_socketio::{Limits, socketio::Decoder};
///
/// let mut decoder = Decoder::new(Limits::default());
/// let header = decoder.decode_text(r#"51-["upload",{"_placeholder":true,"num":0}]"#.into());
/// assert_eq!(header, Ok(None)); // waiting for 1 attachment
/// let packet = decoder.decode_binary(Bytes::from_static(b"\x01\x02")).unwrap().unwrap();
/// assert_eq!(packet.event_name().as_deref(), Some("upload"));
/// assert_eq!(packet.attachments, [Bytes::from_static(b"\x01\x02")]);
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    limits: Limits,
    pending: Option<Pending>,
}

#[derive(Debug, Clone)]
struct Pending {
    packet: Packet,
    declared: usize,
    bytes: usize,
}

impl Decoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            pending: None,
        }
    }

    /// How many attachments the packet being reassembled still waits for (0 when none is).
    pub fn pending_attachments(&self) -> usize {
        self.pending
            .as_ref()
            .map_or(0, |p| p.declared - p.packet.attachments.len())
    }

    /// Decodes one Engine.IO message: text is a packet, binary an attachment.
    pub fn decode(&mut self, message: Message) -> Result<Option<Packet>, DecodeError> {
        match message {
            Message::Text(text) => self.decode_text(text),
            Message::Binary(data) => self.decode_binary(data),
        }
    }

    /// Decodes a text message: `Some(packet)` when it is complete, `None` when it is a binary
    /// packet waiting for attachments. Fails if a binary packet is already waiting.
    pub fn decode_text(&mut self, text: Str) -> Result<Option<Packet>, DecodeError> {
        if self.pending.take().is_some() {
            return Err(DecodeError::UnexpectedText);
        }
        let (mut packet, declared) = decode_text(&text, &self.limits)?;
        if declared == 0 {
            return Ok(Some(packet));
        }
        // Bounded: declared <= limits.max_attachments, checked by decode_text.
        packet.attachments.reserve_exact(declared);
        self.pending = Some(Pending {
            packet,
            declared,
            bytes: 0,
        });
        Ok(None)
    }

    /// Adds a binary message to the waiting packet: `Some(packet)` once it has all its
    /// attachments. Fails if no packet is waiting or the attachments grow past
    /// [`Limits::max_attachment_bytes`].
    pub fn decode_binary(&mut self, data: Bytes) -> Result<Option<Packet>, DecodeError> {
        let Some(mut pending) = self.pending.take() else {
            return Err(DecodeError::UnexpectedBinary);
        };
        let max_attachment_bytes = self.limits.max_attachment_bytes;
        pending.bytes = pending.bytes.saturating_add(data.len());
        if pending.bytes > max_attachment_bytes {
            return Err(DecodeError::AttachmentsTooLarge {
                max_attachment_bytes,
            });
        }
        pending.packet.attachments.push(data);
        if pending.packet.attachments.len() == pending.declared {
            return Ok(Some(pending.packet));
        }
        self.pending = Some(pending);
        Ok(None)
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}
