//! End-to-end check of the bench's two binaries: the floor starts and prints its address, and
//! a short `loadgen fanout` and `loadgen idle` against it deliver every publication and report
//! one JSON line each. Latency is not asserted: the test machine may be busy.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

/// Kills the floor however the test ends.
struct Floor(Child);

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_floor() -> (Floor, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_floor"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the floor starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let floor = Floor(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the floor prints a line");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    (floor, addr)
}

fn loadgen(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadgen failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .expect("a JSON line");
    serde_json::from_str(json).expect("the JSON line parses")
}

#[test]
fn fanout_against_the_floor_delivers_every_publication() {
    let (floor, addr) = start_floor();
    let url = format!("ws://{addr}/ws");
    let pid = floor.0.id().to_string();
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
    let (floor, addr) = start_floor();
    let url = format!("ws://{addr}/ws");
    let pid = floor.0.id().to_string();
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
