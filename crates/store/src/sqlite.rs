//! [`SqliteStore`]: streams in one SQLite file (placeholder; being written).

use std::{path::PathBuf, time::Duration};

/// How hard SQLite works to make each commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// fsync on every commit: acknowledged publications survive a power loss.
    #[default]
    Full,
    /// No fsync on commit in WAL mode: acknowledged publications survive a crash of the
    /// process, not of the machine.
    Normal,
}

/// Settings of [`SqliteStore::open`].
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file; its directory is created when missing.
    pub path: PathBuf,
    /// Commit durability.
    pub synchronous: Synchronous,
    /// Connections serving reads in parallel with the writer.
    pub readers: usize,
    /// Longest wait for a lock or an answer.
    pub timeout: Duration,
}

/// Streams in one SQLite file.
pub struct SqliteStore {
    _config: SqliteConfig,
}
