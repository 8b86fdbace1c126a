//! Engine.IO v4 / Socket.IO v5 conformance, against a real server started with the conformance
//! preset (`[socketio] conformance = true`, as `serve --socketio-conformance`).
//!
//! The first two groups follow, case by case, the official test suites of
//! `socketio/engine.io-protocol` (`test-suite/test-suite.js`, raw Engine.IO echo server at
//! `/engine.io/`) and `socketio/socket.io-protocol` (`test-suite/test-suite.js`, Socket.IO at
//! `/socket.io/`): each test is named after its case and checks the same expectations, written
//! here in Rust. The last group is ours: bad input of every kind, and that a healthy session on
//! the same server does not notice it. `tests/socketio-official/run.sh` runs the official suites
//! themselves.
//!
//! Where the official suite relies on luck (a ping slipping in between two messages it reads
//! back to back), the tests here skip and answer Engine.IO pings instead; where the ping is the
//! expectation, they read it exactly. The tests named `bad_input_*` check docs/socketio.md's
//! error contract, which is stricter than the reference server in places (noted at each).
//!
//! `SOCKETIO_CONFORMANCE_TARGET=host:port` runs them against a server already listening there
//! instead, e.g. the reference Node.js servers configured as in the suites' READMEs (both on one
//! port: `engine.io` attached at `/engine.io/`, `socket.io` at `/socket.io/`); the few tests
//! that need our configuration or metrics then skip those parts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{net::TcpStream, sync::mpsc};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest},
};

/// The raw Engine.IO echo server of the conformance preset.
const EIO: &str = "/engine.io/";
/// The Socket.IO endpoint.
const SIO: &str = "/socket.io/";

/// The suites' `PING_INTERVAL` and `PING_TIMEOUT`, in milliseconds.
const PING_INTERVAL: u64 = 300;
const PING_TIMEOUT: u64 = 200;
/// The suites' `maxPayload`.
const MAX_PAYLOAD: usize = 1_000_000;

/// Longest wait for one expected message or response.
const STEP: Duration = Duration::from_secs(5);
/// The heartbeat cases' mocha timeout (`this.timeout(5000)`).
const HEARTBEAT_CASE: Duration = Duration::from_secs(5);
/// mocha's default per-case timeout, the bound of every other official case.
const MOCHA_DEFAULT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The server under test: started in-process with the conformance preset, or, when
/// `SOCKETIO_CONFORMANCE_TARGET=host:port` is set, one already running there (to check these
/// tests' expectations against another implementation, such as the reference Node.js servers
/// configured as in the suites' READMEs; the cases that need our configuration or metrics are
/// skipped then).
struct Target {
    server: Option<TestServer>,
    addr: String,
    client: reqwest::Client,
}

impl Target {
    fn external() -> Option<Self> {
        let addr = std::env::var("SOCKETIO_CONFORMANCE_TARGET").ok()?;
        Some(Self {
            server: None,
            addr,
            client: http(),
        })
    }

    async fn with(edit: impl FnOnce(&mut switchboard_server::Config)) -> Self {
        if let Some(t) = Self::external() {
            return t;
        }
        let server = TestServer::with(edit).await;
        Self {
            addr: server.addr.to_string(),
            server: Some(server),
            client: http(),
        }
    }

    fn is_external(&self) -> bool {
        self.server.is_none()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    async fn metrics(&self) -> Option<String> {
        Some(self.server.as_ref()?.metrics().await)
    }

    async fn stop(self) {
        if let Some(server) = self.server {
            server.stop().await;
        }
    }
}

async fn conformance_server() -> Target {
    Target::with(|c| {
        c.socketio.conformance = true;
    })
    .await
}

/// An HTTP client for one test (its pooled connections belong to the test's runtime). Plain
/// HTTP only: loading the platform's root certificates for every test costs more than the
/// suites' 300 ms ping interval on a slow machine.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_built_in_root_certs(false)
        .build()
        .expect("reqwest client")
}

/// An HTTP answer, read fully.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: String,
    headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// The body as JSON (the Engine.IO error bodies), `Null` when it is not JSON.
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends a request; `Err` when the connection failed or was cut before an answer.
async fn try_request(
    s: &Target,
    method: reqwest::Method,
    path_and_query: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> Result<Reply, reqwest::Error> {
    let mut req = s.client.request(method, s.url(path_and_query));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "text/plain;charset=UTF-8")
            .body(b);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.text().await?;
    Ok(Reply {
        status,
        body,
        headers,
    })
}

async fn request(
    s: &Target,
    method: reqwest::Method,
    path_and_query: &str,
    body: Option<Vec<u8>>,
) -> Reply {
    let first = try_request(s, method.clone(), path_and_query, body.clone(), &[]).await;
    let answer = match first {
        // A pooled connection the server closed after an earlier answer (a 413 that did not
        // read the body, say): once more on a new connection.
        Err(e) if e.is_request() || e.is_connect() => {
            let fresh = Target {
                server: None,
                addr: s.addr.clone(),
                client: http(),
            };
            try_request(&fresh, method.clone(), path_and_query, body, &[]).await
        }
        other => other,
    };
    answer.unwrap_or_else(|e| panic!("{method} {path_and_query}: expected an HTTP answer, got {e}"))
}

async fn get(s: &Target, path_and_query: &str) -> Reply {
    request(s, reqwest::Method::GET, path_and_query, None).await
}

async fn post(s: &Target, path_and_query: &str, body: &str) -> Reply {
    request(
        s,
        reqwest::Method::POST,
        path_and_query,
        Some(body.as_bytes().to_vec()),
    )
    .await
}

/// `base?EIO=4&transport=polling&sid=…`
fn polling(base: &str, sid: &str) -> String {
    format!("{base}?EIO=4&transport=polling&sid={sid}")
}

/// `base?EIO=4&transport=websocket&sid=…`
fn ws_with_sid(base: &str, sid: &str) -> String {
    format!("{base}?EIO=4&transport=websocket&sid={sid}")
}

/// Checks an Engine.IO handshake (`0{…}`) and returns its JSON.
fn check_handshake(what: &str, content: &str, upgrades: Value) -> Value {
    assert!(
        content.starts_with('0'),
        "{what}: expected the handshake to be an OPEN packet starting with \"0\", got {content:?}"
    );
    let value: Value = serde_json::from_str(&content[1..]).unwrap_or_else(|e| {
        panic!(
            "{what}: expected \"0\" then one JSON object (and nothing else), got {content:?}: {e}"
        )
    });
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("{what}: expected a JSON object after \"0\", got {value}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ],
        "{what}: expected exactly the keys sid, upgrades, pingInterval, pingTimeout, maxPayload in {value}"
    );
    assert!(
        value["sid"].as_str().is_some_and(|s| !s.is_empty()),
        "{what}: expected sid to be a non-empty string in {value}"
    );
    assert_eq!(value["upgrades"], upgrades, "{what}: upgrades in {value}");
    assert_eq!(
        value["pingInterval"], PING_INTERVAL,
        "{what}: expected pingInterval {PING_INTERVAL} (conformance preset) in {value}"
    );
    assert_eq!(
        value["pingTimeout"], PING_TIMEOUT,
        "{what}: expected pingTimeout {PING_TIMEOUT} (conformance preset) in {value}"
    );
    assert_eq!(
        value["maxPayload"], MAX_PAYLOAD,
        "{what}: expected maxPayload {MAX_PAYLOAD} in {value}"
    );
    value
}

/// The suites' `initLongPollingSession`: a polling handshake, its sid.
async fn open_polling(s: &Target, base: &str) -> String {
    let r = get(s, &format!("{base}?EIO=4&transport=polling")).await;
    assert_eq!(
        r.status, 200,
        "polling handshake at {base}: expected HTTP 200, got {} {:?}",
        r.status, r.body
    );
    let v = check_handshake(
        &format!("polling handshake at {base}"),
        &r.body,
        json!(["websocket"]),
    );
    v["sid"].as_str().expect("checked").to_owned()
}

/// A polling GET whose pings (`2`, answered with a POST of `3`) are taken out of the answer,
/// polling again when they were all it had: on a slow machine the 300 ms ping interval can
/// slip a ping in anywhere.
async fn get_answering_pings(s: &Target, base: &str, sid: &str) -> Reply {
    let deadline = Instant::now() + STEP;
    loop {
        let mut r = get(s, &polling(base, sid)).await;
        if r.status != 200 {
            return r;
        }
        let packets: Vec<&str> = r.body.split('\x1e').collect();
        let rest: Vec<&str> = packets.iter().copied().filter(|p| *p != "2").collect();
        if rest.len() < packets.len() {
            let pong = post(s, &polling(base, sid), "3").await;
            assert_eq!(pong.status, 200, "answering a ping: {pong:?}");
        }
        if !rest.is_empty() || Instant::now() > deadline {
            r.body = rest.join("\x1e");
            return r;
        }
    }
}

/// Checks an Engine.IO error answer: HTTP status, and the JSON body's code and message.
fn check_error(what: &str, r: &Reply, status: u16, code: u64, message: &str) {
    assert_eq!(
        (r.status, r.json()),
        (status, json!({"code": code, "message": message})),
        "{what}: expected HTTP {status} with {{\"code\":{code},\"message\":{message:?}}}, got {} {:?}",
        r.status,
        r.body
    );
}

/// Reads polling GETs until `count` packets other than pings and no-ops arrived (answering
/// pings with a POST of `3`), and returns them.
async fn poll_packets(s: &Target, base: &str, sid: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + STEP;
    let mut got = Vec::new();
    while got.len() < count {
        assert!(
            Instant::now() < deadline,
            "polling {base} sid {sid}: expected {count} packets within {STEP:?}, got {got:?}"
        );
        let r = get(s, &polling(base, sid)).await;
        assert_eq!(
            r.status, 200,
            "polling GET: expected HTTP 200 while waiting for {count} packets (got so far: {got:?}), got {} {:?}",
            r.status, r.body
        );
        for p in r.body.split('\x1e') {
            if p == "6" {
                continue;
            }
            if p == "2" {
                let pong = post(s, &polling(base, sid), "3").await;
                assert_eq!(pong.status, 200, "answering a ping: {pong:?}");
            } else {
                got.push(p.to_owned());
            }
        }
    }
    assert_eq!(
        got.len(),
        count,
        "polling: expected exactly {count} packets, got {got:?}"
    );
    got
}

/// What a WebSocket gives next.
#[derive(Debug, Clone, PartialEq)]
enum Frame {
    Text(String),
    Binary(Vec<u8>),
    /// The connection ended: the close code when there was a close frame.
    Closed(Option<u16>),
}

/// A raw WebSocket to the Engine.IO endpoint: it answers nothing by itself (WebSocket-level
/// pings aside), like the suites' `ws` client.
struct Sock {
    inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
    ended: bool,
    what: String,
}

impl Sock {
    /// Connects; `Err` holds the HTTP status when the upgrade is refused (0 when the
    /// connection failed otherwise).
    async fn try_connect(s: &Target, path_and_query: &str) -> Result<Self, u16> {
        let req = s
            .ws_url(path_and_query)
            .into_client_request()
            .expect("ws request");
        match tokio::time::timeout(STEP, tokio_tungstenite::connect_async(req)).await {
            Err(_) => panic!("WebSocket {path_and_query}: no upgrade answer within {STEP:?}"),
            Ok(Ok((inner, _))) => Ok(Self {
                inner,
                ended: false,
                what: path_and_query.to_owned(),
            }),
            Ok(Err(tungstenite::Error::Http(resp))) => Err(resp.status().as_u16()),
            Ok(Err(_)) => Err(0),
        }
    }

    async fn connect(s: &Target, path_and_query: &str) -> Self {
        Self::try_connect(s, path_and_query)
            .await
            .unwrap_or_else(|status| {
                panic!(
                    "WebSocket {path_and_query}: expected the upgrade to succeed, got HTTP {status}"
                )
            })
    }

    /// A new Engine.IO session over WebSocket at `base`; checks and returns the handshake.
    async fn open(s: &Target, base: &str) -> (Self, Value) {
        let mut ws = Self::connect(s, &format!("{base}?EIO=4&transport=websocket")).await;
        let first = ws.recv_text("the Engine.IO handshake").await;
        let v = check_handshake(&format!("WebSocket handshake at {base}"), &first, json!([]));
        (ws, v)
    }

    /// The next frame within `within`, `None` on timeout.
    async fn next_within(&mut self, within: Duration) -> Option<Frame> {
        if self.ended {
            return Some(Frame::Closed(None));
        }
        loop {
            let next = tokio::time::timeout(within, self.inner.next()).await.ok()?;
            let frame = match next {
                Some(Ok(Message::Text(t))) => Frame::Text(t.to_string()),
                Some(Ok(Message::Binary(b))) => Frame::Binary(b.to_vec()),
                Some(Ok(Message::Close(f))) => {
                    self.ended = true;
                    Frame::Closed(Some(f.map_or(1005, |f| f.code.into())))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    self.ended = true;
                    Frame::Closed(None)
                }
            };
            return Some(frame);
        }
    }

    /// The next frame, exactly (pings included).
    async fn recv(&mut self, expecting: &str) -> Frame {
        self.next_within(STEP).await.unwrap_or_else(|| {
            panic!(
                "{}: expected {expecting}, got nothing within {STEP:?}",
                self.what
            )
        })
    }

    async fn recv_text(&mut self, expecting: &str) -> String {
        match self.recv(expecting).await {
            Frame::Text(t) => t,
            other => panic!("{}: expected {expecting} (text), got {other:?}", self.what),
        }
    }

    /// The next frame that is not an Engine.IO ping; pings are answered with `3`.
    async fn recv_skipping_pings(&mut self, expecting: &str) -> Frame {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = self.next_within(left).await.unwrap_or_else(|| {
                panic!(
                    "{}: expected {expecting}, got nothing but pings within {STEP:?}",
                    self.what
                )
            });
            if frame == Frame::Text("2".into()) {
                self.send_text("3").await;
                continue;
            }
            return frame;
        }
    }

    /// The next frame other than a ping must be this text.
    async fn expect_text(&mut self, expected: &str) {
        let got = self
            .recv_skipping_pings(&format!("text {expected:?}"))
            .await;
        assert_eq!(
            got,
            Frame::Text(expected.to_owned()),
            "{}: expected text {expected:?}",
            self.what
        );
    }

    /// The next frame other than a ping must be these bytes.
    async fn expect_binary(&mut self, expected: &[u8]) {
        let got = self
            .recv_skipping_pings(&format!("binary {expected:?}"))
            .await;
        assert_eq!(
            got,
            Frame::Binary(expected.to_vec()),
            "{}: expected a binary message {expected:?}",
            self.what
        );
    }

    /// The next frame other than a ping, as text.
    async fn next_text(&mut self, expecting: &str) -> String {
        match self.recv_skipping_pings(expecting).await {
            Frame::Text(t) => t,
            other => panic!("{}: expected {expecting} (text), got {other:?}", self.what),
        }
    }

    async fn send_text(&mut self, text: &str) {
        if let Err(e) = self.inner.send(Message::Text(text.to_owned().into())).await {
            panic!("{}: sending {text:?} failed: {e}", self.what);
        }
    }

    async fn send_binary(&mut self, bytes: &[u8]) {
        if let Err(e) = self
            .inner
            .send(Message::Binary(bytes.to_vec().into()))
            .await
        {
            panic!("{}: sending {} bytes failed: {e}", self.what, bytes.len());
        }
    }

    /// Waits for the connection to end within `within`, ignoring what arrives before;
    /// returns the close code (`None` when it ended without a close frame).
    async fn expect_closed(&mut self, within: Duration, why: &str) -> Option<u16> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left).await {
                Some(Frame::Closed(code)) => return code,
                Some(other) => seen.push(other),
                None => panic!(
                    "{}: expected the server to close the connection within {within:?} ({why}); it is still open, after sending {seen:?}",
                    self.what
                ),
            }
        }
    }

    /// Nothing but pings (answered) arrives for `during`, and the connection stays open.
    async fn expect_quiet(&mut self, during: Duration, why: &str) {
        let deadline = Instant::now() + during;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.next_within(left).await {
                None => return,
                Some(Frame::Text(t)) if t == "2" => self.send_text("3").await,
                Some(other) => panic!(
                    "{}: expected nothing but pings for {during:?} ({why}), got {other:?}",
                    self.what
                ),
            }
        }
    }

    async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.close(None)).await;
    }
}

/// The socket.io suite's `initSocketIOConnection`: WebSocket, CONNECT to `/`, its answer and
/// the `auth` event.
async fn sio_connect(s: &Target) -> Sock {
    let (mut ws, _) = Sock::open(s, SIO).await;
    ws.send_text("40").await;
    let connect = ws.next_text("the CONNECT answer to 40").await;
    check_connect_answer(&connect, "40");
    ws.expect_text(r#"42["auth",{}]"#).await;
    ws
}

/// Checks `<prefix>{"sid":"…"}` and returns the Socket.IO sid.
fn check_connect_answer(got: &str, prefix: &str) -> String {
    let rest = got.strip_prefix(prefix).unwrap_or_else(|| {
        panic!("expected the CONNECT answer to start with {prefix:?}, got {got:?}")
    });
    let v: Value = serde_json::from_str(rest)
        .unwrap_or_else(|e| panic!("expected {prefix:?} then a JSON object, got {got:?}: {e}"));
    let keys: Vec<&String> = v
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        ["sid"],
        "expected the CONNECT answer's payload to have exactly the key sid, got {got:?}"
    );
    v["sid"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("expected sid to be a non-empty string in {got:?}"))
        .to_owned()
}

fn sleep_ms(ms: u64) -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_millis(ms))
}

// ---------------------------------------------------------------------------------------------
// socketio/engine.io-protocol test-suite: "Engine.IO protocol", against the echo server at
// /engine.io/
// ---------------------------------------------------------------------------------------------

/// handshake › HTTP long-polling › successfully opens a session
#[tokio::test]
async fn eio_handshake_polling_successfully_opens_a_session() {
    let s = conformance_server().await;
    let r = get(&s, "/engine.io/?EIO=4&transport=polling").await;
    assert_eq!(r.status, 200, "polling handshake: {r:?}");
    check_handshake("polling handshake", &r.body, json!(["websocket"]));
    s.stop().await;
}

/// handshake › HTTP long-polling › fails with an invalid 'EIO' query parameter
#[tokio::test]
async fn eio_handshake_polling_fails_with_an_invalid_eio_query_parameter() {
    let s = conformance_server().await;
    for q in ["transport=polling", "EIO=abc&transport=polling"] {
        let r = get(&s, &format!("{EIO}?{q}")).await;
        assert_eq!(r.status, 400, "GET {EIO}?{q}: expected HTTP 400, got {r:?}");
    }
    s.stop().await;
}

/// handshake › HTTP long-polling › fails with an invalid 'transport' query parameter
#[tokio::test]
async fn eio_handshake_polling_fails_with_an_invalid_transport_query_parameter() {
    let s = conformance_server().await;
    for q in ["EIO=4", "EIO=4&transport=abc"] {
        let r = get(&s, &format!("{EIO}?{q}")).await;
        assert_eq!(r.status, 400, "GET {EIO}?{q}: expected HTTP 400, got {r:?}");
    }
    s.stop().await;
}

/// handshake › HTTP long-polling › fails with an invalid request method
#[tokio::test]
async fn eio_handshake_polling_fails_with_an_invalid_request_method() {
    let s = conformance_server().await;
    for m in [reqwest::Method::POST, reqwest::Method::PUT] {
        let r = request(&s, m.clone(), "/engine.io/?EIO=4&transport=polling", None).await;
        assert_eq!(
            r.status, 400,
            "{m} handshake without sid: expected HTTP 400, got {r:?}"
        );
    }
    s.stop().await;
}

/// handshake › WebSocket › successfully opens a session
#[tokio::test]
async fn eio_handshake_websocket_successfully_opens_a_session() {
    let s = conformance_server().await;
    let (ws, _) = Sock::open(&s, EIO).await;
    ws.close().await;
    s.stop().await;
}

/// A WebSocket upgrade that must not open a session: refused, or closed before any packet.
async fn expect_ws_refused(s: &Target, path_and_query: &str) {
    match Sock::try_connect(s, path_and_query).await {
        Err(status) => assert!(
            status == 400 || status == 0,
            "WebSocket {path_and_query}: expected the upgrade to be refused with HTTP 400, got HTTP {status}"
        ),
        Ok(mut ws) => {
            let f = ws.recv("the connection to be closed").await;
            assert!(
                matches!(f, Frame::Closed(_)),
                "WebSocket {path_and_query}: expected the upgrade to be refused (HTTP 400) or the connection closed, got {f:?}"
            );
        }
    }
}

/// handshake › WebSocket › fails with an invalid 'EIO' query parameter
#[tokio::test]
async fn eio_handshake_websocket_fails_with_an_invalid_eio_query_parameter() {
    let s = conformance_server().await;
    expect_ws_refused(&s, "/engine.io/?transport=websocket").await;
    expect_ws_refused(&s, "/engine.io/?EIO=abc&transport=websocket").await;
    s.stop().await;
}

/// handshake › WebSocket › fails with an invalid 'transport' query parameter
#[tokio::test]
async fn eio_handshake_websocket_fails_with_an_invalid_transport_query_parameter() {
    let s = conformance_server().await;
    expect_ws_refused(&s, "/engine.io/?EIO=4").await;
    expect_ws_refused(&s, "/engine.io/?EIO=4&transport=abc").await;
    s.stop().await;
}

/// POST `body`, expecting `ok`, then GET, expecting `body` echoed.
async fn echo_over_polling(s: &Target, body: &str) {
    let sid = open_polling(s, EIO).await;
    let r = post(s, &polling(EIO, &sid), body).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "ok"),
        "POST {body:?}: expected HTTP 200 \"ok\""
    );
    let r = get_answering_pings(s, EIO, &sid).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, body),
        "GET after POST {body:?}: expected the echo server to send the same payload back (in one response)"
    );
}

/// message › HTTP long-polling › sends and receives a payload containing one plain text packet
#[tokio::test]
async fn eio_message_polling_sends_and_receives_a_payload_containing_one_plain_text_packet() {
    let s = conformance_server().await;
    echo_over_polling(&s, "4hello").await;
    s.stop().await;
}

/// message › HTTP long-polling › sends and receives a payload containing several plain text
/// packets
#[tokio::test]
async fn eio_message_polling_sends_and_receives_a_payload_containing_several_plain_text_packets() {
    let s = conformance_server().await;
    echo_over_polling(&s, "4test1\x1e4test2\x1e4test3").await;
    s.stop().await;
}

/// message › HTTP long-polling › sends and receives a payload containing plain text and binary
/// packets
#[tokio::test]
async fn eio_message_polling_sends_and_receives_a_payload_containing_plain_text_and_binary_packets()
{
    let s = conformance_server().await;
    echo_over_polling(&s, "4hello\x1ebAQIDBA==").await;
    s.stop().await;
}

/// message › HTTP long-polling › closes the session upon invalid packet format
#[tokio::test]
async fn eio_message_polling_closes_the_session_upon_invalid_packet_format() {
    let s = conformance_server().await;
    let sid = open_polling(&s, EIO).await;
    // The suite writes `expect(pushResponse.status).to.eql(400)` inside a try whose catch
    // ("node-fetch throws when the request is closed abnormally") also swallows a failed
    // expectation, so any answer passes; the reference server answers 200 "ok" and closes the
    // session. docs/socketio.md's 400 is checked in
    // bad_input_malformed_polling_bodies_close_the_session.
    if let Ok(r) = try_request(
        &s,
        reqwest::Method::POST,
        &polling(EIO, &sid),
        Some(b"abc".to_vec()),
        &[],
    )
    .await
    {
        assert!(
            r.status == 400 || r.status == 200,
            "POST \"abc\": expected HTTP 400 (or the reference server's 200), got {r:?}"
        );
    }
    let r = get(&s, &polling(EIO, &sid)).await;
    assert_eq!(
        r.status, 400,
        "GET after an invalid packet: expected HTTP 400 (session closed), got {r:?}"
    );
    s.stop().await;
}

/// Two GETs at once on one session: the first gets the close packet, the second an error, and
/// the session is gone.
async fn duplicate_poll(s: &Target, base: &str) {
    let sid = open_polling(s, base).await;
    let url = polling(base, &sid);
    let first = get(s, &url);
    let second = async {
        sleep_ms(5).await;
        get(s, &format!("{}&t=burst", polling(base, &sid))).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(
        (first.status, first.body.as_str()),
        (200, "1"),
        "the pending GET, when a second GET arrives: expected HTTP 200 with the CLOSE packet \"1\""
    );
    // The suite accepts 400 or 500 ("HTTP 400 seems more suitable"); docs/socketio.md says 400.
    assert!(
        second.status == 400 || second.status == 500,
        "the second concurrent GET: expected HTTP 400 (or 500), got {second:?}"
    );
    let r = get(s, &polling(base, &sid)).await;
    assert_eq!(
        r.status, 400,
        "GET after duplicate polls: expected HTTP 400 (session closed), got {r:?}"
    );
}

/// message › HTTP long-polling › closes the session upon duplicate poll requests
#[tokio::test]
async fn eio_message_polling_closes_the_session_upon_duplicate_poll_requests() {
    let s = conformance_server().await;
    duplicate_poll(&s, EIO).await;
    s.stop().await;
}

/// message › WebSocket › sends and receives a plain text packet
#[tokio::test]
async fn eio_message_websocket_sends_and_receives_a_plain_text_packet() {
    let s = conformance_server().await;
    let (mut ws, _) = Sock::open(&s, EIO).await;
    ws.send_text("4hello").await;
    ws.expect_text("4hello").await;
    ws.close().await;
    s.stop().await;
}

/// message › WebSocket › sends and receives a binary packet
#[tokio::test]
async fn eio_message_websocket_sends_and_receives_a_binary_packet() {
    let s = conformance_server().await;
    let (mut ws, _) = Sock::open(&s, EIO).await;
    ws.send_binary(&[1, 2, 3, 4]).await;
    ws.expect_binary(&[1, 2, 3, 4]).await;
    ws.close().await;
    s.stop().await;
}

/// message › WebSocket › closes the session upon invalid packet format
#[tokio::test]
async fn eio_message_websocket_closes_the_session_upon_invalid_packet_format() {
    let s = conformance_server().await;
    let (mut ws, _) = Sock::open(&s, EIO).await;
    ws.send_text("abc").await;
    ws.expect_closed(MOCHA_DEFAULT, "after the invalid packet \"abc\"")
        .await;
    s.stop().await;
}

/// The reference configuration of the socket.io suite: `connectTimeout: 1000`.
const REFERENCE_CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// Whether a session at `/socket.io/` that never CONNECTed was just `closed` by the connect
/// timeout: the socket.io suite's three ping/pong rounds (about 900 ms) race the reference
/// server's `connectTimeout: 1000` on a slow machine, and losing that race is not a failure.
fn connect_timeout_ended(base: &str, started: Instant, closed: bool) -> bool {
    closed && base == SIO && started.elapsed() >= REFERENCE_CONNECT_TIMEOUT
}

/// Three rounds: a long-polling GET gets the ping `2`, a POST of `3` is accepted.
async fn polling_ping_pong(s: &Target, base: &str) {
    let started = Instant::now();
    let sid = open_polling(s, base).await;
    for i in 0..3 {
        let r = get(s, &polling(base, &sid)).await;
        if connect_timeout_ended(base, started, r.status == 200 && r.body == "1") {
            return;
        }
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "2"),
            "round {i}: expected the long-polling GET to return the ping \"2\""
        );
        let r = post(s, &polling(base, &sid), "3").await;
        assert_eq!(r.status, 200, "round {i}: POST of the pong \"3\": {r:?}");
    }
    assert!(
        started.elapsed() < HEARTBEAT_CASE,
        "expected three ping/pong rounds within the case's {HEARTBEAT_CASE:?}, took {:?}",
        started.elapsed()
    );
}

/// heartbeat › HTTP long-polling › sends ping/pong packets
#[tokio::test]
async fn eio_heartbeat_polling_sends_ping_pong_packets() {
    let s = conformance_server().await;
    polling_ping_pong(&s, EIO).await;
    s.stop().await;
}

/// Without pongs, a polling session is gone after pingInterval + pingTimeout.
async fn polling_ping_timeout(s: &Target, base: &str) {
    let sid = open_polling(s, base).await;
    // The suite sleeps exactly PING_INTERVAL + PING_TIMEOUT; 25 ms of slack for scheduling.
    sleep_ms(PING_INTERVAL + PING_TIMEOUT + 25).await;
    let r = get(s, &polling(base, &sid)).await;
    assert_eq!(
        r.status,
        400,
        "GET {} ms after the handshake without a pong: expected HTTP 400 (session timed out after pingInterval {PING_INTERVAL} + pingTimeout {PING_TIMEOUT}), got {r:?}",
        PING_INTERVAL + PING_TIMEOUT + 25
    );
}

/// heartbeat › HTTP long-polling › closes the session upon ping timeout
#[tokio::test]
async fn eio_heartbeat_polling_closes_the_session_upon_ping_timeout() {
    let s = conformance_server().await;
    polling_ping_timeout(&s, EIO).await;
    s.stop().await;
}

/// Three pings over WebSocket, each answered.
async fn websocket_ping_pong(s: &Target, base: &str) {
    let started = Instant::now();
    let (mut ws, _) = Sock::open(s, base).await;
    for i in 0..3 {
        let f = ws.recv(&format!("ping {i}")).await;
        if connect_timeout_ended(base, started, matches!(f, Frame::Closed(_))) {
            return;
        }
        assert_eq!(
            f,
            Frame::Text("2".into()),
            "round {i}: expected the ping \"2\""
        );
        ws.send_text("3").await;
    }
    assert!(
        started.elapsed() < HEARTBEAT_CASE,
        "expected three ping/pong rounds within the case's {HEARTBEAT_CASE:?}, took {:?}",
        started.elapsed()
    );
    ws.close().await;
}

/// heartbeat › WebSocket › sends ping/pong packets
#[tokio::test]
async fn eio_heartbeat_websocket_sends_ping_pong_packets() {
    let s = conformance_server().await;
    websocket_ping_pong(&s, EIO).await;
    s.stop().await;
}

/// A WebSocket session that never answers pings is closed.
async fn websocket_ping_timeout(s: &Target, base: &str) {
    let (mut ws, _) = Sock::open(s, base).await;
    ws.expect_closed(HEARTBEAT_CASE, "no pong was ever sent")
        .await;
}

/// heartbeat › WebSocket › closes the session upon ping timeout
#[tokio::test]
async fn eio_heartbeat_websocket_closes_the_session_upon_ping_timeout() {
    let s = conformance_server().await;
    websocket_ping_timeout(&s, EIO).await;
    s.stop().await;
}

/// A pending GET gets the no-op `6` when the client POSTs the close packet `1`; the session is
/// gone afterwards.
async fn polling_forced_close(s: &Target, base: &str) {
    let sid = open_polling(s, base).await;
    let url = polling(base, &sid);
    let (pending, closing) = tokio::join!(get(s, &url), post(s, &url, "1"));
    assert_eq!(
        closing.status, 200,
        "POST of the close packet \"1\": {closing:?}"
    );
    assert_eq!(
        (pending.status, pending.body.as_str()),
        (200, "6"),
        "the pending GET when the client sends CLOSE: expected HTTP 200 with the NOOP packet \"6\""
    );
    let r = get(s, &polling(base, &sid)).await;
    assert_eq!(
        r.status, 400,
        "GET after CLOSE: expected HTTP 400 (session closed), got {r:?}"
    );
}

/// close › HTTP long-polling › forcefully closes the session
#[tokio::test]
async fn eio_close_polling_forcefully_closes_the_session() {
    let s = conformance_server().await;
    polling_forced_close(&s, EIO).await;
    s.stop().await;
}

async fn websocket_forced_close(s: &Target, base: &str) {
    let (mut ws, _) = Sock::open(s, base).await;
    ws.send_text("1").await;
    ws.expect_closed(MOCHA_DEFAULT, "the client sent the CLOSE packet \"1\"")
        .await;
}

/// close › WebSocket › forcefully closes the session
#[tokio::test]
async fn eio_close_websocket_forcefully_closes_the_session() {
    let s = conformance_server().await;
    websocket_forced_close(&s, EIO).await;
    s.stop().await;
}

/// Polling session, WebSocket with its sid, probe `2probe` → `3probe`, the pending poll ends
/// with `6`, upgrade `5`.
async fn upgrade(s: &Target, base: &str) -> (Sock, String) {
    let sid = open_polling(s, base).await;
    let mut ws = Sock::connect(s, &ws_with_sid(base, &sid)).await;
    ws.send_text("2probe").await;
    let f = ws.recv("the probe answer").await;
    assert_eq!(
        f,
        Frame::Text("3probe".into()),
        "expected \"3probe\" in answer to \"2probe\""
    );
    let r = get(s, &polling(base, &sid)).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "6"),
        "GET during the upgrade: expected HTTP 200 with the NOOP packet \"6\" to end the long-polling request cleanly"
    );
    ws.send_text("5").await;
    (ws, sid)
}

/// upgrade › successfully upgrades from HTTP long-polling to WebSocket
#[tokio::test]
async fn eio_upgrade_successfully_upgrades_from_http_long_polling_to_websocket() {
    let s = conformance_server().await;
    let (mut ws, _) = upgrade(&s, EIO).await;
    ws.send_text("4hello").await;
    ws.expect_text("4hello").await;
    ws.close().await;
    s.stop().await;
}

/// Upgrade without waiting for `3probe`; returns the socket and the sid.
async fn hasty_upgrade(s: &Target, base: &str) -> (Sock, String) {
    let sid = open_polling(s, base).await;
    let mut ws = Sock::connect(s, &ws_with_sid(base, &sid)).await;
    ws.send_text("2probe").await;
    ws.send_text("5").await;
    // The suite lets the server handle both before its next request; so do we, without reading.
    sleep_ms(50).await;
    (ws, sid)
}

/// upgrade › ignores HTTP requests with same sid after upgrade
#[tokio::test]
async fn eio_upgrade_ignores_http_requests_with_same_sid_after_upgrade() {
    let s = conformance_server().await;
    let (mut ws, sid) = hasty_upgrade(&s, EIO).await;
    let r = get(&s, &polling(EIO, &sid)).await;
    assert_eq!(
        r.status, 400,
        "polling GET after the upgrade to WebSocket: expected HTTP 400, got {r:?}"
    );
    ws.expect_text("3probe").await;
    ws.send_text("4hello").await;
    ws.expect_text("4hello").await;
    ws.close().await;
    s.stop().await;
}

/// upgrade › ignores WebSocket connection with same sid after upgrade
#[tokio::test]
async fn eio_upgrade_ignores_websocket_connection_with_same_sid_after_upgrade() {
    let s = conformance_server().await;
    let (mut ws, sid) = hasty_upgrade(&s, EIO).await;
    expect_ws_refused(&s, &ws_with_sid(EIO, &sid)).await;
    ws.expect_text("3probe").await;
    ws.send_text("4hello").await;
    ws.expect_text("4hello").await;
    ws.close().await;
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// socketio/socket.io-protocol test-suite: "Engine.IO protocol", at /socket.io/
// ---------------------------------------------------------------------------------------------

/// Engine.IO protocol › handshake › HTTP long-polling › should successfully open a session
#[tokio::test]
async fn sio_engineio_handshake_polling_should_successfully_open_a_session() {
    let s = conformance_server().await;
    let r = get(&s, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(r.status, 200, "polling handshake: {r:?}");
    check_handshake("polling handshake", &r.body, json!(["websocket"]));
    s.stop().await;
}

/// Engine.IO protocol › handshake › HTTP long-polling › should fail with an invalid 'EIO'
/// query parameter
#[tokio::test]
async fn sio_engineio_handshake_polling_should_fail_with_an_invalid_eio_query_parameter() {
    let s = conformance_server().await;
    for q in ["transport=polling", "EIO=abc&transport=polling"] {
        let r = get(&s, &format!("{SIO}?{q}")).await;
        assert_eq!(r.status, 400, "GET {SIO}?{q}: expected HTTP 400, got {r:?}");
    }
    s.stop().await;
}

/// Engine.IO protocol › handshake › HTTP long-polling › should fail with an invalid
/// 'transport' query parameter
#[tokio::test]
async fn sio_engineio_handshake_polling_should_fail_with_an_invalid_transport_query_parameter() {
    let s = conformance_server().await;
    for q in ["EIO=4", "EIO=4&transport=abc"] {
        let r = get(&s, &format!("{SIO}?{q}")).await;
        assert_eq!(r.status, 400, "GET {SIO}?{q}: expected HTTP 400, got {r:?}");
    }
    s.stop().await;
}

/// Engine.IO protocol › handshake › HTTP long-polling › should fail with an invalid request
/// method
#[tokio::test]
async fn sio_engineio_handshake_polling_should_fail_with_an_invalid_request_method() {
    let s = conformance_server().await;
    for m in [reqwest::Method::POST, reqwest::Method::PUT] {
        let r = request(&s, m.clone(), "/socket.io/?EIO=4&transport=polling", None).await;
        assert_eq!(
            r.status, 400,
            "{m} handshake without sid: expected HTTP 400, got {r:?}"
        );
    }
    s.stop().await;
}

/// Engine.IO protocol › handshake › WebSocket › should successfully open a session
#[tokio::test]
async fn sio_engineio_handshake_websocket_should_successfully_open_a_session() {
    let s = conformance_server().await;
    let (ws, _) = Sock::open(&s, SIO).await;
    ws.close().await;
    s.stop().await;
}

/// Engine.IO protocol › handshake › WebSocket › should fail with an invalid 'EIO' query
/// parameter
#[tokio::test]
async fn sio_engineio_handshake_websocket_should_fail_with_an_invalid_eio_query_parameter() {
    let s = conformance_server().await;
    expect_ws_refused(&s, "/socket.io/?transport=websocket").await;
    expect_ws_refused(&s, "/socket.io/?EIO=abc&transport=websocket").await;
    s.stop().await;
}

/// Engine.IO protocol › handshake › WebSocket › should fail with an invalid 'transport' query
/// parameter
#[tokio::test]
async fn sio_engineio_handshake_websocket_should_fail_with_an_invalid_transport_query_parameter() {
    let s = conformance_server().await;
    expect_ws_refused(&s, "/socket.io/?EIO=4").await;
    expect_ws_refused(&s, "/socket.io/?EIO=4&transport=abc").await;
    s.stop().await;
}

/// Engine.IO protocol › heartbeat › HTTP long-polling › should send ping/pong packets
#[tokio::test]
async fn sio_engineio_heartbeat_polling_should_send_ping_pong_packets() {
    let s = conformance_server().await;
    polling_ping_pong(&s, SIO).await;
    s.stop().await;
}

/// Engine.IO protocol › heartbeat › HTTP long-polling › should close the session upon ping
/// timeout
#[tokio::test]
async fn sio_engineio_heartbeat_polling_should_close_the_session_upon_ping_timeout() {
    let s = conformance_server().await;
    polling_ping_timeout(&s, SIO).await;
    s.stop().await;
}

/// Engine.IO protocol › heartbeat › WebSocket › should send ping/pong packets
#[tokio::test]
async fn sio_engineio_heartbeat_websocket_should_send_ping_pong_packets() {
    let s = conformance_server().await;
    websocket_ping_pong(&s, SIO).await;
    s.stop().await;
}

/// Engine.IO protocol › heartbeat › WebSocket › should close the session upon ping timeout
#[tokio::test]
async fn sio_engineio_heartbeat_websocket_should_close_the_session_upon_ping_timeout() {
    let s = conformance_server().await;
    websocket_ping_timeout(&s, SIO).await;
    s.stop().await;
}

/// Engine.IO protocol › close › HTTP long-polling › should forcefully close the session
#[tokio::test]
async fn sio_engineio_close_polling_should_forcefully_close_the_session() {
    let s = conformance_server().await;
    polling_forced_close(&s, SIO).await;
    s.stop().await;
}

/// Engine.IO protocol › close › WebSocket › should forcefully close the session
#[tokio::test]
async fn sio_engineio_close_websocket_should_forcefully_close_the_session() {
    let s = conformance_server().await;
    websocket_forced_close(&s, SIO).await;
    s.stop().await;
}

/// Engine.IO protocol › upgrade › should successfully upgrade from HTTP long-polling to
/// WebSocket
#[tokio::test]
async fn sio_engineio_upgrade_should_successfully_upgrade_from_http_long_polling_to_websocket() {
    let s = conformance_server().await;
    let (mut ws, _) = upgrade(&s, SIO).await;
    // The suite stops here; the upgraded session must stay usable (pings answered).
    ws.expect_quiet(
        Duration::from_millis(PING_INTERVAL + 100),
        "after the upgrade",
    )
    .await;
    ws.close().await;
    s.stop().await;
}

/// Engine.IO protocol › upgrade › should ignore HTTP requests with same sid after upgrade
#[tokio::test]
async fn sio_engineio_upgrade_should_ignore_http_requests_with_same_sid_after_upgrade() {
    let s = conformance_server().await;
    let (ws, sid) = hasty_upgrade(&s, SIO).await;
    let r = get(&s, &polling(SIO, &sid)).await;
    assert_eq!(
        r.status, 400,
        "polling GET after the upgrade to WebSocket: expected HTTP 400, got {r:?}"
    );
    ws.close().await;
    s.stop().await;
}

/// Engine.IO protocol › upgrade › should ignore WebSocket connection with same sid after
/// upgrade
#[tokio::test]
async fn sio_engineio_upgrade_should_ignore_websocket_connection_with_same_sid_after_upgrade() {
    let s = conformance_server().await;
    let (mut ws, sid) = hasty_upgrade(&s, SIO).await;
    expect_ws_refused(&s, &ws_with_sid(SIO, &sid)).await;
    ws.expect_text("3probe").await;
    ws.close().await;
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// socketio/socket.io-protocol test-suite: "Socket.IO protocol"
// ---------------------------------------------------------------------------------------------

/// CONNECT with `packet`; expects the answer with `prefix` + `{"sid"}` then the `auth` event.
async fn connect_case(packet: &str, prefix: &str, auth_event: &str) {
    let s = conformance_server().await;
    let (mut ws, _) = Sock::open(&s, SIO).await;
    ws.send_text(packet).await;
    let answer = ws
        .next_text(&format!("the CONNECT answer to {packet:?}"))
        .await;
    check_connect_answer(&answer, prefix);
    ws.expect_text(auth_event).await;
    ws.close().await;
    s.stop().await;
}

/// Socket.IO protocol › connect › should allow connection to the main namespace
#[tokio::test]
async fn sio_connect_should_allow_connection_to_the_main_namespace() {
    connect_case("40", "40", r#"42["auth",{}]"#).await;
}

/// Socket.IO protocol › connect › should allow connection to the main namespace with a payload
#[tokio::test]
async fn sio_connect_should_allow_connection_to_the_main_namespace_with_a_payload() {
    connect_case(
        r#"40{"token":"123"}"#,
        "40",
        r#"42["auth",{"token":"123"}]"#,
    )
    .await;
}

/// Socket.IO protocol › connect › should allow connection to a custom namespace
#[tokio::test]
async fn sio_connect_should_allow_connection_to_a_custom_namespace() {
    connect_case("40/custom,", "40/custom,", r#"42/custom,["auth",{}]"#).await;
}

/// Socket.IO protocol › connect › should allow connection to a custom namespace with a payload
#[tokio::test]
async fn sio_connect_should_allow_connection_to_a_custom_namespace_with_a_payload() {
    connect_case(
        r#"40/custom,{"token":"abc"}"#,
        "40/custom,",
        r#"42/custom,["auth",{"token":"abc"}]"#,
    )
    .await;
}

/// Socket.IO protocol › connect › should disallow connection to an unknown namespace
#[tokio::test]
async fn sio_connect_should_disallow_connection_to_an_unknown_namespace() {
    let s = conformance_server().await;
    let (mut ws, _) = Sock::open(&s, SIO).await;
    // No comma after the namespace, as in the suite.
    ws.send_text("40/random").await;
    ws.expect_text(r#"44/random,{"message":"Invalid namespace"}"#)
        .await;
    ws.close().await;
    s.stop().await;
}

/// Socket.IO protocol › connect › should disallow connection with an invalid handshake
#[tokio::test]
async fn sio_connect_should_disallow_connection_with_an_invalid_handshake() {
    let s = conformance_server().await;
    let (mut ws, _) = Sock::open(&s, SIO).await;
    ws.send_text("4abc").await;
    ws.expect_closed(MOCHA_DEFAULT, "after the invalid Socket.IO packet \"4abc\"")
        .await;
    s.stop().await;
}

/// Socket.IO protocol › connect › should close the connection if no handshake is received
#[tokio::test]
async fn sio_connect_should_close_the_connection_if_no_handshake_is_received() {
    let s = conformance_server().await;
    let (mut ws, _) = Sock::open(&s, SIO).await;
    ws.expect_closed(
        MOCHA_DEFAULT,
        "no CONNECT packet was sent (and, as in the suite, no pong either)",
    )
    .await;
    s.stop().await;
}

/// Socket.IO protocol › disconnect › should disconnect from the main namespace
#[tokio::test]
async fn sio_disconnect_should_disconnect_from_the_main_namespace() {
    let s = conformance_server().await;
    let mut ws = sio_connect(&s).await;
    ws.send_text("41").await;
    // Nothing answers a client's DISCONNECT; the Engine.IO session lives on, so the next
    // message is a ping.
    let f = ws.recv("the next ping after DISCONNECT").await;
    assert_eq!(
        f,
        Frame::Text("2".into()),
        "after \"41\": expected no answer and the Engine.IO session to stay open (next message a ping \"2\")"
    );
    ws.close().await;
    s.stop().await;
}

/// Socket.IO protocol › disconnect › should connect then disconnect from a custom namespace
#[tokio::test]
async fn sio_disconnect_should_connect_then_disconnect_from_a_custom_namespace() {
    let s = conformance_server().await;
    let mut ws = sio_connect(&s).await;
    let f = ws.recv("a ping").await;
    assert_eq!(f, Frame::Text("2".into()), "expected a ping \"2\"");
    ws.send_text("3").await;
    // No comma after the namespace, as in the suite.
    ws.send_text("40/custom").await;
    let answer = ws.next_text("the CONNECT answer to \"40/custom\"").await;
    check_connect_answer(&answer, "40/custom,");
    ws.expect_text(r#"42/custom,["auth",{}]"#).await;
    ws.send_text("41/custom").await;
    ws.send_text(r#"42["message","message to main namespace"]"#)
        .await;
    ws.expect_text(r#"42["message-back","message to main namespace"]"#)
        .await;
    ws.close().await;
    s.stop().await;
}

/// Socket.IO protocol › message › should send a plain-text packet
#[tokio::test]
async fn sio_message_should_send_a_plain_text_packet() {
    let s = conformance_server().await;
    let mut ws = sio_connect(&s).await;
    ws.send_text(r#"42["message",1,"2",{"3":[true]}]"#).await;
    ws.expect_text(r#"42["message-back",1,"2",{"3":[true]}]"#)
        .await;
    ws.close().await;
    s.stop().await;
}

/// Socket.IO protocol › message › should send a packet with binary attachments
#[tokio::test]
async fn sio_message_should_send_a_packet_with_binary_attachments() {
    let s = conformance_server().await;
    let mut ws = sio_connect(&s).await;
    ws.send_text(r#"452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        .await;
    ws.send_binary(&[1, 2, 3]).await;
    ws.send_binary(&[4, 5, 6]).await;
    ws.expect_text(
        r#"452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    )
    .await;
    ws.expect_binary(&[1, 2, 3]).await;
    ws.expect_binary(&[4, 5, 6]).await;
    ws.close().await;
    s.stop().await;
}

/// Socket.IO protocol › message › should send a plain-text packet with an ack
#[tokio::test]
async fn sio_message_should_send_a_plain_text_packet_with_an_ack() {
    let s = conformance_server().await;
    let mut ws = sio_connect(&s).await;
    ws.send_text(r#"42456["message-with-ack",1,"2",{"3":[false]}]"#)
        .await;
    ws.expect_text(r#"43456[1,"2",{"3":[false]}]"#).await;
    ws.close().await;
    s.stop().await;
}

/// Socket.IO protocol › message › should send a packet with binary attachments and an ack
#[tokio::test]
async fn sio_message_should_send_a_packet_with_binary_attachments_and_an_ack() {
    let s = conformance_server().await;
    let mut ws = sio_connect(&s).await;
    ws.send_text(
        r#"452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    )
    .await;
    ws.send_binary(&[1, 2, 3]).await;
    ws.send_binary(&[4, 5, 6]).await;
    ws.expect_text(r#"462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        .await;
    ws.expect_binary(&[1, 2, 3]).await;
    ws.expect_binary(&[4, 5, 6]).await;
    ws.close().await;
    s.stop().await;
}

/// A connected socket sends `packet`; the server must close the connection.
async fn closes_upon(packet: &str) {
    let s = conformance_server().await;
    let mut ws = sio_connect(&s).await;
    ws.send_text(packet).await;
    ws.expect_closed(
        MOCHA_DEFAULT,
        &format!("after the invalid packet {packet:?}"),
    )
    .await;
    s.stop().await;
}

/// Socket.IO protocol › message › should close the connection upon invalid format (unknown
/// packet type)
#[tokio::test]
async fn sio_message_should_close_the_connection_upon_invalid_format_unknown_packet_type() {
    closes_upon("4abc").await;
}

/// Socket.IO protocol › message › should close the connection upon invalid format (invalid
/// payload format)
#[tokio::test]
async fn sio_message_should_close_the_connection_upon_invalid_format_invalid_payload_format() {
    closes_upon("42{}").await;
}

/// Socket.IO protocol › message › should close the connection upon invalid format (invalid ack
/// id)
#[tokio::test]
async fn sio_message_should_close_the_connection_upon_invalid_format_invalid_ack_id() {
    closes_upon(r#"42abc["message-with-ack",1,"2",{"3":[false]}]"#).await;
}

// ---------------------------------------------------------------------------------------------
// Ours: the conformance server's settings, the docs' error contract, bad input, isolation
// ---------------------------------------------------------------------------------------------

/// The reference server the socket.io suite was written against has `connectTimeout: 1000`
/// (socket.io-protocol README, "Test suite"); answering pings must not keep a socket that never
/// CONNECTs alive.
#[tokio::test]
async fn sio_ours_connect_timeout_closes_a_session_that_answers_pings_but_never_connects() {
    let s = conformance_server().await;
    let (mut ws, _) = Sock::open(&s, SIO).await;
    let started = Instant::now();
    let deadline = started + MOCHA_DEFAULT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ws.next_within(left).await {
            Some(Frame::Closed(_)) => break,
            Some(Frame::Text(t)) if t == "2" => ws.send_text("3").await,
            Some(other) => panic!("expected only pings before the connect timeout, got {other:?}"),
            None => panic!(
                "expected the session to be closed by the connect timeout (the reference conformance server uses connectTimeout 1000 ms) within {MOCHA_DEFAULT:?} although it answers pings; it is still open"
            ),
        }
    }
    s.stop().await;
}

/// The `/engine.io/` echo server and `/socket.io/` give every session its own sid.
#[tokio::test]
async fn eio_ours_every_handshake_gets_a_new_sid() {
    let s = conformance_server().await;
    let a = open_polling(&s, EIO).await;
    let b = open_polling(&s, EIO).await;
    let c = open_polling(&s, SIO).await;
    assert!(
        a != b && b != c && a != c,
        "expected three different sids, got {a}, {b}, {c}"
    );
    s.stop().await;
}

/// A long-polling GET is held until there is something to send, then gets it at once.
#[tokio::test]
async fn eio_ours_a_pending_poll_receives_a_packet_posted_meanwhile() {
    let s = conformance_server().await;
    let sid = open_polling(&s, EIO).await;
    let url = polling(EIO, &sid);
    let (pending, posted) = tokio::join!(get(&s, &url), async {
        sleep_ms(50).await;
        post(&s, &url, "4meanwhile").await
    });
    assert_eq!(posted.status, 200, "POST: {posted:?}");
    // A ping may have ended the held GET first.
    let pending = if pending.status == 200 && pending.body == "2" {
        let pong = post(&s, &url, "3").await;
        assert_eq!(pong.status, 200, "answering a ping: {pong:?}");
        get_answering_pings(&s, EIO, &sid).await
    } else {
        pending
    };
    assert_eq!(
        (pending.status, pending.body.as_str()),
        (200, "4meanwhile"),
        "the held GET: expected the echo of the packet posted while it was pending"
    );
    s.stop().await;
}

/// CORS for any origin (the reference conformance servers use `cors: { origin: "*" }`).
#[tokio::test]
async fn eio_ours_cors_allows_any_origin() {
    let s = conformance_server().await;
    for base in [EIO, SIO] {
        let r = try_request(
            &s,
            reqwest::Method::GET,
            &format!("{base}?EIO=4&transport=polling"),
            None,
            &[("origin", "https://elsewhere.example")],
        )
        .await
        .expect("handshake with an Origin");
        assert_eq!(r.status, 200, "handshake with an Origin at {base}: {r:?}");
        let allow = r.header("access-control-allow-origin");
        assert!(
            allow == Some("*") || allow == Some("https://elsewhere.example"),
            "{base}: expected Access-Control-Allow-Origin \"*\" (or the origin) for any origin, got {allow:?}"
        );
        let r = try_request(
            &s,
            reqwest::Method::OPTIONS,
            &format!("{base}?EIO=4&transport=polling"),
            None,
            &[
                ("origin", "https://elsewhere.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ],
        )
        .await
        .expect("preflight");
        assert!(
            r.status == 200 || r.status == 204,
            "{base}: expected the CORS preflight to succeed (200/204), got {r:?}"
        );
        assert!(
            r.header("access-control-allow-origin").is_some(),
            "{base}: expected Access-Control-Allow-Origin on the preflight answer, got {r:?}"
        );
    }
    s.stop().await;
}

/// docs/socketio.md, Errors: unknown transport → 400 `{"code":0,"message":"Transport unknown"}`.
#[tokio::test]
async fn bad_input_unknown_transport_is_code_0() {
    let s = conformance_server().await;
    for base in [EIO, SIO] {
        for q in [
            "EIO=4",
            "EIO=4&transport=abc",
            "EIO=4&transport=flashsocket",
        ] {
            let r = get(&s, &format!("{base}?{q}")).await;
            check_error(&format!("GET {base}?{q}"), &r, 400, 0, "Transport unknown");
        }
    }
    s.stop().await;
}

/// docs/socketio.md, Errors: unknown sid → 400 `{"code":1,"message":"Session ID unknown"}`, for
/// GET, POST and a WebSocket upgrade.
#[tokio::test]
async fn bad_input_unknown_sid_is_code_1() {
    let s = conformance_server().await;
    for base in [EIO, SIO] {
        let r = get(&s, &polling(base, "no-such-sid")).await;
        check_error(
            &format!("GET {base} unknown sid"),
            &r,
            400,
            1,
            "Session ID unknown",
        );
        let r = post(&s, &polling(base, "no-such-sid"), "4hello").await;
        check_error(
            &format!("POST {base} unknown sid"),
            &r,
            400,
            1,
            "Session ID unknown",
        );
        expect_ws_refused(&s, &ws_with_sid(base, "no-such-sid")).await;
        // A session's sid is unknown once the session is closed.
        let sid = open_polling(&s, base).await;
        let r = post(&s, &polling(base, &sid), "1").await;
        assert_eq!(r.status, 200, "POST of CLOSE: {r:?}");
        let r = get(&s, &polling(base, &sid)).await;
        check_error(
            &format!("GET {base} closed session"),
            &r,
            400,
            1,
            "Session ID unknown",
        );
    }
    s.stop().await;
}

/// docs/socketio.md, Errors: a handshake with another method than GET → 400 code 2.
#[tokio::test]
async fn bad_input_handshake_method_is_code_2() {
    let s = conformance_server().await;
    for base in [EIO, SIO] {
        for m in [
            reqwest::Method::POST,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
        ] {
            let r = request(
                &s,
                m.clone(),
                &format!("{base}?EIO=4&transport=polling"),
                None,
            )
            .await;
            check_error(
                &format!("{m} {base} handshake"),
                &r,
                400,
                2,
                "Bad handshake method",
            );
        }
    }
    s.stop().await;
}

/// docs/socketio.md, Errors: `EIO` other than 4 → 400 code 5, over polling and WebSocket (the
/// reference server accepts such a WebSocket upgrade, then closes it).
#[tokio::test]
async fn bad_input_wrong_eio_is_code_5() {
    let s = conformance_server().await;
    for base in [EIO, SIO] {
        for q in [
            "EIO=3&transport=polling",
            "EIO=5&transport=polling",
            "EIO=abc&transport=polling",
            "transport=polling",
        ] {
            let r = get(&s, &format!("{base}?{q}")).await;
            check_error(
                &format!("GET {base}?{q}"),
                &r,
                400,
                5,
                "Unsupported protocol version",
            );
        }
        for q in ["EIO=3&transport=websocket", "transport=websocket"] {
            let path = format!("{base}?{q}");
            match Sock::try_connect(&s, &path).await {
                Err(status) => assert_eq!(
                    status, 400,
                    "WebSocket {path}: expected the upgrade refused with HTTP 400"
                ),
                Ok(_) => panic!(
                    "WebSocket {path}: expected the upgrade refused with HTTP 400 (docs/socketio.md; the reference server accepts it, then closes), it was accepted"
                ),
            }
        }
    }
    s.stop().await;
}

/// docs/socketio.md, Errors: a second concurrent GET → 400 `{"code":3,"message":"Bad request"}`,
/// and the session is closed. (The reference server answers 400 with an empty body.)
#[tokio::test]
async fn bad_input_second_concurrent_get_is_code_3_and_closes_the_session() {
    let s = conformance_server().await;
    for base in [EIO, SIO] {
        let sid = open_polling(&s, base).await;
        let url = polling(base, &sid);
        let (first, second) = tokio::join!(get(&s, &url), async {
            sleep_ms(20).await;
            get(&s, &url).await
        });
        assert_eq!(
            (first.status, first.body.as_str()),
            (200, "1"),
            "{base}: the first GET: expected the CLOSE packet"
        );
        check_error(
            &format!("{base} second concurrent GET"),
            &second,
            400,
            3,
            "Bad request",
        );
        let r = get(&s, &polling(base, &sid)).await;
        assert_eq!(r.status, 400, "{base}: GET after: expected 400, got {r:?}");
    }
    // The whole duplicate-poll case again at /socket.io/ (the socket.io suite has none).
    duplicate_poll(&s, SIO).await;
    s.stop().await;
}

/// docs/socketio.md, Errors: transport mismatch (polling request on an upgraded session) →
/// 400 code 3.
#[tokio::test]
async fn bad_input_polling_on_an_upgraded_session_is_code_3() {
    let s = conformance_server().await;
    for base in [EIO, SIO] {
        let (ws, sid) = upgrade(&s, base).await;
        // Let the server handle "5" before the next request.
        sleep_ms(50).await;
        let r = get(&s, &polling(base, &sid)).await;
        check_error(
            &format!("{base}: GET over polling after the upgrade"),
            &r,
            400,
            3,
            "Bad request",
        );
        let r = post(&s, &polling(base, &sid), "4late").await;
        check_error(
            &format!("{base}: POST over polling after the upgrade"),
            &r,
            400,
            3,
            "Bad request",
        );
        ws.close().await;
    }
    s.stop().await;
}

/// Malformed Engine.IO packets in a polling body close the session (docs: bad body → 400; the
/// reference server answers 200 "ok", then closes the session).
#[tokio::test]
async fn bad_input_malformed_polling_bodies_close_the_session() {
    let s = conformance_server().await;
    for base in [EIO, SIO] {
        for body in ["abc", "7", "4hello\x1ex"] {
            let sid = open_polling(&s, base).await;
            if let Ok(r) = try_request(
                &s,
                reqwest::Method::POST,
                &polling(base, &sid),
                Some(body.as_bytes().to_vec()),
                &[],
            )
            .await
            {
                assert_eq!(
                    r.status, 400,
                    "{base}: POST {body:?}: expected HTTP 400 (bad body), got {r:?}"
                );
            }
            let r = get(&s, &polling(base, &sid)).await;
            assert_eq!(
                r.status, 400,
                "{base}: GET after POST {body:?}: expected 400 (session closed), got {r:?}"
            );
        }
    }
    s.stop().await;
}

/// Malformed Engine.IO packets over WebSocket close the connection.
#[tokio::test]
async fn bad_input_malformed_websocket_packets_close_the_connection() {
    let s = conformance_server().await;
    for base in [EIO, SIO] {
        for packet in ["abc", "7", "9hello", "x4hello"] {
            let (mut ws, _) = Sock::open(&s, base).await;
            ws.send_text(packet).await;
            ws.expect_closed(
                MOCHA_DEFAULT,
                &format!("{base}: after the packet {packet:?}"),
            )
            .await;
        }
    }
    s.stop().await;
}

/// Malformed Socket.IO packets close the connection, over WebSocket and polling.
#[tokio::test]
async fn bad_input_malformed_socketio_packets_close_the_session() {
    let s = conformance_server().await;
    let packets = [
        r#"42["message""#,
        "42[]",
        r#"42"message""#,
        "47",
        "4x",
        r#"43abc[1]"#,
        r#"40/custom,{"token":"#,
        r#"42/custom["message"]"#,
    ];
    for packet in packets {
        let mut ws = sio_connect(&s).await;
        ws.send_text(packet).await;
        ws.expect_closed(MOCHA_DEFAULT, &format!("after the packet {packet:?}"))
            .await;
    }
    for packet in packets {
        let sid = open_polling(&s, SIO).await;
        let r = post(&s, &polling(SIO, &sid), "40").await;
        assert_eq!(r.status, 200, "POST 40: {r:?}");
        let got = poll_packets(&s, SIO, &sid, 2).await;
        check_connect_answer(&got[0], "40");
        let _ = try_request(
            &s,
            reqwest::Method::POST,
            &polling(SIO, &sid),
            Some(packet.as_bytes().to_vec()),
            &[],
        )
        .await;
        // The session is closed: a GET gets the CLOSE packet once, or an error. Pings are
        // answered, so only the bad packet can have closed it.
        let deadline = Instant::now() + MOCHA_DEFAULT;
        loop {
            let r = get(&s, &polling(SIO, &sid)).await;
            if r.status == 400 {
                break;
            }
            assert!(
                r.status == 200 && r.body.split('\x1e').all(|p| matches!(p, "1" | "2" | "6")),
                "polling: after the packet {packet:?}: expected the session closed (CLOSE packet or HTTP 400), got {r:?}"
            );
            if r.body.split('\x1e').any(|p| p == "1") {
                break;
            }
            if r.body.split('\x1e').any(|p| p == "2") {
                let pong = post(&s, &polling(SIO, &sid), "3").await;
                if pong.status == 400 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "polling: after the packet {packet:?}: expected the session closed within {MOCHA_DEFAULT:?}, it still answers"
            );
        }
    }
    s.stop().await;
}

/// Binary attachments whose count lies: the session is closed.
#[tokio::test]
async fn bad_input_lying_attachment_counts_close_the_connection() {
    let s = conformance_server().await;
    // A placeholder for an attachment the count does not announce.
    let mut ws = sio_connect(&s).await;
    ws.send_text(r#"451-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        .await;
    ws.send_binary(&[1]).await;
    ws.expect_closed(
        MOCHA_DEFAULT,
        "placeholder num 1 with an attachment count of 1",
    )
    .await;

    // More binary messages than announced.
    let mut ws = sio_connect(&s).await;
    ws.send_text(r#"451-["message",{"_placeholder":true,"num":0}]"#)
        .await;
    ws.send_binary(&[1]).await;
    ws.send_binary(&[2]).await;
    ws.expect_closed(
        MOCHA_DEFAULT,
        "a binary message when no attachment was announced",
    )
    .await;

    // A text packet while attachments are still due.
    let mut ws = sio_connect(&s).await;
    ws.send_text(r#"452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        .await;
    ws.send_binary(&[1]).await;
    ws.send_text(r#"42["message","too early"]"#).await;
    ws.expect_closed(
        MOCHA_DEFAULT,
        "a text packet while an attachment was still due",
    )
    .await;

    // A binary message with no binary packet at all.
    let mut ws = sio_connect(&s).await;
    ws.send_binary(&[1, 2, 3]).await;
    ws.expect_closed(MOCHA_DEFAULT, "a binary message out of the blue")
        .await;

    // A count that is not a number, or not followed by "-".
    for packet in [
        r#"451["message",{"_placeholder":true,"num":0}]"#,
        r#"45x-["message",{"_placeholder":true,"num":0}]"#,
    ] {
        let mut ws = sio_connect(&s).await;
        ws.send_text(packet).await;
        ws.expect_closed(MOCHA_DEFAULT, &format!("the packet {packet:?}"))
            .await;
    }
    s.stop().await;
}

/// docs/socketio.md: invalid namespace → CONNECT_ERROR, and the connection stays usable.
#[tokio::test]
async fn bad_input_invalid_namespace_is_a_connect_error_and_the_connection_stays() {
    let s = conformance_server().await;
    let (mut ws, _) = Sock::open(&s, SIO).await;
    ws.send_text(r#"40/nope,{"token":"x"}"#).await;
    ws.expect_text(r#"44/nope,{"message":"Invalid namespace"}"#)
        .await;
    ws.send_text("40/custom,").await;
    let answer = ws.next_text("the CONNECT answer for /custom").await;
    check_connect_answer(&answer, "40/custom,");
    ws.expect_text(r#"42/custom,["auth",{}]"#).await;
    ws.send_text("40").await;
    let answer = ws.next_text("the CONNECT answer for /").await;
    check_connect_answer(&answer, "40");
    ws.expect_text(r#"42["auth",{}]"#).await;
    ws.send_text(r#"42["message","still here"]"#).await;
    ws.expect_text(r#"42["message-back","still here"]"#).await;
    ws.close().await;
    s.stop().await;
}

/// docs/socketio.md: a polling body over `max_payload_bytes` → HTTP 413 and the session is
/// closed; a body at the limit is fine.
#[tokio::test]
async fn bad_input_oversize_polling_body_is_413_and_closes_the_session() {
    let s = conformance_server().await;
    let sid = open_polling(&s, EIO).await;
    let at_limit = format!("4{}", "a".repeat(MAX_PAYLOAD - 1));
    let r = post(&s, &polling(EIO, &sid), &at_limit).await;
    assert_eq!(
        r.status, 200,
        "POST of exactly maxPayload ({MAX_PAYLOAD}) bytes: expected HTTP 200, got {} {:?}",
        r.status, r.body
    );
    let r = get_answering_pings(&s, EIO, &sid).await;
    assert!(
        r.status == 200 && r.body == at_limit,
        "GET: expected the {MAX_PAYLOAD}-byte packet echoed, got HTTP {} with {} bytes",
        r.status,
        r.body.len()
    );

    for base in [EIO, SIO] {
        let sid = open_polling(&s, base).await;
        let over = format!("4{}", "a".repeat(MAX_PAYLOAD));
        if let Ok(r) = try_request(
            &s,
            reqwest::Method::POST,
            &polling(base, &sid),
            Some(over.into_bytes()),
            &[],
        )
        .await
        {
            assert_eq!(
                r.status, 413,
                "{base}: POST of maxPayload + 1 bytes: expected HTTP 413, got {} {:?}",
                r.status, r.body
            );
        }
        let r = get(&s, &polling(base, &sid)).await;
        assert_eq!(
            r.status, 400,
            "{base}: GET after an oversize POST: expected HTTP 400 (session closed), got {r:?}"
        );
    }
    s.stop().await;
}

/// docs/socketio.md: a WebSocket message over `max_payload_bytes` → close 1009; one at the
/// limit is fine.
#[tokio::test]
async fn bad_input_oversize_websocket_message_is_closed_with_1009() {
    let s = conformance_server().await;
    let (mut ws, _) = Sock::open(&s, EIO).await;
    let at_limit = format!("4{}", "a".repeat(MAX_PAYLOAD - 1));
    ws.send_text(&at_limit).await;
    match ws
        .recv_skipping_pings("the echo of the message at the limit")
        .await
    {
        Frame::Text(t) => assert!(
            t == at_limit,
            "expected the {MAX_PAYLOAD}-byte message echoed, got {} bytes",
            t.len()
        ),
        other => panic!("expected the {MAX_PAYLOAD}-byte message echoed, got {other:?}"),
    }
    ws.close().await;

    for base in [EIO, SIO] {
        let (mut ws, _) = Sock::open(&s, base).await;
        ws.send_text(&format!("4{}", "a".repeat(MAX_PAYLOAD))).await;
        let code = ws
            .expect_closed(STEP, "a message of maxPayload + 1 bytes")
            .await;
        assert_eq!(
            code,
            Some(1009),
            "{base}: a message of maxPayload + 1 bytes: expected close code 1009 (message too big)"
        );
        let (mut ws, _) = Sock::open(&s, base).await;
        ws.send_binary(&vec![7; MAX_PAYLOAD + 1]).await;
        let code = ws
            .expect_closed(STEP, "a binary message of maxPayload + 1 bytes")
            .await;
        assert_eq!(
            code,
            Some(1009),
            "{base}: a binary message of maxPayload + 1 bytes: expected close code 1009"
        );
    }
    s.stop().await;
}

/// docs/socketio.md: past `max_sessions` the handshake gets 503.
#[tokio::test]
async fn bad_input_too_many_sessions_is_503() {
    let s = Target::with(|c| {
        c.socketio.conformance = true;
        c.socketio.max_sessions = 2;
    })
    .await;
    if s.is_external() {
        return;
    }
    let _a = open_polling(&s, SIO).await;
    let (_b, _) = Sock::open(&s, SIO).await;
    let r = get(&s, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(
        r.status, 503,
        "a third session with max_sessions = 2: expected HTTP 503, got {r:?}"
    );
    match Sock::try_connect(&s, "/socket.io/?EIO=4&transport=websocket").await {
        Err(status) => assert_eq!(
            status, 503,
            "a third WebSocket session with max_sessions = 2: expected HTTP 503"
        ),
        Ok(mut ws) => {
            let f = ws.recv("a refusal").await;
            panic!(
                "a third WebSocket session with max_sessions = 2: expected HTTP 503, the upgrade was accepted (then {f:?})"
            );
        }
    }
    s.stop().await;
}

/// docs/socketio.md: past `max_buffered_packets` waiting for the next polling GET, the session
/// is dropped (a slow client does not make the server buffer forever).
#[tokio::test]
async fn bad_input_a_polling_client_past_max_buffered_packets_is_dropped() {
    let s = Target::with(|c| {
        c.socketio.conformance = true;
        c.socketio.max_buffered_packets = 5;
    })
    .await;
    if s.is_external() {
        return;
    }
    let sid = open_polling(&s, SIO).await;
    let r = post(&s, &polling(SIO, &sid), "40").await;
    assert_eq!(r.status, 200, "POST 40: {r:?}");
    let got = poll_packets(&s, SIO, &sid, 2).await;
    check_connect_answer(&got[0], "40");
    let burst: Vec<String> = (0..20).map(|i| format!(r#"42["message",{i}]"#)).collect();
    // Each event is answered with message-back: 20 packets for a queue of 5.
    let _ = try_request(
        &s,
        reqwest::Method::POST,
        &polling(SIO, &sid),
        Some(burst.join("\x1e").into_bytes()),
        &[],
    )
    .await;
    sleep_ms(100).await;
    let r = get(&s, &polling(SIO, &sid)).await;
    let closed = r.status == 400 || (r.status == 200 && r.body.split('\x1e').any(|p| p == "1"));
    assert!(
        closed,
        "20 answers queued for a polling client with max_buffered_packets = 5: expected the session dropped (HTTP 400 or a CLOSE packet), got HTTP {} with {:?}",
        r.status,
        r.body.chars().take(200).collect::<String>()
    );
    s.stop().await;
}

/// Sums `switchboard_errors_total{transport="socketio",…}` over its codes.
fn socketio_errors(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("switchboard_errors_total{") && l.contains("transport=\"socketio\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A session kept alive in the background while the test does other things: pings are
/// answered, everything else is handed over.
struct Live {
    what: &'static str,
    out: mpsc::UnboundedSender<String>,
    got: mpsc::UnboundedReceiver<Frame>,
    task: tokio::task::JoinHandle<()>,
}

impl Live {
    /// A WebSocket session, its pings answered.
    fn websocket(what: &'static str, mut ws: Sock) -> Self {
        let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
        let (got_tx, got) = mpsc::unbounded_channel::<Frame>();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = out_rx.recv() => match m {
                        Some(text) => {
                            if ws.inner.send(Message::Text(text.into())).await.is_err() {
                                let _ = got_tx.send(Frame::Closed(None));
                                return;
                            }
                        }
                        None => {
                            ws.close().await;
                            return;
                        }
                    },
                    f = ws.next_within(Duration::from_secs(3600)) => match f {
                        Some(Frame::Text(t)) if t == "2" => {
                            let _ = ws.inner.send(Message::Text("3".into())).await;
                        }
                        Some(Frame::Closed(code)) => {
                            let _ = got_tx.send(Frame::Closed(code));
                            return;
                        }
                        Some(other) => {
                            let _ = got_tx.send(other);
                        }
                        None => {}
                    },
                }
            }
        });
        Self {
            what,
            out,
            got,
            task,
        }
    }

    /// A long-polling session: a GET always pending, pings answered.
    fn polling(what: &'static str, s: &Target, base: &str, sid: &str) -> Self {
        let url = s.url(&polling(base, sid));
        let client = s.client.clone();
        let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
        let (got_tx, got) = mpsc::unbounded_channel::<Frame>();
        let task = tokio::spawn(async move {
            let client = client;
            let sender = {
                let client = client.clone();
                let url = url.clone();
                let got_tx = got_tx.clone();
                tokio::spawn(async move {
                    while let Some(body) = out_rx.recv().await {
                        let ok = client
                            .post(&url)
                            .body(body)
                            .send()
                            .await
                            .is_ok_and(|r| r.status() == 200);
                        if !ok {
                            let _ = got_tx.send(Frame::Closed(None));
                            return;
                        }
                    }
                })
            };
            loop {
                let reply = match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => r.text().await.ok(),
                    _ => None,
                };
                let Some(body) = reply else {
                    let _ = got_tx.send(Frame::Closed(None));
                    break;
                };
                for p in body.split('\x1e') {
                    match p {
                        "2" => {
                            let ok = client
                                .post(&url)
                                .body("3")
                                .send()
                                .await
                                .is_ok_and(|r| r.status() == 200);
                            if !ok {
                                let _ = got_tx.send(Frame::Closed(None));
                            }
                        }
                        "6" => {}
                        "1" => {
                            let _ = got_tx.send(Frame::Closed(None));
                        }
                        other => {
                            let _ = got_tx.send(Frame::Text(other.to_owned()));
                        }
                    }
                }
            }
            sender.abort();
        });
        Self {
            what,
            out,
            got,
            task,
        }
    }

    fn send(&self, text: &str) {
        self.out.send(text.to_owned()).unwrap_or_else(|_| {
            panic!(
                "{}: expected the session to be alive to send {text:?}, it ended",
                self.what
            )
        });
    }

    async fn expect(&mut self, expected: Frame) {
        let got = tokio::time::timeout(STEP, self.got.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{}: expected {expected:?}, got nothing within {STEP:?}",
                    self.what
                )
            });
        assert_eq!(
            got,
            Some(expected.clone()),
            "{}: expected {expected:?} (the session must be unaffected by the other clients' bad input)",
            self.what
        );
    }

    async fn expect_text(&mut self, expected: &str) {
        self.expect(Frame::Text(expected.to_owned())).await;
    }

    /// Nothing arrived so far and the session is still open.
    fn expect_nothing_yet(&mut self) {
        match self.got.try_recv() {
            Err(mpsc::error::TryRecvError::Empty) => {}
            other => panic!(
                "{}: expected the session to be open with nothing pending, got {other:?}",
                self.what
            ),
        }
    }

    async fn end(self) {
        drop(self.out);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

/// Bad input of every kind, while a healthy WebSocket session (connected to `/` and `/custom`)
/// and a healthy polling session on the same server keep working; the errors are counted.
#[tokio::test]
async fn bad_input_leaves_a_healthy_session_on_the_same_server_unaffected() {
    let s = conformance_server().await;
    let before = s.metrics().await.map(|m| socketio_errors(&m));

    let mut ws = sio_connect(&s).await;
    ws.send_text("40/custom,").await;
    let answer = ws.next_text("the CONNECT answer for /custom").await;
    check_connect_answer(&answer, "40/custom,");
    ws.expect_text(r#"42/custom,["auth",{}]"#).await;
    let mut healthy = Live::websocket("the healthy WebSocket session", ws);

    let polling_sid = open_polling(&s, SIO).await;
    let r = post(&s, &polling(SIO, &polling_sid), "40").await;
    assert_eq!(r.status, 200, "healthy polling session: POST 40: {r:?}");
    let got = poll_packets(&s, SIO, &polling_sid, 2).await;
    check_connect_answer(&got[0], "40");
    assert_eq!(
        got[1], r#"42["auth",{}]"#,
        "healthy polling session: auth event"
    );
    let mut healthy_polling = Live::polling("the healthy polling session", &s, SIO, &polling_sid);

    // HTTP errors.
    for q in [
        "EIO=4&transport=abc",
        "EIO=3&transport=polling",
        "EIO=4&transport=polling&sid=nope",
    ] {
        let r = get(&s, &format!("{SIO}?{q}")).await;
        assert_eq!(r.status, 400, "GET {SIO}?{q}: {r:?}");
    }
    let r = request(
        &s,
        reqwest::Method::PUT,
        "/socket.io/?EIO=4&transport=polling",
        None,
    )
    .await;
    assert_eq!(r.status, 400, "PUT handshake: {r:?}");
    duplicate_poll(&s, SIO).await;
    // Oversize bodies and messages.
    let sid = open_polling(&s, SIO).await;
    let _ = try_request(
        &s,
        reqwest::Method::POST,
        &polling(SIO, &sid),
        Some(vec![b'4'; MAX_PAYLOAD + 1]),
        &[],
    )
    .await;
    let (mut big, _) = Sock::open(&s, SIO).await;
    big.send_text(&format!("4{}", "a".repeat(MAX_PAYLOAD)))
        .await;
    big.expect_closed(STEP, "oversize message").await;
    // Malformed packets, lying attachments, invalid namespace, junk binary.
    for packet in ["abc", "4abc", "42{}", r#"42abc["message"]"#] {
        let mut bad = sio_connect(&s).await;
        bad.send_text(packet).await;
        bad.expect_closed(MOCHA_DEFAULT, &format!("after {packet:?}"))
            .await;
    }
    let mut bad = sio_connect(&s).await;
    bad.send_text(r#"451-["message",{"_placeholder":true,"num":3}]"#)
        .await;
    bad.send_binary(&[0]).await;
    bad.expect_closed(MOCHA_DEFAULT, "lying attachment count")
        .await;
    let mut bad = sio_connect(&s).await;
    bad.send_binary(&[1, 2, 3]).await;
    bad.expect_closed(MOCHA_DEFAULT, "a binary message out of the blue")
        .await;
    let (mut bad, _) = Sock::open(&s, SIO).await;
    bad.send_text("40/random,").await;
    bad.expect_text(r#"44/random,{"message":"Invalid namespace"}"#)
        .await;
    bad.close().await;

    // The healthy WebSocket session: both namespaces, events, acks; pings were answered all
    // along.
    healthy.expect_nothing_yet();
    healthy.send(r#"42["message","still fine"]"#);
    healthy
        .expect_text(r#"42["message-back","still fine"]"#)
        .await;
    healthy.send(r#"421["message-with-ack","ok"]"#);
    healthy.expect_text(r#"431["ok"]"#).await;
    healthy.send("41/custom,");
    healthy.send(r#"42["message","last"]"#);
    healthy.expect_text(r#"42["message-back","last"]"#).await;
    healthy.end().await;

    // The healthy polling session.
    healthy_polling.expect_nothing_yet();
    healthy_polling.send(r#"42["message","polling too"]"#);
    healthy_polling
        .expect_text(r#"42["message-back","polling too"]"#)
        .await;
    healthy_polling.end().await;

    if let (Some(before), Some(metrics)) = (before, s.metrics().await) {
        let after = socketio_errors(&metrics);
        assert!(
            after >= before + 10.0,
            "expected the bad input to be counted in switchboard_errors_total{{transport=\"socketio\",code}} (at least 10 more; before {before}, after {after})"
        );
    }
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Ours: Socket.IO over long-polling and across the upgrade (the suite only uses WebSocket)
// ---------------------------------------------------------------------------------------------

/// CONNECT, events, acks and binary attachments (`b` + base64) over long-polling.
#[tokio::test]
async fn sio_ours_events_acks_and_binary_over_polling() {
    let s = conformance_server().await;
    let sid = open_polling(&s, SIO).await;
    // Not `token`: that one is checked as a JWT outside the conformance cases.
    let r = post(&s, &polling(SIO, &sid), r#"40{"user":"123"}"#).await;
    assert_eq!(r.status, 200, "POST CONNECT: {r:?}");
    let got = poll_packets(&s, SIO, &sid, 2).await;
    check_connect_answer(&got[0], "40");
    assert_eq!(
        got[1], r#"42["auth",{"user":"123"}]"#,
        "auth event over polling"
    );

    let r = post(
        &s,
        &polling(SIO, &sid),
        "42[\"message\",1,\"2\",{\"3\":[true]}]\x1e42456[\"message-with-ack\",1,\"2\",{\"3\":[false]}]",
    )
    .await;
    assert_eq!(r.status, 200, "POST two events: {r:?}");
    let got = poll_packets(&s, SIO, &sid, 2).await;
    assert_eq!(
        got,
        [
            r#"42["message-back",1,"2",{"3":[true]}]"#,
            r#"43456[1,"2",{"3":[false]}]"#
        ],
        "events and ack over polling"
    );

    let r = post(
        &s,
        &polling(SIO, &sid),
        "452-789[\"message-with-ack\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]\x1ebAQID\x1ebBAUG",
    )
    .await;
    assert_eq!(r.status, 200, "POST binary event with ack: {r:?}");
    let got = poll_packets(&s, SIO, &sid, 3).await;
    assert_eq!(
        got,
        [
            r#"462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            "bAQID",
            "bBAUG"
        ],
        "binary ack over polling: attachments as b + base64"
    );

    let r = post(
        &s,
        &polling(SIO, &sid),
        "451-[\"message\",{\"_placeholder\":true,\"num\":0}]\x1ebAQIDBA==",
    )
    .await;
    assert_eq!(r.status, 200, "POST binary event: {r:?}");
    let got = poll_packets(&s, SIO, &sid, 2).await;
    assert_eq!(
        got,
        [
            r#"451-["message-back",{"_placeholder":true,"num":0}]"#,
            "bAQIDBA=="
        ],
        "binary event over polling"
    );

    // DISCONNECT from / keeps the Engine.IO session; CLOSE ends it.
    let r = post(&s, &polling(SIO, &sid), "41").await;
    assert_eq!(r.status, 200, "POST 41: {r:?}");
    let r = get(&s, &polling(SIO, &sid)).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "2"),
        "after 41: expected the session to stay and the next GET to get a ping"
    );
    let r = post(&s, &polling(SIO, &sid), "1").await;
    assert_eq!(r.status, 200, "POST 1: {r:?}");
    let r = get(&s, &polling(SIO, &sid)).await;
    assert_eq!(r.status, 400, "GET after CLOSE: {r:?}");
    s.stop().await;
}

/// A Socket.IO socket connected over polling keeps its namespaces across the upgrade.
#[tokio::test]
async fn sio_ours_a_socket_connected_over_polling_survives_the_upgrade() {
    let s = conformance_server().await;
    let sid = open_polling(&s, SIO).await;
    let r = post(&s, &polling(SIO, &sid), "40\x1e40/custom,").await;
    assert_eq!(r.status, 200, "POST two CONNECTs: {r:?}");
    let got = poll_packets(&s, SIO, &sid, 4).await;
    assert!(
        got.iter().all(|p| p.starts_with('4')),
        "expected only Socket.IO packets, got {got:?}"
    );
    assert!(
        got.contains(&r#"42["auth",{}]"#.to_owned())
            && got.contains(&r#"42/custom,["auth",{}]"#.to_owned()),
        "expected an auth event on / and /custom, got {got:?}"
    );
    let mut ws = Sock::connect(&s, &ws_with_sid(SIO, &sid)).await;
    ws.send_text("2probe").await;
    ws.expect_text("3probe").await;
    let r = get(&s, &polling(SIO, &sid)).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "6"),
        "GET during the upgrade: expected the NOOP packet"
    );
    ws.send_text("5").await;
    ws.send_text(r#"42["message","upgraded"]"#).await;
    ws.expect_text(r#"42["message-back","upgraded"]"#).await;
    ws.send_text(r#"42/custom,["message","nothing"]"#).await;
    ws.send_text(r#"4212["message-with-ack","a"]"#).await;
    ws.expect_text(r#"4312["a"]"#).await;
    ws.close().await;
    s.stop().await;
}

/// An upgrade that never sends `5` leaves the polling transport in charge (the probe socket is
/// dropped after the upgrade timeout, or when it closes).
#[tokio::test]
async fn eio_ours_an_abandoned_probe_leaves_polling_working() {
    let s = conformance_server().await;
    let sid = open_polling(&s, EIO).await;
    let mut ws = Sock::connect(&s, &ws_with_sid(EIO, &sid)).await;
    ws.send_text("2probe").await;
    ws.expect_text("3probe").await;
    ws.close().await;
    sleep_ms(50).await;
    let r = post(&s, &polling(EIO, &sid), "4after").await;
    assert_eq!(
        r.status, 200,
        "POST after an abandoned probe: expected the polling session to live on, got {r:?}"
    );
    let got = poll_packets(&s, EIO, &sid, 1).await;
    assert_eq!(
        got,
        ["4after"],
        "echo over polling after an abandoned probe"
    );
    s.stop().await;
}
