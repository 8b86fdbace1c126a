//! The client side of HTTP/1.1, cut down to what the `publish` scenario needs: one keep-alive
//! connection that sends a request already encoded and reads one response at a time (status
//! line, headers, a `Content-Length` body).
//!
//! A closed-loop publisher sends the same request over and over, so the request is built once
//! ([`post_json`]) and each exchange is one `write()` and, usually, one `read()`. Nothing here
//! trusts the server: the header block and the body are checked against [`MAX_HEAD_BYTES`] and
//! [`MAX_BODY_BYTES`] before anything is buffered for them, a chunked body is refused (the
//! switchboard API always sends a length), and every malformed response is an error, never a
//! panic. No wait here has a deadline of its own: the caller bounds each exchange.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

/// Largest status line plus headers accepted.
const MAX_HEAD_BYTES: usize = 16 << 10;

/// Largest body accepted; API replies are a few dozen bytes.
const MAX_BODY_BYTES: usize = 1 << 20;

/// Why an exchange failed. The connection is unusable after any of them.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// Reading or writing the socket failed.
    Io(io::Error),
    /// The server closed the connection before the whole response arrived.
    Closed,
    /// The response is not HTTP/1.1 as this client reads it.
    Malformed(&'static str),
    /// Headers or body over their limit.
    TooLarge,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(err) => write!(f, "{err}"),
            Self::Closed => f.write_str("the server closed the connection"),
            Self::Malformed(why) => write!(f, "malformed response: {why}"),
            Self::TooLarge => f.write_str("response over the size limit"),
        }
    }
}

impl From<io::Error> for HttpError {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

/// One response, borrowed from the connection's buffer until the next exchange.
#[derive(Debug)]
pub(crate) struct Response<'a> {
    pub(crate) status: u16,
    pub(crate) body: &'a [u8],
}

/// A keep-alive connection.
pub(crate) struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes at the start of `buf` that belong to the last response.
    consumed: usize,
}

/// Opens a TCP connection with TCP_NODELAY and `SO_LINGER 0` (as [`crate::ws::connect`] does:
/// closing sends a reset and leaves no TIME_WAIT entry behind).
pub(crate) async fn connect(addr: SocketAddr) -> io::Result<Connection> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
    Ok(Connection {
        stream,
        buf: Vec::with_capacity(4096),
        consumed: 0,
    })
}

/// The bytes of a `POST` with a JSON body.
pub(crate) fn post_json(host: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

impl Connection {
    /// Sends `request` and reads its response. Not cancel-safe: a cancelled exchange leaves
    /// the connection in an unknown state, so drop it.
    pub(crate) async fn exchange(&mut self, request: &[u8]) -> Result<Response<'_>, HttpError> {
        self.buf.drain(..self.consumed);
        self.consumed = 0;
        self.stream.write_all(request).await?;
        loop {
            if let Some(head) = parse_head(&self.buf)? {
                let end = head.len + head.body_len;
                if self.buf.len() >= end {
                    self.consumed = end;
                    return Ok(Response {
                        status: head.status,
                        body: &self.buf[head.len..end],
                    });
                }
                // The body's size is known and bounded: make room for it at once.
                self.buf.reserve(end - self.buf.len());
            } else {
                self.buf.reserve(4096);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(HttpError::Closed);
            }
        }
    }
}

/// What the header block says about the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    /// Bytes of status line and headers, blank line included.
    len: usize,
    body_len: usize,
}

/// Parses the status line and headers at the start of `buf`; `Ok(None)` until the blank line
/// that ends them has arrived.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD_BYTES {
            Err(HttpError::TooLarge)
        } else {
            Ok(None)
        };
    };
    if end > MAX_HEAD_BYTES {
        return Err(HttpError::TooLarge);
    }
    let text = std::str::from_utf8(&buf[..end])
        .map_err(|_| HttpError::Malformed("headers are not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or(HttpError::Malformed("bad status line"))?;
    let mut body_len = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(HttpError::Malformed("header without a colon"))?;
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let len: usize = value
                .trim()
                .parse()
                .map_err(|_| HttpError::Malformed("bad Content-Length"))?;
            if body_len.is_some_and(|l| l != len) {
                return Err(HttpError::Malformed("two different Content-Length"));
            }
            body_len = Some(len);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::Malformed("Transfer-Encoding is not supported"));
        }
    }
    let body_len = match (body_len, status) {
        (Some(len), _) => len,
        // Responses that never have a body (RFC 9110 §6.4.1).
        (None, 100..=199 | 204 | 304) => 0,
        (None, _) => return Err(HttpError::Malformed("no Content-Length")),
    };
    if body_len > MAX_BODY_BYTES {
        return Err(HttpError::TooLarge);
    }
    Ok(Some(Head {
        status,
        len: end + 4,
        body_len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_head_gives_status_and_body_length() {
        let raw =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 31\r\n\r\n{";
        let head = parse_head(raw).expect("valid").expect("complete");
        assert_eq!(head.status, 200);
        assert_eq!(head.body_len, 31);
        assert_eq!(head.len, raw.len() - 1);
    }

    #[test]
    fn a_head_without_its_blank_line_asks_for_more_bytes() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n";
        for cut in 0..raw.len() {
            assert!(parse_head(&raw[..cut]).expect("no error yet").is_none());
        }
    }

    #[test]
    fn chunked_lengthless_and_oversized_responses_are_refused() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(parse_head(chunked), Err(HttpError::Malformed(_))));
        let lengthless = b"HTTP/1.1 200 OK\r\n\r\n";
        assert!(matches!(
            parse_head(lengthless),
            Err(HttpError::Malformed(_))
        ));
        let huge = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n";
        assert!(matches!(parse_head(huge), Err(HttpError::TooLarge)));
        let endless = vec![b'a'; MAX_HEAD_BYTES + 1];
        assert!(matches!(parse_head(&endless), Err(HttpError::TooLarge)));
        assert!(matches!(
            parse_head(b"HTTP/1.0 200 OK\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
    }

    #[test]
    fn a_no_content_response_has_an_empty_body() {
        let head = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(head.body_len, 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_head_parser() {
        let mut x: u32 = 777;
        for _ in 0..20_000 {
            let mut buf = *b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n";
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = x as usize % buf.len();
                buf[i] = (x >> 8) as u8;
            }
            let _ = parse_head(&buf);
        }
    }

    #[test]
    fn a_post_carries_its_body_and_length() {
        let req = post_json("127.0.0.1:8000", "/api/publish", br#"{"a":1}"#);
        let text = String::from_utf8(req).expect("ASCII");
        assert!(text.starts_with("POST /api/publish HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Length: 7\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n{\"a\":1}"), "{text}");
    }
}
