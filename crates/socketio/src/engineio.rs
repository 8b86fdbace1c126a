//! Engine.IO v4, the transport layer under Socket.IO: [`Packet`]s as they travel in a
//! WebSocket message or in an HTTP long-polling payload, and the handshake they open with.
//! No sockets and no HTTP: the server moves the bytes.
//!
//! A packet is one type digit followed by its data:
//!
//! | type | digit | data |
//! |---|---|---|
//! | open | `0` | the [`Handshake`] JSON (`{"sid":…,"upgrades":[…],"pingInterval":…,"pingTimeout":…,"maxPayload":…}`) |
//! | close | `1` | — |
//! | ping | `2` | optional; `probe` while upgrading to WebSocket |
//! | pong | `3` | echoes the ping's |
//! | message | `4` | text |
//! | upgrade | `5` | — |
//! | noop | `6` | — |
//!
//! A binary message has no digit: over WebSocket it is a binary frame of the raw bytes, over
//! polling it is `b` followed by the bytes in base64. A polling payload joins packets with the
//! record separator `\x1e`.

mod handshake;
mod packet;
mod payload;
#[cfg(test)]
mod tests;

pub use handshake::Handshake;
pub use packet::{Frame, Message, Packet, PacketError};
pub use payload::{RECORD_SEPARATOR, decode_payload, join_payload};

pub(crate) use packet::write_base64;
