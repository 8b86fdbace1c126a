//! Test-only client side: encodes masked client frames (valid or not) so the
//! reader's tests can speak like a browser, or like a broken peer. Compiled
//! only for tests; the crate itself never masks.

use crate::frame::apply_mask;

/// FIN bit of the first header byte.
pub(crate) const FIN: u8 = 0x80;
/// RSV1 bit (permessage-deflate's "compressed" bit).
pub(crate) const RSV1: u8 = 0x40;

/// A fixed masking key for tests that do not vary it.
pub(crate) const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

/// Encodes one client frame: `first_byte` is FIN | RSV | opcode as sent,
/// `mask` `None` leaves the mask bit clear. Lengths use the minimal encoding.
pub(crate) fn client_frame(first_byte: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..126 => out.push(mask_bit | len as u8),
        len @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend((len as u16).to_be_bytes());
        }
        len => {
            out.push(mask_bit | 127);
            out.extend((len as u64).to_be_bytes());
        }
    }
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        out.splice(start..start, key);
        apply_mask(&mut out[start + 4..], key, 0);
    }
    out
}

/// A final, masked client frame with the fixed test mask.
pub(crate) fn masked(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    client_frame(first_byte, Some(MASK), payload)
}
