//! A blocking echo server built from this crate and `std` only, one thread
//! per connection: it exists to run the Autobahn fuzzing client (kosoku)
//! against the codec, see `tests/autobahn/run.sh`. It answers the handshake
//! (no subprotocol, permessage-deflate when offered), echoes text and binary
//! messages (compressing echoes over 64 bytes when deflate was negotiated),
//! answers pings, echoes close codes and fails the connection with the
//! decoder's close code on protocol errors. Not a model for the real server:
//! no timeouts on reads, no connection cap.
//!
//! Run: `cargo run --release -p switchboard-websocket --example echo -- [PORT]
//! [COMPRESS_ABOVE_BYTES]` (binds 127.0.0.1 only; defaults 9001 and 64).
//! kosoku 0.1.0 errors on every 12.x/13.x case whose echoes come back
//! uncompressed, so `run.sh` passes 0 to compress every echo.

use std::collections::HashMap;
use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use switchboard_websocket::{
    Decoded, DeflatePolicy, Deflater, Message, MessageReader, OpCode, UpgradeRequest, encode_close,
    encode_frame, negotiate_deflate, switching_protocols_response, validate_upgrade,
};

/// Autobahn's 9.x cases send messages of up to 16 MiB.
const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// By default, smaller echoes are sent uncompressed: deflate would not pay
/// for itself.
const DEFAULT_COMPRESS_ABOVE_BYTES: usize = 64;
/// Largest request head accepted before the upgrade.
const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;
/// How long to wait for the client to close after our close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
const READ_CHUNK_BYTES: usize = 64 * 1024;

fn main() -> io::Result<()> {
    let usage = || io::Error::other("usage: echo [PORT] [COMPRESS_ABOVE_BYTES]");
    let mut args = std::env::args().skip(1);
    let port = args
        .next()
        .map_or(Ok(9001), |arg| arg.parse::<u16>())
        .map_err(|_| usage())?;
    let compress_above = args
        .next()
        .map_or(Ok(DEFAULT_COMPRESS_ABOVE_BYTES), |arg| arg.parse::<usize>())
        .map_err(|_| usage())?;
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    eprintln!("echo: listening on ws://{}", listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(err) => {
                eprintln!("echo: accept failed: {err}");
                continue;
            }
        };
        std::thread::spawn(move || {
            if let Err(err) = serve(stream, compress_above) {
                eprintln!("echo: connection ended with {err}");
            }
        });
    }
    Ok(())
}

/// Runs one connection: handshake, then echo until close or error.
fn serve(mut stream: TcpStream, compress_above: usize) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut chunk = vec![0; READ_CHUNK_BYTES];

    let head_len = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > MAX_REQUEST_HEAD_BYTES {
            return refuse(&mut stream, 431, None);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = buf.split_to(head_len);
    let Ok(head) = std::str::from_utf8(&head) else {
        return refuse(&mut stream, 400, None);
    };
    let (method, headers) = parse_head(head);
    let header = |name: &str| headers.get(name).map(String::as_str);
    let request = UpgradeRequest {
        method,
        upgrade: header("upgrade"),
        connection: header("connection"),
        version: header("sec-websocket-version"),
        key: header("sec-websocket-key"),
    };
    let accept = match validate_upgrade(&request) {
        Ok(accept) => accept,
        Err(err) => return refuse(&mut stream, err.http_status(), Some(&err.to_string())),
    };
    let deflate = header("sec-websocket-extensions")
        .and_then(|offers| negotiate_deflate(offers, &DeflatePolicy::default()));
    let extensions = deflate.as_ref().map(|(_, response)| response.as_str());
    let response = switching_protocols_response(&accept, None, extensions);
    stream.write_all(response.as_bytes())?;

    let config = deflate.map(|(config, _)| config);
    let mut reader = MessageReader::new(MAX_MESSAGE_BYTES, config.as_ref());
    let mut deflater = config.map(|c| Deflater::new(c.server_max_window_bits));
    loop {
        loop {
            let message = match reader.read(&mut buf) {
                Ok(Decoded::Message(message)) => message,
                Ok(Decoded::Incomplete) => break,
                Err(err) => {
                    stream.write_all(&encode_close(err.close_code(), ""))?;
                    return linger_close(stream);
                }
            };
            let (opcode, payload) = match message {
                Message::Text(text) => (OpCode::Text, text),
                Message::Binary(data) => (OpCode::Binary, data),
                Message::Ping(data) => {
                    stream.write_all(&encode_frame(OpCode::Pong, &data, false))?;
                    continue;
                }
                Message::Pong(_) => continue,
                Message::Close(close) => {
                    let reply = match close {
                        Some(close) => encode_close(close.code, ""),
                        None => encode_frame(OpCode::Close, b"", false),
                    };
                    stream.write_all(&reply)?;
                    return linger_close(stream);
                }
            };
            let frame = match deflater.as_mut() {
                Some(deflater) if payload.len() > compress_above => {
                    encode_frame(opcode, &deflater.compress(&payload), true)
                }
                _ => encode_frame(opcode, &payload, false),
            };
            stream.write_all(&frame)?;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Splits a request head into its method and its headers (lower-cased
/// names, repeated headers joined with ", ").
fn parse_head(head: &str) -> (&str, HashMap<String, String>) {
    let mut lines = head.split("\r\n");
    let method = lines
        .next()
        .and_then(|line| line.split(' ').next())
        .unwrap_or_default();
    let mut headers: HashMap<String, String> = HashMap::new();
    for (name, value) in lines.filter_map(|line| line.split_once(':')) {
        let value = value.trim();
        headers
            .entry(name.trim().to_ascii_lowercase())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    (method, headers)
}

/// Answers a request that is not a valid upgrade, then closes.
fn refuse(stream: &mut TcpStream, status: u16, reason: Option<&str>) -> io::Result<()> {
    let body = reason.unwrap_or("bad request");
    let version = if status == 426 {
        "Sec-WebSocket-Version: 13\r\n"
    } else {
        ""
    };
    let response = format!(
        "HTTP/1.1 {status} Refused\r\n{version}Content-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())
}

/// Closes the TCP connection after our close frame: stop writing, then
/// drain what the client still sends (its close frame) until it closes or
/// the linger time passes. Closing with unread bytes would send a reset,
/// which can destroy the close frame before the client reads it.
fn linger_close(mut stream: TcpStream) -> io::Result<()> {
    stream.shutdown(Shutdown::Write)?;
    stream.set_read_timeout(Some(CLOSE_LINGER))?;
    let deadline = Instant::now() + CLOSE_LINGER;
    let mut sink = [0; 4096];
    while Instant::now() < deadline && matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    Ok(())
}
