//! The opening handshake of RFC 6455 §4.2, sans IO: the server parses the
//! HTTP request itself and passes the header values here to validate the
//! upgrade, compute `Sec-WebSocket-Accept`, pick a subprotocol and build the
//! `101 Switching Protocols` response. Nothing here reads or writes a socket,
//! and permessage-deflate negotiation lives in [`negotiate_deflate`](crate::negotiate_deflate).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest as _, Sha1};

/// The only protocol version this crate speaks, for `Sec-WebSocket-Version`.
pub const WEBSOCKET_VERSION: &str = "13";

/// The GUID RFC 6455 §1.3 appends to the key before hashing.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The header values of an upgrade request that the handshake depends on.
///
/// A header that appears several times is passed as its values joined with
/// `", "` (RFC 9110 §5.3); a missing header is `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpgradeRequest<'a> {
    /// The request method; must be `GET`.
    pub method: &'a str,
    /// `Upgrade`: must list the `websocket` token (case-insensitive).
    pub upgrade: Option<&'a str>,
    /// `Connection`: must list the `upgrade` token (case-insensitive).
    pub connection: Option<&'a str>,
    /// `Sec-WebSocket-Version`: must be `13`.
    pub version: Option<&'a str>,
    /// `Sec-WebSocket-Key`: must be the base64 encoding of 16 bytes.
    pub key: Option<&'a str>,
}

/// Why an upgrade request was refused. The server answers with
/// [`HandshakeError::http_status`] and does not upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The method was not `GET`.
    #[error("upgrade request method is not GET")]
    MethodNotGet,
    /// `Upgrade` was missing or did not list `websocket`.
    #[error("Upgrade header does not list websocket")]
    MissingUpgrade,
    /// `Connection` was missing or did not list `upgrade`.
    #[error("Connection header does not list upgrade")]
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Version` was missing or not `13`.
    #[error("unsupported Sec-WebSocket-Version (only 13 is supported)")]
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` was missing or not the base64 of 16 bytes.
    #[error("Sec-WebSocket-Key is missing or not 16 base64-encoded bytes")]
    InvalidKey,
}

/// Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: the base64 of
/// the SHA-1 of the key followed by the RFC 6455 GUID. The key is used as is
/// (no trimming, no validation; see [`validate_upgrade`]).
///
/// ```
/// use switchboard_websocket::accept_key;
///
/// // The example of RFC 6455 §1.3.
/// assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(sec_websocket_key: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(sec_websocket_key.as_bytes());
    sha1.update(ACCEPT_GUID.as_bytes());
    BASE64.encode(sha1.finalize())
}

/// Checks that a request is a valid version-13 WebSocket upgrade and returns
/// the `Sec-WebSocket-Accept` value to answer with. Checks run in the order
/// of the [`HandshakeError`] variants, and the first failure is returned.
///
/// ```
/// use switchboard_websocket::{validate_upgrade, HandshakeError, UpgradeRequest};
///
/// let request = UpgradeRequest {
///     method: "GET",
///     upgrade: Some("websocket"),
///     connection: Some("keep-alive, Upgrade"),
///     version: Some("13"),
///     key: Some("dGhlIHNhbXBsZSBub25jZQ=="),
/// };
/// assert_eq!(validate_upgrade(&request).as_deref(), Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
///
/// let old = UpgradeRequest { version: Some("8"), ..request };
/// assert_eq!(validate_upgrade(&old), Err(HandshakeError::UnsupportedVersion));
/// ```
pub fn validate_upgrade(request: &UpgradeRequest<'_>) -> Result<String, HandshakeError> {
    if request.method != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    if !request.upgrade.is_some_and(|v| lists_token(v, "websocket")) {
        return Err(HandshakeError::MissingUpgrade);
    }
    if !request
        .connection
        .is_some_and(|v| lists_token(v, "upgrade"))
    {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    if request.version.map(str::trim) != Some(WEBSOCKET_VERSION) {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let key = request
        .key
        .map(str::trim)
        .ok_or(HandshakeError::InvalidKey)?;
    // 16 bytes encode to exactly 24 characters; checking first bounds the decode.
    let decoded = (key.len() == 24).then(|| BASE64.decode(key).ok()).flatten();
    if decoded.is_none_or(|bytes| bytes.len() != 16) {
        return Err(HandshakeError::InvalidKey);
    }
    Ok(accept_key(key))
}

/// Picks the subprotocol to answer with: the first entry of `supported`
/// (the server's preference order) that the client listed in
/// `Sec-WebSocket-Protocol`. Names compare exactly (they are case-sensitive).
/// `None` means the response carries no `Sec-WebSocket-Protocol` header.
///
/// ```
/// use switchboard_websocket::select_subprotocol;
///
/// let supported = ["switchboard.v2", "switchboard.v1"];
/// let offered = Some("switchboard.v1, switchboard.v2");
/// assert_eq!(select_subprotocol(offered, &supported), Some("switchboard.v2"));
/// assert_eq!(select_subprotocol(Some("mqtt"), &supported), None);
/// ```
pub fn select_subprotocol<'s>(
    sec_websocket_protocol: Option<&str>,
    supported: &[&'s str],
) -> Option<&'s str> {
    let offered = sec_websocket_protocol?;
    supported
        .iter()
        .find(|wanted| offered.split(',').any(|name| name.trim() == **wanted))
        .copied()
}

/// Builds the `101 Switching Protocols` response head, including the blank
/// line that ends it; the bytes after it are WebSocket frames.
///
/// ```
/// use switchboard_websocket::switching_protocols_response;
///
/// let head = switching_protocols_response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", None, None);
/// assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
/// assert!(head.ends_with("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"));
/// ```
pub fn switching_protocols_response(
    accept: &str,
    subprotocol: Option<&str>,
    extensions: Option<&str>,
) -> String {
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
    );
    if let Some(protocol) = subprotocol {
        head.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }
    if let Some(extensions) = extensions {
        head.push_str(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
    }
    head.push_str("\r\n");
    head
}

// === impl HandshakeError ===

impl HandshakeError {
    /// The HTTP status to refuse with: 426 Upgrade Required for a version
    /// mismatch (the response must then carry `Sec-WebSocket-Version: 13`,
    /// RFC 6455 §4.4), 400 Bad Request for everything else.
    ///
    /// ```
    /// use switchboard_websocket::HandshakeError;
    ///
    /// assert_eq!(HandshakeError::UnsupportedVersion.http_status(), 426);
    /// assert_eq!(HandshakeError::InvalidKey.http_status(), 400);
    /// ```
    pub fn http_status(&self) -> u16 {
        match self {
            Self::UnsupportedVersion => 426,
            Self::MethodNotGet
            | Self::MissingUpgrade
            | Self::MissingConnectionUpgrade
            | Self::InvalidKey => 400,
        }
    }
}

/// Whether a comma-separated header value lists `token`, ignoring ASCII case.
fn lists_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests;
