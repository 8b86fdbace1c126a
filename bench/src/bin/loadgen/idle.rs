//! Scenario `idle`: the server's resident memory per open, subscribed, silent connection.
//!
//! Reads the server's RSS, opens N subscribers, lets them sit for a settle time (long enough
//! for lazily allocated per-connection state to appear, short of the first heartbeat), reads
//! the RSS again and divides the difference by the connections that subscribed. The server's
//! CPU over the settle time shows what idle connections cost it (timers, heartbeats).
//!
//! `sio-idle` is the same over Socket.IO: a connection counts once its `join` is acknowledged,
//! so the figure is memory per connected Socket.IO socket in a room.

use std::time::Duration;

use crate::fanout::Bench;
use crate::fleet::Fleet;
use crate::procfs::{self, Pid};
use crate::report::Idle;

/// Runs the scenario once and closes the connections.
pub(crate) async fn run(bench: &Bench, settle: Duration) -> Idle {
    let server = || bench.server.and_then(|pid| procfs::sample(Pid::Other(pid)));
    let before = server();
    let fleet = Fleet::open(&bench.fleet, &bench.shared).await;
    let settle_start = server();
    tokio::time::sleep(settle).await;
    let after = server();
    fleet_report(bench, &fleet);
    let per_connection = match (before, after) {
        (Some(b), Some(a)) if fleet.subscribed > 0 => {
            Some((a.rss_kib as f64 - b.rss_kib as f64) / fleet.subscribed as f64)
        }
        _ => None,
    };
    let cpu = match (settle_start, after) {
        (Some(b), Some(a)) => Some(procfs::cpu_percent(&b, &a)),
        _ => None,
    };
    let record = Idle {
        label: bench.label.clone(),
        protocol: bench.fleet.protocol,
        lost_joins: fleet.lost_joins,
        n: bench.fleet.n,
        subscribed: fleet.subscribed,
        failed: fleet.failed,
        first_error: fleet.first_error.clone(),
        setup_s: fleet.setup.as_secs_f64(),
        settle_s: settle.as_secs_f64(),
        rss_before_kib: before.map(|s| s.rss_kib),
        rss_after_kib: after.map(|s| s.rss_kib),
        kib_per_connection: per_connection,
        server_cpu_pct: cpu,
    };
    fleet.close();
    record
}

fn fleet_report(bench: &Bench, fleet: &Fleet) {
    if fleet.failed > 0 {
        eprintln!(
            "[{}] idle: {} of {} connections failed; first: {}",
            bench.label,
            fleet.failed,
            bench.fleet.n,
            fleet.first_error.as_deref().unwrap_or("unknown")
        );
    }
    if fleet.lost_joins > 0 {
        eprintln!(
            "[{}] idle: {} of {} joins got no ack within the setup timeout",
            bench.label, fleet.lost_joins, bench.fleet.n
        );
    }
}
