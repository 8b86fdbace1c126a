//! The server API, metrics and health endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn the_api_publishes_broadcasts_and_reads_back() {
    let s = TestServer::start().await;
    let r = s.publish("a", json!({"n": 1})).await;
    assert_eq!(r["offset"], 1);
    let (status, r) = s
        .post_json(
            "/api/broadcast",
            r#"{"channels":["a","b","bad name"],"data":2}"#,
        )
        .await;
    assert_eq!(
        (status, r["error"]["code"].clone()),
        (400, json!("invalid_channel"))
    );
    let (_, r) = s
        .post_json("/api/broadcast", r#"{"channels":["a","b"],"data":2}"#)
        .await;
    assert_eq!(r["results"][0]["offset"], 2);
    assert_eq!(r["results"][1]["offset"], 1);
    let (_, h) = s.get_json("/api/history?channel=a&limit=10").await;
    assert_eq!(h["publications"].as_array().unwrap().len(), 2);
    assert_eq!(h["offset"], 2);
    let (_, h) = s.get_json("/api/history?channel=a&before=3&limit=1").await;
    assert_eq!(h["publications"][0]["data"], json!(2));
    let (_, c) = s.get_json("/api/channels").await;
    assert_eq!(c["channels"][0]["channel"], "a");
    assert_eq!(c["channels"][0]["subscribers"], 0);
    assert_eq!(c["channels"][0]["stored"], true);
    assert_eq!(
        c["channels"][0]["store"]["publications"], 2,
        "stored sizes: {c}"
    );
    assert_eq!(c["channels"][0]["cached"], 2);
    let (_, p) = s.get_json("/api/presence?channel=a").await;
    assert_eq!(p["clients"], json!([]));
    let (_, p) = s.get_json("/api/presence_count?channel=a").await;
    assert_eq!(p, json!({"clients":0,"users":0}));
    let (_, i) = s.get_json("/api/info").await;
    assert_eq!(i["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(i["store"]["kind"], "sqlite");
    assert_eq!(i["store"]["available"], true);
    assert!(i["store"]["committed"].as_u64().unwrap() >= 3, "{i}");
    assert!(i["connections"]["websocket"].is_number());
    let (_, r) = s
        .post_json("/api/message", r#"{"user":"42","data":1}"#)
        .await;
    assert_eq!(r["delivered"], 0);
    let (_, r) = s.post_json("/api/disconnect", r#"{"user":"42"}"#).await;
    assert_eq!(r["disconnected"], 0);
    s.stop().await;
}

#[tokio::test]
async fn presence_shows_websocket_subscribers_with_counts() {
    let s = TestServer::start().await;
    let mut ws = Ws::connect(&s).await;
    ws.call(json!({"cmd":"connect","info":{"nick":"zoe"}}))
        .await;
    ws.subscribe("room").await;
    let (_, p) = s.get_json("/api/presence?channel=room").await;
    assert_eq!(p["clients"][0]["info"]["nick"], "zoe");
    let (_, c) = s.get_json("/api/channels").await;
    assert_eq!(c["channels"][0]["subscribers"], 1);
    let (_, i) = s.get_json("/api/info").await;
    assert_eq!(i["connections"]["websocket"], 1);
    s.stop().await;
}

#[tokio::test]
async fn errors_are_json_with_codes() {
    let s = TestServer::start().await;
    for (path, body, status, code) in [
        ("/api/publish", "{", 400, "bad_request"),
        ("/api/publish", r#"{"channel":"a"}"#, 400, "invalid_data"),
        (
            "/api/publish",
            r#"{"channel":"a","data":1,"b64":"AA=="}"#,
            400,
            "invalid_data",
        ),
        (
            "/api/publish",
            r#"{"channel":"","data":1}"#,
            400,
            "invalid_channel",
        ),
        (
            "/api/broadcast",
            r#"{"channels":[],"data":1}"#,
            400,
            "bad_request",
        ),
        ("/api/disconnect", r#"{"user":""}"#, 400, "bad_request"),
    ] {
        let (st, r) = s.post_json(path, body).await;
        assert_eq!(
            (st, r["error"]["code"].as_str()),
            (status, Some(code)),
            "{path} {body}"
        );
        assert!(r["error"]["message"].is_string());
    }
    let (st, r) = s.get_json("/api/history?channel=a&limit=5000").await;
    assert_eq!(
        (st, r["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (st, r) = s.get_json("/api/nope").await;
    assert_eq!((st, r["error"]["code"].as_str()), (404, Some("not_found")));
    s.stop().await;
}

#[tokio::test]
async fn a_configured_key_is_required() {
    let s = TestServer::with(|c| c.api.key = Some("sekrit".into())).await;
    let (st, r) = s
        .post_json("/api/publish", r#"{"channel":"a","data":1}"#)
        .await;
    assert_eq!(
        (st, r["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let client = reqwest::Client::new();
    let ok = client
        .post(s.url("/api/publish"))
        .bearer_auth("sekrit")
        .body(r#"{"channel":"a","data":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let ok = client
        .get(s.url("/api/info"))
        .header("x-api-key", "sekrit")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let bad = client
        .get(s.url("/api/info"))
        .header("x-api-key", "sekriT")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let m = s.metrics().await;
    assert_eq!(
        metric(
            &m,
            "switchboard_errors_total{transport=\"api\",code=\"unauthorized\"}"
        ),
        2.0
    );
    // The OpenAPI document is public.
    let (st, doc) = s.get_json("/api/openapi.json").await;
    assert_eq!(st, 200);
    assert!(doc["paths"]["/api/publish"].is_object());
    s.stop().await;
}

#[tokio::test]
async fn metrics_health_and_ready_answer() {
    let s = TestServer::start().await;
    let mut ws = Ws::connect(&s).await;
    ws.subscribe("m").await;
    s.publish("m", json!(1)).await;
    ws.recv().await;
    let m = s.metrics().await;
    assert_eq!(
        metric(&m, "switchboard_connections{transport=\"websocket\"}"),
        1.0
    );
    assert_eq!(
        metric(&m, "switchboard_publications_total{transport=\"api\"}"),
        1.0
    );
    assert!(
        metric(
            &m,
            "switchboard_messages_out_total{transport=\"websocket\"}"
        ) >= 1.0
    );
    assert!(metric(&m, "switchboard_bytes_out_total{transport=\"websocket\"}") > 0.0);
    assert!(m.contains("switchboard_delivery_latency_seconds_bucket"));
    assert!(m.contains("switchboard_channels 1"));
    let (st, h) = s.get_json("/health").await;
    assert_eq!((st, h["status"].as_str()), (200, Some("ok")));
    let (st, _) = s.get_json("/ready").await;
    assert_eq!(st, 200);
    s.stop().await;
}

#[tokio::test]
async fn the_web_app_and_js_client_are_served() {
    let s = TestServer::start().await;
    let r = reqwest::get(s.url("/")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let r = reqwest::get(s.url("/client/switchboard.js")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_eq!(
        reqwest::get(s.url("/client/nope.js"))
            .await
            .unwrap()
            .status(),
        404
    );
    s.stop().await;
}

#[tokio::test]
async fn api_errors_are_counted_by_their_documented_code() {
    let s = TestServer::start().await;
    s.post_json("/api/publish", r#"{"channel":"bad name","data":1}"#)
        .await;
    s.post_json("/api/publish", r#"{"channel":"a"}"#).await;
    let m = s.metrics().await;
    assert_eq!(
        metric(
            &m,
            "switchboard_errors_total{transport=\"api\",code=\"invalid_channel\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "switchboard_errors_total{transport=\"api\",code=\"invalid_data\"}"
        ),
        1.0
    );
    s.stop().await;
}

#[tokio::test]
async fn json_data_without_a_messagepack_form_is_refused_with_invalid_data() {
    let s = TestServer::start().await;
    for body in [
        r#"{"channel":"a","data":1e400}"#,
        r#"{"channel":"a","data":"\ud800"}"#,
    ] {
        let (status, v) = s.post_json("/api/publish", body).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error"]["code"], "invalid_data", "{body}: {v}");
    }
    let (_, history) = s.get_json("/api/history?channel=a").await;
    assert_eq!(history["publications"], serde_json::json!([]), "{history}");
    s.stop().await;
}
