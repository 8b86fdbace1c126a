//! The publisher: one WebSocket connection that sends `publish` commands at a steady rate for
//! one step, stamping each payload with its send time, and counts the server's replies.
//!
//! It runs on its own runtime thread so that a subscriber side busy with half a million frames
//! per second cannot delay its timer. Pacing is a clock, not a burst: every tick (1/rate, at
//! least 1 ms: tokio's timer resolution) it sends the publications the schedule says are due
//! by now, so rates above 1000/s go out a few per millisecond and a late tick catches up
//! instead of lowering the rate. How late the worst tick was is reported (`lag`), so a
//! publisher that could not keep up is visible.
//!
//! For Socket.IO it first joins the room as a subscriber does (switchboard relays an event to
//! the sender's rooms; the sender is excluded, so it receives none of its own), then emits
//! `42["pub",{"ts":…,"seq":…,"pad":"…"}]` without an ack id: there are no replies to count,
//! only the heartbeat to answer and the end of the session to notice.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::fleet::{MASK, Protocol};
use crate::publication;
use crate::sio;
use crate::stats;
use crate::ws::{self, Target};

/// One step's publishing.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) protocol: Protocol,
    /// The channel (Socket.IO: the room).
    pub(crate) channel: String,
    /// Socket.IO: the sequence number of the first publication; the others follow it.
    pub(crate) first_seq: u64,
    /// Publications per second.
    pub(crate) rate: f64,
    /// First publication.
    pub(crate) start: Instant,
    /// No publication at or after this.
    pub(crate) end: Instant,
    /// The measured window in [`stats::now_ns`] time; publications sent in it are counted.
    pub(crate) window_ns: (u64, u64),
    /// Longest wait for outstanding replies after `end`.
    pub(crate) reply_wait: Duration,
}

/// What the publisher did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    /// Publications sent in the whole step (warm-up included).
    pub(crate) sent: u64,
    /// Publications whose send time is inside the measured window.
    pub(crate) sent_in_window: u64,
    /// `result` replies received.
    pub(crate) replies_ok: u64,
    /// `error` replies received.
    pub(crate) replies_error: u64,
    /// The first error reply.
    pub(crate) first_error: Option<String>,
    /// Worst delay of a publication behind its schedule.
    pub(crate) max_lag: Duration,
}

#[derive(Default)]
struct Replies {
    ok: AtomicU64,
    error: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// Connects, publishes according to `plan`, waits for the replies (bounded) and disconnects.
pub(crate) async fn run(target: Target, plan: Plan) -> anyhow::Result<Report> {
    let (mut stream, mut leftover) = ws::connect(&target).await.context("publisher connection")?;
    if plan.protocol == Protocol::SocketIo {
        leftover = join(&mut stream, leftover, &plan.channel)
            .await
            .context("publisher: joining the room")?;
    }
    let (reader, mut writer) = stream.into_split();
    let replies = Arc::new(Replies::default());
    // Holds at most a few pongs: the server pings every few seconds at most.
    let (pong_tx, mut pongs) = mpsc::channel::<Vec<u8>>(16);
    let read_task = tokio::spawn(read_replies(
        plan.protocol,
        reader,
        leftover,
        replies.clone(),
        pong_tx,
    ));

    let mut report = Report::default();
    let period = Duration::from_secs_f64(1.0 / plan.rate.max(0.001)).max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval_at(plan.start.into(), period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut buf = Vec::with_capacity(64 << 10);
    let mut frame = Vec::with_capacity(256);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            Some(pong) = pongs.recv() => {
                writer.write_all(&pong).await.context("publisher: sending a pong")?;
                continue;
            }
        }
        let now = Instant::now();
        if now >= plan.end {
            break;
        }
        let elapsed = now.saturating_duration_since(plan.start).as_secs_f64();
        let due = (elapsed * plan.rate).floor() as u64 + 1;
        if report.sent < due {
            let scheduled = plan.start + Duration::from_secs_f64(report.sent as f64 / plan.rate);
            report.max_lag = report.max_lag.max(now.saturating_duration_since(scheduled));
        }
        buf.clear();
        while report.sent < due {
            let sent_ns = stats::now_ns();
            frame.clear();
            match plan.protocol {
                Protocol::Native => {
                    publication::write_publish(&mut frame, report.sent + 1, &plan.channel, sent_ns)
                }
                Protocol::SocketIo => {
                    publication::write_sio_pub(&mut frame, plan.first_seq + report.sent, sent_ns)
                }
            }
            ws::encode_masked(&mut buf, ws::OP_TEXT, &frame, MASK);
            report.sent += 1;
            if (plan.window_ns.0..plan.window_ns.1).contains(&sent_ns) {
                report.sent_in_window += 1;
            }
        }
        writer
            .write_all(&buf)
            .await
            .context("publisher: sending publications")?;
    }

    // Socket.IO events are not acknowledged: nothing to wait for.
    let awaited = match plan.protocol {
        Protocol::Native => report.sent,
        Protocol::SocketIo => 0,
    };
    let deadline = Instant::now() + plan.reply_wait;
    while replies.ok.load(Relaxed) + replies.error.load(Relaxed) < awaited
        && Instant::now() < deadline
        && !read_task.is_finished()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    read_task.abort();
    report.replies_ok = replies.ok.load(Relaxed);
    report.replies_error = replies.error.load(Relaxed);
    report.first_error = replies
        .first_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    Ok(report)
}

/// Connects the Socket.IO session to the root namespace and joins `room` (see [`crate::sio`]);
/// returns the bytes read past the join's ack.
async fn join(
    stream: &mut tokio::net::TcpStream,
    mut buf: Vec<u8>,
    room: &str,
) -> anyhow::Result<Vec<u8>> {
    let frames = sio::Frames::new(room)?;
    let mut client = sio::Client::default();
    let mut out = Vec::new();
    let joining = async {
        loop {
            let mut used = 0;
            while let Some(h) =
                ws::parse_header(&buf[used..]).map_err(|e| anyhow::anyhow!("bad frame: {e}"))?
            {
                if h.frame_len() > buf.len() - used {
                    break;
                }
                let payload = &buf[used + h.header_len..used + h.frame_len()];
                used += h.frame_len();
                match h.opcode {
                    ws::OP_TEXT => {
                        match client
                            .on_text(payload, &frames, &mut out)
                            .map_err(anyhow::Error::msg)?
                        {
                            sio::Event::Joined(Ok(())) => return Ok(buf[used..].to_vec()),
                            sio::Event::Joined(Err(why)) => anyhow::bail!("join refused: {why}"),
                            _ => {}
                        }
                    }
                    ws::OP_PING => ws::encode_masked(&mut out, ws::OP_PONG, payload, MASK),
                    ws::OP_CLOSE => anyhow::bail!("the server closed the connection"),
                    _ => {}
                }
            }
            buf.drain(..used);
            if !out.is_empty() {
                stream.write_all(&out).await?;
                out.clear();
            }
            if stream.read_buf(&mut buf).await? == 0 {
                anyhow::bail!("the server closed the connection");
            }
        }
    };
    tokio::time::timeout(JOIN_TIMEOUT, joining)
        .await
        .map_err(|_| anyhow::anyhow!("no ack of the join within {JOIN_TIMEOUT:?}"))?
}

/// Longest the publisher's Socket.IO setup may take; a slow one shows as publisher lag.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Counts replies until the connection ends; forwards pongs to send for server pings.
async fn read_replies(
    protocol: Protocol,
    mut reader: OwnedReadHalf,
    mut buf: Vec<u8>,
    replies: Arc<Replies>,
    pongs: mpsc::Sender<Vec<u8>>,
) {
    loop {
        let mut used = 0;
        while let Ok(Some(h)) = ws::parse_header(&buf[used..]) {
            if h.frame_len() > buf.len() - used {
                break;
            }
            let payload = &buf[used + h.header_len..used + h.frame_len()];
            used += h.frame_len();
            match h.opcode {
                ws::OP_TEXT => match protocol {
                    Protocol::Native => on_text(payload, &replies, &pongs),
                    Protocol::SocketIo => on_sio_text(payload, &replies, &pongs),
                },
                ws::OP_PING => {
                    let mut pong = Vec::new();
                    ws::encode_masked(&mut pong, ws::OP_PONG, payload, MASK);
                    let _ = pongs.try_send(pong);
                }
                ws::OP_CLOSE => return,
                _ => {}
            }
        }
        if let Err(err) = ws::parse_header(&buf[used..]) {
            note_error(&replies, format!("bad frame from the server: {err}"));
            return;
        }
        buf.drain(..used);
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn on_text(text: &[u8], replies: &Replies, pongs: &mpsc::Sender<Vec<u8>>) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(text) else {
        note_error(
            replies,
            format!("unparsable reply: {}", String::from_utf8_lossy(text)),
        );
        return;
    };
    if value.get("result").is_some() {
        replies.ok.fetch_add(1, Relaxed);
    } else if let Some(error) = value.get("error") {
        note_error(replies, error.to_string());
    } else if value.get("push").and_then(|p| p.as_str()) == Some("ping") {
        let mut pong = Vec::new();
        ws::encode_masked(&mut pong, ws::OP_TEXT, br#"{"cmd":"pong"}"#, MASK);
        let _ = pongs.try_send(pong);
    }
}

/// A Socket.IO message to the publisher: answers the heartbeat, notes the session's end.
/// Events are not looked at.
fn on_sio_text(text: &[u8], replies: &Replies, pongs: &mpsc::Sender<Vec<u8>>) {
    match text {
        [b'2', data @ ..] => {
            let mut message = Vec::with_capacity(1 + data.len());
            message.push(b'3');
            message.extend_from_slice(data);
            let mut pong = Vec::new();
            ws::encode_masked(&mut pong, ws::OP_TEXT, &message, MASK);
            let _ = pongs.try_send(pong);
        }
        [b'1', ..] => note_error(replies, "Engine.IO close from the server".to_owned()),
        [b'4', b'1', ..] => note_error(replies, "Socket.IO DISCONNECT from the server".to_owned()),
        [b'4', b'4', rest @ ..] => note_error(
            replies,
            format!("CONNECT_ERROR {}", String::from_utf8_lossy(rest)),
        ),
        _ => {}
    }
}

fn note_error(replies: &Replies, error: String) {
    replies.error.fetch_add(1, Relaxed);
    replies
        .first_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert(error);
}
