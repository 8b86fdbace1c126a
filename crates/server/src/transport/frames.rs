//! Encoded-once frames. Each wire format has a [`FrameSlot`]; the first connection that needs
//! a delivery in that format encodes it (WebSocket header or SSE lines included) and every
//! other connection writes the same `Bytes`.
//!
//! Compressed WebSocket frames are shareable too: the server always negotiates
//! `server_no_context_takeover`, so a compressed message depends on nothing but its payload.

use std::cell::RefCell;

use bytes::Bytes;
use switchboard_core::{Delivery, FrameSlot};
use switchboard_proto::{Format, PresenceKind};
use switchboard_websocket::{Deflater, OpCode, encode_frame};

/// Native JSON over WebSocket, uncompressed.
const WS_JSON: FrameSlot = FrameSlot::new(0);
/// Native MessagePack over WebSocket, uncompressed.
const WS_MSGPACK: FrameSlot = FrameSlot::new(1);
/// Native JSON over WebSocket, permessage-deflate with a 15-bit window.
const WS_JSON_DEFLATE: FrameSlot = FrameSlot::new(2);
/// Native MessagePack over WebSocket, permessage-deflate with a 15-bit window.
const WS_MSGPACK_DEFLATE: FrameSlot = FrameSlot::new(3);
/// SSE event lines after the `id:` line (`event:`/`data:` lines and the blank line).
const SSE: FrameSlot = FrameSlot::new(4);

/// How one WebSocket connection wants its frames.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WsEncoding {
    pub(crate) format: Format,
    /// `Some(window_bits)` when permessage-deflate was negotiated.
    pub(crate) deflate_window_bits: Option<u8>,
    /// Payloads shorter than this are not compressed.
    pub(crate) compression_min_bytes: usize,
}

thread_local! {
    // zlib's deflate state is large (~256 KiB): one per thread, reused for every message.
    static DEFLATER: RefCell<Deflater> = RefCell::new(Deflater::new(15));
}

fn compress(payload: &[u8], window_bits: u8) -> Bytes {
    if window_bits == 15 {
        DEFLATER.with(|d| d.borrow_mut().compress(payload))
    } else {
        switchboard_websocket::compress_message(payload, window_bits)
    }
}

impl WsEncoding {
    fn opcode(&self) -> OpCode {
        match self.format {
            Format::Json => OpCode::Text,
            Format::MessagePack => OpCode::Binary,
        }
    }

    /// A whole WebSocket frame for a per-connection message (a reply).
    pub(crate) fn frame(&self, payload: &[u8]) -> Bytes {
        match self.deflate_window_bits {
            Some(bits) if payload.len() >= self.compression_min_bytes => {
                encode_frame(self.opcode(), &compress(payload, bits), true)
            }
            _ => encode_frame(self.opcode(), payload, false),
        }
    }

    /// The shared frame for a delivery, encoded on first use per slot.
    pub(crate) fn delivery(&self, d: &Delivery) -> Bytes {
        let format = self.format;
        let slot = match (format, self.deflate_window_bits) {
            (Format::Json, None) => WS_JSON,
            (Format::MessagePack, None) => WS_MSGPACK,
            (Format::Json, Some(15)) => WS_JSON_DEFLATE,
            (Format::MessagePack, Some(15)) => WS_MSGPACK_DEFLATE,
            // Unusual windows are compressed per connection.
            (_, Some(_)) => return self.frame(&payload(format, d)),
        };
        let enc = |bytes: Vec<u8>| self.frame(&bytes);
        match d {
            Delivery::Publication(p) => p.frame(slot, |p| {
                enc(switchboard_proto::publication_push(format, p))
            }),
            Delivery::Join(e) => e.frame(slot, |e| {
                enc(switchboard_proto::presence_push(
                    format,
                    PresenceKind::Join,
                    e,
                ))
            }),
            Delivery::Leave(e) => e.frame(slot, |e| {
                enc(switchboard_proto::presence_push(
                    format,
                    PresenceKind::Leave,
                    e,
                ))
            }),
            Delivery::Message(m) => {
                m.frame(slot, |m| enc(switchboard_proto::message_push(format, m)))
            }
        }
    }
}

fn payload(format: Format, d: &Delivery) -> Vec<u8> {
    match d {
        Delivery::Publication(p) => switchboard_proto::publication_push(format, p),
        Delivery::Join(e) => switchboard_proto::presence_push(format, PresenceKind::Join, e),
        Delivery::Leave(e) => switchboard_proto::presence_push(format, PresenceKind::Leave, e),
        Delivery::Message(m) => switchboard_proto::message_push(format, m),
    }
}

/// The SSE lines of a delivery after its `id:` line, shared by every SSE stream.
pub(crate) fn sse_event(d: &Delivery) -> Bytes {
    fn event(name: Option<&str>, json: impl FnOnce(&mut Vec<u8>)) -> Bytes {
        let mut b = Vec::with_capacity(128);
        if let Some(name) = name {
            b.extend_from_slice(b"event: ");
            b.extend_from_slice(name.as_bytes());
            b.push(b'\n');
        }
        b.extend_from_slice(b"data: ");
        let start = b.len();
        json(&mut b);
        // A raw CR or LF in JSON text can only be whitespace between tokens (inside strings
        // they are escaped), so turning them into spaces keeps the value and keeps the whole
        // object on one `data:` line.
        for byte in &mut b[start..] {
            if matches!(*byte, b'\n' | b'\r') {
                *byte = b' ';
            }
        }
        b.extend_from_slice(b"\n\n");
        Bytes::from(b)
    }
    match d {
        Delivery::Publication(p) => p.frame(SSE, |p| {
            event(None, |b| switchboard_proto::publication_json(b, p))
        }),
        Delivery::Join(e) => e.frame(SSE, |e| {
            event(Some("join"), |b| switchboard_proto::presence_json(b, e))
        }),
        Delivery::Leave(e) => e.frame(SSE, |e| {
            event(Some("leave"), |b| switchboard_proto::presence_json(b, e))
        }),
        Delivery::Message(m) => m.frame(SSE, |m| {
            event(Some("message"), |b| {
                let mut one = switchboard_proto::message_push(Format::Json, m);
                // {"push":"message",…} → {…}: drop the push field for SSE.
                let prefix = br#"{"push":"message","#;
                if one.starts_with(prefix) {
                    one.drain(1..prefix.len());
                }
                b.extend_from_slice(&one);
            })
        }),
    }
}
