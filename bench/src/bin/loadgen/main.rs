//! `loadgen`: the load generator of switchboard's macro benchmark. It drives a server that
//! speaks `docs/protocol.md` over WebSocket (switchboard, or the floor in `src/bin/floor.rs`)
//! on loopback and measures fan-out throughput, latency, loss and idle memory per connection;
//! `loadgen publish` measures how fast switchboard acknowledges publishes (over its HTTP API or
//! WebSocket), which is where its store's commits show. `loadgen sio-fanout` and `loadgen
//! sio-idle` are `fanout` and `idle` over Socket.IO (Engine.IO v4 over WebSocket, a room for
//! the channel), against switchboard's `/socket.io/` or any Socket.IO 4.x server.
//!
//! `bench/run.sh` starts the servers and calls it; see `bench/README.md` for the scenarios
//! and how to read the numbers. Output: human-readable lines, and one JSON line (starting
//! with `{`) per step or scenario; `loadgen table FILE…` turns JSON lines into the comparison
//! table. The generator must never be the bottleneck it measures, so it reports its own CPU
//! and keeps its per-message work to a frame header and two substring searches.

mod fanout;
mod fleet;
mod http;
mod idle;
mod procfs;
mod publication;
mod publish;
mod publisher;
mod report;
mod sio;
mod stats;
mod ws;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::fanout::{Bench, SearchConfig, StepConfig};
use crate::fleet::{FleetConfig, Protocol};
use crate::publish::{PublishConfig, Via};
use crate::report::Record;
use crate::stats::Shared;
use crate::ws::Target;

/// Load generator for switchboard's macro benchmark.
#[derive(Parser, Debug)]
#[command(name = "loadgen", version)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// N subscribers on one channel, one publisher at a steady rate.
    Fanout(FanoutArgs),
    /// Server memory per idle subscribed connection.
    Idle(IdleArgs),
    /// `fanout` over Socket.IO: N sockets join a room, one emits `pub` events to it.
    SioFanout(FanoutArgs),
    /// `idle` over Socket.IO: server memory per connected socket in a room.
    SioIdle(IdleArgs),
    /// P closed-loop publishers over K channels: publications acknowledged per second and
    /// publish→reply latency.
    Publish(PublishArgs),
    /// Prints the comparison table from JSON lines written by the other scenarios.
    Table {
        /// Files holding the JSON lines (other lines are skipped).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Adds a column with the ratio of two labels' values, as `A/B`; repeatable (default
        /// `switchboard/floor`). A column shows when both labels are there.
        #[arg(long)]
        ratio: Vec<String>,
    },
}

#[derive(Args, Debug)]
struct Common {
    /// WebSocket endpoint of the server (default `ws://127.0.0.1:8000/ws`; for `sio-*`
    /// `ws://127.0.0.1:8000/socket.io/?EIO=4&transport=websocket`, which is also what a
    /// `sio-*` URL without a path gets).
    #[arg(long)]
    url: Option<String>,
    /// Name of the server in the output (`switchboard`, `floor`…).
    #[arg(long, default_value = "server")]
    label: String,
    /// Server process to read CPU and RSS from (`/proc/<pid>`).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Subscriber connections.
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// Channel to subscribe and publish to (Socket.IO: the room to join and emit to).
    #[arg(long, default_value = "bench")]
    channel: String,
    /// Worker threads of the subscribers' runtime (the publisher has its own thread).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Connections set up at once (TCP connect to subscribe reply).
    #[arg(long, default_value_t = 200)]
    connect_batch: usize,
    /// Longest one connection may take from TCP connect to subscribe reply (Socket.IO: to
    /// the ack of its `join`; a join sent and not acknowledged by then is a lost join), in
    /// seconds.
    #[arg(long, default_value_t = 10.0)]
    connect_timeout_s: f64,
}

#[derive(Args, Debug)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    /// Publications per second (a single step; ignored with --find-max).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Searches for the highest passing rate instead of measuring one.
    #[arg(long)]
    find_max: bool,
    /// Warm-up before each measured window, in seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
    /// Measured window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    window_s: f64,
    /// Longest wait after the window for its publications to arrive, in seconds.
    #[arg(long, default_value_t = 3.0)]
    drain_s: f64,
    /// A step passes when its p99 latency is below this (and nothing is lost).
    #[arg(long, default_value_t = 100.0)]
    p99_limit_ms: f64,
    /// First rate of the search (default: 50 000 deliveries/s worth, 50000 / N).
    #[arg(long)]
    start_rate: Option<f64>,
    /// Highest rate the search tries.
    #[arg(long, default_value_t = 100_000.0)]
    max_rate: f64,
    /// The search stops when lowest failure / best pass ≤ 1 + this.
    #[arg(long, default_value_t = 0.1)]
    precision: f64,
    /// Time budget of the whole search, in seconds.
    #[arg(long, default_value_t = 240.0)]
    max_time_s: f64,
}

#[derive(Args, Debug)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// How long the connections sit idle before the second RSS reading, in seconds.
    #[arg(long, default_value_t = 3.0)]
    settle_s: f64,
}

#[derive(Args, Debug)]
struct PublishArgs {
    /// Base URL of the server (`/api/publish` and `/ws` are added).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// Name of the run in the output (the store and durability, e.g. `sqlite-sync`).
    #[arg(long, default_value = "server")]
    label: String,
    /// Server process to read CPU and RSS from (`/proc/<pid>`).
    #[arg(long)]
    server_pid: Option<u32>,
    /// How to publish: HTTP API (`POST /api/publish`) or WebSocket `publish` commands.
    #[arg(long, value_enum)]
    via: Via,
    /// Publishers, each with its own connection and one publish outstanding at a time.
    #[arg(long, default_value_t = 64)]
    publishers: usize,
    /// Channels; publisher i publishes to `bench:{i % K}` (1: all on one channel).
    #[arg(long, default_value_t = 64)]
    channels: usize,
    /// Size of each publication's `data`, in bytes of JSON text (at least 10).
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// Warm-up before the measured window, in seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
    /// Measured window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    window_s: f64,
    /// Longest wait for one reply, in seconds; a publisher that waits longer stops.
    #[arg(long, default_value_t = 15.0)]
    reply_timeout_s: f64,
    /// Longest one publisher may take to connect, in seconds.
    #[arg(long, default_value_t = 10.0)]
    connect_timeout_s: f64,
    /// Worker threads of the publishers' runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Most publishers one run may open.
const MAX_PUBLISHERS: usize = 10_000;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (common, protocol) = match &cli.scenario {
        Scenario::Fanout(args) => (&args.common, Protocol::Native),
        Scenario::Idle(args) => (&args.common, Protocol::Native),
        Scenario::SioFanout(args) => (&args.common, Protocol::SocketIo),
        Scenario::SioIdle(args) => (&args.common, Protocol::SocketIo),
        Scenario::Publish(args) => return publish_main(args),
        Scenario::Table { files, ratio } => {
            let ratios = ratio
                .iter()
                .map(|r| {
                    r.split_once('/')
                        .with_context(|| format!("--ratio {r}: expected LABEL/LABEL"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            return report::table(files, &ratios);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(common.threads.max(1))
        .thread_name("subscribers")
        .enable_all()
        .build()
        .context("building the subscribers' runtime")?;
    let publisher = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("publisher")
        .enable_all()
        .build()
        .context("building the publisher's runtime")?;
    let bench = Bench {
        label: common.label.clone(),
        fleet: FleetConfig {
            target: Target::parse(&url(common.url.as_deref(), protocol))?,
            protocol,
            channel: common.channel.clone(),
            n: common.n,
            batch: common.connect_batch,
            timeout: secs(common.connect_timeout_s, "--connect-timeout-s")?,
        },
        server: common.server_pid,
        shared: Arc::new(Shared::default()),
        publisher: publisher.handle().clone(),
        next_seq: AtomicU64::new(1),
    };
    let result = runtime.block_on(run(&cli.scenario, &bench));
    // Dropping a runtime waits for its threads; both are outside any async context here.
    drop(runtime);
    drop(publisher);
    result
}

async fn run(scenario: &Scenario, bench: &Bench) -> anyhow::Result<()> {
    match scenario {
        Scenario::Fanout(args) | Scenario::SioFanout(args) => {
            let step = StepConfig {
                warmup: secs(args.warmup_s, "--warmup-s")?,
                window: secs(args.window_s, "--window-s")?,
                drain: secs(args.drain_s, "--drain-s")?,
                p99_limit_ms: args.p99_limit_ms,
            };
            anyhow::ensure!(args.window_s > 0.0, "--window-s must be positive");
            if args.find_max {
                let search = SearchConfig {
                    start_rate: args
                        .start_rate
                        .unwrap_or_else(|| (50_000.0 / bench.fleet.n.max(1) as f64).max(1.0)),
                    max_rate: args.max_rate,
                    precision: args.precision,
                    max_time: secs(args.max_time_s, "--max-time-s")?,
                };
                let found = bench.find_max(&step, &search).await?;
                Record::FanoutMax(found).print();
            } else {
                anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
                let fleet = bench.open_fleet().await?;
                let result = bench.step(args.rate, &step).await;
                fleet.close();
                Record::FanoutStep(result?).print();
            }
        }
        Scenario::Idle(args) | Scenario::SioIdle(args) => {
            let record = idle::run(bench, secs(args.settle_s, "--settle-s")?).await;
            Record::Idle(record).print();
        }
        Scenario::Publish(_) | Scenario::Table { .. } => {}
    }
    Ok(())
}

fn publish_main(args: &PublishArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=MAX_PUBLISHERS).contains(&args.publishers),
        "--publishers must be between 1 and {MAX_PUBLISHERS}"
    );
    anyhow::ensure!(args.channels >= 1, "--channels must be at least 1");
    anyhow::ensure!(
        (publish::MIN_PAYLOAD_BYTES..=60_000).contains(&args.payload_bytes),
        "--payload-bytes must be between {} and 60000",
        publish::MIN_PAYLOAD_BYTES
    );
    anyhow::ensure!(args.window_s > 0.0, "--window-s must be positive");
    let config = PublishConfig {
        label: args.label.clone(),
        url: args.url.clone(),
        server: args.server_pid,
        via: args.via,
        publishers: args.publishers,
        channels: args.channels,
        payload_bytes: args.payload_bytes,
        warmup: secs(args.warmup_s, "--warmup-s")?,
        window: secs(args.window_s, "--window-s")?,
        connect_timeout: secs(args.connect_timeout_s, "--connect-timeout-s")?,
        reply_timeout: secs(args.reply_timeout_s, "--reply-timeout-s")?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .thread_name("publishers")
        .enable_all()
        .build()
        .context("building the publishers' runtime")?;
    let record = runtime.block_on(publish::run(&config));
    // Dropping the runtime waits for its threads; it is outside any async context here.
    drop(runtime);
    Record::Publish(record?).print();
    Ok(())
}

/// The endpoint to open: `--url`, or the protocol's default; a Socket.IO URL without a path
/// gets the default Engine.IO WebSocket path.
fn url(given: Option<&str>, protocol: Protocol) -> String {
    match (given, protocol) {
        (None, Protocol::Native) => "ws://127.0.0.1:8000/ws".to_owned(),
        (None, Protocol::SocketIo) => format!("ws://127.0.0.1:8000{}", sio::DEFAULT_PATH),
        (Some(url), Protocol::SocketIo) => {
            let rest = url.strip_prefix("ws://").unwrap_or(url);
            match rest.find('/') {
                None => format!("{url}{}", sio::DEFAULT_PATH),
                Some(i) if &rest[i..] == "/" => {
                    format!("{}{}", url.trim_end_matches('/'), sio::DEFAULT_PATH)
                }
                Some(_) => url.to_owned(),
            }
        }
        (Some(url), Protocol::Native) => url.to_owned(),
    }
}

fn secs(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("{flag} {value}: not a duration"))
}
