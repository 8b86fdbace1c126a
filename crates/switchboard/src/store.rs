//! `switchboard store stats`: the store's size and its largest streams, read directly from the
//! configured store (SQLite reads are safe while a server runs on the same file).

use std::process::ExitCode;

use anyhow::Context;
use switchboard_server::Config;

use crate::cli::StoreStatsArgs;

/// Prints the store's statistics.
pub(crate) fn stats(config: &Config, args: &StoreStatsArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let timeout = config.hub_store_timeout();
        let store = switchboard_server::store::open(&config.store, timeout)
            .context("cannot open the store")?;
        let stats = tokio::time::timeout(timeout, store.stats(args.largest))
            .await
            .context("the store did not answer in time")?
            .context("cannot read the store")?;
        // A read-only look: leave the store as the server left it.
        let _ = store.close().await;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&stats)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!("store        {} ({})", stats.kind, stats.location);
        println!("streams      {}", stats.streams);
        println!("publications {}", stats.publications);
        println!("data         {}", human(stats.data_bytes));
        if let Some(d) = stats.disk_bytes {
            println!("on disk      {}", human(d));
        }
        if !stats.largest.is_empty() {
            println!();
            println!(
                "{:<40} {:>12} {:>10} {:>12}  epoch",
                "channel", "publications", "bytes", "last offset"
            );
            for s in &stats.largest {
                println!(
                    "{:<40} {:>12} {:>10} {:>12}  {}",
                    s.channel.as_str(),
                    s.publications,
                    human(s.bytes),
                    s.top,
                    s.epoch
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
