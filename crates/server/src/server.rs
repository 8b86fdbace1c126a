//! [`Server`]: binds the listener, accepts TCP connections (bounded by `max_connections`),
//! serves HTTP/1.1 with upgrades on each, and shuts down gracefully: the hub closes every
//! connection with its close code, then tasks get `shutdown_grace_seconds` to finish.

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use switchboard_core::Hub;
use thiserror::Error;
use tokio::{
    net::TcpListener,
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_service::Service;

use crate::{
    app,
    config::Config,
    metrics::{Metrics, OutcomeLabel},
    state::AppState,
    tls::Tls,
};

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The address is taken by another process.
    #[error(
        "cannot listen on {addr}: the address is already in use (is another switchboard running? pick another with --listen)"
    )]
    AddrInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// Any other bind failure (permission, unknown address).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The store could not be opened (an unreadable or corrupt SQLite file, an unwritable
    /// data directory, a malformed PostgreSQL URL).
    #[error("cannot open the {kind} store: {source}")]
    Store {
        /// `sqlite`, `postgres` or `memory`.
        kind: &'static str,
        /// Why.
        source: switchboard_core::StoreError,
    },
    /// The configuration does not hold together.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A verification key or the JWKS URL of `[auth]` cannot be used.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthConfigError),
    /// The TLS certificate or key of `[tls]` cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A URL or header of `[hooks]` cannot be used.
    #[error(transparent)]
    Hooks(#[from] crate::hooks::HooksConfigError),
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    router: Router,
    tls: Option<Arc<Tls>>,
}

impl Server {
    /// Binds `config.listen` and builds the hub and routes.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        let addr = config.listen;
        let listener = TcpListener::bind(addr).await.map_err(|source| {
            if source.kind() == io::ErrorKind::AddrInUse {
                ServerError::AddrInUse { addr }
            } else {
                ServerError::Bind { addr, source }
            }
        })?;
        let namespaces = config.namespaces()?;
        let tls = Tls::new(&config.tls, &config.store.data_dir)?.map(Arc::new);
        let store =
            crate::store::open(&config.store, config.hub_store_timeout()).map_err(|source| {
                ServerError::Store {
                    kind: match config.store.kind {
                        crate::store::StoreKind::Sqlite => "sqlite",
                        crate::store::StoreKind::Postgres => "postgres",
                        crate::store::StoreKind::Memory => "memory",
                    },
                    source,
                }
            })?;
        tracing::info!(kind = store.kind(), "store opened");
        let auth = Arc::new(crate::auth::Authenticator::new(&config.auth)?);
        if !auth.anonymous_allowed() {
            tracing::info!("connections must present a token (auth.anonymous is off)");
        }
        let metrics = Arc::new(Metrics::new());
        let hooks = Arc::new(crate::hooks::Hooks::new(&config.hooks, metrics.clone())?);
        let state = AppState {
            limits: crate::limits::Limits::new(&config.limits),
            auth,
            hooks,
            hub: Hub::new(config.hub.clone(), namespaces, store),
            socketio: config
                .socketio
                .enabled
                .then(|| crate::socketio::SocketIo::new(&config.socketio)),
            config: Arc::new(config),

            metrics,
            audit: Arc::new(crate::audit::Audit::new()),
            started: std::time::Instant::now(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        };
        let router = app::router(state.clone());
        Ok(Self {
            listener,
            state,
            router,
            tls,
        })
    }

    /// `https` when serving TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The certificate file served (TLS only): with `tls.self_signed`, the file to tell
    /// clients to trust.
    pub fn tls_certificate(&self) -> Option<&std::path::Path> {
        self.tls.as_deref().map(Tls::cert_path)
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The hub, for embedding applications that publish from Rust.
    pub fn hub(&self) -> &Hub {
        &self.state.hub
    }

    /// The Socket.IO server, for embedding applications' handlers (`None` when
    /// `socketio.enabled` is off). See [`crate::socketio::Io`].
    pub fn socketio(&self) -> Option<crate::socketio::Io> {
        self.state.socketio.as_ref().map(|sio| crate::socketio::Io {
            sio: sio.clone(),
            hub: self.state.hub.clone(),
        })
    }

    /// Adds the embedding application's own routes (an axum [`Router`]) to the server's:
    /// they are served on the same port, next to `/socket.io/`, `/ws`, `/api` and the rest
    /// (a path of the application's takes precedence over the web app's catch-all). As with
    /// [`Router::merge`], a route the server also has, or a fallback of the application's,
    /// panics here, at start-up.
    pub fn merge(mut self, routes: Router) -> Self {
        self.router = routes.merge(self.router);
        self
    }

    /// Serves until `shutdown` completes, then closes every connection gracefully. With
    /// TLS on, SIGHUP rereads the certificate and key files (on Unix).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let Self {
            listener,
            state,
            router,
            tls,
        } = self;
        let tracker = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(state.config.max_connections));
        let mut hangup = Hangup::new(tls.is_some());
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                () = hangup.recv() => {
                    if let Some(tls) = &tls {
                        reload_tls(&state, tls);
                    }
                    continue;
                }
                accepted = listener.accept() => match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                state.metrics.connections_refused.inc();
                tracing::warn!(%peer, "connection refused: max_connections reached");
                drop(stream);
                continue;
            };
            let slot = match state.limits.admit(peer.ip()) {
                Ok(slot) => slot,
                Err(limit) if tls.is_some() => {
                    // No handshake is spent on a refused connection: it is closed at once.
                    state
                        .audit
                        .refused(&state.metrics, &limit_refusal(peer, limit));
                    drop(stream);
                    continue;
                }
                Err(limit) => {
                    // Holds its max_connections permit while it lingers, which bounds these.
                    tracker.spawn(refuse_connection(
                        state.clone(),
                        stream,
                        peer,
                        limit,
                        permit,
                    ));
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            // A peer that vanished without closing (power loss, network cut) stops
            // acknowledging: the kernel drops the connection after this long, which ends its
            // subscriptions and presence even on transports without pings (SSE).
            let _ = socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(
                Duration::from_secs(state.config.tcp_user_timeout_seconds),
            ));
            let router = router.clone();
            let token = state.shutdown.clone();
            let handshake = Duration::from_secs(state.config.limits.handshake_timeout_seconds);
            let held = Arc::new(Held {
                _permit: permit,
                _slot: slot,
            });
            match &tls {
                None => {
                    tracker.spawn(serve_connection(
                        TokioIo::new(stream),
                        peer,
                        router,
                        token,
                        held,
                        handshake,
                    ));
                }
                Some(tls) => {
                    let acceptor = tls.acceptor().clone();
                    let metrics = state.metrics.clone();
                    tracker.spawn(async move {
                        // The handshake shares the slowloris deadline of the HTTP head.
                        let accepted = tokio::select! {
                            r = tokio::time::timeout(handshake, acceptor.accept(stream)) => r,
                            () = token.cancelled() => return,
                        };
                        let outcome = match accepted {
                            Ok(Ok(stream)) => {
                                serve_connection(
                                    TokioIo::new(stream),
                                    peer,
                                    router,
                                    token,
                                    held,
                                    handshake,
                                )
                                .await;
                                return;
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                "error"
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                "timeout"
                            }
                        };
                        metrics
                            .tls_handshake_failures
                            .get_or_create(&OutcomeLabel { outcome })
                            .inc();
                    });
                }
            }
        }
        tracing::info!("shutting down");
        state.hub.shutdown();
        state.shutdown.cancel();
        tracker.close();
        state.tasks.close();
        let grace = Duration::from_secs(state.config.shutdown_grace_seconds);
        let all = async {
            tracker.wait().await;
            state.tasks.wait().await;
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("some connections did not close within the grace period");
        }
        // Commit what is pending and mark the store cleanly closed.
        match state.hub.close(grace).await {
            Ok(()) => tracing::info!("store closed cleanly"),
            Err(e) => {
                tracing::error!(error = %e, "store not closed cleanly: streams written asynchronously get a new epoch at the next start")
            }
        }
        Ok(())
    }
}

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    token: CancellationToken,
    permit: Arc<Held>,
    handshake: Duration,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut()
            .insert(ConnectionPermit(permit.clone()));
        let mut router = router.clone();
        async move { router.call(req).await }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(handshake)
        .max_buf_size(64 << 10);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = token.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "http connection ended with an error");
    }
}

/// One slot of `max_connections` (and of its IP's `limits.connections_per_ip`), held by a TCP
/// connection and by whatever outlives its HTTP exchange (an upgraded WebSocket), so upgraded
/// connections stay counted.
#[derive(Clone)]
pub(crate) struct ConnectionPermit(#[allow(dead_code)] pub(crate) Arc<Held>);

/// What a connection holds while it lives.
pub(crate) struct Held {
    _permit: OwnedSemaphorePermit,
    _slot: crate::limits::IpSlot,
}

/// Refuses a connection over a per-IP limit: a `429` (whatever the request; a browser sees a
/// failed request or upgrade), a metric and an audit line. Reads what the client sent for at
/// most a second so that closing does not reset the connection before the reply is read.
async fn refuse_connection(
    state: AppState,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    limit: crate::limits::Limit,
    _permit: OwnedSemaphorePermit,
) {
    state
        .audit
        .refused(&state.metrics, &limit_refusal(peer, limit));
    let body = switchboard_proto::error(
        switchboard_proto::Format::Json,
        None,
        switchboard_proto::ErrorCode::RateLimited,
        limit.message(),
    );
    let mut resp = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(&body);
    // A fresh socket's send buffer takes this whole.
    if stream.try_write(&resp).is_err() {
        return;
    }
    let drain = async {
        let mut scratch = [0u8; 4096];
        let mut left = 64usize << 10;
        while left > 0 && stream.readable().await.is_ok() {
            match stream.try_read(&mut scratch) {
                Ok(0) => break,
                Ok(n) => left = left.saturating_sub(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

fn limit_refusal(peer: SocketAddr, limit: crate::limits::Limit) -> crate::audit::Refusal<'static> {
    crate::audit::Refusal {
        transport: "tcp",
        reason: limit.reason(),
        peer: Some(peer),
        user: None,
        detail: limit.message(),
    }
}

fn reload_tls(state: &AppState, tls: &Tls) {
    let outcome = match tls.reload() {
        Ok(()) => {
            tracing::info!(cert = %tls.cert_path().display(), "TLS certificate reloaded");
            "ok"
        }
        Err(e) => {
            tracing::error!(error = %e, "TLS certificate not reloaded: still serving the previous one");
            "error"
        }
    };
    state
        .metrics
        .tls_reloads
        .get_or_create(&OutcomeLabel { outcome })
        .inc();
}

/// SIGHUP, when listened for (TLS on, Unix); otherwise never fires.
struct Hangup(Option<tokio::signal::unix::Signal>);

impl Hangup {
    fn new(listen: bool) -> Self {
        if !listen {
            return Self(None);
        }
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Self(Some(s)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: TLS certificates will not reload");
                Self(None)
            }
        }
    }

    async fn recv(&mut self) {
        match &mut self.0 {
            Some(s) => {
                if s.recv().await.is_none() {
                    self.0 = None;
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }
}
