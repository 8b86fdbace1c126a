//! Durability across a crash: publish in `sync` mode from many publishers, `kill -9` the
//! server mid-stream, start it again on the same data, and check that every acknowledged
//! publication is there, offsets and epoch continue, and clients of every transport (native
//! WebSocket through the Rust client, SSE with `Last-Event-ID`, long-poll with its cursor)
//! recover what they missed with no gap and no duplicate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt;
use serde_json::{Value, json};
use support::{Node, free_port, http};
use switchboard_client::{Client, ClientOptions, SubscribeOptions, SubscriptionEvent};

const CHANNEL: &str = "crash:feed";

/// What the publishers were told: offset → data, and the epoch.
#[derive(Default)]
struct Acked {
    by_offset: BTreeMap<u64, Value>,
    epoch: Option<String>,
}

fn config(dir: &std::path::Path, store: &str) -> std::path::PathBuf {
    let path = dir.join("switchboard.toml");
    std::fs::write(
        &path,
        format!(
            "[store]\n{store}\ndata_dir = {:?}\n\n[namespaces.crash]\nhistory_size = 100000\ndurability = \"sync\"\n",
            dir.join("data")
        ),
    )
    .unwrap();
    path
}

/// Publishes `{p, i}` in a loop until the server goes away; records every success.
async fn publisher(url: String, p: usize, acked: Arc<Mutex<Acked>>, over_ws: bool) {
    let http = reqwest::Client::new();
    let ws = if over_ws {
        let mut options = ClientOptions::new(&url);
        options.request_timeout = Duration::from_secs(2);
        Some(Client::connect(options).await.unwrap())
    } else {
        None
    };
    for i in 0.. {
        let data = json!({"p": p, "i": i});
        let result = match &ws {
            Some(c) => c
                .publish(CHANNEL, data.clone())
                .await
                .map(|pos| (pos.offset, pos.epoch))
                .map_err(|e| e.to_string()),
            None => match http
                .post(format!("{url}/api/publish"))
                .json(&json!({"channel": CHANNEL, "data": data}))
                .timeout(Duration::from_secs(5))
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => {
                    let v: Value = r.json().await.unwrap();
                    Ok((
                        v["offset"].as_u64().unwrap(),
                        v["epoch"].as_str().unwrap().to_owned(),
                    ))
                }
                Ok(r) => Err(format!("HTTP {}", r.status())),
                Err(e) => Err(e.to_string()),
            },
        };
        match result {
            Ok((offset, epoch)) => {
                let mut a = acked.lock().unwrap();
                assert!(
                    a.by_offset.insert(offset, data).is_none(),
                    "offset {offset} acknowledged twice"
                );
                assert_eq!(a.epoch.get_or_insert(epoch.clone()), &epoch);
            }
            // The server was killed.
            Err(_) => return,
        }
    }
}

/// Reads SSE events until `stop` says so; returns (last id, publication offsets, events).
async fn sse_events(
    url: &str,
    last_event_id: Option<&str>,
    until_offset: u64,
) -> (String, Vec<u64>, Vec<String>) {
    let mut req = reqwest::Client::new().get(format!("{url}/sse?channel={CHANNEL}"));
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let (mut last_id, mut offsets, mut kinds) = (String::new(), Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, "message".to_owned(), String::new());
            for line in event.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("event: ") {
                    kind = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if data.is_empty() {
                continue;
            }
            if let Some(id) = id {
                last_id = id;
            }
            if kind == "message" {
                let v: Value = serde_json::from_str(&data).unwrap();
                offsets.push(v["offset"].as_u64().unwrap());
            }
            kinds.push(kind);
            if offsets.last().copied().unwrap_or(0) >= until_offset && !kinds.is_empty() {
                return (last_id, offsets, kinds);
            }
        }
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("SSE events in time")
            .expect("SSE stream open")
            .unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

async fn crash_and_recover(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), store);
    let port = free_port();
    let node = Node::start(port, &config).await;
    let url = node.url.clone();

    // Clients from before the crash.
    let ws = Client::connect(ClientOptions::new(&url)).await.unwrap();
    let mut sub = ws
        .subscribe(CHANNEL, SubscribeOptions::default())
        .await
        .unwrap();
    let (_, first_poll) = http(&format!("{url}/poll?channel={CHANNEL}")).await;
    let poll_cursor = first_poll["cursor"].as_str().unwrap().to_owned();

    let acked = Arc::new(Mutex::new(Acked::default()));
    let publishers: Vec<_> = (0..24)
        .map(|p| tokio::spawn(publisher(url.clone(), p, acked.clone(), p % 3 == 0)))
        .collect();
    // An SSE reader that follows the stream for a while, then keeps its last id.
    let (sse_id, sse_seen, _) = sse_events(&url, None, 200).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.kill9();
    for p in publishers {
        tokio::time::timeout(Duration::from_secs(20), p)
            .await
            .expect("publishers stop once the server is gone")
            .unwrap();
    }
    let (acked_offsets, epoch) = {
        let a = acked.lock().unwrap();
        (a.by_offset.clone(), a.epoch.clone().unwrap())
    };
    assert!(
        acked_offsets.len() > 200,
        "only {} acknowledged",
        acked_offsets.len()
    );

    // Start again on the same data and port.
    let node = Node::start(port, &config).await;
    let mut stored = BTreeMap::new();
    let mut after = 0;
    loop {
        let (status, page) = http(&format!(
            "{url}/api/history?channel={CHANNEL}&after={after}&limit=1000"
        ))
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(
            page["epoch"],
            epoch.as_str(),
            "the epoch survives an intact stream"
        );
        let pubs = page["publications"].as_array().unwrap();
        if pubs.is_empty() {
            break;
        }
        for p in pubs {
            after = p["offset"].as_u64().unwrap();
            stored.insert(after, p["data"].clone());
        }
    }
    for (offset, data) in &acked_offsets {
        assert_eq!(
            stored.get(offset),
            Some(data),
            "acknowledged publication {offset} must be readable after kill -9"
        );
    }
    let top = *stored.keys().last().unwrap();
    assert_eq!(
        stored.keys().copied().collect::<Vec<_>>(),
        (1..=top).collect::<Vec<_>>(),
        "offsets have no gap"
    );

    // Publishing goes on where it stopped, in the same epoch.
    let more = 5;
    for i in 0..more {
        let (status, v) = support::post(
            &format!("{url}/api/publish"),
            json!({"channel": CHANNEL, "data": {"after": i}}),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["offset"].as_u64().unwrap(), top + 1 + i);
        assert_eq!(v["epoch"], epoch.as_str());
    }
    let end = top + more;

    // Native WebSocket: the client reconnected by itself and recovered.
    let mut seen = Vec::new();
    while seen.last().copied().unwrap_or(0) < end {
        match tokio::time::timeout(Duration::from_secs(20), sub.recv())
            .await
            .expect("the WebSocket subscriber keeps receiving")
            .unwrap()
        {
            SubscriptionEvent::Publication(p) => seen.push(p.offset),
            SubscriptionEvent::Unrecovered { .. } => panic!("the WebSocket client did not recover"),
            _ => {}
        }
    }
    let first = seen[0];
    assert_eq!(
        seen,
        (first..=end).collect::<Vec<_>>(),
        "WebSocket: every publication once, in order, across the restart"
    );

    // SSE: reconnect with the id of the last event seen before the crash.
    let last_seen = *sse_seen.last().unwrap();
    let (_, offsets, kinds) = sse_events(&url, Some(&sse_id), end).await;
    assert!(!kinds.iter().any(|k| k == "unrecovered"), "{kinds:?}");
    assert_eq!(
        offsets,
        (last_seen + 1..=end).collect::<Vec<_>>(),
        "SSE resumes after its Last-Event-ID with no gap or duplicate"
    );

    // Long-poll: the cursor from before publishing started pages through everything.
    let mut cursor = poll_cursor;
    let mut polled = Vec::new();
    loop {
        let (status, v) = http(&format!(
            "{url}/poll?channel={CHANNEL}&cursor={cursor}&limit=1000"
        ))
        .await;
        assert_eq!(status, 200, "{v}");
        assert!(v["unrecovered"].as_array().unwrap().is_empty(), "{v}");
        for p in v["publications"].as_array().unwrap() {
            polled.push(p["offset"].as_u64().unwrap());
        }
        cursor = v["cursor"].as_str().unwrap().to_owned();
        if !v["more"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(
        polled,
        (1..=end).collect::<Vec<_>>(),
        "long-poll recovers everything"
    );
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sync_publications_survive_kill_9_and_every_transport_recovers() {
    crash_and_recover("kind = \"sqlite\"").await;
}
