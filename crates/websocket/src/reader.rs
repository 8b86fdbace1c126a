//! The client-side half of a connection, sans IO: [`MessageReader`] turns the
//! bytes the server read from a socket into whole messages, enforcing every
//! server-side rule of RFC 6455 and RFC 7692 (masking, RSV bits, opcode and
//! fragmentation rules, control frame limits, UTF-8, close codes, size limit)
//! and decompressing permessage-deflate messages. The server calls it; it
//! never reads a socket, never writes replies (answering pings and closes is
//! the caller's job) and never panics on input.

use bytes::{Buf as _, Bytes, BytesMut};

use crate::close::{CloseFrame, parse_close_payload};
use crate::deflate::{DeflateConfig, Inflater};
use crate::error::ProtocolError;
use crate::frame::{FrameHeader, MAX_CONTROL_PAYLOAD_BYTES, OpCode, apply_mask, parse_header};

/// A complete message from the client, unmasked and, if it was compressed,
/// decompressed.
///
/// Payloads may share the allocation of the buffer passed to
/// [`MessageReader::read`] (zero-copy for frames that arrived whole); copy
/// them if they are to be kept long while the connection keeps reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message; the bytes are valid UTF-8.
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping: answer with a pong carrying the same payload (at most 125 bytes).
    Ping(Bytes),
    /// A pong (solicited or not).
    Pong(Bytes),
    /// A close frame, with its code and reason if it had any. Answer with a
    /// close frame (usually echoing the code), then close the socket.
    Close(Option<CloseFrame>),
}

/// The outcome of one [`MessageReader::read`] call that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Decoded {
    /// A complete message.
    Message(Message),
    /// The buffer holds no complete message yet: read more bytes into it and
    /// call again. Everything usable was consumed or is kept in the buffer.
    Incomplete,
}

/// Decodes one connection's client frames into messages.
///
/// Per-connection state: the open fragmented message (if any), the frame
/// whose payload is still arriving (if any) and, with permessage-deflate, an
/// [`Inflater`]. Idle, without deflate context takeover, it owns no heap
/// memory; message buffers are handed over in the returned [`Bytes`].
///
/// After an `Err`, fail the connection (send a close frame with
/// [`ProtocolError::close_code`] and close the socket); the reader is then in
/// an unspecified, but safe, state. After a [`Message::Close`] the client may
/// send nothing more, so stop reading.
///
/// ```
/// use bytes::BytesMut;
/// use switchboard_websocket::{Decoded, Message, MessageReader};
///
/// let mut reader = MessageReader::new(1 << 20, None);
/// // A masked text frame "Hi" (mask 1 2 3 4), arriving in two reads.
/// let mut buf = BytesMut::from(&[0x81, 0x82, 1, 2][..]);
/// assert_eq!(reader.read(&mut buf), Ok(Decoded::Incomplete));
/// buf.extend_from_slice(&[3, 4, b'H' ^ 1, b'i' ^ 2]);
/// let Ok(Decoded::Message(Message::Text(text))) = reader.read(&mut buf) else { panic!() };
/// assert_eq!(&text[..], b"Hi");
/// assert!(buf.is_empty());
/// ```
pub struct MessageReader {
    max_message_bytes: usize,
    inflater: Option<Inflater>,
    /// The data frame whose payload is being consumed piece by piece.
    frame: Option<PayloadProgress>,
    /// The data message being assembled (fragmented, or streamed).
    message: Option<PartialMessage>,
}

// === impl MessageReader ===

impl MessageReader {
    /// A reader that accepts messages of up to `max_message_bytes` (after
    /// decompression), with RSV1 (compression) allowed only if `deflate` is
    /// the configuration negotiated in the handshake.
    pub fn new(max_message_bytes: usize, deflate: Option<&DeflateConfig>) -> Self {
        Self {
            max_message_bytes,
            inflater: deflate.map(Inflater::new),
            frame: None,
            message: None,
        }
    }

    /// The limit this reader enforces, in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Decodes the next message from `buf`, consuming the bytes it used.
    ///
    /// Call it until it returns [`Decoded::Incomplete`] before reading more
    /// from the socket: one read can hold several messages. Payload bytes of
    /// a frame that has not fully arrived are consumed as they come (so text
    /// with invalid UTF-8 fails before the frame ends, and `buf` stays small);
    /// a frame that arrived whole is returned without copying. Declared
    /// lengths are checked against the limit before anything is buffered.
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Decoded, ProtocolError> {
        loop {
            let mut frame = match self.frame.take() {
                Some(frame) => frame,
                None => {
                    let Some(head) = parse_header(buf)? else {
                        return Ok(Decoded::Incomplete);
                    };
                    let mask = self.check_header(&head)?;
                    let whole = (buf.len() - head.header_len) as u64 >= head.payload_len;
                    if head.opcode.is_control() {
                        if !whole {
                            // At most 125 bytes: wait for the whole frame.
                            return Ok(Decoded::Incomplete);
                        }
                        let payload = take_payload(buf, &head, mask);
                        return control_message(head.opcode, payload).map(Decoded::Message);
                    }
                    let starts_message = head.opcode != OpCode::Continuation;
                    if whole && head.fin && starts_message && !head.rsv1 {
                        let payload = take_payload(buf, &head, mask);
                        return single_frame_message(head.opcode, payload).map(Decoded::Message);
                    }
                    buf.advance(head.header_len);
                    if starts_message {
                        self.message = Some(PartialMessage::new(head.opcode, head.rsv1));
                    }
                    if let Some(message) = self.message.as_mut() {
                        message.declared_bytes += head.payload_len;
                    }
                    PayloadProgress {
                        mask,
                        offset: 0,
                        remaining: head.payload_len,
                        fin: head.fin,
                    }
                }
            };

            let Some(message) = self.message.as_mut() else {
                // check_header guarantees a message for every data frame.
                return Err(ProtocolError::UnexpectedContinuation);
            };
            let available =
                usize::try_from(frame.remaining).map_or(buf.len(), |r| r.min(buf.len()));
            if available > 0 {
                let chunk = &mut buf[..available];
                apply_mask(chunk, frame.mask, frame.offset);
                message.append(chunk, self.inflater.as_mut(), self.max_message_bytes)?;
                buf.advance(available);
                frame.offset += available as u64;
                frame.remaining -= available as u64;
            }
            if frame.remaining > 0 {
                self.frame = Some(frame);
                return Ok(Decoded::Incomplete);
            }
            if frame.fin {
                return self.finish_message().map(Decoded::Message);
            }
        }
    }

    /// Applies every per-frame rule that the header alone decides, in wire
    /// order, and returns the masking key.
    fn check_header(&self, head: &FrameHeader) -> Result<[u8; 4], ProtocolError> {
        if head.rsv23 || (head.rsv1 && self.inflater.is_none()) {
            return Err(ProtocolError::ReservedBits);
        }
        let Some(mask) = head.mask else {
            return Err(ProtocolError::Unmasked);
        };
        let control = head.opcode.is_control();
        if head.rsv1 && (control || head.opcode == OpCode::Continuation) {
            return Err(ProtocolError::MisplacedCompressionBit);
        }
        if control {
            if !head.fin {
                return Err(ProtocolError::FragmentedControl);
            }
            if head.payload_len > MAX_CONTROL_PAYLOAD_BYTES as u64 {
                return Err(ProtocolError::ControlFrameTooLong(head.payload_len));
            }
            return Ok(mask);
        }
        let (so_far, compressed) = match (&self.message, head.opcode) {
            (None, OpCode::Continuation) => return Err(ProtocolError::UnexpectedContinuation),
            (Some(_), OpCode::Text | OpCode::Binary) => {
                return Err(ProtocolError::UnfinishedMessage);
            }
            (Some(message), _) => (message.declared_bytes, message.compressed),
            (None, _) => (0, head.rsv1),
        };
        let limit = if compressed {
            // Deflate can expand incompressible data slightly; the real limit
            // is enforced on the decompressed size.
            let slack = self.max_message_bytes / 1024 + 64;
            self.max_message_bytes.saturating_add(slack)
        } else {
            self.max_message_bytes
        };
        if so_far.saturating_add(head.payload_len) > limit as u64 {
            return Err(ProtocolError::MessageTooLarge {
                max_message_bytes: self.max_message_bytes,
            });
        }
        Ok(mask)
    }

    /// Completes the open data message after its final frame.
    fn finish_message(&mut self) -> Result<Message, ProtocolError> {
        let Some(mut message) = self.message.take() else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        // An empty compressed payload is not DEFLATE, but treating it as an
        // empty message keeps the inflater's stream intact.
        if message.compressed && message.declared_bytes > 0 {
            let Some(inflater) = self.inflater.as_mut() else {
                return Err(ProtocolError::ReservedBits);
            };
            inflater.finish_message(&mut message.data, self.max_message_bytes)?;
        }
        if message.text {
            message.check_utf8(true)?;
            Ok(Message::Text(Bytes::from(message.data)))
        } else {
            Ok(Message::Binary(Bytes::from(message.data)))
        }
    }
}

// === message assembly ===

/// How far the current data frame's payload has been consumed.
#[derive(Debug, Clone, Copy)]
struct PayloadProgress {
    mask: [u8; 4],
    /// Payload bytes already consumed (the mask phase).
    offset: u64,
    remaining: u64,
    fin: bool,
}

/// A data message being assembled from frames, or from pieces of a frame.
struct PartialMessage {
    text: bool,
    compressed: bool,
    /// The (decompressed) payload so far.
    data: Vec<u8>,
    /// Sum of the declared payload lengths of its frames so far (on the wire,
    /// so compressed for a compressed message).
    declared_bytes: u64,
    /// Prefix of `data` known to be valid UTF-8 (text only).
    utf8_checked: usize,
}

impl PartialMessage {
    fn new(opcode: OpCode, compressed: bool) -> Self {
        Self {
            text: opcode == OpCode::Text,
            compressed,
            data: Vec::new(),
            declared_bytes: 0,
            utf8_checked: 0,
        }
    }

    /// Adds an unmasked piece of payload, decompressing it if needed.
    fn append(
        &mut self,
        chunk: &[u8],
        inflater: Option<&mut Inflater>,
        limit: usize,
    ) -> Result<(), ProtocolError> {
        if self.compressed {
            let Some(inflater) = inflater else {
                return Err(ProtocolError::ReservedBits);
            };
            inflater.inflate_chunk(chunk, &mut self.data, limit)?;
        } else {
            // Bounded: check_header capped the declared lengths at `limit`.
            self.data
                .try_reserve(chunk.len())
                .map_err(|_| ProtocolError::MessageTooLarge {
                    max_message_bytes: limit,
                })?;
            self.data.extend_from_slice(chunk);
        }
        if self.text {
            self.check_utf8(false)?;
        }
        Ok(())
    }

    /// Validates the bytes added since the last check. Until `complete`, a
    /// code point cut at the end is fine: it is checked again with the rest.
    fn check_utf8(&mut self, complete: bool) -> Result<(), ProtocolError> {
        let unchecked = self.data.get(self.utf8_checked..).unwrap_or_default();
        match std::str::from_utf8(unchecked) {
            Ok(_) => self.utf8_checked = self.data.len(),
            // No error length: the input ended inside a code point whose
            // bytes so far are a valid prefix.
            Err(e) if e.error_len().is_none() && !complete => self.utf8_checked += e.valid_up_to(),
            Err(_) => return Err(ProtocolError::InvalidUtf8),
        }
        Ok(())
    }
}

/// Splits a whole frame off `buf` and unmasks its payload in place.
fn take_payload(buf: &mut BytesMut, head: &FrameHeader, mask: [u8; 4]) -> Bytes {
    buf.advance(head.header_len);
    // Lossless: the caller checked the payload is in `buf`.
    let mut payload = buf.split_to(head.payload_len as usize);
    apply_mask(&mut payload, mask, 0);
    payload.freeze()
}

/// A text or binary message that arrived as one whole, uncompressed frame.
fn single_frame_message(opcode: OpCode, payload: Bytes) -> Result<Message, ProtocolError> {
    if opcode == OpCode::Text {
        std::str::from_utf8(&payload).map_err(|_| ProtocolError::InvalidUtf8)?;
        Ok(Message::Text(payload))
    } else {
        Ok(Message::Binary(payload))
    }
}

/// A ping, pong or close message from a whole control frame.
fn control_message(opcode: OpCode, payload: Bytes) -> Result<Message, ProtocolError> {
    match opcode {
        OpCode::Ping => Ok(Message::Ping(payload)),
        OpCode::Pong => Ok(Message::Pong(payload)),
        _ => parse_close_payload(&payload).map(Message::Close),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
