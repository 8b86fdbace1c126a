//! End-to-end check of `loadgen publish` against the real `switchboard` binary with
//! `--store memory`: over HTTP and WebSocket, on many channels and on one, every publisher
//! connects, publishes are acknowledged, no error is reported, and `loadgen table` renders the
//! JSON line. Throughput and latency are not asserted: the test machine may be busy.
//!
//! The server binary is `SWITCHBOARD_BIN`, else `switchboard` beside the test's own binaries
//! (`cargo test --workspace` builds it), else under the target directory's `debug/` or
//! `release/` (`cargo build -p switchboard`, or `bench/run.sh`).

use std::process::Command;

mod support;

use support::{Server, start_server};

/// Runs `loadgen ARGS`, checks it succeeded, returns its stdout.
fn loadgen(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "loadgen failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn last_json(stdout: &str) -> serde_json::Value {
    let json = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .expect("a JSON line");
    serde_json::from_str(json).expect("the JSON line parses")
}

/// A short publish run; every wait in it is bounded by the window and `--reply-timeout-s`.
fn publish(server: &Server, via: &str, publishers: &str, channels: &str) -> String {
    let pid = server.child.id().to_string();
    loadgen(&[
        "publish",
        "--url",
        &server.url,
        "--label",
        "memory",
        "--server-pid",
        &pid,
        "--via",
        via,
        "--publishers",
        publishers,
        "--channels",
        channels,
        "--warmup-s",
        "0.2",
        "--window-s",
        "1",
        "--reply-timeout-s",
        "5",
    ])
}

fn assert_clean(run: &serde_json::Value, publishers: u64, channels: u64) {
    assert_eq!(run["kind"], "publish", "{run}");
    assert_eq!(run["connected"], publishers, "{run}");
    assert_eq!(run["channels"], channels, "{run}");
    assert_eq!(run["errors"], 0, "{run}");
    assert_eq!(run["pass"], true, "{run}");
    assert!(run["acked"].as_u64().expect("a count") > 0, "{run}");
    assert!(
        run["acked_total"].as_u64() >= run["acked"].as_u64(),
        "{run}"
    );
    assert!(run["p99_ms"].as_f64().expect("a number") > 0.0, "{run}");
    assert!(run["server_cpu_pct"].is_number(), "{run}");
    assert!(run["gen_cpu_pct"].is_number(), "{run}");
}

#[test]
fn publish_over_http_to_many_channels_is_acknowledged_without_errors() {
    let server = start_server(&["--store", "memory"]);
    let stdout = publish(&server, "http", "16", "8");
    let run = last_json(&stdout);
    assert_eq!(run["via"], "http", "{run}");
    assert_clean(&run, 16, 8);

    // The table renders the record, one column per label.
    let file = std::env::temp_dir().join(format!("loadgen-publish-{}.jsonl", std::process::id()));
    std::fs::write(&file, &stdout).expect("the temp dir is writable");
    let table = loadgen(&["table", file.to_str().expect("a UTF-8 temp path")]);
    let _ = std::fs::remove_file(&file);
    assert!(table.contains("memory"), "{table}");
    assert!(
        table.contains("publish via http P=16 K=8: publications/s"),
        "{table}"
    );
}

#[test]
fn publish_over_websocket_to_one_channel_is_acknowledged_without_errors() {
    let server = start_server(&["--store", "memory"]);
    let run = last_json(&publish(&server, "ws", "16", "1"));
    assert_eq!(run["via"], "ws", "{run}");
    assert_clean(&run, 16, 1);
}
