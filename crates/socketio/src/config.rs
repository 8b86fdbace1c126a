//! [`Limits`]: every bound the decoders enforce, with its default, in one place. The server
//! fills it from its own configuration; the codecs only read it.

/// Bounds on what a peer may make the decoders hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest Engine.IO packet or polling payload accepted, in bytes (Engine.IO's
    /// `maxPayload`; the reference server's default is 1 000 000).
    pub max_payload_bytes: usize,
    /// Most binary attachments one Socket.IO packet may declare (the reference parser's
    /// `maxAttachments`, 10 by default).
    pub max_attachments: usize,
    /// Most bytes the attachments of one Socket.IO packet may hold together.
    pub max_attachment_bytes: usize,
}

impl Limits {
    /// The reference server's defaults.
    pub const DEFAULT: Self = Self {
        max_payload_bytes: 1_000_000,
        max_attachments: 10,
        max_attachment_bytes: 1_000_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
