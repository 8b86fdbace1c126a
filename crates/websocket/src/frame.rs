//! RFC 6455 frame layout: the opcode table, the server-side encoder and the
//! header parser and unmasking used by [`MessageReader`](crate::MessageReader).
//! Server frames are always final and never masked, so [`encode_frame`] is a
//! pure function of (opcode, payload, compressed bit): the server encodes a
//! publication once and writes the same `Bytes` to every socket. Nothing here
//! allocates per byte, and nothing here panics on input.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ProtocolError;

/// Largest payload a control frame (close, ping, pong) may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD_BYTES: usize = 125;

/// Largest frame header: 2 fixed bytes, an 8-byte extended length and a 4-byte mask.
const MAX_HEADER_BYTES: usize = 14;

/// A frame opcode (RFC 6455 §5.2). Reserved opcodes have no variant: the
/// decoder rejects them with [`ProtocolError::ReservedOpcode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// A non-first fragment of a data message.
    Continuation = 0x0,
    /// The first (or only) frame of a UTF-8 text message.
    Text = 0x1,
    /// The first (or only) frame of a binary message.
    Binary = 0x2,
    /// A close frame; its payload is empty or a code plus a UTF-8 reason.
    Close = 0x8,
    /// A ping; the peer answers with a pong carrying the same payload.
    Ping = 0x9,
    /// A pong, solicited or not.
    Pong = 0xA,
}

/// Encodes one final, unmasked server frame into a new buffer.
///
/// The result depends only on the arguments, so it can be shared between
/// connections. Set `rsv1` only for the payload of a message compressed with
/// permessage-deflate (see [`compress_message`](crate::compress_message)), and
/// only on a data opcode. Control payloads must not exceed
/// [`MAX_CONTROL_PAYLOAD_BYTES`]; that is the caller's contract, checked in
/// debug builds only.
///
/// ```
/// use switchboard_websocket::{encode_frame, OpCode};
///
/// let frame = encode_frame(OpCode::Text, b"hi", false);
/// assert_eq!(&frame[..], &[0x81, 0x02, b'h', b'i']);
/// ```
pub fn encode_frame(opcode: OpCode, payload: &[u8], rsv1: bool) -> Bytes {
    let mut dst = BytesMut::with_capacity(header_len(payload.len()) + payload.len());
    encode_frame_into(&mut dst, opcode, payload, rsv1);
    dst.freeze()
}

/// Appends one final, unmasked server frame to `dst`, reserving the room it
/// needs. Same contract as [`encode_frame`]; useful to batch several frames
/// into one write.
///
/// ```
/// use bytes::BytesMut;
/// use switchboard_websocket::{encode_frame_into, OpCode};
///
/// let mut out = BytesMut::new();
/// encode_frame_into(&mut out, OpCode::Pong, b"", false);
/// encode_frame_into(&mut out, OpCode::Binary, &[0; 200], false);
/// assert_eq!(&out[..2], &[0x8A, 0x00]);
/// assert_eq!(&out[2..6], &[0x82, 126, 0, 200]);
/// ```
pub fn encode_frame_into(dst: &mut BytesMut, opcode: OpCode, payload: &[u8], rsv1: bool) {
    debug_assert!(
        !opcode.is_control() || (payload.len() <= MAX_CONTROL_PAYLOAD_BYTES && !rsv1),
        "control frames carry at most 125 bytes and are never compressed"
    );
    let len = payload.len();
    dst.reserve(header_len(len) + len);
    let rsv1_bit = if rsv1 { 0x40 } else { 0 };
    dst.put_u8(0x80 | rsv1_bit | opcode as u8);
    if len < 126 {
        // Lossless: len < 126.
        dst.put_u8(len as u8);
    } else if let Ok(len16) = u16::try_from(len) {
        dst.put_u8(126);
        dst.put_u16(len16);
    } else {
        dst.put_u8(127);
        // Lossless: usize is at most 64 bits on every supported target.
        dst.put_u64(len as u64);
    }
    dst.extend_from_slice(payload);
}

// === impl OpCode ===

impl OpCode {
    /// Maps the 4-bit wire value to an opcode; `None` for the reserved values
    /// 0x3–0x7 and 0xB–0xF.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0x0 => Some(Self::Continuation),
            0x1 => Some(Self::Text),
            0x2 => Some(Self::Binary),
            0x8 => Some(Self::Close),
            0x9 => Some(Self::Ping),
            0xA => Some(Self::Pong),
            _ => None,
        }
    }

    /// Whether this is a control opcode (close, ping, pong): at most 125 bytes,
    /// never fragmented, allowed between the fragments of a data message.
    pub fn is_control(self) -> bool {
        self as u8 & 0x8 != 0
    }
}

// === frame header parsing (crate-internal) ===

/// A parsed frame header. The opcode is already checked against the table;
/// every other rule (mask, RSV bits, sequencing, limits) is the reader's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameHeader {
    pub(crate) fin: bool,
    pub(crate) rsv1: bool,
    /// RSV2 or RSV3 set: no extension we support defines them.
    pub(crate) rsv23: bool,
    pub(crate) opcode: OpCode,
    /// The masking key; `None` when the mask bit is clear.
    pub(crate) mask: Option<[u8; 4]>,
    pub(crate) payload_len: u64,
    pub(crate) header_len: usize,
}

/// Parses the frame header at the start of `buf` without consuming it.
/// `Ok(None)` means more bytes are needed. Rejects reserved opcodes and length
/// encodings RFC 6455 §5.2 forbids (non-minimal, or the 64-bit MSB set).
pub(crate) fn parse_header(buf: &[u8]) -> Result<Option<FrameHeader>, ProtocolError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(ProtocolError::ReservedOpcode(b0 & 0x0F))?;
    let masked = b1 & 0x80 != 0;
    let (payload_len, len_bytes) = match b1 & 0x7F {
        126 => {
            let Some(raw) = buf.get(2..4).and_then(|s| <[u8; 2]>::try_from(s).ok()) else {
                return Ok(None);
            };
            let len = u64::from(u16::from_be_bytes(raw));
            if len < 126 {
                return Err(ProtocolError::NonMinimalLength);
            }
            (len, 2)
        }
        127 => {
            let Some(raw) = buf.get(2..10).and_then(|s| <[u8; 8]>::try_from(s).ok()) else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(raw);
            if len >> 63 != 0 || len <= 0xFFFF {
                return Err(ProtocolError::NonMinimalLength);
            }
            (len, 8)
        }
        short => (u64::from(short), 0),
    };
    let mask_at = 2 + len_bytes;
    let (mask, header_len) = if masked {
        let Some(key) = buf
            .get(mask_at..mask_at + 4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
        else {
            return Ok(None);
        };
        (Some(key), mask_at + 4)
    } else {
        (None, mask_at)
    };
    debug_assert!(header_len <= MAX_HEADER_BYTES);
    Ok(Some(FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        rsv23: b0 & 0x30 != 0,
        opcode,
        mask,
        payload_len,
        header_len,
    }))
}

/// XORs `data` with the masking key, where `data` starts `offset` bytes into
/// the frame payload (so a payload can be unmasked in pieces as it arrives).
/// Works 8 bytes at a time; the loop is simple enough for the compiler to
/// vectorise it further.
pub(crate) fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: u64) {
    // Lossless: the value is below 4.
    let shift = (offset % 4) as usize;
    let mut key = mask;
    key.rotate_left(shift);
    let key8 = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let (chunks, rest) = data.as_chunks_mut::<8>();
    for chunk in chunks {
        *chunk = (u64::from_ne_bytes(*chunk) ^ key8).to_ne_bytes();
    }
    // Every chunk is a multiple of 4 long, so the key phase is unchanged here.
    for (byte, k) in rest.iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// Bytes the header of an unmasked frame with `payload_len` bytes takes.
fn header_len(payload_len: usize) -> usize {
    match payload_len {
        0..126 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_encodings_switch_at_126_and_65536() {
        for (len, header) in [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            let frame = encode_frame(OpCode::Binary, &vec![7; len], false);
            assert_eq!(frame.len(), header + len, "payload of {len} bytes");
            let head = parse_header(&frame).ok().flatten();
            let head = head.map(|h| (h.payload_len, h.header_len, h.fin, h.mask));
            assert_eq!(head, Some((len as u64, header, true, None)));
        }
    }

    #[test]
    fn rsv1_sets_bit_0x40_of_the_first_byte() {
        assert_eq!(encode_frame(OpCode::Text, b"", true)[0], 0xC1);
        assert_eq!(encode_frame(OpCode::Binary, b"", false)[0], 0x82);
    }

    #[test]
    fn reserved_opcodes_are_rejected() {
        for op in [0x3, 0x7, 0xB, 0xF] {
            let err = parse_header(&[0x80 | op, 0x80]).err();
            assert_eq!(err, Some(ProtocolError::ReservedOpcode(op)));
        }
    }

    #[test]
    fn non_minimal_lengths_are_rejected() {
        let short_in_16 = [0x82, 0xFE, 0x00, 0x7D];
        assert_eq!(
            parse_header(&short_in_16).err(),
            Some(ProtocolError::NonMinimalLength)
        );
        let mut msb = vec![0x82, 0xFF, 0x80];
        msb.extend([0; 7]);
        assert_eq!(
            parse_header(&msb).err(),
            Some(ProtocolError::NonMinimalLength)
        );
        let mut small_in_64 = vec![0x82, 0xFF];
        small_in_64.extend(0xFFFF_u64.to_be_bytes());
        assert_eq!(
            parse_header(&small_in_64).err(),
            Some(ProtocolError::NonMinimalLength)
        );
    }

    #[test]
    fn partial_headers_ask_for_more_bytes() {
        let frame = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for cut in 0..frame.len() {
            assert!(
                matches!(parse_header(&frame[..cut]), Ok(None)),
                "cut at {cut}"
            );
        }
        assert!(matches!(parse_header(&frame), Ok(Some(h)) if h.header_len == 14));
    }

    #[test]
    fn masking_in_pieces_matches_masking_at_once() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let plain: Vec<u8> = (0..=255).collect();
        let mut whole = plain.clone();
        apply_mask(&mut whole, mask, 0);
        let expected: Vec<u8> = plain
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(whole, expected);
        for split in [1, 3, 7, 8, 13, 100] {
            let mut pieces = plain.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, mask, 0);
            apply_mask(b, mask, split as u64);
            assert_eq!(pieces, expected, "split at {split}");
        }
    }
}
