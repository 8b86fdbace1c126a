//! switchboard's test harness: real external servers for integration tests, each started as
//! a child process on a free loopback port in a temporary directory, and stopped and removed
//! on `Drop`.
//!
//! - [`PostgresServer`]: a PostgreSQL server with `fsync` on, that tests can stop, kill and
//!   start again to check what survives.
//!
//! The calls block (starting a server takes about a second): from an async test, call them
//! through `tokio::task::spawn_blocking` or `block_in_place`. Nothing here is for production
//! code.

mod postgres;

pub use postgres::{PostgresServer, PostgresServerError};
