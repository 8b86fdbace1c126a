//! Socket.IO v5, the layer above Engine.IO: namespaced [`Packet`]s (connect, disconnect,
//! events, acknowledgements, connect errors) with JSON data and binary attachments. Each
//! Socket.IO packet rides in one Engine.IO message, and each attachment in one more.
//!
//! The default parser writes a packet as text:
//!
//! ```text
//! <type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]
//! 2["chat","hi"]                         EVENT on "/"
//! 2/admin,7["stats"]                     EVENT on "/admin" asking for ack 7
//! 3/admin,7[{"users":3}]                 ACK 7
//! 51-["file",{"_placeholder":true,"num":0}]   BINARY_EVENT, then 1 binary message
//! ```
//!
//! Types: `0` CONNECT (data: the auth object), `1` DISCONNECT, `2` EVENT (data: an array
//! whose first element is the event name), `3` ACK (an array), `4` CONNECT_ERROR (an object
//! or a string), `5` BINARY_EVENT and `6` BINARY_ACK (an event or ack followed by its
//! attachments; each `{"_placeholder":true,"num":N}` in the data stands for attachment N).
//!
//! [`Decoder`] turns a connection's incoming Engine.IO messages back into packets, holding a
//! binary packet until its attachments arrive; [`Packet::encode`] writes a packet once into
//! an [`Encoded`] that every receiving socket shares.

mod binary;
mod encode;
mod packet;
#[cfg(test)]
mod tests;

pub use binary::Decoder;
pub use encode::{EncodeError, Encoded};
pub use packet::{DecodeError, Packet, PacketKind, RESERVED_EVENTS};
