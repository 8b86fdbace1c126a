//! `pgserver`: a throwaway PostgreSQL for `bench/run.sh publish`, started with
//! `switchboard-testkit` (`initdb` in a temporary directory, `fsync` on, a free loopback port).
//!
//! It creates the databases it is asked for, prints one `database NAME URL` line for each, then
//! `ready`, and keeps the server until SIGTERM, SIGINT, or `--max-lifetime-s`, whichever comes
//! first; then it stops PostgreSQL (fast shutdown, up to 30 s) and removes its directory. Every
//! PostgreSQL process is its child, so starting it under `taskset -c 0` pins the whole database
//! to core 0 (CPU affinity is inherited across fork and exec). Never for production: trust
//! authentication, no password.

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use switchboard_testkit::PostgresServer;
use tokio::signal::unix::{SignalKind, signal};

/// Throwaway PostgreSQL server for the benchmark.
#[derive(Parser, Debug)]
#[command(name = "pgserver", version)]
struct Args {
    /// A database to create (repeatable); its URL is printed.
    #[arg(long = "database")]
    databases: Vec<String>,
    /// Stops the server after this many seconds even without a signal, so a killed
    /// `run.sh` cannot leave it running for ever.
    #[arg(long, default_value_t = 7200)]
    max_lifetime_s: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pg = PostgresServer::start().context("starting PostgreSQL")?;
    println!("postgres listening on 127.0.0.1:{}", pg.port());
    for name in &args.databases {
        let url = pg
            .create_database(name)
            .with_context(|| format!("creating database {name}"))?;
        println!("database {name} {url}");
    }
    println!("ready");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the runtime")?;
    let why = runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
        let lifetime = Duration::from_secs(args.max_lifetime_s);
        anyhow::Ok(tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            () = tokio::time::sleep(lifetime) => "--max-lifetime-s reached",
        })
    })?;
    drop(runtime);
    println!("stopping ({why})");
    // Dropping the server stops it and removes its directory.
    drop(pg);
    println!("stopped");
    Ok(())
}
