//! The audit log: authentication failures, permission denials, rate-limit and origin
//! refusals, each a `warn` line on the `switchboard::audit` target with the transport, the
//! remote address, the user (when known) and the reason, and a count in
//! `switchboard_security_refusals_total{transport,reason}`.
//!
//! Lines are rate limited for the whole server (`RATE` a second, bursts of `BURST`), so a
//! flood of bad tokens cannot fill the disk; the next line written says how many were
//! left out. Metrics count every refusal.

use std::{
    net::SocketAddr,
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use switchboard_core::UserId;

use crate::metrics::Metrics;

/// Audit lines a second, sustained.
const RATE: u32 = 20;
/// Audit lines in a burst.
const BURST: u32 = 100;

/// The audit log of one server.
pub(crate) struct Audit {
    limiter: DefaultDirectRateLimiter,
    suppressed: AtomicU64,
}

/// One refusal.
pub(crate) struct Refusal<'a> {
    /// `websocket`, `sse`, `poll`, `api`, `http`.
    pub(crate) transport: &'static str,
    /// A short label: `signature`, `expired`, `permission_denied`, `rate_limited`, `origin`…
    pub(crate) reason: &'static str,
    /// Who asked.
    pub(crate) peer: Option<SocketAddr>,
    /// The user, when the connection was authenticated.
    pub(crate) user: Option<&'a UserId>,
    /// What was refused and why, for humans.
    pub(crate) detail: &'a str,
}

impl Audit {
    pub(crate) fn new() -> Self {
        let quota = Quota::per_second(NonZeroU32::new(RATE).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(BURST).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: RateLimiter::direct(quota),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Counts `r` and logs it unless the log's rate is exceeded.
    pub(crate) fn refused(&self, metrics: &Metrics, r: &Refusal<'_>) {
        metrics.refusal(r.transport, r.reason);
        if self.limiter.check().is_err() {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        let peer = r.peer.map(|p| p.to_string()).unwrap_or_default();
        let user = r.user.map(UserId::as_str).unwrap_or("");
        tracing::warn!(
            target: "switchboard::audit",
            transport = r.transport,
            reason = r.reason,
            peer = %peer,
            user,
            suppressed,
            "refused: {}",
            r.detail
        );
    }
}
