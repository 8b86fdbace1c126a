//! Server-Sent Events on `/sse`: subscribes the stream to the URL's channels (recovering from
//! `Last-Event-ID`), then turns hub deliveries into events. Each publication's `data:` lines
//! are encoded once and shared by every stream; only the `id:` line (the cursor of all the
//! stream's channels) is per stream.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use axum::{
    body::Body,
    extract::{ConnectInfo, RawQuery, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures_util::stream;
use switchboard_core::{ChannelName, Client, Delivery, StreamPosition, SubscribeOptions};
use tokio_util::sync::CancellationToken;

use crate::{
    error::ApiError,
    metrics::{ConnectionGauge, TransportLabel},
    state::AppState,
    transport::{cursor, frames, identity, query::Query},
};

const TRANSPORT: &str = "sse";

/// `GET /sse?channel=…`.
pub(crate) async fn stream(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    open(&app, peer, &headers, raw.as_deref())
        .await
        .inspect_err(|e| {
            app.metrics.error(TRANSPORT, e.code.as_str());
        })
}

async fn open(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    raw: Option<&str>,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw, app.config.sse.max_channels)?;
    let who =
        identity::authenticate(app, headers, q.get("token"), TRANSPORT, Some(peer), false).await?;
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .or_else(|| q.get("lastEventId").filter(|s| !s.is_empty()));
    let since = last_id
        .map(|c| cursor::parse(c, q.channels.len()))
        .transpose()?;
    let join_leave = q.flag("join_leave");

    let client = app
        .hub
        .connect_as(who.auth.identity.clone(), who.auth.info.clone())?;
    for ch in &q.channels {
        identity::subscribe_hook(app, TRANSPORT, Some(peer), &who.auth, ch).await?;
    }
    let mut recoveries = Vec::with_capacity(q.channels.len());
    for (i, ch) in q.channels.iter().enumerate() {
        let options = SubscribeOptions {
            since: since.as_ref().map(|s| s[i].clone()),
            join_leave,
            granted: who.auth.grants(ch),
        };
        let recovery = client.subscribe(ch, options).await.inspect_err(|e| {
            identity::audit_denial(app, TRANSPORT, Some(peer), &who.auth, ch, e);
        })?;
        recoveries.push(recovery);
    }

    // Positions the id lines carry: a channel whose missed publications are still to be
    // written stays at the client's position until each one goes out.
    let mut positions: Vec<StreamPosition> = recoveries
        .iter()
        .enumerate()
        .map(|(i, r)| match (r.recovered, &since) {
            (Some(true), Some(s)) => s[i].clone(),
            _ => r.position.clone(),
        })
        .collect();

    let mut head = format!("retry: {}\n\n", app.config.sse.retry_ms).into_bytes();
    let final_positions: Vec<StreamPosition> =
        recoveries.iter().map(|r| r.position.clone()).collect();
    head.extend_from_slice(
        format!(
            "id: {}\nevent: subscribed\ndata: ",
            cursor::format(&final_positions)
        )
        .as_bytes(),
    );
    let chans: Vec<serde_json::Value> = q
        .channels
        .iter()
        .zip(&recoveries)
        .map(|(ch, r)| {
            let mut v = serde_json::json!({
                "channel": ch.as_str(),
                "offset": r.position.offset,
                "epoch": r.position.epoch.as_str(),
            });
            if let Some(rec) = r.recovered {
                v["recovered"] = rec.into();
            }
            v
        })
        .collect();
    let subscribed = serde_json::json!({"client": client.id().as_str(), "channels": chans});
    head.extend_from_slice(subscribed.to_string().as_bytes());
    head.extend_from_slice(b"\n\n");
    // The subscribed event's id is the final positions; the recovered publications that
    // follow carry their own ids, so write the recovery with positions starting from `since`.
    for (i, r) in recoveries.iter().enumerate() {
        if r.recovered == Some(false) {
            let ev = serde_json::json!({
                "channel": q.channels[i].as_str(),
                "offset": r.position.offset,
                "epoch": r.position.epoch.as_str(),
            });
            head.extend_from_slice(format!("event: unrecovered\ndata: {ev}\n\n").as_bytes());
        }
        for p in &r.publications {
            positions[i] = StreamPosition {
                offset: p.offset,
                epoch: p.epoch.clone(),
            };
            write_event(&mut head, &positions, &Delivery::Publication(p.clone()));
        }
    }

    let state = StreamState {
        _gauge: ConnectionGauge::new(&app.metrics, TRANSPORT),
        app: app.clone(),
        channels: q.channels,
        positions: final_positions,
        client,
        head: Some(Bytes::from(head)),
        heartbeat: tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(app.config.sse.heartbeat_seconds),
            Duration::from_secs(app.config.sse.heartbeat_seconds),
        ),
        shutdown: app.shutdown.clone(),
        expiry: who
            .auth
            .expires
            .map(|exp| Box::pin(tokio::time::sleep(until(exp)))),
        done: false,
        batch: Vec::new(),
    };
    let body = Body::from_stream(stream::unfold(state, next_chunk));
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response())
}

struct StreamState {
    app: AppState,
    channels: Vec<ChannelName>,
    positions: Vec<StreamPosition>,
    client: Client,
    head: Option<Bytes>,
    heartbeat: tokio::time::Interval,
    shutdown: CancellationToken,
    /// When the connection token expires: the stream ends with a 4003 `disconnect` event, and
    /// the client reconnects with a new token (resuming from `Last-Event-ID`).
    expiry: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    done: bool,
    batch: Vec<Delivery>,
    /// Counts the stream as an open SSE connection until it ends.
    _gauge: ConnectionGauge,
}

fn write_event(buf: &mut Vec<u8>, positions: &[StreamPosition], d: &Delivery) {
    if matches!(d, Delivery::Publication(_)) {
        buf.extend_from_slice(b"id: ");
        buf.extend_from_slice(cursor::format(positions).as_bytes());
        buf.push(b'\n');
    }
    buf.extend_from_slice(&frames::sse_event(d));
}

async fn next_chunk(mut s: StreamState) -> Option<(Result<Bytes, Infallible>, StreamState)> {
    if let Some(head) = s.head.take() {
        count_out(&s.app, 1, head.len());
        return Some((Ok(head), s));
    }
    if s.done {
        return None;
    }
    let outbox = s.client.outbox().clone();
    tokio::select! {
        () = outbox.notified() => {
            let closed = outbox.drain(&mut s.batch);
            let mut buf = Vec::with_capacity(256 * s.batch.len().max(1));
            let n = s.batch.len();
            for d in std::mem::take(&mut s.batch) {
                if let Delivery::Publication(p) = &d
                    && let Some(i) = s.channels.iter().position(|c| c == &p.channel)
                {
                    s.positions[i] = StreamPosition { offset: p.offset, epoch: p.epoch.clone() };
                }
                write_event(&mut buf, &s.positions, &d);
            }
            if let Some(d) = closed {
                if d == switchboard_core::Disconnect::SlowConsumer {
                    s.app.metrics.slow_consumer_disconnects
                        .get_or_create(&TransportLabel { transport: TRANSPORT }).inc();
                }
                let (code, reason, reconnect) = switchboard_proto::disconnect_close(&d);
                disconnect_event(&mut buf, code, reason, reconnect);
                s.done = true;
            }
            count_out(&s.app, n, buf.len());
            Some((Ok(Bytes::from(buf)), s))
        }
        _ = s.heartbeat.tick() => Some((Ok(Bytes::from_static(b": ping\n\n")), s)),
        () = expired(s.expiry.as_mut()) => {
            let mut buf = Vec::new();
            disconnect_event(&mut buf, switchboard_proto::close::TOKEN_EXPIRED, "token expired", true);
            s.done = true;
            Some((Ok(Bytes::from(buf)), s))
        }
        () = s.shutdown.cancelled() => {
            let mut buf = Vec::new();
            disconnect_event(&mut buf, switchboard_proto::close::GOING_AWAY, "server shutting down", true);
            s.done = true;
            Some((Ok(Bytes::from(buf)), s))
        }
    }
}

/// How long from now until unix second `exp`.
pub(crate) fn until(exp: u64) -> Duration {
    Duration::from_secs(exp.saturating_sub(crate::auth::now_seconds()))
}

async fn expired(sleep: Option<&mut std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match sleep {
        Some(s) => s.await,
        None => std::future::pending().await,
    }
}

fn disconnect_event(buf: &mut Vec<u8>, code: u16, reason: &str, reconnect: bool) {
    let ev = serde_json::json!({"code": code, "reason": reason, "reconnect": reconnect});
    buf.extend_from_slice(format!("event: disconnect\ndata: {ev}\n\n").as_bytes());
}

fn count_out(app: &AppState, messages: usize, bytes: usize) {
    let label = TransportLabel {
        transport: TRANSPORT,
    };
    app.metrics
        .messages_out
        .get_or_create(&label)
        .inc_by(messages as u64);
    app.metrics
        .bytes_out
        .get_or_create(&label)
        .inc_by(bytes as u64);
}
