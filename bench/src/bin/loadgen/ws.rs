//! The client side of WebSocket (RFC 6455), cut down to what the load generator needs: the
//! opening handshake, masked frames out, and a parser for the server's unmasked frames that
//! works in place on a read buffer.
//!
//! The generator reads hundreds of thousands of frames per second on one core, so it does not
//! use a WebSocket library on the receive path: a frame is a two-to-ten-byte header that is
//! checked and skipped, and the payload is handed on as a slice, with no copy and no
//! allocation. Nothing here trusts the peer: lengths are checked against [`MAX_FRAME_BYTES`]
//! before anything is sized from them, and every malformed input is an error, never a panic.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

/// Continuation frame.
pub(crate) const OP_CONTINUATION: u8 = 0x0;
/// Text frame.
pub(crate) const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub(crate) const OP_BINARY: u8 = 0x2;
/// Close frame.
pub(crate) const OP_CLOSE: u8 = 0x8;
/// Ping frame.
pub(crate) const OP_PING: u8 = 0x9;
/// Pong frame.
pub(crate) const OP_PONG: u8 = 0xA;

/// Largest frame payload accepted from a server; the bench never asks for anything bigger.
pub(crate) const MAX_FRAME_BYTES: usize = 16 << 20;

/// Largest handshake response accepted.
const MAX_RESPONSE_BYTES: usize = 16 << 10;

/// The sample key of RFC 6455 §1.3 and its accept value. Every connection may use the same
/// key: it only proves that the server speaks WebSocket.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Where to connect: `ws://HOST:PORT/PATH`, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    host: String,
    path: String,
}

impl Target {
    /// Parses a `ws://` URL. Only plain `ws` is supported: the bench runs on loopback.
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("ws://")
            .with_context(|| format!("{url}: only ws:// URLs are supported"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = host
            .to_socket_addrs()
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} resolves to no address"))?;
        Ok(Self {
            addr,
            host: host.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// Opens a TCP connection and completes the WebSocket handshake. Returns the stream and the
/// bytes the server sent after its response headers (the start of its first frames).
///
/// The socket gets TCP_NODELAY and `SO_LINGER 0`: closing it sends a reset, so the thousands of
/// connections a find-max run reopens leave no TIME_WAIT entries holding ephemeral ports.
pub(crate) async fn connect(target: &Target) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let socket = if target.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .context("creating a socket")?;
    let mut stream = socket.connect(target.addr).await.context("TCP connect")?;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .context("setting SO_LINGER")?;

    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path, target.host
    );
    stream
        .write_all(request.as_bytes())
        .await
        .context("sending the handshake")?;

    let mut response = Vec::with_capacity(1024);
    let header_end = loop {
        if let Some(i) = memchr::memmem::find(&response, b"\r\n\r\n") {
            break i + 4;
        }
        if response.len() >= MAX_RESPONSE_BYTES {
            bail!("handshake response longer than {MAX_RESPONSE_BYTES} bytes");
        }
        if stream
            .read_buf(&mut response)
            .await
            .context("reading the handshake")?
            == 0
        {
            bail!("connection closed during the handshake");
        }
    };
    check_response(&response[..header_end])?;
    Ok((stream, response[header_end..].to_vec()))
}

/// Checks a handshake response: status 101 and the `Sec-WebSocket-Accept` that matches our key.
fn check_response(head: &[u8]) -> anyhow::Result<()> {
    let head = std::str::from_utf8(head).context("handshake response is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        bail!("handshake refused: {status}");
    }
    let accepted = lines
        .filter_map(|line| line.split_once(':'))
        .any(|(name, value)| {
            name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == ACCEPT
        });
    if !accepted {
        bail!("handshake response lacks the right Sec-WebSocket-Accept");
    }
    Ok(())
}

/// Appends one masked client frame (FIN set) to `out`.
pub(crate) fn encode_masked(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
}

/// The header of one server frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) fin: bool,
    pub(crate) opcode: u8,
    /// Bytes of header before the payload.
    pub(crate) header_len: usize,
    pub(crate) payload_len: usize,
}

impl Header {
    /// Header plus payload.
    pub(crate) fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// Why a server frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The server masked a frame (RFC 6455 §5.1 forbids it).
    Masked,
    /// Reserved bits set: we negotiated no extension.
    Reserved,
    /// An opcode RFC 6455 does not define.
    UnknownOpcode,
    /// A payload over [`MAX_FRAME_BYTES`], or a control frame over 125 bytes.
    TooLarge,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Masked => "masked server frame",
            Self::Reserved => "reserved bits set",
            Self::UnknownOpcode => "unknown opcode",
            Self::TooLarge => "frame too large",
        })
    }
}

impl From<FrameError> for io::Error {
    fn from(err: FrameError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, err.to_string())
    }
}

/// Parses the frame header at the start of `buf`. `Ok(None)` means more bytes are needed to
/// know the header; a complete header does not mean the payload is all there (check
/// [`Header::frame_len`]).
pub(crate) fn parse_header(buf: &[u8]) -> Result<Option<Header>, FrameError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 {
        return Err(FrameError::Masked);
    }
    if b0 & 0x70 != 0 {
        return Err(FrameError::Reserved);
    }
    let opcode = b0 & 0x0F;
    let control = opcode & 0x08 != 0;
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(FrameError::UnknownOpcode);
    }
    let (header_len, payload_len) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (4, usize::from(u16::from_be_bytes([b[0], b[1]]))),
            None => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => {
                let len = usize::try_from(u64::from_be_bytes(b)).unwrap_or(usize::MAX);
                (10, len)
            }
            None => return Ok(None),
        },
        len => (2, usize::from(len)),
    };
    if payload_len > MAX_FRAME_BYTES || (control && payload_len > 125) {
        return Err(FrameError::TooLarge);
    }
    Ok(Some(Header {
        fin: b0 & 0x80 != 0,
        opcode,
        header_len,
        payload_len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n <= 0xFFFF => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn headers_of_all_three_length_forms_parse() {
        for len in [0, 125, 126, 65_535, 65_536] {
            let frame = server_frame(OP_TEXT, &vec![b'a'; len]);
            let header = parse_header(&frame).expect("valid").expect("complete");
            assert_eq!(header.payload_len, len);
            assert_eq!(header.frame_len(), frame.len());
            assert!(header.fin);
            assert_eq!(header.opcode, OP_TEXT);
        }
    }

    #[test]
    fn a_truncated_header_asks_for_more_bytes() {
        let frame = server_frame(OP_TEXT, &[b'a'; 300]);
        for cut in 0..4 {
            assert_eq!(parse_header(&frame[..cut]), Ok(None));
        }
    }

    #[test]
    fn masked_oversized_and_unknown_frames_are_refused() {
        assert_eq!(parse_header(&[0x81, 0x81]), Err(FrameError::Masked));
        assert_eq!(parse_header(&[0x83, 0x00]), Err(FrameError::UnknownOpcode));
        assert_eq!(parse_header(&[0xC1, 0x00]), Err(FrameError::Reserved));
        assert_eq!(
            parse_header(&[0x89, 126, 0, 200]),
            Err(FrameError::TooLarge)
        );
        let huge = [0x81, 127, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(parse_header(&huge), Err(FrameError::TooLarge));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_header_parser() {
        let mut x: u32 = 12345;
        for _ in 0..100_000 {
            let mut buf = [0u8; 10];
            for b in &mut buf {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            let _ = parse_header(&buf[..(x as usize % 11)]);
        }
    }

    #[test]
    fn masked_client_frames_unmask_to_the_payload() {
        let payload = vec![7u8; 300];
        let mask = [1, 2, 3, 4];
        let mut out = Vec::new();
        encode_masked(&mut out, OP_TEXT, &payload, mask);
        assert_eq!(out[0], 0x81);
        assert_eq!(out[1], 0x80 | 126);
        assert_eq!(u16::from_be_bytes([out[2], out[3]]), 300);
        assert_eq!(&out[4..8], &mask);
        let unmasked: Vec<u8> = out[8..]
            .iter()
            .zip(mask.iter().cycle())
            .map(|(b, m)| b ^ m)
            .collect();
        assert_eq!(unmasked, payload);
    }

    #[test]
    fn handshake_response_needs_101_and_the_matching_accept() {
        let ok =
            format!("HTTP/1.1 101 Switching Protocols\r\nsec-websocket-accept: {ACCEPT}\r\n\r\n");
        assert!(check_response(ok.as_bytes()).is_ok());
        let wrong = "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n";
        assert!(check_response(wrong.as_bytes()).is_err());
        assert!(check_response(b"HTTP/1.1 404 Not Found\r\n\r\n").is_err());
    }

    #[test]
    fn urls_split_into_address_host_and_path() {
        let t = Target::parse("ws://127.0.0.1:8080/ws").expect("valid URL");
        assert_eq!(t.addr, "127.0.0.1:8080".parse().expect("literal"));
        assert_eq!(t.path, "/ws");
        assert!(Target::parse("http://127.0.0.1:1/ws").is_err());
    }
}
