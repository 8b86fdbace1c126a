//! [`PostgresStore`]: streams in PostgreSQL (placeholder; being written).

use std::time::Duration;

/// Settings of [`PostgresStore`].
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database` or a key=value connection string.
    pub url: String,
    /// Connections serving reads; one more is used for writes.
    pub pool_size: usize,
    /// Longest wait for a connection or a statement.
    pub timeout: Duration,
    /// Schema holding switchboard's tables (created when missing).
    pub schema: String,
}

/// Streams in PostgreSQL.
pub struct PostgresStore {
    _config: PostgresConfig,
}
