#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What one group commit costs the SQLite store with `synchronous = full`, in the shape of
//! `bench/run.sh publish` (64 channels, one ~100-byte publication each per commit, the hub's
//! writer waiting for each commit before the next): publications/s, time per commit, and
//! what the process wrote per commit (`/proc/self/io`: bytes handed to `write`, bytes that
//! reached the block layer, write calls). Ignored: it is a measurement, not a check.
//!
//! `cargo test --release -p switchboard-store --no-default-features --features sqlite
//! --test sqlite_commit_cost -- --ignored --nocapture`

use std::{
    fs,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use switchboard_core::{
    ChannelName, ClientId, ClientInfo, Epoch, Payload, Prepared, Publication, Store,
    store::{StreamAppend, unix_ms},
};
use switchboard_store::{SqliteConfig, SqliteStore, Synchronous};

/// `(wchar, write_bytes, syscw)` of this process so far.
fn io_counters() -> (u64, u64, u64) {
    let text = fs::read_to_string("/proc/self/io").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("wchar:"), field("write_bytes:"), field("syscw:"))
}

fn batch(channels: &[(ChannelName, Epoch)], offset: u64, payload: usize) -> Vec<StreamAppend> {
    let info = Arc::new(ClientInfo {
        client: ClientId::restore("0b6c0a1e-3a8f-4d21-9a55-3c1f0e7d2b11"),
        user: None,
        conn_info: None,
    });
    let data = format!("{{\"pad\":\"{}\"}}", "x".repeat(payload.saturating_sub(10)));
    channels
        .iter()
        .map(|(ch, epoch)| StreamAppend {
            channel: ch.clone(),
            epoch: epoch.clone(),
            ttl_ms: 300_000,
            publications: vec![Arc::new(Prepared::new(Publication {
                channel: ch.clone(),
                offset,
                epoch: epoch.clone(),
                data: Payload::Json(Bytes::from(data.clone())),
                info: Some(info.clone()),
                published_at: tokio::time::Instant::now(),
                time_ms: unix_ms(),
                except: None,
                volatile: false,
            }))],
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run with --release -- --ignored --nocapture"]
async fn group_commit_of_64_channels_with_fsync() {
    let commits: u64 = std::env::var("COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    // On the file system of the target directory, not /tmp (which may be a tmpfs).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = SqliteStore::open(SqliteConfig {
        path: dir.path().join("streams.db"),
        synchronous: Synchronous::Full,
        readers: 2,
        timeout: Duration::from_secs(10),
    })
    .unwrap();
    let mut channels = Vec::new();
    for n in 0..64 {
        let ch = ChannelName::parse(&format!("bench:{n}")).unwrap();
        let epoch = store.open(&ch, false).await.unwrap().epoch;
        channels.push((ch, epoch));
    }
    // Warm-up: the streams' index pages exist and the WAL has grown.
    let warm = 200;
    for offset in 1..=warm {
        store.append(batch(&channels, offset, 100)).await.unwrap();
    }
    let prepared: Vec<_> = (warm + 1..=warm + commits)
        .map(|o| batch(&channels, o, 100))
        .collect();
    let (wchar0, block0, calls0) = io_counters();
    let started = Instant::now();
    for b in prepared {
        store.append(b).await.unwrap();
    }
    let elapsed = started.elapsed();
    let (wchar1, block1, calls1) = io_counters();
    let per = |v: u64| v as f64 / commits as f64;
    let wal_frame = 4096.0 + 24.0;
    println!(
        "{commits} commits of 64 publications (100 B) over 64 channels, synchronous=full: \
         {:.0} publications/s, {:.3} ms per commit; per commit: {:.0} B written \
         (~{:.1} pages), {:.0} B to the block layer, {:.1} write calls",
        (commits * 64) as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / commits as f64,
        per(wchar1 - wchar0),
        per(wchar1 - wchar0) / wal_frame,
        per(block1 - block0),
        per(calls1 - calls0),
    );
    store.close().await.unwrap();
}
