//! permessage-deflate (RFC 7692): negotiating the extension from the
//! client's `Sec-WebSocket-Extensions` offers, compressing server messages
//! and decompressing client messages.
//!
//! The server always answers with `server_no_context_takeover` (RFC 7692
//! §7.1.1.1 lets it do so unasked): each compressed server message then
//! stands alone, so a publication is compressed once per window size and the
//! same frame goes to every client. Client messages go through one
//! [`Inflater`] per connection, which keeps the client's window between
//! messages unless `client_no_context_takeover` was negotiated, allocates it
//! only on the first compressed message, and stops at a hard output limit.
//! Nothing here touches a socket.

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::ProtocolError;

/// The extension token of RFC 7692.
const EXTENSION_NAME: &str = "permessage-deflate";

/// The empty stored block that ends every flushed message on the wire; the
/// sender strips it and the receiver appends it back (RFC 7692 §7.2.1–7.2.2).
const SYNC_FLUSH_TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// Smallest LZ77 window zlib can compress with (RFC 7692 allows 8, zlib
/// silently uses 9 instead, which a client that asked for 8 cannot read).
const MIN_WINDOW_BITS: u8 = 9;

/// Largest LZ77 window (32 KiB), the default when nothing is negotiated.
const MAX_WINDOW_BITS: u8 = 15;

/// What the server is willing to negotiate. Out-of-range values are clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflatePolicy {
    /// Largest window the server compresses with, 9..=15. Offers that demand
    /// a smaller one (`server_max_window_bits=8`) are declined.
    pub server_max_window_bits: u8,
    /// Largest window the server lets a client compress with, 8..=15; only
    /// sent when the client offered `client_max_window_bits`. Smaller values
    /// shrink each connection's [`Inflater`] (2^bits bytes of window).
    pub client_max_window_bits: u8,
    /// Ask every client for `client_no_context_takeover`, so no connection
    /// keeps an inflate window between messages (lower memory, lower ratio).
    pub client_no_context_takeover: bool,
}

/// The parameters agreed with one client. `server_no_context_takeover` is
/// always in force and so has no field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateConfig {
    /// The window the server compresses with (9..=15): the `window_bits` to
    /// pass to [`compress_message`] / [`Deflater::new`] for this client.
    pub server_max_window_bits: u8,
    /// The largest window the client compresses with (8..=15).
    pub client_max_window_bits: u8,
    /// The client resets its compressor after each message, so the server's
    /// [`Inflater`] drops its state between messages.
    pub client_no_context_takeover: bool,
}

/// A reusable raw-DEFLATE compressor for server messages, with no context
/// takeover: each output stands alone. Holds zlib's deflate state (about
/// 256 KiB at 15 window bits), so keep one per thread, not per connection.
///
/// ```
/// use switchboard_websocket::{encode_frame, Deflater, OpCode};
///
/// let mut deflater = Deflater::new(15);
/// for publication in [&b"{\"n\":1}"[..], &b"{\"n\":2}"[..]] {
///     let frame = encode_frame(OpCode::Text, &deflater.compress(publication), true);
///     // write `frame` to every subscriber that negotiated a 15-bit window
///     # let _ = frame;
/// }
/// ```
pub struct Deflater {
    compress: Compress,
    window_bits: u8,
}

/// Decompresses one connection's client messages (RFC 7692 §7.2.2), with a
/// hard cap on output. Holds no zlib state until the first compressed
/// message; keeps it (about 2^bits bytes of window plus ~10 KiB) between
/// messages only while the client may use context takeover.
/// [`MessageReader`](crate::MessageReader) owns one when deflate was
/// negotiated; use it directly only to inflate payloads you framed yourself.
///
/// ```
/// use switchboard_websocket::{compress_message, DeflateConfig, Inflater, ProtocolError};
///
/// let config = DeflateConfig {
///     server_max_window_bits: 15,
///     client_max_window_bits: 15,
///     client_no_context_takeover: true,
/// };
/// let mut inflater = Inflater::new(&config);
/// let bomb = compress_message(&vec![0; 1 << 20], 15);
/// let err = inflater.decompress(&bomb, 64 * 1024);
/// assert_eq!(err, Err(ProtocolError::MessageTooLarge { max_message_bytes: 64 * 1024 }));
/// ```
pub struct Inflater {
    /// Boxed: `Decompress` carries a z_stream inline (~150 bytes), which
    /// idle connections should not pay for.
    state: Option<Box<Decompress>>,
    window_bits: u8,
    context_takeover: bool,
}

/// Picks the first acceptable `permessage-deflate` offer in a
/// `Sec-WebSocket-Extensions` value and returns the agreed parameters with
/// the response header value. `None`: no offer was acceptable, answer
/// without the extension.
///
/// Several header lines are passed joined with `", "`. An offer is declined
/// (RFC 7692 §7.1) when it repeats a parameter, has an unknown parameter or an
/// invalid value, or asks for `server_max_window_bits=8`, which zlib cannot
/// honour (answering 9 is not allowed: the response must not exceed the
/// offer). The response always carries `server_no_context_takeover`.
///
/// ```
/// use switchboard_websocket::{negotiate_deflate, DeflatePolicy};
///
/// let offer = "permessage-deflate; server_max_window_bits=8, \
///              permessage-deflate; client_max_window_bits";
/// let (config, response) = negotiate_deflate(offer, &DeflatePolicy::default()).unwrap();
/// assert_eq!(response, "permessage-deflate; server_no_context_takeover");
/// assert_eq!(config.server_max_window_bits, 15);
/// ```
pub fn negotiate_deflate(
    sec_websocket_extensions: &str,
    policy: &DeflatePolicy,
) -> Option<(DeflateConfig, String)> {
    split_unquoted(sec_websocket_extensions, ',').find_map(|offer| accept_offer(offer, policy))
}

/// Compresses one message payload for a frame with RSV1 set: raw DEFLATE,
/// no context takeover, the trailing `00 00 FF FF` stripped. Builds a fresh
/// zlib state each call; use a [`Deflater`] to reuse one. `window_bits` is
/// [`DeflateConfig::server_max_window_bits`], clamped to 9..=15.
///
/// ```
/// use switchboard_websocket::{compress_message, encode_frame, Inflater, DeflateConfig, OpCode};
///
/// let payload = b"hello hello hello hello";
/// let compressed = compress_message(payload, 15);
/// let frame = encode_frame(OpCode::Text, &compressed, true); // same bytes for every client
/// assert!(frame.len() < 2 + payload.len());
///
/// let config = DeflateConfig { server_max_window_bits: 15, client_max_window_bits: 15, client_no_context_takeover: false };
/// let back = Inflater::new(&config).decompress(&compressed, 1024).unwrap();
/// assert_eq!(&back[..], payload);
/// ```
pub fn compress_message(payload: &[u8], window_bits: u8) -> Bytes {
    Deflater::new(window_bits).compress(payload)
}

// === impl DeflatePolicy ===

impl Default for DeflatePolicy {
    /// 32 KiB windows both ways, clients keep their context.
    fn default() -> Self {
        Self {
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            client_no_context_takeover: false,
        }
    }
}

// === impl Deflater ===

impl Deflater {
    /// A compressor with zlib's default level (6) and a window of
    /// `window_bits` (clamped to 9..=15).
    pub fn new(window_bits: u8) -> Self {
        Self::with_level(window_bits, Compression::default().level())
    }

    /// A compressor with an explicit zlib level (0 = stored … 9 = best,
    /// clamped) and window (clamped to 9..=15).
    pub fn with_level(window_bits: u8, level: u32) -> Self {
        let window_bits = window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        let level = Compression::new(level.min(Compression::best().level()));
        Self {
            compress: Compress::new_with_window_bits(level, false, window_bits),
            window_bits,
        }
    }

    /// The window this compressor uses, in bits.
    pub fn window_bits(&self) -> u8 {
        self.window_bits
    }

    /// Compresses one message payload as [`compress_message`] does, then
    /// resets, so the next message does not refer to this one.
    pub fn compress(&mut self, payload: &[u8]) -> Bytes {
        // Room for incompressible input: 5 bytes per stored block plus the flush.
        let mut out = Vec::with_capacity(payload.len() + payload.len() / 4096 * 5 + 16);
        let mut input = payload;
        loop {
            let before = self.compress.total_in();
            self.compress
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .expect("deflate only fails on a corrupt stream, and this one is reset after every message");
            let consumed =
                usize::try_from(self.compress.total_in() - before).unwrap_or(input.len());
            input = input.get(consumed..).unwrap_or_default();
            // Spare room after a sync flush means zlib wrote everything it had.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        self.compress.reset();
        if out.ends_with(&SYNC_FLUSH_TAIL) {
            out.truncate(out.len() - SYNC_FLUSH_TAIL.len());
        }
        Bytes::from(out)
    }
}

// === impl Inflater ===

impl Inflater {
    /// An inflater for a client that negotiated `config`. Allocates nothing
    /// until the first compressed message.
    pub fn new(config: &DeflateConfig) -> Self {
        Self {
            state: None,
            // zlib inflates 8-bit windows with a 9-bit one; a larger window
            // reads any stream made with a smaller one.
            window_bits: config
                .client_max_window_bits
                .clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS),
            context_takeover: !config.client_no_context_takeover,
        }
    }

    /// Decompresses one whole message payload (as received, without the
    /// `00 00 FF FF` tail). Fails with [`ProtocolError::MessageTooLarge`] as
    /// soon as the output would exceed `max_message_bytes`, before writing
    /// past it, and with [`ProtocolError::InvalidCompressedData`] on a corrupt
    /// stream. After an error the connection must be failed.
    pub fn decompress(
        &mut self,
        payload: &[u8],
        max_message_bytes: usize,
    ) -> Result<Bytes, ProtocolError> {
        if payload.is_empty() {
            // Not DEFLATE; read as an empty message, as MessageReader does.
            return Ok(Bytes::new());
        }
        let mut out = Vec::new();
        self.inflate_chunk(payload, &mut out, max_message_bytes)?;
        self.finish_message(&mut out, max_message_bytes)?;
        Ok(Bytes::from(out))
    }

    /// Whether zlib state is currently allocated (for tests and metrics).
    pub fn is_allocated(&self) -> bool {
        self.state.is_some()
    }

    /// Inflates the next piece of a message's compressed payload, appending
    /// to `out` without ever letting it grow past `limit` bytes.
    pub(crate) fn inflate_chunk(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), ProtocolError> {
        let window_bits = self.window_bits;
        let state = self
            .state
            .get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, window_bits)));
        let mut input = input;
        loop {
            if out.len() == out.capacity() {
                // Never give zlib more room than the limit allows, plus one
                // byte to tell "exactly at the limit" from "over it".
                let allowed = limit.saturating_add(1).saturating_sub(out.len());
                let want = allowed.min(out.len().max(input.len().saturating_mul(4)).max(4096));
                if want == 0 {
                    return Err(ProtocolError::MessageTooLarge {
                        max_message_bytes: limit,
                    });
                }
                out.try_reserve_exact(want)
                    .map_err(|_| ProtocolError::MessageTooLarge {
                        max_message_bytes: limit,
                    })?;
            }
            let (in_before, out_before) = (state.total_in(), state.total_out());
            let status = state
                .decompress_vec(input, out, FlushDecompress::Sync)
                .map_err(|_| ProtocolError::InvalidCompressedData)?;
            if out.len() > limit {
                return Err(ProtocolError::MessageTooLarge {
                    max_message_bytes: limit,
                });
            }
            let consumed = usize::try_from(state.total_in() - in_before).unwrap_or(input.len());
            let produced = state.total_out() != out_before;
            input = input.get(consumed..).unwrap_or_default();
            if status == Status::StreamEnd {
                // A block with BFINAL set ended the stream (RFC 7692 §7.2.3.3
                // lets senders do that). Start afresh; anything after it (the
                // appended tail at least) is read as a new stream.
                state.reset(false);
                if input.is_empty() {
                    return Ok(());
                }
                continue;
            }
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
            if consumed == 0 && !produced && out.len() < out.capacity() {
                // Input left, room left, no progress: zlib is stuck on bad data.
                return Err(ProtocolError::InvalidCompressedData);
            }
        }
    }

    /// Ends a message: inflates the stripped `00 00 FF FF` tail, then drops
    /// the zlib state if the client does not keep its context.
    pub(crate) fn finish_message(
        &mut self,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), ProtocolError> {
        self.inflate_chunk(&SYNC_FLUSH_TAIL, out, limit)?;
        if !self.context_takeover {
            self.state = None;
        }
        Ok(())
    }
}

// === negotiation helpers ===

/// Accepts one extension offer if it is `permessage-deflate` with parameters
/// we can honour; returns the config and the response value.
fn accept_offer(offer: &str, policy: &DeflatePolicy) -> Option<(DeflateConfig, String)> {
    let mut parts = split_unquoted(offer, ';');
    if !parts.next()?.trim().eq_ignore_ascii_case(EXTENSION_NAME) {
        return None;
    }
    let mut server_no_context_takeover = false;
    let mut client_no_context_takeover = false;
    let mut server_bits: Option<u8> = None;
    // Outer Some: parameter present; inner: its optional value.
    let mut client_bits: Option<Option<u8>> = None;
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(unquote(value.trim())?)),
            None => (param.trim(), None),
        };
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if !server_no_context_takeover && value.is_none() => {
                server_no_context_takeover = true;
            }
            "client_no_context_takeover" if !client_no_context_takeover && value.is_none() => {
                client_no_context_takeover = true;
            }
            "server_max_window_bits" if server_bits.is_none() => {
                server_bits = Some(parse_window_bits(value?)?);
            }
            "client_max_window_bits" if client_bits.is_none() => {
                client_bits = Some(match value {
                    Some(value) => Some(parse_window_bits(value)?),
                    None => None,
                });
            }
            // Unknown, repeated, or with a value where none is allowed.
            _ => return None,
        }
    }

    let mut response = format!("{EXTENSION_NAME}; server_no_context_takeover");
    let policy_client_nct = policy.client_no_context_takeover;
    let client_no_context_takeover = client_no_context_takeover || policy_client_nct;
    if client_no_context_takeover {
        response.push_str("; client_no_context_takeover");
    }
    let policy_server_bits = policy
        .server_max_window_bits
        .clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
    let server_max_window_bits = match server_bits {
        Some(bits) if bits < MIN_WINDOW_BITS => return None,
        Some(bits) => bits.min(policy_server_bits),
        None => policy_server_bits,
    };
    // Required when the client asked; otherwise only to announce a smaller window.
    if server_bits.is_some() || server_max_window_bits < MAX_WINDOW_BITS {
        response.push_str(&format!(
            "; server_max_window_bits={server_max_window_bits}"
        ));
    }
    let policy_client_bits = policy.client_max_window_bits.clamp(8, MAX_WINDOW_BITS);
    let client_max_window_bits = match client_bits {
        // RFC 7692 §7.1.2.2: never send the parameter unless the client offered it.
        None => MAX_WINDOW_BITS,
        Some(offered) => {
            let bits = offered.unwrap_or(MAX_WINDOW_BITS).min(policy_client_bits);
            if bits < MAX_WINDOW_BITS {
                response.push_str(&format!("; client_max_window_bits={bits}"));
            }
            bits
        }
    };
    let config = DeflateConfig {
        server_max_window_bits,
        client_max_window_bits,
        client_no_context_takeover,
    };
    Some((config, response))
}

/// Parses a window-bits value: 8..=15, decimal, no leading zero.
fn parse_window_bits(value: &str) -> Option<u8> {
    match value.as_bytes() {
        [digit @ b'8'..=b'9'] => Some(digit - b'0'),
        [b'1', digit @ b'0'..=b'5'] => Some(10 + digit - b'0'),
        _ => None,
    }
}

/// Strips a quoted-string's quotes and escapes (RFC 6455 §9.1: the unquoted
/// value must still be a token). `None` for an unterminated quote.
fn unquote(value: &str) -> Option<&str> {
    match value.strip_prefix('"') {
        // Window bits never contain a backslash, so a value that needs
        // unescaping is invalid anyway; reject it rather than allocate.
        Some(rest) => rest
            .strip_suffix('"')
            .filter(|inner| !inner.contains(['\\', '"'])),
        None => Some(value),
    }
}

/// Splits `value` at every `separator` outside double quotes.
fn split_unquoted(value: &str, separator: char) -> impl Iterator<Item = &str> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let current = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (at, ch) in current.char_indices() {
            match ch {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                _ if ch == separator && !quoted => {
                    rest = Some(&current[at + ch.len_utf8()..]);
                    return Some(&current[..at]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(current)
    })
}

#[cfg(test)]
mod tests;
