//! HTTP long-polling payloads: several Engine.IO packets in one request or response body,
//! joined by the record separator `\x1e`. The server calls [`decode_payload`] on each POST
//! body and [`join_payload`] on what it answers a GET with.

use bytes::{BufMut, Bytes, BytesMut};

use crate::engineio::{Packet, PacketError};

/// The byte between two packets of a polling payload (ASCII record separator).
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// Decodes a polling body into its packets, in order. The body's length is checked against
/// `max_payload_bytes` before anything is allocated; the first bad packet fails the whole
/// payload (the reference server closes the session then).
pub fn decode_payload(body: Bytes, max_payload_bytes: usize) -> Result<Vec<Packet>, PacketError> {
    if body.len() > max_payload_bytes {
        return Err(PacketError::TooLarge { max_payload_bytes });
    }
    let mut packets = Vec::new();
    let mut start = 0;
    while start <= body.len() {
        let end = body[start..]
            .iter()
            .position(|&b| b == RECORD_SEPARATOR)
            .map_or(body.len(), |i| start + i);
        packets.push(Packet::decode_text(
            body.slice(start..end),
            max_payload_bytes,
        )?);
        start = end + 1;
    }
    Ok(packets)
}

/// Joins packets already in their text form ([`Packet::to_text`], or a Socket.IO
/// [`Encoded::polling`](crate::socketio::Encoded::polling)) into one polling body.
pub fn join_payload<'a>(segments: impl IntoIterator<Item = &'a Bytes>) -> Bytes {
    let mut out = BytesMut::new();
    for (i, segment) in segments.into_iter().enumerate() {
        if i > 0 {
            out.put_u8(RECORD_SEPARATOR);
        }
        out.put_slice(segment);
    }
    out.freeze()
}
