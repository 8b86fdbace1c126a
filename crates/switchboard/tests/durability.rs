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
    // The SSE reader stops reading at offset 200 while the publishers go on until the kill;
    // on a fast machine that gap passes the default recovery limit (1000), which would make
    // the resume `unrecovered` by design. This test is about the crash, so lift the limit.
    std::fs::write(
        &path,
        format!(
            "[hub]\nmax_recovered = 100000\n\n[store]\n{store}\ndata_dir = {:?}\n\n[namespaces.crash]\nhistory_size = 100000\ndurability = \"sync\"\n",
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
            .unwrap_or_else(|_| {
                panic!(
                    "SSE events in time: {} seen, last {:?}, until {until_offset}, kinds {:?}",
                    offsets.len(),
                    offsets.last(),
                    &kinds[..kinds.len().min(3)]
                )
            })
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sync_publications_survive_kill_9_and_every_transport_recovers() {
    let pg = tokio::task::block_in_place(switchboard_testkit::PostgresServer::start).unwrap();
    let url = pg.create_database("crash").unwrap();
    crash_and_recover(&format!("kind = \"postgres\"\npostgres_url = {url:?}")).await;
}

async fn publish_status(url: &str, data: Value) -> (u16, Value) {
    support::post(
        &format!("{url}/api/publish"),
        json!({"channel": "fault:a", "data": data}),
    )
    .await
}

async fn metric(url: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Publishes until one succeeds (the store is back), within 30 s.
async fn publish_eventually(url: &str, data: Value) -> Value {
    for _ in 0..300 {
        let (status, v) = publish_status(url, data.clone()).await;
        if status == 200 {
            return v;
        }
        assert_eq!(status, 503, "{v}");
        assert_eq!(v["error"]["code"], "store_unavailable", "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not carry on once the store was back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_fails_publishers_cleanly_and_the_server_carries_on() {
    let mut pg = tokio::task::block_in_place(switchboard_testkit::PostgresServer::start).unwrap();
    let db = pg.create_database("fault").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &format!("kind = \"postgres\"\npostgres_url = {db:?}"),
    );
    let node = Node::start(free_port(), &config).await;
    let url = node.url.clone();

    let ws = Client::connect(ClientOptions::new(&url)).await.unwrap();
    let mut sub = ws
        .subscribe("fault:a", SubscribeOptions::default())
        .await
        .unwrap();
    let (status, first) = publish_status(&url, json!(1)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["offset"], 1);

    tokio::task::block_in_place(|| pg.stop()).unwrap();
    for i in 0..5 {
        let (status, v) = publish_status(&url, json!({"down": i})).await;
        assert_eq!(status, 503, "never a false success: {v}");
        assert_eq!(v["error"]["code"], "store_unavailable");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("store"),
            "{v}"
        );
    }
    assert_eq!(metric(&url, "switchboard_store_available").await, Some(0.0));
    assert!(
        metric(&url, "switchboard_store_failures_total")
            .await
            .unwrap()
            >= 1.0
    );
    let (_, info) = http(&format!("{url}/api/info")).await;
    assert_eq!(info["store"]["available"], false);

    tokio::task::block_in_place(|| pg.start_again()).unwrap();
    let v = publish_eventually(&url, json!(2)).await;
    assert_eq!(v["offset"], 2, "offsets continue: nothing refused was kept");
    assert_eq!(v["epoch"], first["epoch"]);
    assert_eq!(metric(&url, "switchboard_store_available").await, Some(1.0));

    let mut got = Vec::new();
    while got.len() < 2 {
        if let SubscriptionEvent::Publication(p) =
            tokio::time::timeout(Duration::from_secs(10), sub.recv())
                .await
                .unwrap()
                .unwrap()
        {
            got.push(p.offset);
        }
    }
    assert_eq!(
        got,
        [1, 2],
        "subscribers saw no refused publication and no gap"
    );
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_starts_with_postgres_down_and_uses_it_once_it_is_up() {
    let mut pg = tokio::task::block_in_place(switchboard_testkit::PostgresServer::start).unwrap();
    let db = pg.create_database("late").unwrap();
    tokio::task::block_in_place(|| pg.stop()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &format!("kind = \"postgres\"\npostgres_url = {db:?}"),
    );
    let node = Node::start(free_port(), &config).await;
    let (status, v) = publish_status(&node.url, json!(1)).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "store_unavailable");
    tokio::task::block_in_place(|| pg.start_again()).unwrap();
    let v = publish_eventually(&node.url, json!(1)).await;
    assert_eq!(v["offset"], 1);
    drop(node);
}

/// A tmpfs mounted on a fresh directory (a small disk that can be filled), unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success())
            .then_some(Self(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_publishers_cleanly_and_the_server_carries_on_when_space_is_back() {
    // CI runs as root; elsewhere this needs CAP_SYS_ADMIN to mount.
    let Some(disk) = Tmpfs::mount("8m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!("[store]\ndata_dir = {:?}\n", disk.0.path().join("data")),
    )
    .unwrap();
    let node = Node::start(free_port(), &config).await;
    let url = node.url.clone();
    let (status, first) = publish_status(&url, json!("before")).await;
    assert_eq!(status, 200, "{first}");

    // Fill the disk, then publish large payloads until one cannot be written.
    let filler = disk.0.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
    }
    let big = "x".repeat(60 << 10);
    let mut refused = None;
    for _ in 0..200 {
        let (status, v) = publish_status(&url, json!(big)).await;
        if status != 200 {
            refused = Some((status, v));
            break;
        }
    }
    let (status, v) = refused.expect("a full disk refuses publications");
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "store_unavailable");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("full"),
        "{v}"
    );
    assert_eq!(metric(&url, "switchboard_store_available").await, Some(0.0));
    let (_, page) = http(&format!(
        "{url}/api/history?channel=fault:a&before=1000000&limit=1"
    ))
    .await;
    let last_ok = page["publications"][0]["offset"].as_u64().unwrap();

    std::fs::remove_file(&filler).unwrap();
    let v = publish_eventually(&url, json!("after")).await;
    assert_eq!(
        v["offset"].as_u64().unwrap(),
        last_ok + 1,
        "the refused publication left no gap"
    );
    drop(node);
}

/// Async channels: a clean stop keeps the epoch; a crash may have lost acknowledged
/// publications, so the stream gets a new epoch and every client is told to reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_streams_keep_their_epoch_over_a_clean_stop_and_change_it_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\ndata_dir = {:?}\n[namespaces.fast]\ndurability = \"async\"\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    let port = free_port();
    let publish = async |url: &str, n: u64| {
        let mut last = Value::Null;
        for i in 0..n {
            let (status, v) = support::post(
                &format!("{url}/api/publish"),
                json!({"channel": "fast:ticks", "data": i}),
            )
            .await;
            assert_eq!(status, 200, "{v}");
            last = v;
        }
        last
    };

    let node = Node::start(port, &config).await;
    let first = publish(&node.url, 10).await;
    let (_, poll) = http(&format!("{}/poll?channel=fast:ticks", node.url)).await;
    let cursor = poll["cursor"].as_str().unwrap().to_owned();
    node.stop();

    let node = Node::start(port, &config).await;
    let (_, v) = http(&format!(
        "{}/poll?channel=fast:ticks&cursor={cursor}",
        node.url
    ))
    .await;
    assert!(
        v["unrecovered"].as_array().unwrap().is_empty(),
        "a clean stop committed everything: {v}"
    );
    let second = publish(&node.url, 5).await;
    assert_eq!(second["epoch"], first["epoch"]);
    assert_eq!(second["offset"], 15);
    let (_, poll) = http(&format!("{}/poll?channel=fast:ticks", node.url)).await;
    let cursor = poll["cursor"].as_str().unwrap().to_owned();
    node.kill9();

    let node = Node::start(port, &config).await;
    let (_, v) = http(&format!(
        "{}/poll?channel=fast:ticks&cursor={cursor}",
        node.url
    ))
    .await;
    assert_eq!(
        v["unrecovered"],
        json!(["fast:ticks"]),
        "after a crash async clients are told to reload: {v}"
    );
    let third = publish(&node.url, 1).await;
    assert_ne!(third["epoch"], first["epoch"], "a new epoch");
    assert!(
        third["offset"].as_u64().unwrap() > 10,
        "offsets go on from what the store kept: {third}"
    );
    drop(node);
}
