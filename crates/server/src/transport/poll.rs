//! Long-poll and short poll on `/poll`: `GET` returns the publications after a cursor (a
//! bounded batch) and the next cursor, holding the request up to `wait` seconds until one
//! arrives; `POST` publishes for clients without a WebSocket (SSE and polling clients).
//!
//! A waiting request registers a short-lived hub client whose subscriptions recover from the
//! cursor atomically, so nothing published between the read and the wait is missed.

use std::{net::SocketAddr, time::Duration};

use axum::{
    body::Bytes,
    extract::{ConnectInfo, RawQuery, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use switchboard_core::{
    Action, Delivery, Recovery, SharedPublication, StreamPosition, SubscribeOptions,
};

use crate::{
    api::PublishBody,
    error::ApiError,
    metrics::{ConnectionGauge, TransportLabel},
    state::AppState,
    transport::{cursor, identity, query::Query},
};

const TRANSPORT: &str = "poll";

/// `GET /poll?channel=…&cursor=…&wait=…&limit=…`.
pub(crate) async fn read(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let label = TransportLabel {
        transport: TRANSPORT,
    };
    app.metrics.messages_in.get_or_create(&label).inc();
    let result = poll(&app, peer, &headers, raw.as_deref()).await;
    if let Err(e) = &result {
        app.metrics.error(TRANSPORT, e.code.as_str());
    }
    result
}

struct Batch {
    positions: Vec<StreamPosition>,
    publications: Vec<SharedPublication>,
    unrecovered: Vec<usize>,
    more: bool,
}

impl Batch {
    fn take(&mut self, i: usize, r: Recovery) {
        if r.recovered == Some(false) {
            self.unrecovered.push(i);
        }
        self.more |= r.more;
        self.positions[i] = r.position;
        self.publications.extend(r.publications);
    }
}

async fn poll(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    raw: Option<&str>,
) -> Result<Response, ApiError> {
    let cfg = &app.config.poll;
    let q = Query::parse(raw, cfg.max_channels)?;
    let who =
        identity::authenticate(app, headers, q.get("token"), TRANSPORT, Some(peer), false).await?;
    // Reading a channel's publications is subscribing to it, one request at a time.
    for ch in &q.channels {
        if !who.auth.grants(ch) {
            app.hub
                .authorize(&who.auth.identity, ch, Action::Subscribe)
                .inspect_err(|e| {
                    identity::audit_denial(app, TRANSPORT, Some(peer), &who.auth, ch, e);
                })?;
        }
        identity::subscribe_hook(app, TRANSPORT, Some(peer), &who.auth, ch).await?;
    }
    let limit = q.number(
        "limit",
        100.min(cfg.max_batch as u64),
        1..=cfg.max_batch as u64,
    )? as usize;
    // `wait` above the maximum is capped, not refused.
    let wait = q.number("wait", 0, 0..=u64::MAX)?.min(cfg.max_wait_seconds);
    let since = q
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map(|c| cursor::parse(c, q.channels.len()))
        .transpose()?;

    let mut batch = Batch {
        positions: Vec::with_capacity(q.channels.len()),
        publications: Vec::new(),
        unrecovered: Vec::new(),
        more: false,
    };
    let Some(since) = since else {
        for ch in &q.channels {
            batch
                .positions
                .push(app.hub.read_since(ch, None, 0).await?.position);
        }
        return Ok(reply(app, &q, &batch));
    };
    batch.positions = since.clone();
    for (i, ch) in q.channels.iter().enumerate() {
        let left = limit.saturating_sub(batch.publications.len());
        if left == 0 {
            batch.more = true;
            break;
        }
        batch.take(i, app.hub.read_since(ch, Some(&since[i]), left).await?);
    }
    if wait == 0 || !batch.publications.is_empty() || !batch.unrecovered.is_empty() || batch.more {
        return Ok(reply(app, &q, &batch));
    }

    // Nothing yet: wait as a short-lived subscriber, starting exactly at the cursor.
    let _gauge = ConnectionGauge::new(&app.metrics, "long_poll");
    let client = app
        .hub
        .connect_as(who.auth.identity.clone(), who.auth.info.clone())?;
    for (i, ch) in q.channels.iter().enumerate() {
        let options = SubscribeOptions {
            since: Some(batch.positions[i].clone()),
            join_leave: false,
            // Checked above.
            granted: true,
        };
        batch.take(i, client.subscribe(ch, options).await?);
    }
    if batch.publications.is_empty() && batch.unrecovered.is_empty() {
        // A wait never outlasts the token: the next request must bring a valid one.
        let mut wait = Duration::from_secs(wait);
        if let Some(exp) = who.auth.expires {
            wait = wait.min(super::sse::until(exp));
        }
        tokio::select! {
            () = client.outbox().notified() => {}
            () = tokio::time::sleep(wait) => {}
            () = app.shutdown.cancelled() => {}
        }
        let mut deliveries = Vec::new();
        client.outbox().drain(&mut deliveries);
        for d in deliveries {
            if let Delivery::Publication(p) = d
                && let Some(i) = q.channels.iter().position(|c| c == &p.channel)
            {
                if batch.publications.len() >= limit {
                    batch.more = true;
                    break;
                }
                batch.positions[i] = StreamPosition {
                    offset: p.offset,
                    epoch: p.epoch.clone(),
                };
                batch.publications.push(p);
            }
        }
    }
    Ok(reply(app, &q, &batch))
}

fn reply(app: &AppState, q: &Query, batch: &Batch) -> Response {
    let mut b = Vec::with_capacity(64 + batch.publications.len() * 160);
    b.extend_from_slice(b"{\"cursor\":\"");
    b.extend_from_slice(cursor::format(&batch.positions).as_bytes());
    b.extend_from_slice(b"\",\"publications\":[");
    for (i, p) in batch.publications.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        switchboard_proto::publication_json(&mut b, p);
    }
    b.extend_from_slice(b"],\"unrecovered\":[");
    for (n, i) in batch.unrecovered.iter().enumerate() {
        if n > 0 {
            b.push(b',');
        }
        // Channel names need no escaping.
        b.push(b'"');
        b.extend_from_slice(q.channels[*i].as_str().as_bytes());
        b.push(b'"');
    }
    b.extend_from_slice(format!("],\"more\":{}}}", batch.more).as_bytes());
    let label = TransportLabel {
        transport: TRANSPORT,
    };
    app.metrics
        .messages_out
        .get_or_create(&label)
        .inc_by(batch.publications.len() as u64);
    app.metrics
        .bytes_out
        .get_or_create(&label)
        .inc_by(b.len() as u64);
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        b,
    )
        .into_response()
}

/// `POST /poll` with `{"channel":…,"data":…}` or `"b64"`: publish for HTTP clients.
pub(crate) async fn publish(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let result: Result<Response, ApiError> = async {
        let token = raw.as_deref().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned())
        });
        let who = identity::authenticate(
            &app,
            &headers,
            token.as_deref(),
            TRANSPORT,
            Some(peer),
            true,
        )
        .await?;
        let body: PublishBody =
            crate::api::parse_body(&body, app.config.websocket.max_message_bytes)?;
        let channel = crate::api::channel(&body.channel)?;
        let data = crate::api::payload(body.data, body.b64)?;
        // A publish from a browser is a client publish: the channel's rules apply.
        app.hub
            .authorize(&who.auth.identity, &channel, Action::Publish)
            .inspect_err(|e| {
                identity::audit_denial(&app, TRANSPORT, Some(peer), &who.auth, &channel, e);
            })?;
        app.limits
            .publication(who.auth.user())
            .map_err(|l| crate::limits::refused(&app, TRANSPORT, Some(peer), who.auth.user(), l))?;
        let data =
            identity::publish_hook(&app, TRANSPORT, Some(peer), &who.auth, &channel, data).await?;
        let pos = app
            .hub
            .publish(&channel, data, identity::http_publisher(&who.auth))
            .await?;
        app.metrics
            .publications
            .get_or_create(&TransportLabel {
                transport: TRANSPORT,
            })
            .inc();
        Ok(crate::api::json(
            &serde_json::json!({"offset": pos.offset, "epoch": pos.epoch}),
        ))
    }
    .await;
    if let Err(e) = &result {
        app.metrics.error(TRANSPORT, e.code.as_str());
    }
    result
}
