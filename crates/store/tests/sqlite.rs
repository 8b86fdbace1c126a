#![allow(clippy::unwrap_used, clippy::expect_used)]
//! [`SqliteStore`] against real files: the shared contract, files that are not databases,
//! a full disk and a read-only file (produced for real: a small tmpfs, `chattr +i`; skipped
//! with a note where this process may not do either), a lock held by another connection,
//! and concurrent writers and readers. `append_throughput` (ignored) measures group commits:
//! `cargo test --release -p switchboard-store --no-default-features --features sqlite
//! --test sqlite -- --ignored --nocapture`.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use switchboard_core::{
    ChannelName, ClientId, ClientInfo, Epoch, PageFrom, Payload, Prepared, Publication, Store,
    StoreError,
    store::{ReadQuery, StreamAppend, conformance, unix_ms},
};
use switchboard_store::{SqliteConfig, SqliteStore, Synchronous};
use tempfile::TempDir;

fn cfg_at(path: PathBuf) -> SqliteConfig {
    SqliteConfig {
        path,
        synchronous: Synchronous::Full,
        readers: 2,
        timeout: Duration::from_secs(10),
    }
}

fn cfg(dir: &TempDir) -> SqliteConfig {
    cfg_at(dir.path().join("data").join("streams.db"))
}

fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name).unwrap()
}

fn append(
    ch: &ChannelName,
    epoch: &Epoch,
    offsets: std::ops::RangeInclusive<u64>,
    size: usize,
) -> StreamAppend {
    let info = Arc::new(ClientInfo {
        client: ClientId::restore("c1"),
        user: None,
        conn_info: None,
    });
    StreamAppend {
        channel: ch.clone(),
        epoch: epoch.clone(),
        ttl_ms: 3_600_000,
        publications: offsets
            .map(|offset| {
                Arc::new(Prepared::new(Publication {
                    channel: ch.clone(),
                    offset,
                    epoch: epoch.clone(),
                    data: Payload::Binary(Bytes::from(vec![offset as u8; size])),
                    info: Some(info.clone()),
                    published_at: tokio::time::Instant::now(),
                    time_ms: unix_ms(),
                    except: None,
                    volatile: false,
                }))
            })
            .collect(),
    }
}

fn forward(ch: &ChannelName, after: u64, limit: usize) -> ReadQuery {
    ReadQuery {
        channel: ch.clone(),
        from: PageFrom::After(after),
        max_offset: u64::MAX,
        limit,
        now_ms: unix_ms(),
    }
}

async fn offsets(store: &dyn Store, ch: &ChannelName) -> Vec<u64> {
    let page = store.read(forward(ch, 0, 10_000)).await.unwrap();
    page.iter().map(|p| p.offset).collect()
}

#[tokio::test]
async fn the_sqlite_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let config = cfg(&dir);
    conformance::run(
        || async { Arc::new(SqliteStore::open(config.clone()).unwrap()) as Arc<dyn Store> },
        true,
        "",
    )
    .await;
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streams.db");
    fs::write(
        &path,
        b"this is not a database, just some text that is long enough to matter ".repeat(100),
    )
    .unwrap();
    let err = SqliteStore::open(cfg_at(path.clone())).err().unwrap();
    match err {
        StoreError::Corrupt(message) => {
            assert!(
                message.contains(&*path.to_string_lossy()),
                "names the path: {message}"
            );
            assert!(message.contains("not a database"), "{message}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn a_schema_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(cfg(&dir)).unwrap();
    store.close().await.unwrap();
    let conn = rusqlite::Connection::open(&cfg(&dir).path).unwrap();
    conn.execute(
        "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let err = SqliteStore::open(cfg(&dir)).err().unwrap();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("schema version 99")),
        "{err:?}"
    );
}

/// The layout of schema version 1, as its build wrote it.
const SCHEMA_V1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta VALUES ('schema_version', 1);
CREATE TABLE streams (
    id INTEGER PRIMARY KEY, channel TEXT NOT NULL UNIQUE, epoch TEXT NOT NULL,
    top INTEGER NOT NULL, last_append_ms INTEGER NOT NULL, async_run TEXT
);
CREATE TABLE publications (
    stream INTEGER NOT NULL, offset INTEGER NOT NULL, time_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL, kind INTEGER NOT NULL, data BLOB NOT NULL,
    client TEXT, user_id TEXT, conn_info BLOB, PRIMARY KEY (stream, offset)
);
CREATE INDEX publications_by_expiry ON publications (expires_ms);
INSERT INTO streams VALUES (1, 'old', 'epoch-v1', 3, 0, NULL);
INSERT INTO publications (stream, offset, time_ms, expires_ms, kind, data)
    VALUES (1, 1, 0, 9000000000000, 1, x'01'), (1, 2, 0, 9000000000000, 1, x'02'),
           (1, 3, 0, 9000000000000, 1, x'03');
";

#[tokio::test]
async fn a_version_1_file_is_migrated_and_keeps_its_publications() {
    let dir = tempfile::tempdir().unwrap();
    let config = cfg(&dir);
    fs::create_dir_all(config.path.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(&config.path).unwrap();
    conn.execute_batch(SCHEMA_V1).unwrap();
    drop(conn);

    let store = SqliteStore::open(config.clone()).unwrap();
    let ch = channel("old");
    let meta = store.open(&ch, false).await.unwrap();
    assert_eq!((meta.epoch.as_str(), meta.top), ("epoch-v1", 3));
    assert_eq!(offsets(&store, &ch).await, [1, 2, 3]);
    store
        .append(vec![append(&ch, &meta.epoch, 4..=5, 10)])
        .await
        .unwrap();
    assert_eq!(offsets(&store, &ch).await, [1, 2, 3, 4, 5]);
    store.close().await.unwrap();

    let conn = rusqlite::Connection::open(&config.path).unwrap();
    let version: i64 = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, 2);
}

#[tokio::test]
async fn reads_trims_and_stats_see_publications_on_both_sides_of_a_log_move() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(cfg(&dir)).unwrap();
    let ch = channel("moved");
    let meta = store.open(&ch, false).await.unwrap();
    // 3000 publications in batches of 500: the log is moved into the indexed table once
    // it holds 2048 rows, so the last ones are still in the log.
    for b in 0..6u64 {
        store
            .append(vec![append(
                &ch,
                &meta.epoch,
                b * 500 + 1..=b * 500 + 500,
                8,
            )])
            .await
            .unwrap();
    }
    let page = store.read(forward(&ch, 2400, 200)).await.unwrap();
    let got: Vec<u64> = page.iter().map(|p| p.offset).collect();
    assert_eq!(got, (2401..=2600).collect::<Vec<_>>());
    let back = store
        .read(ReadQuery {
            from: PageFrom::Before(2600),
            ..forward(&ch, 0, 200)
        })
        .await
        .unwrap();
    let got: Vec<u64> = back.iter().map(|p| p.offset).collect();
    assert_eq!(got, (2400..=2599).rev().collect::<Vec<_>>());
    let capped = store
        .read(ReadQuery {
            max_offset: 2550,
            ..forward(&ch, 2490, 1000)
        })
        .await
        .unwrap();
    assert_eq!(capped.len(), 60);
    let stats = store.stats(1).await.unwrap();
    assert_eq!((stats.publications, stats.data_bytes), (3000, 24_000));
    assert_eq!(stats.largest[0].publications, 3000);
    let one = store.stream_stats(vec![ch.clone()]).await.unwrap();
    assert_eq!(
        (one[0].publications, one[0].bytes, one[0].top),
        (3000, 24_000, 3000)
    );

    // A cut into the log's rows.
    let removed = store
        .trim(vec![switchboard_core::store::TrimCut {
            channel: ch.clone(),
            through: 2750,
        }])
        .await
        .unwrap();
    assert_eq!(removed, 2750);
    assert_eq!(
        offsets(&store, &ch).await,
        (2751..=3000).collect::<Vec<_>>()
    );
    store
        .append(vec![append(&ch, &meta.epoch, 3001..=3010, 8)])
        .await
        .unwrap();
    // Dropped without `close`, as a crash: the log is moved when the file is opened again.
    drop(store);
    let store = SqliteStore::open(cfg(&dir)).unwrap();
    assert_eq!(store.open(&ch, false).await.unwrap().top, 3010);
    assert_eq!(
        offsets(&store, &ch).await,
        (2751..=3010).collect::<Vec<_>>()
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_location_that_cannot_be_created_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    fs::write(&blocker, b"x").unwrap();
    let path = blocker.join("streams.db");
    let err = SqliteStore::open(cfg_at(path.clone())).err().unwrap();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains(&*path.to_string_lossy())),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_closed_store_refuses_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(cfg(&dir)).unwrap();
    let ch = channel("closed");
    let meta = store.open(&ch, false).await.unwrap();
    store.close().await.unwrap();
    assert_eq!(store.close().await, Ok(()), "closing twice is harmless");
    assert_eq!(store.open(&ch, false).await, Err(StoreError::Closed));
    assert_eq!(
        store.append(vec![append(&ch, &meta.epoch, 1..=1, 8)]).await,
        Err(StoreError::Closed)
    );
    assert_eq!(
        store.read(forward(&ch, 0, 10)).await.err(),
        Some(StoreError::Closed)
    );
    assert_eq!(
        store.expire(unix_ms(), 0, 10).await,
        Err(StoreError::Closed)
    );
    assert_eq!(store.stats(1).await.err(), Some(StoreError::Closed));
}

#[tokio::test]
async fn stats_report_the_file_and_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(cfg(&dir)).unwrap();
    let ch = channel("sized");
    let meta = store.open(&ch, false).await.unwrap();
    store
        .append(vec![append(&ch, &meta.epoch, 1..=10, 1000)])
        .await
        .unwrap();
    let stats = store.stats(10).await.unwrap();
    assert_eq!(stats.kind, "sqlite");
    assert_eq!(stats.location, store.path().display().to_string());
    assert_eq!((stats.streams, stats.publications), (1, 10));
    assert_eq!(stats.data_bytes, 10_000);
    assert!(stats.disk_bytes.unwrap() >= 10_000, "{stats:?}");
    store.close().await.unwrap();
}

#[tokio::test]
async fn expiry_keeps_idle_streams_this_run_writes_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(cfg(&dir)).unwrap();
    let ahead = channel("ahead");
    let plain = channel("plain");
    let a = store.open(&ahead, true).await.unwrap();
    let p = store.open(&plain, false).await.unwrap();
    store.expire(unix_ms() + 10, 0, 1000).await.unwrap();
    assert_eq!(
        store.open(&ahead, true).await.unwrap(),
        a,
        "its mark must survive until the run closes"
    );
    assert_ne!(store.open(&plain, false).await.unwrap().epoch, p.epoch);
    store.close().await.unwrap();

    // After a clean stop the mark is gone and the stream is an ordinary idle one.
    let store = SqliteStore::open(cfg(&dir)).unwrap();
    store.expire(unix_ms() + 10, 0, 1000).await.unwrap();
    assert_ne!(store.open(&ahead, false).await.unwrap().epoch, a.epoch);
    store.close().await.unwrap();
}

// === faults ===

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop. `None` when this
/// process may not mount (not root, no CAP_SYS_ADMIN).
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes to `path` until the file system is full.
fn fill(path: &Path) {
    let mut file = fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
}

#[tokio::test]
async fn appends_fail_while_the_disk_is_full_and_resume_without_reopening() {
    let Some(fs_) = Tmpfs::mount("8m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let config = cfg_at(fs_.path().join("streams.db"));
    let store = SqliteStore::open(config.clone()).unwrap();
    let ch = channel("full");
    let meta = store.open(&ch, false).await.unwrap();
    store
        .append(vec![append(&ch, &meta.epoch, 1..=10, 100)])
        .await
        .unwrap();

    let filler = fs_.path().join("filler");
    fill(&filler);
    // 20 × 32 KiB cannot fit in the WAL the small appends left behind.
    for attempt in 0..3 {
        let err = store
            .append(vec![append(&ch, &meta.epoch, 11..=30, 32 * 1024)])
            .await;
        assert!(
            matches!(&err, Err(StoreError::Unavailable(m))
                if m.contains("full") && m.contains(&*config.path.to_string_lossy())),
            "attempt {attempt}: {err:?}"
        );
    }
    assert_eq!(store.open(&ch, false).await.unwrap().top, 10);
    assert_eq!(offsets(&store, &ch).await, (1..=10).collect::<Vec<_>>());
    store.ping().await.unwrap();

    fs::remove_file(&filler).unwrap();
    store
        .append(vec![append(&ch, &meta.epoch, 11..=30, 32 * 1024)])
        .await
        .unwrap();
    store
        .append(vec![append(&ch, &meta.epoch, 31..=31, 10)])
        .await
        .unwrap();
    assert_eq!(offsets(&store, &ch).await, (1..=31).collect::<Vec<_>>());
    store.close().await.unwrap();
    drop(store);

    let store = SqliteStore::open(config).unwrap();
    assert_eq!(store.open(&ch, false).await.unwrap().top, 31);
    store.close().await.unwrap();
}

fn chattr(flag: &str, paths: &[PathBuf]) -> bool {
    Command::new("chattr")
        .arg(flag)
        .args(paths)
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes the files immutable (which root cannot write either) and undoes it on drop.
struct Immutable(Vec<PathBuf>);

impl Drop for Immutable {
    fn drop(&mut self) {
        chattr("-i", &self.0);
    }
}

#[tokio::test]
async fn appends_fail_while_the_file_is_read_only_and_resume_without_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let config = cfg(&dir);
    let store = SqliteStore::open(config.clone()).unwrap();
    let ch = channel("read-only");
    let meta = store.open(&ch, false).await.unwrap();
    store
        .append(vec![append(&ch, &meta.epoch, 1..=3, 100)])
        .await
        .unwrap();

    let mut wal = config.path.clone().into_os_string();
    wal.push("-wal");
    let files = vec![config.path.clone(), PathBuf::from(wal)];
    if !chattr("+i", &files) {
        eprintln!("skipped: chattr +i is not available here");
        return;
    }
    let guard = Immutable(files);
    for attempt in 0..3 {
        let err = store
            .append(vec![append(&ch, &meta.epoch, 4..=6, 100)])
            .await;
        assert!(
            matches!(&err, Err(StoreError::Unavailable(m))
                if m.contains(&*config.path.to_string_lossy())),
            "attempt {attempt}: {err:?}"
        );
    }
    assert_eq!(offsets(&store, &ch).await, [1, 2, 3]);

    drop(guard);
    store
        .append(vec![append(&ch, &meta.epoch, 4..=6, 100)])
        .await
        .unwrap();
    assert_eq!(offsets(&store, &ch).await, [1, 2, 3, 4, 5, 6]);
    assert_eq!(store.open(&ch, false).await.unwrap().top, 6);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_that_times_out_on_a_lock_is_not_written_later() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig {
        timeout: Duration::from_millis(300),
        ..cfg(&dir)
    };
    let store = SqliteStore::open(config.clone()).unwrap();
    let ch = channel("locked");
    let meta = store.open(&ch, false).await.unwrap();

    // Another program holding the write lock.
    let other = rusqlite::Connection::open(&config.path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = store
        .append(vec![append(&ch, &meta.epoch, 1..=1, 10)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Timeout(300) | StoreError::Unavailable(_)),
        "{err:?}"
    );
    other.execute_batch("ROLLBACK").unwrap();
    drop(other);

    // The writer got the lock only after the caller gave up: it rolled the append back.
    assert_eq!(store.open(&ch, false).await.unwrap().top, 0);
    store
        .append(vec![append(&ch, &meta.epoch, 1..=2, 10)])
        .await
        .unwrap();
    assert_eq!(offsets(&store, &ch).await, [1, 2]);
    store.close().await.unwrap();
}

// === concurrency ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_and_reads_stay_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(cfg(&dir)).unwrap());
    let channels: Vec<ChannelName> = (0..16).map(|n| channel(&format!("c{n}"))).collect();
    let batches = 40u64;
    let per_batch = 3u64;

    let mut writers = Vec::new();
    for ch in channels.clone() {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let meta = store.open(&ch, false).await.unwrap();
            for b in 0..batches {
                let first = b * per_batch + 1;
                store
                    .append(vec![append(
                        &ch,
                        &meta.epoch,
                        first..=first + per_batch - 1,
                        64,
                    )])
                    .await
                    .unwrap();
            }
        }));
    }
    let mut readers = Vec::new();
    for r in 0..4 {
        let store = store.clone();
        let channels = channels.clone();
        readers.push(tokio::spawn(async move {
            for i in 0..100 {
                let ch = &channels[(i * 7 + r) % channels.len()];
                let page: Vec<u64> = offsets(&*store, ch).await;
                // Whole batches only, from 1 without a gap.
                assert_eq!(page.len() as u64 % per_batch, 0, "{ch}: {page:?}");
                assert!(
                    page.iter().copied().eq(1..=page.len() as u64),
                    "{ch}: {page:?}"
                );
                let back = store
                    .read(ReadQuery {
                        from: PageFrom::Before(u64::MAX),
                        ..forward(ch, 0, 5)
                    })
                    .await
                    .unwrap();
                assert!(
                    back.windows(2).all(|w| w[0].offset == w[1].offset + 1),
                    "newest first, no gap"
                );
            }
        }));
    }
    for task in writers.into_iter().chain(readers) {
        task.await.unwrap();
    }
    for ch in &channels {
        assert_eq!(
            store.open(ch, false).await.unwrap().top,
            batches * per_batch
        );
        assert_eq!(offsets(&*store, ch).await.len() as u64, batches * per_batch);
    }
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_on_one_stream_get_each_offset_once() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(cfg(&dir)).unwrap());
    let ch = channel("contended");
    let epoch = store.open(&ch, false).await.unwrap().epoch;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, ch, epoch) = (store.clone(), ch.clone(), epoch.clone());
        tasks.push(tokio::spawn(async move {
            let mut won = 0;
            let mut next = store.open(&ch, false).await.unwrap().top + 1;
            while won < 20 {
                match store
                    .append(vec![append(&ch, &epoch, next..=next, 16)])
                    .await
                {
                    Ok(()) => {
                        won += 1;
                        next += 1;
                    }
                    Err(StoreError::Conflict { expected, .. }) => next = expected,
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(offsets(&*store, &ch).await, (1..=160).collect::<Vec<_>>());
    store.close().await.unwrap();
}

// === throughput ===

/// Appends `batches` batches of `size` publications spread over `streams` streams, one
/// batch at a time as the hub's group commit does. Returns publications per second.
async fn sequential_batches(
    store: &dyn Store,
    batches: u64,
    size: u64,
    streams: u64,
    payload: usize,
) -> f64 {
    let chans: Vec<ChannelName> = (0..streams)
        .map(|n| channel(&format!("seq-{size}-{payload}-{n}")))
        .collect();
    let mut tops = vec![0u64; chans.len()];
    let mut epochs = Vec::new();
    for ch in &chans {
        epochs.push(store.open(ch, false).await.unwrap().epoch);
    }
    let per_stream = size / streams;
    let prepared: Vec<Vec<StreamAppend>> = (0..batches)
        .map(|_| {
            chans
                .iter()
                .enumerate()
                .map(|(i, ch)| {
                    let first = tops[i] + 1;
                    tops[i] += per_stream;
                    append(ch, &epochs[i], first..=tops[i], payload)
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    for batch in prepared {
        store.append(batch).await.unwrap();
    }
    (batches * size) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
async fn append_throughput() {
    for sync in [Synchronous::Full, Synchronous::Normal] {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(SqliteConfig {
                synchronous: sync,
                ..cfg(&dir)
            })
            .unwrap(),
        );
        for (batches, size, streams, payload) in [
            (500, 1, 1, 100),
            (500, 64, 64, 100),
            (200, 256, 64, 100),
            (50, 1024, 64, 100),
            (50, 4096, 256, 100),
            (200, 64, 64, 4096),
        ] {
            let rate = sequential_batches(&*store, batches, size, streams, payload).await;
            println!(
                "{sync:?}: batches of {size:>4} publications ({payload} B) over {streams:>3} streams: \
                 {rate:>9.0} publications/s, {:.3} ms per batch",
                1000.0 * size as f64 / rate
            );
        }

        // 64 publishers each awaiting its own one-publication append: the writer commits
        // what is queued together.
        let started = Instant::now();
        let per_task = 300u64;
        let mut tasks = Vec::new();
        for n in 0..64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let ch = channel(&format!("pub-{n}"));
                let epoch = store.open(&ch, false).await.unwrap().epoch;
                for o in 1..=per_task {
                    store
                        .append(vec![append(&ch, &epoch, o..=o, 100)])
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let rate = (64 * per_task) as f64 / started.elapsed().as_secs_f64();
        println!(
            "{sync:?}: 64 concurrent publishers, one publication per append: {rate:.0} publications/s"
        );
        store.close().await.unwrap();
    }
}
