//! Long-poll and short poll on `/poll`, and HTTP publishing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[tokio::test]
async fn short_polling_walks_the_stream_by_cursor() {
    let s = TestServer::start().await;
    let (status, first) = s.get_json("/poll?channel=p").await;
    assert_eq!(status, 200);
    assert_eq!(first["publications"], json!([]));
    let cursor = first["cursor"].as_str().unwrap().to_owned();
    for i in 1..=3 {
        s.publish("p", json!(i)).await;
    }
    let (_, r) = s
        .get_json(&format!("/poll?channel=p&cursor={cursor}&limit=2"))
        .await;
    assert_eq!(r["publications"].as_array().unwrap().len(), 2);
    assert_eq!(r["more"], true);
    let (_, r) = s
        .get_json(&format!(
            "/poll?channel=p&cursor={}",
            r["cursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r["publications"][0]["data"], json!(3));
    assert_eq!(r["more"], false);
    let (_, again) = s
        .get_json(&format!(
            "/poll?channel=p&cursor={}",
            r["cursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(again["publications"], json!([]), "no duplicates");
    s.stop().await;
}

#[tokio::test]
async fn a_long_poll_is_held_until_a_publication_arrives() {
    let s = TestServer::start().await;
    let (_, first) = s.get_json("/poll?channel=lp&channel=other").await;
    let cursor = first["cursor"].as_str().unwrap().to_owned();
    let url = s.url(&format!(
        "/poll?channel=lp&channel=other&cursor={cursor}&wait=30"
    ));
    let started = Instant::now();
    let waiting = tokio::spawn(async move {
        reqwest::get(url)
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "held while nothing is published");
    s.publish("lp", json!("now")).await;
    let r = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(r["publications"][0]["data"], "now");
    assert!(r["cursor"].as_str().unwrap().contains(":1,"));
    s.stop().await;
}

#[tokio::test]
async fn a_long_poll_with_nothing_published_returns_empty_after_its_wait() {
    let s = TestServer::start().await;
    let (_, first) = s.get_json("/poll?channel=quiet").await;
    let cursor = first["cursor"].as_str().unwrap();
    let t = Instant::now();
    let (status, r) = s
        .get_json(&format!("/poll?channel=quiet&cursor={cursor}&wait=1"))
        .await;
    assert_eq!(status, 200);
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert_eq!(r["publications"], json!([]));
    assert_eq!(r["cursor"], first["cursor"]);
    s.stop().await;
}

#[tokio::test]
async fn a_lost_cursor_is_reported_unrecovered() {
    let s = TestServer::start().await;
    s.publish("u", json!(1)).await;
    let (_, r) = s.get_json("/poll?channel=u&cursor=abcd:5").await;
    assert_eq!(r["unrecovered"], json!(["u"]));
    assert!(r["cursor"].as_str().unwrap().ends_with(":1"));
    s.stop().await;
}

#[tokio::test]
async fn http_clients_publish_with_post() {
    let s = TestServer::start().await;
    let (status, r) = s
        .post_json("/poll", r#"{"channel":"hp","data":{"x":1}}"#)
        .await;
    assert_eq!(status, 200);
    assert_eq!(r["offset"], 1);
    let (status, r) = s
        .post_json("/poll", r#"{"channel":"hp","b64":"AAE="}"#)
        .await;
    assert_eq!((status, r["offset"].clone()), (200, json!(2)));
    let (status, r) = s.post_json("/poll", r#"{"channel":"hp"}"#).await;
    assert_eq!(
        (status, r["error"]["code"].clone()),
        (400, json!("invalid_data"))
    );
    let (status, r) = s.post_json("/poll", "nope").await;
    assert_eq!(
        (status, r["error"]["code"].clone()),
        (400, json!("bad_request"))
    );
    let big = format!(r#"{{"channel":"hp","data":"{}"}}"#, "x".repeat(70_000));
    let (status, r) = s.post_json("/poll", &big).await;
    assert_eq!(
        (status, r["error"]["code"].clone()),
        (413, json!("too_large"))
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_parameters_are_refused() {
    let s = TestServer::start().await;
    for q in [
        "",
        "channel=a&limit=0",
        "channel=a&limit=x",
        "channel=a&cursor=1",
        "channel=%00",
    ] {
        let (status, body) = s.get_json(&format!("/poll?{q}")).await;
        assert_eq!(status, 400, "{q}");
        assert!(body["error"]["code"].is_string());
    }
    s.stop().await;
}
