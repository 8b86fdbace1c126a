//! The `switchboard` command, run as a process: serve, publish, subscribe, config.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str]) -> Served {
    // Memory unless the test chooses a store: tests must not share ./switchboard-data.
    let store: &[&str] = if args.contains(&"--store") {
        &[]
    } else {
        &["--store", "memory"]
    };
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-level", "warn"])
        .args(store)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("first stdout line names the address")
        .to_owned();
    Served { child, url }
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn publish_reaches_a_cli_subscriber() {
    let s = serve(&[]);
    let sub = Command::new(BIN)
        .args(["subscribe", "--url", &s.url, "news", "--count", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the subscription exists before publishing.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out, _) = run(&["publish", "--url", &s.url, "probe", "0"]);
        assert!(out.contains("offset"));
        let body = reqwest::blocking_get(&format!("{}/api/presence_count?channel=news", s.url));
        if body.contains("\"clients\":1") {
            break;
        }
        assert!(Instant::now() < deadline, "subscriber never appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, out, _) = run(&["publish", "--url", &s.url, "news", r#"{"title":"hi"}"#]);
    assert!(ok);
    assert!(out.contains("\"offset\":1"), "{out}");
    let (ok, _, _) = run(&["publish", "--url", &s.url, "news", "plain text"]);
    assert!(ok);
    let out = sub.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["data"]["title"], "hi");
    assert_eq!(lines[1]["data"], "plain text");
}

/// reqwest's blocking client would pull in another runtime; a tiny HTTP GET is enough here.
mod reqwest {
    use std::io::{Read, Write};

    pub(crate) fn blocking_get(url: &str) -> String {
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut s = std::net::TcpStream::connect(host).unwrap();
        write!(
            s,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    }
}

#[test]
fn clear_errors_for_a_port_in_use_an_unreachable_server_and_a_bad_config() {
    let s = serve(&[]);
    let addr = s.url.strip_prefix("http://").unwrap();
    let (ok, _, err) = run(&["serve", "--listen", addr]);
    assert!(!ok);
    assert!(err.contains("already in use"), "{err}");

    let (ok, _, err) = run(&["publish", "--url", "http://127.0.0.1:1", "a", "1"]);
    assert!(!ok);
    assert!(err.contains("cannot reach switchboard"), "{err}");

    let dir = std::env::temp_dir().join(format!("sb-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[hub]\nhistory_sise = 5\n").unwrap();
    let (ok, _, err) = run(&["config", "check", "--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("history_sise"), "{err}");
    let (ok, _, err) = run(&[
        "serve",
        "--config",
        dir.join("missing.toml").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn config_init_writes_an_example_that_checks_and_env_overrides_files() {
    let dir = std::env::temp_dir().join(format!("sb-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("switchboard.toml");
    let _ = std::fs::remove_file(&path);
    let (ok, _, _) = run(&["config", "init", path.to_str().unwrap()]);
    assert!(ok);
    let (ok, _, err) = run(&["config", "init", path.to_str().unwrap()]);
    assert!(!ok && err.contains("--force"));
    let (ok, out, _) = run(&["config", "check", "--config", path.to_str().unwrap()]);
    assert!(ok);
    assert!(out.contains("history_size = 300"), "{out}");
    let out = Command::new(BIN)
        .args(["config", "check", "--config", path.to_str().unwrap()])
        .env("SWITCHBOARD_CHANNELS__HISTORY_SIZE", "7")
        // Variables that are not settings (the CLI's own) are ignored, not fatal.
        .env("SWITCHBOARD_URL", "http://elsewhere")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("history_size = 7"));
}

#[test]
fn version_is_printed() {
    let (ok, out, _) = run(&["--version"]);
    assert!(ok);
    assert!(out.contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn a_corrupt_store_file_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("streams.db"), vec![0x5au8; 8192]).unwrap();
    let (ok, _, err) = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!ok, "the server must not start on a corrupt store");
    assert!(err.contains("cannot open the sqlite store"), "{err}");
    assert!(
        err.contains("streams.db") && err.contains("not a database"),
        "{err}"
    );
    let (ok, out, err) = run(&["store", "stats", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("not a database"), "{err}");
}

#[test]
fn store_stats_shows_sizes_and_the_largest_streams() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    {
        let s = serve(&["--store", "sqlite", "--data-dir", data]);
        for i in 0..3 {
            let (ok, _, err) = run(&["publish", "--url", &s.url, "chat:big", &i.to_string()]);
            assert!(ok, "{err}");
        }
        let (ok, _, _) = run(&["publish", "--url", &s.url, "small", "1"]);
        assert!(ok);
        // Safe while the server runs.
        let (ok, out, err) = run(&["store", "stats", "--data-dir", data, "--json"]);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["kind"], "sqlite");
        assert_eq!(v["publications"], 4);
        assert_eq!(v["streams"], 2);
        assert_eq!(v["largest"][0]["channel"], "chat:big");
        assert_eq!(v["largest"][0]["publications"], 3);
    }
    let (ok, out, err) = run(&["store", "stats", "--data-dir", data]);
    assert!(ok, "{err}");
    assert!(
        out.contains("publications 4") && out.contains("chat:big"),
        "{out}"
    );
}
