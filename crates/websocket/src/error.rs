//! Why a client's frames were rejected, and the one function that decides
//! which close code the server sends for each cause. Every [`ProtocolError`]
//! is fatal: the server sends a close frame with [`ProtocolError::close_code`]
//! and drops the connection. Errors are plain enum values, cheap to build on
//! the hot path; "need more bytes" is not an error (see
//! [`Decoded::Incomplete`](crate::Decoded::Incomplete)).

use crate::close::close_code;

/// A violation of RFC 6455 or RFC 7692 by the client, found while decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A client frame had the mask bit clear (RFC 6455 §5.1).
    #[error("client frame is not masked")]
    Unmasked,
    /// RSV2 or RSV3 was set, or RSV1 without a negotiated permessage-deflate.
    #[error("reserved frame bits set without a negotiated extension")]
    ReservedBits,
    /// RSV1 was set on a control frame or a continuation frame; RFC 7692 §6.1
    /// allows it only on the first frame of a data message.
    #[error("compression bit set on a control or continuation frame")]
    MisplacedCompressionBit,
    /// The frame used a reserved opcode (0x3–0x7, 0xB–0xF).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A close, ping or pong frame had FIN clear.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame declared more than 125 payload bytes.
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlFrameTooLong(u64),
    /// The payload length was not in its minimal encoding, or the 64-bit
    /// length had its most significant bit set.
    #[error("payload length is not minimally encoded")]
    NonMinimalLength,
    /// A continuation frame arrived with no fragmented message open.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new text or binary frame arrived while a fragmented message was still open.
    #[error("new data frame before the fragmented message finished")]
    UnfinishedMessage,
    /// The message (declared frame lengths, their sum over fragments, or the
    /// decompressed size) exceeds `max_message_bytes`, or its buffer could not
    /// be allocated.
    #[error("message exceeds the limit of {max_message_bytes} bytes")]
    MessageTooLarge {
        /// The limit that was exceeded.
        max_message_bytes: usize,
    },
    /// A text message or a close reason was not valid UTF-8.
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    /// A close frame carried a code that must not appear on the wire.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A close frame carried a 1-byte payload (a code needs 2 bytes).
    #[error("close payload of 1 byte")]
    TruncatedCloseCode,
    /// A compressed message was not a valid DEFLATE stream.
    #[error("invalid permessage-deflate data")]
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code the server sends before dropping the connection:
    /// 1009 for oversized messages, 1007 for payloads that are not what their
    /// type promises (bad UTF-8, bad DEFLATE data), 1002 for everything else.
    ///
    /// ```
    /// use switchboard_websocket::ProtocolError;
    ///
    /// assert_eq!(ProtocolError::Unmasked.close_code(), 1002);
    /// assert_eq!(ProtocolError::InvalidUtf8.close_code(), 1007);
    /// ```
    pub fn close_code(&self) -> u16 {
        match self {
            Self::MessageTooLarge { .. } => close_code::MESSAGE_TOO_BIG,
            Self::InvalidUtf8 | Self::InvalidCompressedData => close_code::INVALID_PAYLOAD,
            Self::Unmasked
            | Self::ReservedBits
            | Self::MisplacedCompressionBit
            | Self::ReservedOpcode(_)
            | Self::FragmentedControl
            | Self::ControlFrameTooLong(_)
            | Self::NonMinimalLength
            | Self::UnexpectedContinuation
            | Self::UnfinishedMessage
            | Self::InvalidCloseCode(_)
            | Self::TruncatedCloseCode => close_code::PROTOCOL_ERROR,
        }
    }
}
