//! The `switchboard` command, run as a process: serve (plain and TLS), publish, subscribe,
//! token, config.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

struct Served {
    child: Child,
    url: String,
    /// The rest of the server's stdout.
    stdout: BufReader<ChildStdout>,
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
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("first stdout line names the address")
        .to_owned();
    Served { child, url, stdout }
}

impl Served {
    /// The `self-signed certificate: PATH` line that follows the address.
    fn certificate(&mut self) -> PathBuf {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let path = line
            .trim()
            .strip_prefix("self-signed certificate: ")
            .unwrap_or_else(|| panic!("second line names the certificate: {line:?}"));
        PathBuf::from(path)
    }
}

fn run(args: &[&str]) -> (bool, String, String) {
    run_with_env(args, &[])
}

fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        // The caller's environment must not leak a token or CA file into the test.
        .env_remove("SWITCHBOARD_TOKEN")
        .env_remove("SWITCHBOARD_CA_FILE")
        .envs(env.iter().copied())
        .output()
        .unwrap();
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

const SECRET: &str = "cli-test-secret-0123456789abcdef-0123";

/// Writes `content` to `dir/name`, returning the path as a string.
fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `switchboard token …`'s output: one token line.
fn mint(args: &[&str]) -> String {
    let (ok, out, err) = run(&[&["token"], args].concat());
    assert!(ok, "{err}");
    let token = out.trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {out}");
    token
}

/// Waits (up to 10 s) until the API's presence of `channel` satisfies `done`.
fn wait_presence(url: &str, channel: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = reqwest::blocking_get(&format!("{url}/api/presence?channel={channel}"));
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "presence never matched: {body}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn token_command_mints_tokens_the_server_accepts_and_another_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "switchboard.toml",
        &format!("[auth]\nhmac_secret = \"{SECRET}\"\n"),
    );
    let s = serve(&["--config", &config]);
    let token = mint(&[
        "--config",
        &config,
        "--sub",
        "alice",
        "--ttl",
        "60",
        "--info",
        r#"{"name":"Alice"}"#,
    ]);

    let sub = Command::new(BIN)
        .args([
            "subscribe",
            "--url",
            &s.url,
            "--token",
            &token,
            "news",
            "--count",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let presence = wait_presence(&s.url, "news", |body| body.contains("\"user\""));
    assert!(presence.contains("\"user\":\"alice\""), "{presence}");
    assert!(presence.contains("\"name\":\"Alice\""), "{presence}");
    // The token from the environment works as well as --token.
    let (ok, out, err) = run_with_env(
        &["publish", "--url", &s.url, "news", "hello"],
        &[("SWITCHBOARD_TOKEN", &token)],
    );
    assert!(ok, "{err}");
    assert!(out.contains("\"offset\":1"), "{out}");
    let out = sub.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"data\":\"hello\""));

    let (ok, _, err) = run(&["publish", "--url", &s.url, "news", "1"]);
    assert!(!ok);
    assert!(err.contains("requires a connection token"), "{err}");
    let other = write(
        dir.path(),
        "other.toml",
        "[auth]\nhmac_secret = \"another-secret-0123456789abcdef-01234\"\n",
    );
    let forged = mint(&["--config", &other, "--sub", "alice"]);
    let (ok, out, err) = run(&["publish", "--url", &s.url, "--token", &forged, "news", "1"]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("refused the connection token"), "{err}");
    assert!(err.contains("signature"), "{err}");
    assert!(
        !err.contains(&forged),
        "errors never print the token: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_command_mints_subscription_tokens_for_private_channels() {
    use switchboard_client::{
        Client, ClientError, ClientOptions, ErrorCode, SubscribeOptions, SubscriptionEvent,
        TokenSource,
    };

    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "switchboard.toml",
        &format!(
            "[auth]\nhmac_secret = \"{SECRET}\"\n\n[namespaces.private]\nsubscribe = \"nobody\"\n"
        ),
    );
    let s = serve(&["--config", &config]);
    let connection = mint(&["--config", &config, "--sub", "bob"]);
    let subscription = mint(&[
        "--config",
        &config,
        "--sub",
        "bob",
        "--channel",
        "private:plans",
        "--ttl",
        "30",
    ]);
    let options = ClientOptions {
        token: Some(TokenSource::fixed(connection)),
        ..ClientOptions::new(&s.url)
    };
    let client = Client::connect(options).await.unwrap();
    let denied = client
        .subscribe("private:plans", SubscribeOptions::default())
        .await;
    assert!(
        matches!(
            &denied,
            Err(ClientError::Server {
                code: ErrorCode::PermissionDenied,
                ..
            })
        ),
        "{denied:?}"
    );
    let mut sub = client
        .subscribe(
            "private:plans",
            SubscribeOptions {
                token: Some(TokenSource::fixed(subscription)),
                ..SubscribeOptions::default()
            },
        )
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), sub.recv()).await;
    assert!(
        matches!(first, Ok(Ok(SubscriptionEvent::Subscribed { .. }))),
        "{first:?}"
    );
}

#[test]
fn token_command_needs_a_secret_and_valid_info() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.toml", "");
    let (ok, out, err) = run(&["token", "--config", &empty, "--sub", "a"]);
    assert!(!ok && out.is_empty());
    assert!(err.contains("no HMAC secret"), "{err}");
    let (ok, out, err) = run_with_env(
        &[
            "token",
            "--config",
            &empty,
            "--sub",
            "a",
            "--info",
            "{not json",
        ],
        &[("SWITCHBOARD_AUTH__HMAC_SECRET", SECRET)],
    );
    assert!(!ok && out.is_empty());
    assert!(err.contains("--info is not valid JSON"), "{err}");
    let (ok, out, err) = run_with_env(
        &["token", "--config", &empty, "--sub", "a"],
        &[("SWITCHBOARD_AUTH__HMAC_SECRET", "too short")],
    );
    assert!(!ok && out.is_empty());
    assert!(err.contains("at least 32 bytes"), "{err}");
}

/// GET `url` over HTTPS trusting `certificate`; the status.
async fn https_status(url: &str, certificate: &Path) -> u16 {
    let pem = std::fs::read(certificate).unwrap();
    let client = ::reqwest::Client::builder()
        .add_root_certificate(::reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    client.get(url).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_with_a_self_signed_certificate_answers_https_and_wss() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let mut s = serve(&["--tls-self-signed", "--data-dir", &data]);
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    let certificate = s.certificate();
    assert!(
        certificate.ends_with("tls/self-signed.crt"),
        "{certificate:?}"
    );
    assert!(certificate.is_absolute());
    assert_eq!(
        https_status(&format!("{}/health", s.url), &certificate).await,
        200
    );

    let cert = certificate.to_str().unwrap().to_owned();
    let url = s.url.clone();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        run(&["publish", "--url", &url, "--ca-file", &cert, "news", "1"])
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("\"offset\":1"), "{out}");
    let url = s.url.clone();
    let (ok, _, err) =
        tokio::task::spawn_blocking(move || run(&["publish", "--url", &url, "news", "1"]))
            .await
            .unwrap();
    assert!(!ok);
    assert!(
        err.contains("--ca-file") && err.contains("certificate"),
        "{err}"
    );
    drop(s);

    // The generated pair serves as certificate files too.
    let key = certificate.with_file_name("self-signed.key");
    let s = serve(&[
        "--tls-cert",
        certificate.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(s.url.starts_with("https://"), "{}", s.url);
    assert_eq!(
        https_status(&format!("{}/health", s.url), &certificate).await,
        200
    );
}

#[test]
fn tls_flags_win_over_the_file_and_must_be_complete() {
    let dir = tempfile::tempdir().unwrap();
    // The file names certificate files that do not exist; the flag replaces them.
    let config = write(
        dir.path(),
        "switchboard.toml",
        "[tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"\n",
    );
    let data = dir.path().join("data");
    let s = serve(&[
        "--config",
        &config,
        "--tls-self-signed",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(s.url.starts_with("https://"), "{}", s.url);
    drop(s);
    let (ok, _, err) = run(&[
        "serve",
        "--config",
        &config,
        "--store",
        "memory",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");

    let (ok, _, err) = run(&["serve", "--tls-cert", "a.pem"]);
    assert!(!ok);
    assert!(err.contains("--tls-key"), "{err}");
    let (ok, _, err) = run(&[
        "serve",
        "--tls-self-signed",
        "--tls-cert",
        "a.pem",
        "--tls-key",
        "b.pem",
    ]);
    assert!(!ok);
    assert!(err.contains("cannot be used with"), "{err}");
}
