//! Close frames: the RFC 6455 close-code table, which codes a client may send,
//! parsing a received close payload and encoding the server's. Application
//! codes (3000–4999) are chosen by the layers above; this file only knows the
//! protocol-level ones and never decides when to close.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::frame::{MAX_CONTROL_PAYLOAD_BYTES, OpCode, encode_frame_into};

/// A received close frame's status code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code; always one [`is_valid_close_code`] accepts.
    pub code: u16,
    /// The reason, at most 123 bytes of UTF-8; often empty.
    pub reason: String,
}

/// The close codes of RFC 6455 §7.4.1, in one table.
///
/// Ranges: 1000–2999 belong to the protocol (only the constants below may be
/// sent); 3000–3999 are registered with IANA for libraries and frameworks;
/// 4000–4999 are private to applications (switchboard's own codes live there).
pub mod close_code {
    /// The purpose of the connection was fulfilled.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away: server shutdown, or a browser leaving the page.
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol (see [`ProtocolError`](crate::ProtocolError)).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// The peer sent a message type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A message's data did not match its type (e.g. invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message broke the endpoint's policy; the generic refusal.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A message was too big to process.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// (Client only) the server did not negotiate an extension the client needs.
    pub const MANDATORY_EXTENSION: u16 = 1010;
    /// The server hit an unexpected condition.
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// Whether a peer may send `code` in a close frame: 1000–1003, 1007–1011 and
/// 3000–4999. Codes below 1000, the reserved 1004–1006 and 1015 (which exist
/// only as local reports) and the unassigned rest of 1000–2999 are invalid.
///
/// ```
/// use switchboard_websocket::is_valid_close_code;
///
/// assert!(is_valid_close_code(1000) && is_valid_close_code(4000));
/// assert!(!is_valid_close_code(1005) && !is_valid_close_code(2999));
/// ```
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// Encodes a server close frame with a status code and a reason. The reason
/// is cut, at a character boundary, to the 123 bytes a control frame leaves
/// after the code. To close without a code, use
/// `encode_frame(OpCode::Close, b"", false)`.
///
/// ```
/// use switchboard_websocket::{close_code, encode_close};
///
/// let frame = encode_close(close_code::NORMAL, "bye");
/// assert_eq!(&frame[..], &[0x88, 5, 0x03, 0xE8, b'b', b'y', b'e']);
/// ```
pub fn encode_close(code: u16, reason: &str) -> Bytes {
    let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD_BYTES - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = [0u8; MAX_CONTROL_PAYLOAD_BYTES];
    let mut writer = &mut payload[..];
    writer.put_u16(code);
    writer.put_slice(&reason.as_bytes()[..cut]);
    let len = 2 + cut;
    let mut dst = BytesMut::with_capacity(2 + len);
    encode_frame_into(&mut dst, OpCode::Close, &payload[..len], false);
    dst.freeze()
}

/// Parses an unmasked close payload: empty, or a valid code plus UTF-8.
pub(crate) fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::TruncatedCloseCode),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_close_code(code) {
                return Err(ProtocolError::InvalidCloseCode(code));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Some(CloseFrame {
                code,
                reason: reason.to_owned(),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_follow_rfc_6455_ranges() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ];
        let invalid = [
            0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ];
        assert!(valid.iter().all(|c| is_valid_close_code(*c)));
        assert!(invalid.iter().all(|c| !is_valid_close_code(*c)));
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        let reason = "é".repeat(100);
        let frame = encode_close(close_code::GOING_AWAY, &reason);
        assert_eq!(frame[1] as usize, frame.len() - 2);
        assert!(frame.len() - 2 <= MAX_CONTROL_PAYLOAD_BYTES);
        let parsed = parse_close_payload(&frame[2..]);
        let reason = parsed.ok().flatten().map(|c| c.reason);
        assert_eq!(reason.map(|r| r.len()), Some(122));
    }

    #[test]
    fn close_payloads_are_checked() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
        assert_eq!(
            parse_close_payload(&[3]),
            Err(ProtocolError::TruncatedCloseCode)
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xED]),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xE8, 0xFF]),
            Err(ProtocolError::InvalidUtf8)
        );
        let ok = parse_close_payload(&[0x0F, 0xA0, b'o', b'k']);
        assert_eq!(
            ok,
            Ok(Some(CloseFrame {
                code: 4000,
                reason: "ok".into()
            }))
        );
    }
}
