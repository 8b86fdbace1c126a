//! [`StoreConfig`]: where channel streams are kept, and [`open`], which builds that store.

use std::{path::PathBuf, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use switchboard_core::{MemoryStore, Store, StoreError};

/// Which store keeps channel streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// One SQLite file under `data_dir` (the default; nothing to set up).
    #[default]
    Sqlite,
    /// PostgreSQL at `postgres_url`.
    Postgres,
    /// This process's memory: streams start over at every restart.
    Memory,
}

/// How SQLite makes commits durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    /// fsync on every commit: acknowledged publications survive a power loss.
    #[default]
    Full,
    /// No fsync on commit: they survive a crash of the server, not of the machine.
    Normal,
}

/// Store settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite`, `postgres` or `memory`.
    pub kind: StoreKind,
    /// Directory of the SQLite file (`streams.db`), created on first start.
    pub data_dir: PathBuf,
    /// SQLite commit durability: `full` or `normal`.
    pub sqlite_synchronous: SqliteSync,
    /// PostgreSQL connection URL, such as `postgres://user:password@host:5432/db`.
    pub postgres_url: String,
    /// PostgreSQL connections serving reads (one more is used for writes).
    pub postgres_pool_size: usize,
    /// PostgreSQL schema holding switchboard's tables (created when missing).
    pub postgres_schema: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::Sqlite,
            data_dir: PathBuf::from("switchboard-data"),
            sqlite_synchronous: SqliteSync::Full,
            postgres_url: String::new(),
            postgres_pool_size: 4,
            postgres_schema: "switchboard".to_owned(),
        }
    }
}

impl StoreConfig {
    /// The SQLite database file.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("streams.db")
    }
}

/// Opens the configured store. A SQLite file that cannot be opened is an error; PostgreSQL
/// may be down at start (the server carries on and uses it once it answers).
pub fn open(config: &StoreConfig, timeout: Duration) -> Result<Arc<dyn Store>, StoreError> {
    match config.kind {
        StoreKind::Memory => Ok(MemoryStore::shared()),
        StoreKind::Sqlite => {
            let store = switchboard_store::SqliteStore::open(switchboard_store::SqliteConfig {
                path: config.sqlite_path(),
                synchronous: match config.sqlite_synchronous {
                    SqliteSync::Full => switchboard_store::Synchronous::Full,
                    SqliteSync::Normal => switchboard_store::Synchronous::Normal,
                },
                readers: 2,
                timeout,
            })?;
            Ok(Arc::new(store))
        }
        StoreKind::Postgres => {
            let store = switchboard_store::PostgresStore::new(switchboard_store::PostgresConfig {
                url: config.postgres_url.clone(),
                pool_size: config.postgres_pool_size,
                timeout,
                schema: config.postgres_schema.clone(),
            })?;
            Ok(Arc::new(store))
        }
    }
}
