//! What the end-to-end tests share: servers (the real `switchboard`, the floor, the peers)
//! started on a free port, and `loadgen` runs read back as JSON lines.
//!
//! The server binary is `SWITCHBOARD_BIN`, else `switchboard` beside the test's own binaries
//! (`cargo test --workspace` builds it), else under the target directory's `debug/` or
//! `release/` (`cargo build -p switchboard`, or `bench/run.sh`).

// Each test file uses part of this module.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Longest wait for the server's `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Kills the server however the test ends.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SWITCHBOARD_BIN") {
        return PathBuf::from(path);
    }
    let name = format!("switchboard{}", std::env::consts::EXE_SUFFIX);
    // Test executables live in <target>/<profile>/deps/, binaries in <target>/<profile>/.
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join(&name)));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let candidates: Vec<PathBuf> = beside
        .into_iter()
        .chain([
            target.join("debug").join(&name),
            target.join("release").join(&name),
        ])
        .collect();
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no switchboard binary (looked at {candidates:?}): build it with \
                 `cargo build -p switchboard`, or set SWITCHBOARD_BIN"
            )
        })
}

/// Starts `switchboard serve --listen 127.0.0.1:0 --log-level warn ARGS` and waits for its
/// address.
pub(crate) fn start_server(args: &[&str]) -> Server {
    let mut cmd = Command::new(server_binary());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-level", "warn"])
        .args(args);
    start_listening(cmd)
}

/// Starts `cmd`, a server that prints `listening on http://ADDR` first, and waits (at most
/// [`START_TIMEOUT`]) for that line. The process is killed when the [`Server`] is dropped.
pub(crate) fn start_listening(mut cmd: Command) -> Server {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut server = Server {
        child,
        url: String::new(),
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(START_TIMEOUT)
        .expect("the server prints its address in time");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    server.url = format!("http://{addr}");
    server
}

impl Server {
    /// `host:port`.
    pub(crate) fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// The process id, for `loadgen --server-pid`.
    pub(crate) fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

/// Runs `loadgen ARGS`, checks it succeeded, and returns the last JSON line it printed.
pub(crate) fn loadgen_json(args: &[&str]) -> serde_json::Value {
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
