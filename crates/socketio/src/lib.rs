//! Sans-IO Engine.IO v4 and Socket.IO v5 codecs for switchboard: bytes in, packets out, and
//! packets encoded once into bytes every receiving socket shares. No sockets, no HTTP, no
//! runtime; the server owns transports, sessions and namespaces and calls in here.
//!
//! Three layers, one module each:
//!
//! - [`engineio`]: Engine.IO packets (`0` open … `6` noop), the open handshake, and
//!   long-polling payloads joined by `\x1e`; binary data as raw WebSocket binary messages or
//!   `b`+base64 in polling.
//! - [`socketio`]: Socket.IO packets in the default (JSON text) format,
//!   `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`, with binary attachments
//!   reassembled by a bounded [`socketio::Decoder`].
//! - [`msgpack`]: the same packets in the `socket.io-msgpack-parser` format.
//!
//! Packet data stays JSON text ([`JsonText`]) from decoding to the hub and back: never
//! parsed into values and re-serialized. Every decoder checks lengths against [`Limits`]
//! before allocating and returns a typed error rather than panicking.
//!
//! Receiving `socket.emit("chat", "hi")` over WebSocket, and broadcasting an answer:
//!
//! ```
//! use bytes::Bytes;
//! use switchboard_socketio::{
//!     JsonText, Limits,
//!     engineio::{Frame, Message, Packet as EnginePacket},
//!     socketio::{Decoder, Packet, PacketKind},
//! };
//!
//! let limits = Limits::default();
//! let mut decoder = Decoder::new(limits);
//!
//! let frame = Frame::Text(Bytes::from_static(br#"42/chat,7["chat","hi"]"#));
//! let EnginePacket::Message(message) = EnginePacket::decode(frame, limits.max_payload_bytes)?
//! else {
//!     unreachable!("a message packet")
//! };
//! let packet = decoder.decode(message)?.expect("a packet without attachments is complete");
//! assert_eq!(packet.kind, PacketKind::Event);
//! assert_eq!(packet.namespace, "/chat");
//! assert_eq!(packet.id, Some(7));
//! assert_eq!(packet.event_name().as_deref(), Some("chat"));
//! assert_eq!(packet.data.as_ref().map(JsonText::as_str), Some(r#"["chat","hi"]"#));
//!
//! // Encode once; every socket of the room gets clones of the same bytes.
//! let text = JsonText::parse(Bytes::from_static(br#""hello""#))?;
//! let encoded = Packet::event_with_args("/chat", "chat", &[&text]).encode()?;
//! assert_eq!(encoded.websocket(), [Frame::Text(r#"42/chat,["chat","hello"]"#.into())]);
//! # let _ = Message::Text("".into());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
pub mod engineio;
mod json;
pub mod msgpack;
#[cfg(test)]
mod proptests;
pub mod socketio;
mod text;

pub use config::Limits;
pub use json::JsonText;
pub use text::Str;
