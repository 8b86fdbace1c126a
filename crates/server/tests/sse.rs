//! Server-Sent Events: every event has an id, and a reconnect with `Last-Event-ID` resumes
//! with no loss and no duplicate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};

/// A minimal SSE reader over a real HTTP response (the same parsing rules as EventSource).
struct Sse {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

#[derive(Debug, Default, Clone)]
struct Event {
    id: Option<String>,
    event: String,
    data: String,
    comment: bool,
}

impl Sse {
    async fn open(s: &TestServer, query: &str, last_id: Option<&str>) -> (u16, Option<Self>) {
        let mut req = reqwest::Client::new().get(s.url(&format!("/sse?{query}")));
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        if status != 200 {
            return (status, None);
        }
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        (
            status,
            Some(Self {
                body: Box::pin(r.bytes_stream()),
                buf: String::new(),
            }),
        )
    }

    async fn next_raw(&mut self) -> Event {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = Event {
                    event: "message".into(),
                    ..Default::default()
                };
                let mut has_field = false;
                for line in block.lines() {
                    if line.starts_with(':') {
                        ev.comment = true;
                        continue;
                    }
                    let (k, v) = line.split_once(": ").unwrap_or((line, ""));
                    has_field = true;
                    match k {
                        "id" => ev.id = Some(v.to_owned()),
                        "event" => ev.event = v.to_owned(),
                        "data" => ev.data.push_str(v),
                        _ => {}
                    }
                }
                if has_field || ev.comment {
                    return ev;
                }
                continue;
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("timed out waiting for an event")
                .expect("stream ended")
                .unwrap();
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Next event that is not a comment or a bare `retry:`.
    async fn next(&mut self) -> Event {
        loop {
            let ev = self.next_raw().await;
            if !ev.comment && !ev.data.is_empty() {
                return ev;
            }
        }
    }
}

#[tokio::test]
async fn publications_arrive_with_ids_and_a_reconnect_resumes_without_loss_or_duplicate() {
    let s = TestServer::start().await;
    let (_, sse) = Sse::open(&s, "channel=a&channel=b", None).await;
    let mut sse = sse.unwrap();
    let sub = sse.next().await;
    assert_eq!(sub.event, "subscribed");
    assert!(sub.id.is_some(), "the subscribed event carries a cursor");
    let d: Value = serde_json::from_str(&sub.data).unwrap();
    assert_eq!(d["channels"][1]["channel"], "b");

    s.publish("a", json!(1)).await;
    s.publish("b", json!(2)).await;
    let e1 = sse.next().await;
    let e2 = sse.next().await;
    assert_eq!(e1.event, "message");
    let p: Value = serde_json::from_str(&e2.data).unwrap();
    assert_eq!(
        (p["channel"].clone(), p["data"].clone()),
        (json!("b"), json!(2))
    );
    let last = e2.id.clone().unwrap();
    drop(sse);

    for i in 3..=5 {
        s.publish("a", json!(i)).await;
    }
    s.publish("b", json!(6)).await;
    let (_, sse) = Sse::open(&s, "channel=a&channel=b", Some(&last)).await;
    let mut sse = sse.unwrap();
    let sub: Value = serde_json::from_str(&sse.next().await.data).unwrap();
    assert_eq!(sub["channels"][0]["recovered"], true);
    let mut got = Vec::new();
    for _ in 0..4 {
        let p: Value = serde_json::from_str(&sse.next().await.data).unwrap();
        got.push(p["data"].clone());
    }
    assert_eq!(got, vec![json!(3), json!(4), json!(5), json!(6)]);
    s.publish("a", json!(7)).await;
    let p: Value = serde_json::from_str(&sse.next().await.data).unwrap();
    assert_eq!(p["data"], json!(7));
    s.stop().await;
}

#[tokio::test]
async fn a_cursor_from_another_epoch_gets_an_unrecovered_event() {
    let s = TestServer::start().await;
    s.publish("a", json!(1)).await;
    let (_, sse) = Sse::open(&s, "channel=a", Some("zzzz:1")).await;
    let mut sse = sse.unwrap();
    let sub: Value = serde_json::from_str(&sse.next().await.data).unwrap();
    assert_eq!(sub["channels"][0]["recovered"], false);
    let ev = sse.next().await;
    assert_eq!(ev.event, "unrecovered");
    s.stop().await;
}

#[tokio::test]
async fn bad_requests_get_400_with_a_json_error() {
    let s = TestServer::start().await;
    assert_eq!(Sse::open(&s, "", None).await.0, 400);
    assert_eq!(Sse::open(&s, "channel=bad%20name", None).await.0, 400);
    assert_eq!(Sse::open(&s, "channel=a", Some("garbage")).await.0, 400);
    assert_eq!(Sse::open(&s, "channel=a&channel=a", None).await.0, 400);
    let (status, body) = s.get_json("/sse?channel=a&lastEventId=x:y").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "bad_request");
    let many: Vec<String> = (0..40).map(|i| format!("channel=c{i}")).collect();
    assert_eq!(Sse::open(&s, &many.join("&"), None).await.0, 429);
    s.stop().await;
}

#[tokio::test]
async fn the_stream_starts_with_retry_advice_and_sends_heartbeats() {
    let s = TestServer::with(|c| c.sse.heartbeat_seconds = 1).await;
    let r = reqwest::get(s.url("/sse?channel=hb")).await.unwrap();
    let mut body = r.bytes_stream();
    let mut text = String::new();
    while !text.contains(": ping") {
        let chunk = tokio::time::timeout(WAIT, body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.starts_with("retry: 1000\n"));
    s.stop().await;
}

#[tokio::test]
async fn json_with_raw_newlines_stays_on_one_data_line() {
    let s = TestServer::start().await;
    let (_, sse) = Sse::open(&s, "channel=nl", None).await;
    let mut sse = sse.unwrap();
    sse.next().await;
    let (status, _) = s
        .post_json(
            "/api/publish",
            "{\"channel\":\"nl\",\"data\":{\n\"a\":\r\n\"x\\ny\"}}",
        )
        .await;
    assert_eq!(status, 200);
    let p: Value = serde_json::from_str(&sse.next().await.data).unwrap();
    assert_eq!(p["data"], json!({"a": "x\ny"}));
    s.stop().await;
}
