//! The publisher: one WebSocket connection that sends `publish` commands at a steady rate for
//! one step, stamping each payload with its send time, and counts the server's replies.
//!
//! It runs on its own runtime thread so that a subscriber side busy with half a million frames
//! per second cannot delay its timer. Pacing is a clock, not a burst: every tick (1/rate, at
//! least 1 ms: tokio's timer resolution) it sends the publications the schedule says are due
//! by now, so rates above 1000/s go out a few per millisecond and a late tick catches up
//! instead of lowering the rate. How late the worst tick was is reported (`lag`), so a
//! publisher that could not keep up is visible.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::fleet::MASK;
use crate::publication;
use crate::stats;
use crate::ws::{self, Target};

/// One step's publishing.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) channel: String,
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
    let (stream, leftover) = ws::connect(&target).await.context("publisher connection")?;
    let (reader, mut writer) = stream.into_split();
    let replies = Arc::new(Replies::default());
    // Holds at most a few pongs: the server pings every few seconds at most.
    let (pong_tx, mut pongs) = mpsc::channel::<Vec<u8>>(16);
    let read_task = tokio::spawn(read_replies(reader, leftover, replies.clone(), pong_tx));

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
            publication::write_publish(&mut frame, report.sent + 1, &plan.channel, sent_ns);
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

    let deadline = Instant::now() + plan.reply_wait;
    while replies.ok.load(Relaxed) + replies.error.load(Relaxed) < report.sent
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

/// Counts replies until the connection ends; forwards pongs to send for server pings.
async fn read_replies(
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
                ws::OP_TEXT => on_text(payload, &replies, &pongs),
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

fn note_error(replies: &Replies, error: String) {
    replies.error.fetch_add(1, Relaxed);
    replies
        .first_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert(error);
}
