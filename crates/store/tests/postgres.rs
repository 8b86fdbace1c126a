//! `PostgresStore` against a real PostgreSQL from `switchboard-testkit`: the store contract,
//! then the database being down at start, stopped, killed and disconnected while in use.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "postgres")]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use switchboard_core::{
    ChannelName, Epoch, PageFrom, Payload, Store, StoreError,
    store::{ReadQuery, StreamAppend, conformance, unix_ms},
};
use switchboard_store::{PostgresConfig, PostgresStore};
use switchboard_testkit::PostgresServer;
use tokio::task::block_in_place;

const TIMEOUT: Duration = Duration::from_secs(2);

fn config(url: &str) -> PostgresConfig {
    PostgresConfig {
        url: url.to_owned(),
        pool_size: 4,
        timeout: TIMEOUT,
        schema: "switchboard".to_owned(),
    }
}

fn store(url: &str) -> PostgresStore {
    PostgresStore::new(config(url)).unwrap()
}

fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name).unwrap()
}

fn batch(
    channel: &ChannelName,
    epoch: &Epoch,
    offsets: std::ops::RangeInclusive<u64>,
) -> StreamAppend {
    StreamAppend {
        channel: channel.clone(),
        epoch: epoch.clone(),
        ttl_ms: 3_600_000,
        publications: offsets
            .map(|o| {
                let data = Payload::json(format!("{{\"n\":{o}}}")).unwrap();
                conformance::publication(channel, epoch, o, data)
            })
            .collect(),
    }
}

async fn offsets(store: &dyn Store, channel: &ChannelName) -> Vec<u64> {
    let page = store
        .read(ReadQuery {
            channel: channel.clone(),
            from: PageFrom::After(0),
            max_offset: u64::MAX,
            limit: 100_000,
            now_ms: unix_ms(),
        })
        .await
        .unwrap();
    page.iter().map(|p| p.offset).collect()
}

fn is_outage(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(_) | StoreError::Timeout(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_contract() {
    let pg = block_in_place(PostgresServer::start).unwrap();
    let url = pg.create_database("contract").unwrap();
    conformance::run(
        || {
            let url = url.clone();
            async move { Arc::new(store(&url)) as Arc<dyn Store> }
        },
        true,
        "",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_name_the_database_without_the_password() {
    let pg = block_in_place(PostgresServer::start).unwrap();
    pg.create_database("stats").unwrap();
    // Trust authentication ignores the password; it must still not be shown.
    let url = format!("postgres://postgres:s3cret@127.0.0.1:{}/stats", pg.port());
    let store = store(&url);
    let stats = store.stats(10).await.unwrap();
    assert_eq!(stats.kind, "postgres");
    assert_eq!(
        stats.location,
        format!("127.0.0.1:{}/stats/switchboard", pg.port())
    );
    assert!(stats.disk_bytes.is_some_and(|b| b > 0));
    assert!(!format!("{stats:?}").contains("s3cret"));
}

#[test]
fn bad_settings_are_refused_without_connecting() {
    let bad_url = PostgresStore::new(config("postgres://[oops"))
        .err()
        .unwrap();
    assert!(bad_url.to_string().contains("URL"), "{bad_url}");
    let bad_schema = PostgresStore::new(PostgresConfig {
        schema: "x\"; DROP TABLE y; --".to_owned(),
        ..config("postgres://postgres@127.0.0.1:1/db")
    })
    .err()
    .unwrap();
    assert!(bad_schema.to_string().contains("schema"), "{bad_schema}");
    let tls = PostgresStore::new(config("postgres://postgres@127.0.0.1:1/db?sslmode=require"))
        .err()
        .unwrap();
    assert!(tls.to_string().contains("TLS"), "{tls}");
    let no_timeout = PostgresStore::new(PostgresConfig {
        timeout: Duration::ZERO,
        ..config("postgres://postgres@127.0.0.1:1/db")
    });
    assert!(no_timeout.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_made_while_postgres_is_down_works_once_it_is_up() {
    let mut pg = block_in_place(PostgresServer::start).unwrap();
    let url = pg.url();
    block_in_place(|| pg.stop()).unwrap();

    let store = store(&url);
    let ch = channel("down-at-start");
    let started = Instant::now();
    let err = store.ping().await.unwrap_err();
    assert!(is_outage(&err), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1"), "says where: {err}");
    let err = store
        .append(vec![batch(&ch, &Epoch::generate(), 1..=1)])
        .await
        .unwrap_err();
    assert!(is_outage(&err), "{err:?}");
    assert!(store.open(&ch, false).await.is_err());
    assert!(
        started.elapsed() < TIMEOUT * 3,
        "failures are quick: {:?}",
        started.elapsed()
    );

    block_in_place(|| pg.start_again()).unwrap();
    store.ping().await.unwrap();
    let meta = store.open(&ch, false).await.unwrap();
    store
        .append(vec![batch(&ch, &meta.epoch, 1..=3)])
        .await
        .unwrap();
    assert_eq!(offsets(&store, &ch).await, [1, 2, 3]);
}

/// How a test takes the database away.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// Fast shutdown.
    Stop,
    /// SIGKILL of every PostgreSQL process.
    Kill,
    /// The server stays up but ends every client connection.
    Disconnect,
    /// SIGSTOP: connections open but nothing answers, as with a hung host.
    Pause,
}

/// Appends in a loop while the database goes away and comes back; checks that every append
/// reported done is there afterwards, that failures are outage errors (never `Ok`), and that
/// the same store carries on.
async fn appends_survive(outage: Outage) {
    let mut pg = block_in_place(PostgresServer::start).unwrap();
    let url = pg.url();
    let store = Arc::new(store(&url));
    let ch = channel("outage");
    let meta = store.open(&ch, false).await.unwrap();
    let back = Arc::new(AtomicBool::new(false));

    let writer = {
        let store = store.clone();
        let ch = ch.clone();
        let epoch = meta.epoch.clone();
        let back = back.clone();
        tokio::spawn(async move {
            let mut acked = 0u64;
            let mut failures = 0u32;
            let mut acked_after = 0u32;
            let mut slowest_failure = Duration::ZERO;
            let deadline = Instant::now() + Duration::from_secs(60);
            // Until 20 appends succeeded after the database was back.
            while acked_after < 20 {
                assert!(Instant::now() < deadline, "appends did not resume");
                let restored = back.load(Ordering::Acquire);
                let called = Instant::now();
                match store
                    .append(vec![batch(&ch, &epoch, acked + 1..=acked + 5)])
                    .await
                {
                    Ok(()) => {
                        acked += 5;
                        acked_after += u32::from(restored);
                    }
                    // An earlier append committed but its reply was lost.
                    Err(StoreError::Conflict { expected, .. }) => acked = expected - 1,
                    Err(e) => {
                        assert!(is_outage(&e), "an outage, not {e:?}");
                        slowest_failure = slowest_failure.max(called.elapsed());
                        failures += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            println!("{outage:?}: {failures} failed appends, the slowest in {slowest_failure:?}");
            assert!(slowest_failure <= TIMEOUT + Duration::from_millis(500));
            (acked, failures)
        })
    };

    // Let some appends through, then take the database away.
    let ready = Instant::now() + Duration::from_secs(20);
    while store.open(&ch, false).await.unwrap().top < 50 {
        assert!(Instant::now() < ready, "appends did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    match outage {
        Outage::Stop | Outage::Kill | Outage::Pause => {
            match outage {
                Outage::Stop => block_in_place(|| pg.stop()).unwrap(),
                Outage::Kill => block_in_place(|| pg.kill()).unwrap(),
                _ => pg.pause().unwrap(),
            }
            let failed_at = Instant::now();
            let err = store.ping().await.unwrap_err();
            assert!(is_outage(&err), "{err:?}");
            assert!(failed_at.elapsed() <= TIMEOUT + Duration::from_millis(500));
            tokio::time::sleep(Duration::from_millis(300)).await;
            match outage {
                Outage::Pause => pg.resume().unwrap(),
                _ => block_in_place(|| pg.start_again()).unwrap(),
            }
        }
        Outage::Disconnect => {
            let ended = pg
                .psql(
                    "postgres",
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE application_name = 'switchboard'",
                )
                .unwrap();
            assert_ne!(ended, "0", "the store's connections were ended");
        }
    }
    back.store(true, Ordering::Release);

    let (acked, failures) = writer.await.unwrap();
    if !matches!(outage, Outage::Disconnect) {
        assert!(failures > 0, "{outage:?} made at least one append fail");
    }
    let stored = offsets(&*store, &ch).await;
    assert!(
        stored.len() as u64 >= acked,
        "{outage:?}: {} stored, {acked} acknowledged",
        stored.len()
    );
    assert_eq!(
        stored,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "{outage:?}: offsets are gapless"
    );
    let meta_after = store.open(&ch, false).await.unwrap();
    assert_eq!(
        meta_after.epoch, meta.epoch,
        "a sync stream keeps its epoch"
    );
    assert_eq!(meta_after.top, stored.len() as u64);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_fail_while_postgres_is_stopped_and_resume_on_the_same_store() {
    appends_survive(Outage::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_postgres_being_killed() {
    appends_survive(Outage::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_time_out_while_postgres_hangs_and_resume_after() {
    appends_survive(Outage::Pause).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_made_again() {
    appends_survive(Outage::Disconnect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_appends_and_reads_agree() {
    let pg = block_in_place(PostgresServer::start).unwrap();
    let store = Arc::new(store(&pg.url()));

    // Everyone opening the same new stream at once gets the same one.
    let shared = channel("shared");
    let opens: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let shared = shared.clone();
            tokio::spawn(async move { store.open(&shared, false).await.unwrap() })
        })
        .collect();
    let mut metas = Vec::new();
    for open in opens {
        metas.push(open.await.unwrap());
    }
    assert!(metas.windows(2).all(|w| w[0] == w[1]), "{metas:?}");

    // Writers on their own streams (the store serializes them), readers beside them.
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let ch = channel(&format!("busy-{w}"));
                let meta = store.open(&ch, false).await.unwrap();
                for round in 0..25u64 {
                    store
                        .append(vec![batch(&ch, &meta.epoch, round * 4 + 1..=round * 4 + 4)])
                        .await
                        .unwrap();
                    let seen = offsets(&*store, &ch).await;
                    assert_eq!(seen, (1..=round * 4 + 4).collect::<Vec<_>>());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let stats = store.stats(3).await.unwrap();
    assert_eq!(stats.publications, 8 * 100);
    assert_eq!(stats.largest.len(), 3);
    assert!(
        stats
            .largest
            .iter()
            .all(|s| s.publications == 100 && s.top == 100)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_marked_by_a_crashed_run_gets_a_new_epoch_even_when_opened_sync() {
    let pg = block_in_place(PostgresServer::start).unwrap();
    let url = pg.url();
    let ch = channel("marked");
    let crashed = store(&url);
    let before = crashed.open(&ch, true).await.unwrap();
    crashed
        .append(vec![batch(&ch, &before.epoch, 1..=3)])
        .await
        .unwrap();
    drop(crashed); // no close: as a crash

    let next = store(&url);
    let after = next.open(&ch, false).await.unwrap();
    assert_ne!(after.epoch, before.epoch, "a new epoch");
    assert_eq!(after.top, 3, "the offsets stay");
    assert_eq!(
        offsets(&next, &ch).await,
        [1, 2, 3],
        "and so do the publications"
    );
    assert_eq!(next.open(&ch, false).await.unwrap(), after, "only once");
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM switchboard.streams WHERE async_run IS NOT NULL"
        )
        .unwrap(),
        "0",
        "the mark is cleared by a sync open"
    );
    next.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_keeps_the_empty_streams_this_run_writes_ahead() {
    let pg = block_in_place(PostgresServer::start).unwrap();
    let store = store(&pg.url());
    let ahead = channel("ahead");
    let plain = channel("plain");
    let a = store.open(&ahead, true).await.unwrap();
    let p = store.open(&plain, false).await.unwrap();
    let later = unix_ms() + 1_000;
    assert_eq!(store.expire(later, 0, 100).await.unwrap(), 0);
    assert_eq!(store.open(&ahead, true).await.unwrap(), a, "kept");
    assert_ne!(
        store.open(&plain, false).await.unwrap().epoch,
        p.epoch,
        "dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_needs_the_database_only_to_clear_marks() {
    let mut pg = block_in_place(PostgresServer::start).unwrap();
    let url = pg.url();
    let sync_only = store(&url);
    sync_only.open(&channel("s"), false).await.unwrap();
    let with_marks = store(&url);
    with_marks.open(&channel("a"), true).await.unwrap();
    block_in_place(|| pg.stop()).unwrap();

    sync_only.close().await.unwrap();
    let err = with_marks.close().await.unwrap_err();
    assert!(is_outage(&err), "{err:?}");
    assert_eq!(
        with_marks.ping().await,
        Err(StoreError::Closed),
        "closed all the same"
    );
    assert_eq!(sync_only.ping().await, Err(StoreError::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_spans_many_streams_and_repeats_of_one() {
    let pg = block_in_place(PostgresServer::start).unwrap();
    let store = store(&pg.url());
    let epoch = Epoch::generate();
    let channels: Vec<_> = (0..300).map(|i| channel(&format!("wide-{i}"))).collect();
    let mut appends: Vec<_> = channels.iter().map(|c| batch(c, &epoch, 1..=3)).collect();
    // A second entry for the same stream continues it.
    appends.push(batch(&channels[0], &epoch, 4..=5));
    store.append(appends).await.unwrap();
    assert_eq!(offsets(&store, &channels[0]).await, [1, 2, 3, 4, 5]);
    assert_eq!(offsets(&store, &channels[299]).await, [1, 2, 3]);
    // A second entry that does not continue it is a conflict, and nothing is written.
    let err = store
        .append(vec![
            batch(&channels[1], &epoch, 4..=4),
            batch(&channels[1], &epoch, 6..=6),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 5,
                got: 6,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.open(&channels[1], false).await.unwrap().top, 3);
}

/// Append throughput in the hub's shape: batches of publications over distinct streams, one
/// batch at a time. Run with
/// `cargo test --release -p switchboard-store --no-default-features --features postgres
/// --test postgres -- --ignored --nocapture append_throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn append_throughput() {
    let pg = block_in_place(PostgresServer::start).unwrap();
    println!(
        "synchronous_commit={} fsync={}",
        pg.psql("postgres", "SHOW synchronous_commit").unwrap(),
        pg.psql("postgres", "SHOW fsync").unwrap()
    );
    let store = store(&pg.url());
    for streams in [1usize, 16, 64, 256, 1024] {
        let channels: Vec<_> = (0..streams)
            .map(|i| channel(&format!("bench-{streams}-{i}")))
            .collect();
        let mut epochs = Vec::new();
        for c in &channels {
            epochs.push(store.open(c, false).await.unwrap().epoch);
        }
        let mut top = 0;
        let mut batches = 0u32;
        let mut latencies = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            let appends = channels
                .iter()
                .zip(&epochs)
                .map(|(c, e)| batch(c, e, top + 1..=top + 1))
                .collect();
            let t = Instant::now();
            store.append(appends).await.unwrap();
            latencies.push(t.elapsed());
            top += 1;
            batches += 1;
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let per_s = f64::from(batches) * streams as f64 / elapsed.as_secs_f64();
        println!(
            "batch of {streams:>4}: {batches:>5} batches, {per_s:>9.0} publications/s, \
             batch p50 {:?} p99 {:?}",
            latencies[latencies.len() / 2],
            latencies[latencies.len() * 99 / 100],
        );
    }
}

/// The hub's shape end to end: `publishers` tasks each publish and wait for the commit, one
/// writer task drains whatever is pending into one append (group commit) and acknowledges.
/// Run as `append_throughput` says, filtering on `group_commit_throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn group_commit_throughput() {
    use tokio::sync::{mpsc, oneshot};

    let pg = block_in_place(PostgresServer::start).unwrap();
    let store = Arc::new(store(&pg.url()));
    for publishers in [1usize, 16, 64, 256] {
        let (tx, mut rx) = mpsc::channel::<(usize, oneshot::Sender<()>)>(publishers);
        let channels: Vec<_> = (0..publishers)
            .map(|i| channel(&format!("group-{publishers}-{i}")))
            .collect();
        let mut epochs = Vec::new();
        for c in &channels {
            epochs.push(store.open(c, false).await.unwrap().epoch);
        }
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tops = vec![0u64; channels.len()];
                let mut batches = 0u64;
                while let Some(first) = rx.recv().await {
                    let mut pending = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        pending.push(more);
                    }
                    let appends = pending
                        .iter()
                        .map(|(i, _)| {
                            tops[*i] += 1;
                            batch(&channels[*i], &epochs[*i], tops[*i]..=tops[*i])
                        })
                        .collect();
                    store.append(appends).await.unwrap();
                    batches += 1;
                    for (_, ack) in pending {
                        let _ = ack.send(());
                    }
                }
                batches
            })
        };
        let started = Instant::now();
        let run_for = Duration::from_secs(3);
        let tasks: Vec<_> = (0..publishers)
            .map(|i| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut done = 0u64;
                    while started.elapsed() < run_for {
                        let (ack, acked) = oneshot::channel();
                        tx.send((i, ack)).await.unwrap();
                        acked.await.unwrap();
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        drop(tx);
        let mut published = 0;
        for t in tasks {
            published += t.await.unwrap();
        }
        let elapsed = started.elapsed();
        let batches = writer.await.unwrap();
        println!(
            "{publishers:>3} publishers: {:>7.0} publications/s, {:.1} per batch",
            published as f64 / elapsed.as_secs_f64(),
            published as f64 / batches as f64
        );
    }
}
