//! Running `switchboard serve` as a process for tests that kill and restart it.
#![allow(dead_code, unreachable_pub)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// A server process; killed when dropped.
pub struct Node {
    child: Option<Child>,
    pub url: String,
}

impl Node {
    /// Starts `switchboard serve` on `127.0.0.1:port` with `config` and waits until it listens.
    pub async fn start(port: u16, config: &Path) -> Self {
        let listen = format!("127.0.0.1:{port}");
        let config = config.to_owned();
        tokio::task::spawn_blocking(move || {
            // The port was free a moment ago; a restart may find it in TIME_WAIT-free reuse
            // only after the old process is fully gone, so retry briefly.
            for attempt in 0..50 {
                let mut child = Command::new(BIN)
                    .args([
                        "serve",
                        "--listen",
                        &listen,
                        "--log-level",
                        "warn",
                        "--config",
                    ])
                    .arg(&config)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap();
                let mut line = String::new();
                BufReader::new(child.stdout.take().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                if let Some(url) = line.trim().strip_prefix("listening on ") {
                    return Node {
                        child: Some(child),
                        url: url.to_owned(),
                    };
                }
                let _ = child.wait();
                assert!(attempt < 49, "switchboard did not start on {listen}");
                std::thread::sleep(Duration::from_millis(100));
            }
            unreachable!()
        })
        .await
        .unwrap()
    }

    /// SIGTERM, then waits for the process to exit (a clean shutdown).
    pub fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            let code = c.wait().unwrap();
            assert!(code.success(), "a clean shutdown exits with 0: {code:?}");
        }
    }

    /// SIGKILL: no shutdown, no flush, no clean close of the store.
    pub fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET returning (status, JSON body).
pub async fn http(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// POST JSON returning (status, JSON body).
pub async fn post(url: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}
