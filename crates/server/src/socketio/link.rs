//! [`Link`]: one WebSocket under an Engine.IO session (the session's transport, or a
//! WebSocket being probed for an upgrade). Like the native session it holds no read buffer
//! while idle and writes everything queued with one vectored write.

use std::{io, time::Duration};

use bytes::{Bytes, BytesMut};
use switchboard_websocket::{Decoded, Message, MessageReader, OpCode, encode_close, encode_frame};

use crate::transport::websocket::conn::Conn;

/// Most bytes read per wake-up before other work gets a turn.
const READ_BUDGET_BYTES: usize = 256 << 10;
/// How long a closing handshake may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What reading found.
pub(super) enum Read {
    /// Messages (possibly none); the link stays open.
    Messages,
    /// The peer closed the TCP connection or sent a close frame.
    Closed,
    /// The peer broke the WebSocket protocol: close with this code.
    Error(u16, String),
}

pub(super) struct Link {
    conn: Conn,
    reader: MessageReader,
    rbuf: BytesMut,
    /// Frames waiting to be written.
    pub(super) out: Vec<Bytes>,
}

impl Link {
    pub(super) fn new(conn: Conn, leftover: Bytes, max_message_bytes: usize) -> Self {
        Self {
            conn,
            reader: MessageReader::new(max_message_bytes, None),
            rbuf: BytesMut::from(&leftover[..]),
            out: Vec::new(),
        }
    }

    /// Whether bytes that came with the handshake wait to be parsed.
    pub(super) fn has_buffered(&self) -> bool {
        !self.rbuf.is_empty()
    }

    pub(super) async fn readable(&self) -> io::Result<()> {
        self.conn.readable().await
    }

    /// Reads what is available (up to a budget) and appends every complete data message to
    /// `messages`; answers pings itself.
    pub(super) fn read(&mut self, messages: &mut Vec<Message>) -> Read {
        let mut scratch = [0u8; 16 << 10];
        let mut total = 0;
        // Parse what is already buffered first (bytes from the handshake).
        if let Some(r) = self.parse(messages) {
            return r;
        }
        while total < READ_BUDGET_BYTES {
            match self.conn.try_read(&mut scratch) {
                Ok(0) => return Read::Closed,
                Ok(n) => {
                    total += n;
                    self.rbuf.extend_from_slice(&scratch[..n]);
                    if let Some(r) = self.parse(messages) {
                        return r;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Read::Closed,
            }
        }
        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            self.rbuf = BytesMut::new();
        }
        Read::Messages
    }

    fn parse(&mut self, messages: &mut Vec<Message>) -> Option<Read> {
        loop {
            match self.reader.read(&mut self.rbuf) {
                Ok(Decoded::Incomplete) => return None,
                Ok(Decoded::Message(Message::Ping(payload))) => {
                    self.out.push(encode_frame(OpCode::Pong, &payload, false));
                }
                Ok(Decoded::Message(Message::Pong(_))) => {}
                Ok(Decoded::Message(Message::Close(_))) => return Some(Read::Closed),
                Ok(Decoded::Message(m)) => messages.push(m),
                Err(e) => return Some(Read::Error(e.close_code(), e.to_string())),
            }
        }
    }

    /// Writes every queued frame; fails when the peer does not take them within `timeout`.
    pub(super) async fn flush(&mut self, timeout: Duration) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.conn
            .write_all(&mut self.out, timeout)
            .await
            .map(|_| ())
    }

    /// Sends what is queued and a close frame, then ends the TCP connection.
    pub(super) async fn close(mut self, code: u16, reason: &str) {
        self.out.push(encode_close(code, reason));
        let sent = tokio::time::timeout(
            CLOSE_TIMEOUT,
            self.conn.write_all(&mut self.out, CLOSE_TIMEOUT),
        )
        .await;
        if matches!(sent, Ok(Ok(_))) {
            self.conn.send_close_notify();
            let _ = tokio::time::timeout(
                CLOSE_TIMEOUT,
                self.conn.write_all(&mut Vec::new(), CLOSE_TIMEOUT),
            )
            .await;
        }
    }
}
