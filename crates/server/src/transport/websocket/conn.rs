//! [`Conn`]: the byte stream under a WebSocket session, plain TCP or TLS, with the readiness
//! interface the session is written against (`readable`, `try_read`, vectored writes that
//! wait for `writable` with a deadline). Plain TCP goes straight to the socket; TLS runs the
//! rustls state machine over the same socket, so an idle TLS session holds no buffer of ours
//! either.

use std::{
    io::{self, IoSlice, Read, Write},
    time::Duration,
};

use bytes::Bytes;
use tokio::net::TcpStream;

/// Most slices handed to one `writev`.
const MAX_IOVECS: usize = 64;

pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsConn>),
}

pub(crate) struct TlsConn {
    tcp: TcpStream,
    tls: rustls::ServerConnection,
    /// Decrypted bytes rustls holds that have not been read yet.
    pending: usize,
}

impl Conn {
    pub(crate) fn tls(tcp: TcpStream, mut tls: rustls::ServerConnection) -> Self {
        // What hyper left undecrypted or unread (usually nothing).
        let pending = tls
            .process_new_packets()
            .map(|s| s.plaintext_bytes_to_read())
            .unwrap_or(0);
        Self::Tls(Box::new(TlsConn { tcp, tls, pending }))
    }

    /// Waits until `try_read` may return something.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.readable().await,
            Self::Tls(t) if t.pending > 0 => Ok(()),
            Self::Tls(t) => t.tcp.readable().await,
        }
    }

    /// Reads what is available: `Ok(0)` at the end of the stream, `WouldBlock` when nothing is.
    pub(crate) fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.try_read(buf),
            Self::Tls(t) => t.try_read(buf),
        }
    }

    /// Writes every frame of `frames` (emptying it), returning the bytes written; a write
    /// blocked longer than `timeout` fails with `TimedOut`.
    pub(crate) async fn write_all(
        &mut self,
        frames: &mut Vec<Bytes>,
        timeout: Duration,
    ) -> io::Result<usize> {
        let mut written = 0;
        let mut first = 0;
        while first < frames.len() {
            let slices: Vec<IoSlice<'_>> = frames[first..]
                .iter()
                .take(MAX_IOVECS)
                .map(|b| IoSlice::new(b))
                .collect();
            let result = match self {
                Self::Plain(s) => s.try_write_vectored(&slices),
                Self::Tls(t) => t.try_write_vectored(&slices),
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    written += n;
                    while n > 0 {
                        let len = frames[first].len();
                        if n >= len {
                            n -= len;
                            first += 1;
                        } else {
                            let rest = frames[first].slice(n..);
                            frames[first] = rest;
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable(timeout).await?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        frames.clear();
        // TLS: what rustls encrypted but the socket did not take yet.
        if let Self::Tls(t) = self {
            while t.tls.wants_write() {
                match t.write_tls() {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        wait_writable(&t.tcp, timeout).await?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(written)
    }

    async fn writable(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Self::Plain(s) => wait_writable(s, timeout).await,
            Self::Tls(t) => wait_writable(&t.tcp, timeout).await,
        }
    }

    /// TLS: queues `close_notify` so the peer can tell our close from a truncation.
    pub(crate) fn send_close_notify(&mut self) {
        if let Self::Tls(t) = self {
            t.tls.send_close_notify();
        }
    }
}

async fn wait_writable(tcp: &TcpStream, timeout: Duration) -> io::Result<()> {
    match tokio::time::timeout(timeout, tcp.writable()).await {
        Ok(r) => r,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

impl TlsConn {
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => {
                    // 0: the peer sent close_notify.
                    self.pending = self.pending.saturating_sub(n);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The socket ended without close_notify: the end of the stream all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            self.pending = 0;
            // Nothing decrypted is left: take more from the socket (WouldBlock ends here).
            let n = self.tls.read_tls(&mut SocketIo(&self.tcp))?;
            let state = match self.tls.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    // rustls queued an alert saying why; send it if the socket takes it.
                    let _ = self.write_tls();
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            };
            self.pending = state.plaintext_bytes_to_read();
            if self.tls.wants_write() {
                // Key updates and the like; best effort, the next write flushes the rest.
                match self.write_tls() {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            if n == 0 && self.pending == 0 {
                return Ok(0);
            }
        }
    }

    fn try_write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        // Older ciphertext first, so rustls' buffer stays small.
        self.write_tls()?;
        let n = self.tls.writer().write_vectored(slices)?;
        match self.write_tls() {
            Ok(()) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && n > 0 => Ok(n),
            Err(e) => Err(e),
        }
    }

    /// Sends queued ciphertext until none is left (`Ok`) or the socket is full (`WouldBlock`).
    fn write_tls(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut SocketIo(&self.tcp))? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }
}

/// Non-blocking `Read`/`Write` on a tokio socket, for rustls.
struct SocketIo<'a>(&'a TcpStream);

impl Read for SocketIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for SocketIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
