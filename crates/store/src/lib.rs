//! Durable [`Store`]s for switchboard's channel streams.
//!
//! - `SqliteStore` (feature `sqlite`): the embedded default, one file under a data
//!   directory, created on first start.
//! - `PostgresStore` (feature `postgres`): for larger deployments, configured by URL.
//!
//! Both keep the contract documented on [`Store`] and checked by
//! `switchboard_core::store::conformance`.
//!
//! [`Store`]: switchboard_core::Store

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::{PostgresConfig, PostgresStore};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteConfig, SqliteStore, Synchronous};
