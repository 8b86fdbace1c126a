//! [`Metrics`]: the server's Prometheus metrics, one registry per server (so several servers
//! in one process, as in tests, never mix their counts), rendered at `/metrics`.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Label: which transport.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabel {
    /// `websocket`, `sse`, `poll` or `api`.
    pub transport: &'static str,
}

/// Label: an error or close code name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The transport that saw it.
    pub transport: &'static str,
    /// The documented code name (`bad_request`, `message_too_big`, …).
    pub code: &'static str,
}

/// Labels of a security refusal.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabel {
    /// Where it happened.
    pub transport: &'static str,
    /// Why (see `docs/security.md`).
    pub reason: &'static str,
}

/// Label: an outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// What happened (`timeout`, `error`, `ok`, …).
    pub outcome: &'static str,
}

/// Labels of a backend hook call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabel {
    /// `connect`, `refresh`, `subscribe`, `publish` or `rpc`.
    pub hook: &'static str,
    /// `allowed`, `denied`, `disconnect`, `timeout`, `overloaded`, `error` (`any` for the
    /// duration histogram).
    pub outcome: &'static str,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Open connections by transport.
    pub connections: Family<TransportLabel, Gauge>,
    /// Connections accepted since start, by transport.
    pub connections_total: Family<TransportLabel, Counter>,
    /// Messages received from clients.
    pub messages_in: Family<TransportLabel, Counter>,
    /// Bytes received from clients.
    pub bytes_in: Family<TransportLabel, Counter>,
    /// Messages sent to clients.
    pub messages_out: Family<TransportLabel, Counter>,
    /// Bytes sent to clients.
    pub bytes_out: Family<TransportLabel, Counter>,
    /// Publications accepted, by where they came from.
    pub publications: Family<TransportLabel, Counter>,
    /// Errors replied or closes sent, by code.
    pub errors: Family<CodeLabel, Counter>,
    /// Connections closed because they fell behind, by transport.
    pub slow_consumer_disconnects: Family<TransportLabel, Counter>,
    /// TCP connections refused because `max_connections` was reached.
    pub connections_refused: Counter,
    /// Authentication failures, permission denials, rate-limit and origin refusals.
    pub refusals: Family<RefusalLabel, Counter>,
    /// Backend hook calls, by hook and outcome.
    pub hook_calls: Family<HookLabel, Counter>,
    /// Seconds a backend hook call took, by hook.
    pub hook_duration_seconds: Family<HookLabel, Histogram, fn() -> Histogram>,
    /// TLS handshakes that failed, by `timeout` or `error`.
    pub tls_handshake_failures: Family<OutcomeLabel, Counter>,
    /// Certificate reloads (SIGHUP), by `ok` or `error`.
    pub tls_reloads: Family<OutcomeLabel, Counter>,
    /// Socket.IO connection state recovery attempts, by `recovered` or `not_recovered`.
    pub socketio_recoveries: Family<OutcomeLabel, Counter>,
    /// Engine.IO polling sessions upgraded to WebSocket.
    pub socketio_upgrades: Counter,
    /// Seconds from a publication's acceptance to its write to a socket (sampled once per
    /// write batch: the oldest item of the batch).
    pub delivery_latency_seconds: Histogram,
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let m = Self {
            connections: Family::default(),
            connections_total: Family::default(),
            messages_in: Family::default(),
            bytes_in: Family::default(),
            messages_out: Family::default(),
            bytes_out: Family::default(),
            publications: Family::default(),
            errors: Family::default(),
            slow_consumer_disconnects: Family::default(),
            connections_refused: Counter::default(),
            refusals: Family::default(),
            hook_calls: Family::default(),
            hook_duration_seconds: Family::new_with_constructor(hook_histogram),
            tls_handshake_failures: Family::default(),
            tls_reloads: Family::default(),
            socketio_recoveries: Family::default(),
            socketio_upgrades: Counter::default(),
            delivery_latency_seconds: Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            registry: Registry::default(),
        };
        registry.register("connections", "Open connections", m.connections.clone());
        registry.register(
            "socketio_recoveries",
            "Socket.IO connection state recovery attempts",
            m.socketio_recoveries.clone(),
        );
        registry.register(
            "socketio_upgrades",
            "Engine.IO polling sessions upgraded to WebSocket",
            m.socketio_upgrades.clone(),
        );
        registry.register(
            "connections_accepted",
            "Connections accepted since start",
            m.connections_total.clone(),
        );
        registry.register(
            "messages_in",
            "Messages received from clients",
            m.messages_in.clone(),
        );
        registry.register(
            "bytes_in",
            "Bytes received from clients",
            m.bytes_in.clone(),
        );
        registry.register(
            "messages_out",
            "Messages sent to clients",
            m.messages_out.clone(),
        );
        registry.register("bytes_out", "Bytes sent to clients", m.bytes_out.clone());
        registry.register(
            "publications",
            "Publications accepted",
            m.publications.clone(),
        );
        registry.register(
            "errors",
            "Error replies and error closes, by code",
            m.errors.clone(),
        );
        registry.register(
            "slow_consumer_disconnects",
            "Connections closed because they fell behind",
            m.slow_consumer_disconnects.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused at max_connections",
            m.connections_refused.clone(),
        );
        registry.register(
            "security_refusals",
            "Authentication failures, permission denials, rate-limit and origin refusals, by reason",
            m.refusals.clone(),
        );
        registry.register(
            "hook_calls",
            "Backend hook calls, by hook and outcome",
            m.hook_calls.clone(),
        );
        registry.register(
            "hook_duration_seconds",
            "Seconds a backend hook call took, by hook",
            m.hook_duration_seconds.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            m.tls_handshake_failures.clone(),
        );
        registry.register(
            "tls_reloads",
            "TLS certificate reloads (SIGHUP), by outcome",
            m.tls_reloads.clone(),
        );
        registry.register(
            "delivery_latency_seconds",
            "Publication accepted to written to a socket",
            m.delivery_latency_seconds.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts an error or error close.
    pub fn error(&self, transport: &'static str, code: &'static str) {
        self.errors
            .get_or_create(&CodeLabel { transport, code })
            .inc();
    }

    /// Counts a security refusal.
    pub fn refusal(&self, transport: &'static str, reason: &'static str) {
        self.refusals
            .get_or_create(&RefusalLabel { transport, reason })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self, hub: &switchboard_core::HubStats) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        use std::fmt::Write;
        let mut line = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP switchboard_{name} {help}\n# TYPE switchboard_{name} {kind}\nswitchboard_{name}{} {value}",
                if kind == "counter" { "_total" } else { "" }
            );
        };
        line(
            "channels",
            "gauge",
            "Channels in memory.",
            hub.channels as u64,
        );
        line(
            "history_bytes",
            "gauge",
            "Bytes of history cached in memory.",
            hub.history_bytes as u64,
        );
        line(
            "store_available",
            "gauge",
            "1 when the last store operation succeeded, 0 while the store is failing.",
            u64::from(hub.store_available),
        );
        line(
            "store_pending_writes",
            "gauge",
            "Publications waiting for the store.",
            hub.pending_writes as u64,
        );
        line(
            "store_commits",
            "counter",
            "Store commits (group commits).",
            hub.store_commits,
        );
        line(
            "store_committed",
            "counter",
            "Publications committed to the store.",
            hub.store_committed,
        );
        line(
            "store_failures",
            "counter",
            "Failed store operations.",
            hub.store_failures,
        );
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Increments a transport's connection gauge for as long as it lives.
pub struct ConnectionGauge {
    gauge: Gauge,
}

impl ConnectionGauge {
    /// Counts one more open connection on `transport`.
    pub fn new(metrics: &Metrics, transport: &'static str) -> Self {
        let label = TransportLabel { transport };
        metrics.connections_total.get_or_create(&label).inc();
        let gauge = metrics.connections.get_or_create(&label).clone();
        gauge.inc();
        Self { gauge }
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

fn hook_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ])
}
