//! Rate and count limits against floods: connections per IP (at once and new ones a second),
//! HTTP transport requests per IP, commands per WebSocket connection and publications per
//! user, all token buckets from `governor`. Loopback addresses are exempt from the per-IP
//! limits by default (a reverse proxy or the bench on the same host would otherwise be one
//! "IP" for everyone); per-connection and per-user limits apply to everyone.
//!
//! Maps keyed by client input (addresses, user ids) are bounded: idle entries are dropped
//! every few seconds, and a map that still grows past `MAX_KEYS` starts over (counted).

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::Duration,
};

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use switchboard_core::UserId;

/// Most keys a keyed limiter holds before it starts over.
const MAX_KEYS: usize = 100_000;

/// `[limits]`: every limit, with defaults meant for browsers on the internet. A rate of 0
/// turns that limit off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most connections open at once from one IP address.
    pub connections_per_ip: usize,
    /// New connections a second from one IP address (sustained)…
    pub new_connections_per_second_per_ip: u32,
    /// …and in a burst.
    pub new_connections_burst_per_ip: u32,
    /// SSE and poll requests a second from one IP address (sustained)…
    pub http_requests_per_second_per_ip: u32,
    /// …and in a burst.
    pub http_requests_burst_per_ip: u32,
    /// Commands a second on one WebSocket connection (sustained)…
    pub commands_per_second: u32,
    /// …and in a burst.
    pub commands_burst: u32,
    /// Publications a second by one user, over all its connections and transports
    /// (sustained; anonymous connections have only the per-connection limit)…
    pub publications_per_second_per_user: u32,
    /// …and in a burst.
    pub publications_burst_per_user: u32,
    /// Commands refused in a row for rate before the connection is closed with 4008.
    pub max_rate_limited_in_a_row: u32,
    /// Seconds a client may take to send a request's headers (slowloris).
    pub handshake_timeout_seconds: u64,
    /// Exempt loopback addresses from the per-IP limits.
    pub exempt_loopback: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            connections_per_ip: 1000,
            new_connections_per_second_per_ip: 50,
            new_connections_burst_per_ip: 200,
            http_requests_per_second_per_ip: 100,
            http_requests_burst_per_ip: 400,
            commands_per_second: 2000,
            commands_burst: 4000,
            publications_per_second_per_user: 2000,
            publications_burst_per_user: 4000,
            max_rate_limited_in_a_row: 200,
            handshake_timeout_seconds: 10,
            exempt_loopback: true,
        }
    }
}

fn quota(per_second: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

/// A keyed token bucket whose map is bounded.
struct Keyed<K: Hash + Eq + Clone> {
    quota: Quota,
    limiter: RwLock<Arc<DefaultKeyedRateLimiter<K>>>,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(quota: Quota) -> Self {
        Self {
            quota,
            limiter: RwLock::new(Arc::new(RateLimiter::keyed(quota))),
        }
    }

    fn check(&self, key: &K) -> bool {
        let limiter = self
            .limiter
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        limiter.check_key(key).is_ok()
    }

    /// Drops idle keys; starts over when still too many. Returns whether it started over.
    fn sweep(&self) -> bool {
        let limiter = self
            .limiter
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        limiter.retain_recent();
        limiter.shrink_to_fit();
        if limiter.len() > MAX_KEYS {
            *self.limiter.write().unwrap_or_else(PoisonError::into_inner) =
                Arc::new(RateLimiter::keyed(self.quota));
            return true;
        }
        false
    }
}

/// Which limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    ConnectionsPerIp,
    NewConnectionsPerIp,
    HttpRequestsPerIp,
    Commands,
    PublicationsPerUser,
}

impl Limit {
    /// The metric reason.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::ConnectionsPerIp => "connections_per_ip",
            Self::NewConnectionsPerIp => "new_connections_per_ip",
            Self::HttpRequestsPerIp => "http_requests_per_ip",
            Self::Commands => "commands_rate",
            Self::PublicationsPerUser => "publications_per_user",
        }
    }

    /// For humans.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::ConnectionsPerIp => "too many connections from this address",
            Self::NewConnectionsPerIp => "too many new connections from this address: slow down",
            Self::HttpRequestsPerIp => "too many requests from this address: slow down",
            Self::Commands => "too many commands on this connection: slow down",
            Self::PublicationsPerUser => "too many publications by this user: slow down",
        }
    }
}

/// The server's limits and their state.
pub(crate) struct Limits {
    config: LimitsConfig,
    open_per_ip: Mutex<HashMap<IpAddr, usize>>,
    new_per_ip: Option<Keyed<IpAddr>>,
    http_per_ip: Option<Keyed<IpAddr>>,
    publications_per_user: Option<Keyed<UserId>>,
}

/// Holds one connection's place in its IP's count; gives it back when dropped.
pub(crate) struct IpSlot {
    limits: Arc<Limits>,
    ip: Option<IpAddr>,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut open = self
                .limits
                .open_per_ip
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = open.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

impl Limits {
    pub(crate) fn new(config: &LimitsConfig) -> Arc<Self> {
        let limits = Arc::new(Self {
            new_per_ip: quota(
                config.new_connections_per_second_per_ip,
                config.new_connections_burst_per_ip,
            )
            .map(Keyed::new),
            http_per_ip: quota(
                config.http_requests_per_second_per_ip,
                config.http_requests_burst_per_ip,
            )
            .map(Keyed::new),
            publications_per_user: quota(
                config.publications_per_second_per_user,
                config.publications_burst_per_user,
            )
            .map(Keyed::new),
            open_per_ip: Mutex::default(),
            config: config.clone(),
        });
        let weak = Arc::downgrade(&limits);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(10));
            every.tick().await;
            loop {
                every.tick().await;
                let Some(limits) = weak.upgrade() else { break };
                limits.sweep();
            }
        });
        limits
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        self.config.exempt_loopback && ip.is_loopback()
    }

    /// Admits a new TCP connection from `ip`, or says which limit refuses it.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<IpSlot, Limit> {
        if self.exempt(ip) {
            return Ok(IpSlot {
                limits: self.clone(),
                ip: None,
            });
        }
        if let Some(l) = &self.new_per_ip
            && !l.check(&ip)
        {
            return Err(Limit::NewConnectionsPerIp);
        }
        let mut open = self
            .open_per_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= self.config.connections_per_ip {
            return Err(Limit::ConnectionsPerIp);
        }
        *n += 1;
        Ok(IpSlot {
            limits: self.clone(),
            ip: Some(ip),
        })
    }

    /// One SSE or poll request from `ip`.
    pub(crate) fn http_request(&self, ip: IpAddr) -> Result<(), Limit> {
        match &self.http_per_ip {
            Some(l) if !self.exempt(ip) && !l.check(&ip) => Err(Limit::HttpRequestsPerIp),
            _ => Ok(()),
        }
    }

    /// One publication by `user`.
    pub(crate) fn publication(&self, user: Option<&UserId>) -> Result<(), Limit> {
        match (&self.publications_per_user, user) {
            (Some(l), Some(u)) if !l.check(u) => Err(Limit::PublicationsPerUser),
            _ => Ok(()),
        }
    }

    /// A bucket for one connection's commands (`None`: unlimited).
    pub(crate) fn connection_bucket(&self) -> Option<DefaultDirectRateLimiter> {
        quota(self.config.commands_per_second, self.config.commands_burst).map(RateLimiter::direct)
    }

    fn sweep(&self) {
        let mut restarted = false;
        if let Some(l) = &self.new_per_ip {
            restarted |= l.sweep();
        }
        if let Some(l) = &self.http_per_ip {
            restarted |= l.sweep();
        }
        if let Some(l) = &self.publications_per_user {
            restarted |= l.sweep();
        }
        if restarted {
            tracing::warn!(
                "a rate limiter tracked over {MAX_KEYS} addresses or users and started over"
            );
        }
    }
}

/// Middleware of the browser transports (`/sse`, `/poll`): the per-IP request rate.
pub(crate) async fn per_ip(
    axum::extract::State(app): axum::extract::State<crate::state::AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    if let Some(peer) = peer
        && let Err(limit) = app.limits.http_request(peer.ip())
    {
        let transport = if req.uri().path().starts_with("/sse") {
            "sse"
        } else {
            "poll"
        };
        return refused(&app, transport, Some(peer), None, limit).into_response();
    }
    next.run(req).await
}

/// Counts and logs a rate refusal; the error to send back.
pub(crate) fn refused(
    app: &crate::state::AppState,
    transport: &'static str,
    peer: Option<std::net::SocketAddr>,
    user: Option<&UserId>,
    limit: Limit,
) -> crate::error::ApiError {
    app.audit.refused(
        &app.metrics,
        &crate::audit::Refusal {
            transport,
            reason: limit.reason(),
            peer,
            user,
            detail: limit.message(),
        },
    );
    app.metrics.error(
        transport,
        switchboard_proto::ErrorCode::RateLimited.as_str(),
    );
    crate::error::ApiError::new(switchboard_proto::ErrorCode::RateLimited, limit.message())
}
