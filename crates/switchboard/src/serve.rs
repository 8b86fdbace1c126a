//! `switchboard serve`: loads the configuration, sets up logging, binds, prints the
//! `listening on http://ADDR` (or `https://`) line on stdout first (scripts and tests wait for
//! it) — with a self-signed certificate, then a `self-signed certificate: PATH` line naming the
//! file clients must trust — and runs until SIGINT or SIGTERM.

use anyhow::Context;
use switchboard_server::{Config, LogFormat, Server};
use tracing_subscriber::EnvFilter;

/// Runs the server with `config` until a shutdown signal.
pub(crate) fn serve(config: Config) -> anyhow::Result<()> {
    init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(config.clone()).await?;
        let addr = server.local_addr().context("cannot read the bound address")?;
        if config.api.key.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(
                "no api.key is set: the server API at /api/ answers loopback clients only"
            );
        }
        let scheme = server.scheme();
        println!("listening on {scheme}://{addr}");
        if config.tls.self_signed
            && let Some(cert) = server.tls_certificate()
        {
            let cert = std::fs::canonicalize(cert).unwrap_or_else(|_| cert.to_owned());
            println!("self-signed certificate: {}", cert.display());
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        tracing::info!(%addr, version = switchboard_server::VERSION, "switchboard started; open {scheme}://{addr}/ for the lab");
        server.run(shutdown_signal()).await?;
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(&config.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
