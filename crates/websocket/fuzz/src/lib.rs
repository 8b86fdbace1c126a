//! Helpers shared by the websocket fuzz targets: the client side of the wire, which the
//! crate itself never writes (it only reads client frames).

/// FIN bit of a frame's first byte.
pub const FIN: u8 = 0x80;
/// RSV1 bit: the frame starts a permessage-deflate compressed message.
pub const RSV1: u8 = 0x40;

/// Appends one masked client frame to `out`: `first_byte` is FIN | RSV | opcode, the length
/// uses the shortest encoding, and the payload is masked with `mask`.
pub fn client_frame(out: &mut Vec<u8>, first_byte: u8, mask: [u8; 4], payload: &[u8]) {
    out.push(first_byte);
    match payload.len() {
        len @ 0..126 => out.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}
