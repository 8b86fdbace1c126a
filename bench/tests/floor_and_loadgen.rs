//! End-to-end check of the bench's two binaries: the floor starts and prints its address, and
//! a short `loadgen fanout` and `loadgen idle` against it deliver every publication and report
//! one JSON line each. Latency is not asserted: the test machine may be busy.

use std::process::Command;

mod support;

use support::{Server, loadgen_json as loadgen, start_listening};

fn start_floor() -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_floor"));
    cmd.args(["--listen", "127.0.0.1:0"]);
    start_listening(cmd)
}

#[test]
fn fanout_against_the_floor_delivers_every_publication() {
    let floor = start_floor();
    let url = format!("ws://{}/ws", floor.addr());
    let pid = floor.pid();
    let step = loadgen(&[
        "fanout",
        "--url",
        &url,
        "--label",
        "floor",
        "--server-pid",
        &pid,
        "--n",
        "50",
        "--rate",
        "20",
        "--warmup-s",
        "0.5",
        "--window-s",
        "1",
        "--drain-s",
        "5",
    ]);
    assert_eq!(step["kind"], "fanout_step");
    assert_eq!(step["subscribers"], 50);
    assert!(step["published"].as_u64().expect("a count") >= 15, "{step}");
    assert_eq!(step["missing"], 0, "{step}");
    assert_eq!(step["gaps"], 0, "{step}");
    assert_eq!(step["disconnects"], 0, "{step}");
    assert_eq!(step["delivered"], step["expected"], "{step}");
    assert!(step["server_cpu_pct"].is_number(), "{step}");
}

#[test]
fn idle_against_the_floor_reports_memory_per_connection() {
    let floor = start_floor();
    let url = format!("ws://{}/ws", floor.addr());
    let pid = floor.pid();
    let idle = loadgen(&[
        "idle",
        "--url",
        &url,
        "--label",
        "floor",
        "--server-pid",
        &pid,
        "--n",
        "200",
        "--settle-s",
        "0.2",
    ]);
    assert_eq!(idle["kind"], "idle");
    assert_eq!(idle["subscribed"], 200, "{idle}");
    assert!(
        idle["kib_per_connection"].as_f64().expect("a number") > 0.0,
        "{idle}"
    );
}
