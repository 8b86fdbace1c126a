//! Command-line interface: argument definitions and dispatch. Flags of `serve` become
//! configuration overrides (dotted keys), so they win over the file and the environment.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use figment::value::{Empty, Tag, Value};
use switchboard_server::Config;

use crate::serve;

/// switchboard: a real-time server for web applications.
#[derive(Parser)]
#[command(name = "switchboard", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (no configuration needed).
    Serve(ServeArgs),
    /// Publish DATA (JSON; anything else is sent as a JSON string) to CHANNEL.
    Publish(PublishArgs),
    /// Print publications of one or more channels as JSON lines; reconnects and recovers.
    Subscribe(SubscribeArgs),
    /// Call METHOD on the application's backend (the server's rpc hook) and print its answer.
    Rpc(RpcArgs),
    /// Print an HS256 token signed with the configured auth.hmac_secret (for development).
    Token(TokenArgs),
    /// Check or create the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect the store that keeps channel streams.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Print the store's size and its largest streams (reads the configured store directly;
    /// safe while the server runs).
    Stats(StoreStatsArgs),
}

#[derive(Args)]
pub(crate) struct StoreStatsArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    store: StoreFlags,
    /// How many of the largest streams to list.
    #[arg(long, default_value_t = 10)]
    pub(crate) largest: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Flags choosing the store, shared by `serve` and `store stats`.
#[derive(Args)]
struct StoreFlags {
    /// Where channel streams are kept: sqlite (default), postgres or memory.
    #[arg(long)]
    store: Option<String>,
    /// Directory of the SQLite store (default ./switchboard-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (with --store postgres).
    #[arg(long, env = "SWITCHBOARD_POSTGRES_URL")]
    postgres_url: Option<String>,
}

impl StoreFlags {
    fn overrides(&self, o: &mut Vec<(&'static str, Value)>) {
        if let Some(v) = &self.store {
            o.push(("store.kind", v.clone().into()));
        }
        if let Some(v) = &self.data_dir {
            o.push(("store.data_dir", v.display().to_string().into()));
        }
        if let Some(v) = &self.postgres_url {
            o.push(("store.postgres_url", v.clone().into()));
        }
    }
}

#[derive(Args)]
struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, short = 'c', env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address to listen on, e.g. 0.0.0.0:8000 (port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
    /// API key for /api/* (otherwise the API answers loopback clients only).
    #[arg(long)]
    api_key: Option<String>,
    /// Log format: text or json.
    #[arg(long)]
    log_format: Option<String>,
    /// Log filter, e.g. info or switchboard_server=debug.
    #[arg(long)]
    log_level: Option<String>,
    /// Serve /ws/echo for WebSocket conformance testing.
    #[arg(long)]
    echo_endpoint: bool,
    /// Behave like the server of the official Socket.IO / Engine.IO protocol test suites
    /// (namespaces `/` and `/custom`, echo handlers, 300 ms pings, `/engine.io/` echo).
    #[arg(long)]
    socketio_conformance: bool,
    #[command(flatten)]
    store: StoreFlags,

    #[command(flatten)]
    tls: TlsFlags,
}

/// Flags turning on HTTPS/WSS (`[tls]`).
#[derive(Args)]
struct TlsFlags {
    /// Serve HTTPS/WSS with this PEM certificate chain (with --tls-key; reread on SIGHUP).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS/WSS with a self-signed certificate for localhost, made once under the data
    /// directory (development only; its path is printed for clients to trust).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    tls_self_signed: bool,
}

impl TlsFlags {
    /// Either choice replaces the other's settings from the file or the environment, so the
    /// flags win as a whole.
    fn overrides(&self, o: &mut Vec<(&'static str, Value)>) {
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            o.push(("tls.cert_file", cert.display().to_string().into()));
            o.push(("tls.key_file", key.display().to_string().into()));
            o.push(("tls.self_signed", false.into()));
        }
        if self.tls_self_signed {
            let unset = || Value::Empty(Tag::Default, Empty::None);
            o.push(("tls.cert_file", unset()));
            o.push(("tls.key_file", unset()));
            o.push(("tls.self_signed", true.into()));
        }
    }
}

#[derive(Args)]
pub(crate) struct RemoteArgs {
    /// Server URL (https://… for a server with TLS).
    #[arg(
        long,
        short = 'u',
        default_value = "http://127.0.0.1:8000",
        env = "SWITCHBOARD_URL"
    )]
    pub(crate) url: String,
    /// Connection token (a JWT; `switchboard token` makes one for development).
    #[arg(long, env = "SWITCHBOARD_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// PEM certificate to trust for https:// besides the system's roots, e.g. the one
    /// `serve --tls-self-signed` prints.
    #[arg(long, value_name = "FILE", env = "SWITCHBOARD_CA_FILE")]
    pub(crate) ca_file: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct PublishArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    /// The channel.
    pub(crate) channel: String,
    /// The data: JSON text, or any other text (sent as a JSON string).
    pub(crate) data: String,
}

#[derive(Args)]
pub(crate) struct RpcArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    /// The method.
    pub(crate) method: String,
    /// The data: JSON text, or any other text (sent as a JSON string); null when absent.
    pub(crate) data: Option<String>,
}

#[derive(Args)]
pub(crate) struct SubscribeArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    /// Channels to subscribe to.
    #[arg(required = true)]
    pub(crate) channels: Vec<String>,
    /// Also print join and leave events.
    #[arg(long)]
    pub(crate) join_leave: bool,
    /// Exit after this many publications (default: run until interrupted).
    #[arg(long)]
    pub(crate) count: Option<u64>,
}

#[derive(Args)]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The user id (`sub` claim).
    #[arg(long)]
    pub(crate) sub: String,
    /// Lifetime in seconds (`exp` = now + TTL); 0 leaves `exp` out.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub(crate) ttl: u64,
    /// Make a subscription token for this channel (`channel` claim) instead of a connection
    /// token.
    #[arg(long)]
    pub(crate) channel: Option<String>,
    /// `info` claim: JSON shown in presence for the connection.
    #[arg(long, value_name = "JSON")]
    pub(crate) info: Option<String>,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration (file, environment, defaults) and print the effective one.
    Check(ConfigArgs),
    /// Write a commented example configuration.
    Init {
        /// Where to write it.
        #[arg(default_value = "switchboard.toml")]
        path: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

fn load(args: &ConfigArgs, overrides: &[(&str, Value)]) -> anyhow::Result<Config> {
    Config::load(args.config.as_deref(), overrides).context("bad configuration")
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => {
            let mut o: Vec<(&str, Value)> = Vec::new();
            if let Some(v) = a.listen {
                o.push(("listen", v.into()));
            }
            if let Some(v) = a.api_key {
                o.push(("api.key", v.into()));
            }
            if let Some(v) = a.log_format {
                o.push(("log.format", v.into()));
            }
            if let Some(v) = a.log_level {
                o.push(("log.level", v.into()));
            }
            if a.echo_endpoint {
                o.push(("websocket.echo_endpoint", true.into()));
            }
            if a.socketio_conformance {
                o.push(("socketio.conformance", true.into()));
            }

            a.store.overrides(&mut o);
            a.tls.overrides(&mut o);
            let config = load(&a.config, &o)?;
            serve::serve(config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Publish(a) => crate::remote::publish(a),
        Command::Subscribe(a) => crate::remote::subscribe(a),
        Command::Rpc(a) => crate::remote::rpc(a),
        Command::Token(a) => {
            let config = load(&a.config, &[])?;
            crate::token::mint(&config, &a)
        }
        Command::Store(StoreCommand::Stats(a)) => {
            let mut o = Vec::new();
            a.store.overrides(&mut o);
            let config = load(&a.config, &o)?;
            crate::store::stats(&config, &a)
        }
        Command::Config(ConfigCommand::Check(a)) => {
            let config = load(&a, &[])?;
            print!("{}", config.to_toml());
            eprintln!("configuration is valid");
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Init { path, force }) => {
            if path.exists() && !force {
                anyhow::bail!("{} exists; use --force to overwrite", path.display());
            }
            std::fs::write(&path, switchboard_server::config::EXAMPLE)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
