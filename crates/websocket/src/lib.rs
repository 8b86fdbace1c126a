//! Sans-IO WebSocket for switchboard's server side: the RFC 6455 opening
//! handshake, frame encoding and decoding, and RFC 7692 permessage-deflate.
//! The server owns the socket; this crate only turns header values and bytes
//! into decisions, messages and frames, and never does IO, spawns tasks or
//! depends on a runtime.
//!
//! A connection's life, as the server drives it:
//!
//! 1. Parse the HTTP request, then [`validate_upgrade`] (refuse with
//!    [`HandshakeError::http_status`]), [`select_subprotocol`] and
//!    [`negotiate_deflate`]; write [`switching_protocols_response`].
//! 2. Create one [`MessageReader`] per connection. Append each socket read to
//!    a `BytesMut` and call [`MessageReader::read`] until
//!    [`Decoded::Incomplete`]. On an error, send
//!    [`encode_close`]`(err.close_code(), ..)` and close.
//! 3. Encode outgoing frames with [`encode_frame`]. It is a pure function of
//!    its arguments, so a publication is encoded (and, with
//!    [`compress_message`], compressed) once and the same `Bytes` is written
//!    to every subscriber; compressed frames are shareable because the server
//!    always negotiates `server_no_context_takeover`.
//!
//! ```
//! use bytes::BytesMut;
//! use switchboard_websocket::{
//!     compress_message, encode_frame, negotiate_deflate, validate_upgrade, Decoded,
//!     DeflatePolicy, Message, MessageReader, OpCode, UpgradeRequest,
//! };
//!
//! let request = UpgradeRequest {
//!     method: "GET",
//!     upgrade: Some("websocket"),
//!     connection: Some("Upgrade"),
//!     version: Some("13"),
//!     key: Some("dGhlIHNhbXBsZSBub25jZQ=="),
//! };
//! let accept = validate_upgrade(&request).expect("valid request");
//! let deflate = negotiate_deflate("permessage-deflate", &DeflatePolicy::default());
//! let config = deflate.as_ref().map(|(config, _response)| *config);
//!
//! let mut reader = MessageReader::new(64 * 1024, config.as_ref());
//! let mut buf = BytesMut::from(&[0x89, 0x80, 0, 0, 0, 0][..]); // an empty ping
//! if let Ok(Decoded::Message(Message::Ping(payload))) = reader.read(&mut buf) {
//!     let _pong = encode_frame(OpCode::Pong, &payload, false);
//! }
//!
//! // Once per publication, whoever the subscribers are:
//! let bits = config.map_or(15, |c| c.server_max_window_bits);
//! let frame = encode_frame(OpCode::Text, &compress_message(b"{\"data\":1}", bits), true);
//! # let _ = (accept, frame);
//! ```

mod close;
mod deflate;
mod error;
mod frame;
mod handshake;
mod reader;
#[cfg(test)]
mod testing;

pub use close::{CloseFrame, close_code, encode_close, is_valid_close_code};
pub use deflate::{
    DeflateConfig, DeflatePolicy, Deflater, Inflater, compress_message, negotiate_deflate,
};
pub use error::ProtocolError;
pub use frame::{MAX_CONTROL_PAYLOAD_BYTES, OpCode, encode_frame, encode_frame_into};
pub use handshake::{
    HandshakeError, UpgradeRequest, WEBSOCKET_VERSION, accept_key, select_subprotocol,
    switching_protocols_response, validate_upgrade,
};
pub use reader::{Decoded, Message, MessageReader};
