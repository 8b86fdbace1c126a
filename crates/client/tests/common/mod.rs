//! Test harness shared by the integration tests: [`TestServer`] runs the real
//! `switchboard serve` on a free port (with extra environment, a TOML configuration or flags
//! from a [`Setup`]) and kills it on drop; [`FakeServer`] is a scripted WebSocket peer for
//! what the real server cannot be made to do on demand (terminal close codes, silence);
//! [`mint`] signs tokens as an application's backend would. Helpers wrap every wait in a
//! timeout: tests never sleep.
//!
//! Each test file includes this module and uses a part of it.
#![allow(dead_code)]

pub(crate) mod fake;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc as std_mpsc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use switchboard_client::{
    Backoff, ClientOptions, ConnectionState, Format, Subscription, SubscriptionEvent,
};
use tokio::sync::watch;

/// How long any single wait in a test may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// An HMAC secret for tests (the server wants at least 32 bytes).
pub(crate) const SECRET: &str = "test-secret-0123456789abcdef-0123456789";

/// How to start a [`TestServer`] beyond the defaults.
#[derive(Default)]
pub(crate) struct Setup<'a> {
    /// Environment variables (configuration overrides such as
    /// `SWITCHBOARD_AUTH__HMAC_SECRET`).
    pub(crate) env: &'a [(&'a str, &'a str)],
    /// A TOML configuration file's content, passed with `--config`.
    pub(crate) config: Option<&'a str>,
    /// More `serve` flags (`--tls-self-signed`).
    pub(crate) args: &'a [&'a str],
}

/// A `switchboard serve` child process on 127.0.0.1 and a free port.
pub(crate) struct TestServer {
    child: Child,
    /// The server's SQLite store (and configuration file, TLS certificate), removed on drop.
    data: tempfile::TempDir,
    /// The server's base URL, `http://127.0.0.1:PORT` (`https://` with TLS).
    pub(crate) url: String,
    /// The self-signed certificate the server printed (with `--tls-self-signed`).
    pub(crate) certificate: Option<PathBuf>,
}

/// What the server prints on stdout that the harness waits for.
enum Announced {
    Url(String),
    Certificate(PathBuf),
}

impl TestServer {
    /// Starts the server with its default configuration.
    pub(crate) fn start() -> Self {
        Self::start_with(Setup::default())
    }

    /// Starts the server with extra environment variables (configuration overrides such as
    /// `SWITCHBOARD_WEBSOCKET__PING_INTERVAL_SECONDS`).
    pub(crate) fn start_with_env(env: &[(&str, &str)]) -> Self {
        Self::start_with(Setup {
            env,
            ..Setup::default()
        })
    }

    /// Starts the server as `setup` says.
    pub(crate) fn start_with(setup: Setup<'_>) -> Self {
        let binary = server_binary();
        assert!(
            binary.exists(),
            "server binary {} not found: build it with `cargo build -p switchboard`, or set \
             SWITCHBOARD_BIN",
            binary.display()
        );
        let stderr = if std::env::var_os("SWITCHBOARD_TEST_SERVER_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let data = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(&binary);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args(setup.args)
            .envs(setup.env.iter().copied());
        if let Some(config) = setup.config {
            let path = data.path().join("switchboard.toml");
            std::fs::write(&path, config).expect("write the configuration");
            command.arg("--config").arg(path);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("stdout was piped");
        let (line_tx, line_rx) = std_mpsc::channel();
        // Reads the announcements, then keeps draining stdout so the server never blocks on
        // a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let announced = if let Some(url) = line.strip_prefix("listening on ") {
                    Announced::Url(url.trim().to_owned())
                } else if let Some(path) = line.strip_prefix("self-signed certificate: ") {
                    Announced::Certificate(PathBuf::from(path.trim()))
                } else {
                    continue;
                };
                let _ = line_tx.send(announced);
            }
        });
        let mut server = Self {
            child,
            data,
            url: String::new(),
            certificate: None,
        };
        let self_signed = setup.args.contains(&"--tls-self-signed");
        while server.url.is_empty() || (self_signed && server.certificate.is_none()) {
            match line_rx.recv_timeout(WAIT) {
                Ok(Announced::Url(url)) => server.url = url,
                Ok(Announced::Certificate(path)) => server.certificate = Some(path),
                Err(_) => {
                    let status = server.child.try_wait().ok().flatten();
                    panic!(
                        "the server did not announce its address (and certificate) \
                         (exit status: {status:?})"
                    );
                }
            }
        }
        server
    }

    /// The server's data directory.
    pub(crate) fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Client options for this server, with test-sized timeouts and backoff.
    pub(crate) fn options(&self, format: Format) -> ClientOptions {
        ClientOptions {
            format,
            name: Some("test".into()),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            backoff: Backoff {
                min: Duration::from_millis(20),
                max: Duration::from_millis(200),
            },
            ..ClientOptions::new(self.url.clone())
        }
    }

    /// Freezes the server process (SIGSTOP): its sockets stay open, it answers nothing.
    pub(crate) fn pause(&self) {
        signal(self.child.id(), "-STOP");
    }

    /// Resumes a paused server (SIGCONT).
    pub(crate) fn resume(&self) {
        signal(self.child.id(), "-CONT");
    }

    /// The server's HTTP URL for `path` (e.g. `/api/publish`).
    pub(crate) fn http(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // SIGKILL also ends a stopped process.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill {signal} {pid} failed");
}

/// `SWITCHBOARD_BIN`, else `switchboard` in the target directory this test was built in.
pub(crate) fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SWITCHBOARD_BIN") {
        return PathBuf::from(path);
    }
    // The test executable lives in <target>/<profile>/deps/; the binary in <target>/<profile>/.
    if let Ok(exe) = std::env::current_exe()
        && let Some(profile_dir) = exe.parent().and_then(|deps| deps.parent())
    {
        let candidate = profile_dir.join(format!("switchboard{}", std::env::consts::EXE_SUFFIX));
        if candidate.exists() {
            return candidate;
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target
        .join("debug")
        .join(format!("switchboard{}", std::env::consts::EXE_SUFFIX))
}

/// Unix seconds now.
pub(crate) fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// An HS256 token signed with `secret`: `sub`, `exp` = now + `ttl_seconds`, and `channel`
/// for a subscription token.
pub(crate) fn mint(secret: &str, sub: &str, ttl_seconds: u64, channel: Option<&str>) -> String {
    let mut claims = serde_json::json!({"sub": sub, "exp": now_seconds() + ttl_seconds});
    if let Some(channel) = channel {
        claims["channel"] = channel.into();
    }
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).expect("HMAC key");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &key,
    )
    .expect("signs")
}

/// The next event of `sub`, failing the test after [`WAIT`].
pub(crate) async fn next_event(sub: &mut Subscription) -> SubscriptionEvent {
    match tokio::time::timeout(WAIT, sub.recv()).await {
        Ok(Ok(event)) => event,
        Ok(Err(error)) => panic!("subscription {} ended: {error}", sub.channel()),
        Err(_) => panic!("no event on {} within {WAIT:?}", sub.channel()),
    }
}

/// Collects events until `count` publications arrived; returns every event seen.
pub(crate) async fn collect_publications(
    sub: &mut Subscription,
    count: usize,
) -> Vec<SubscriptionEvent> {
    let mut events = Vec::new();
    let mut publications = 0;
    while publications < count {
        let event = next_event(sub).await;
        if matches!(event, SubscriptionEvent::Publication(_)) {
            publications += 1;
        }
        events.push(event);
    }
    events
}

/// The offsets of the publications among `events`, in order.
pub(crate) fn offsets(events: &[SubscriptionEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|event| match event {
            SubscriptionEvent::Publication(p) => Some(p.offset),
            _ => None,
        })
        .collect()
}

/// Waits until the state matches `predicate`, failing the test after [`WAIT`].
pub(crate) async fn wait_state(
    state: &mut watch::Receiver<ConnectionState>,
    predicate: impl FnMut(&ConnectionState) -> bool,
) -> ConnectionState {
    let reached = tokio::time::timeout(WAIT, state.wait_for(predicate))
        .await
        .map(|waited| waited.map(|state| state.clone()));
    match reached {
        Ok(Ok(state)) => state,
        Ok(Err(_)) => panic!("the connection task ended"),
        Err(_) => panic!(
            "state not reached within {WAIT:?}; last: {:?}",
            *state.borrow()
        ),
    }
}
