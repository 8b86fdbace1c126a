//! [`PostgresStore`]: channel streams in PostgreSQL, for deployments that run one. The hub
//! calls it through [`Store`]; this file maps each call to one or two prepared statements.
//!
//! It never needs the database to be up: [`PostgresStore::new`] only parses the URL, and
//! connections are made on first use, dropped after any failure and made again by the next
//! call, so switchboard starts while PostgreSQL is down and carries on once it is back. The
//! schema is created on the first successful connection. Every call is bounded by
//! [`PostgresConfig::timeout`]: it fails with [`StoreError::Unavailable`] or
//! [`StoreError::Timeout`], and never reports a write that did not commit as done.
//!
//! # Schema
//!
//! In the configured schema: `streams(id, channel UNIQUE, epoch, top, last_append_ms,
//! async_run)`, `publications(stream, "offset", time_ms, expires_ms, kind, data, client,
//! user_id, conn_info)` keyed by `(stream, "offset")` and indexed by `expires_ms`, and
//! `meta(key, value)` holding `schema_version`. `async_run` is the run id of the store that
//! opened the stream with `async_writes` and has not closed yet.
//!
//! # Writes
//!
//! [`Store::append`] is one transaction in two round trips on the writer connection. The
//! first carries, pipelined, `BEGIN`; one statement creating the batch's missing streams;
//! and one statement that advances every stream whose last offset is the batch's first
//! minus one and inserts all the publications of those streams from arrays (`unnest`). If
//! every publication went in, the second round trip is `COMMIT`; otherwise it reads the
//! streams' last offsets and rolls back, and the call fails with [`StoreError::Conflict`].
//! When the connection is lost or the call times out after `COMMIT` was sent, the outcome
//! is unknown: the call fails, and if the batch did commit, the next append of those
//! streams reports the conflict.

mod plan;
mod sql;

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures_util::future::{join3, try_join, try_join_all};
use rand::distr::{Alphanumeric, SampleString};
use switchboard_core::{
    ChannelName, Epoch, PageFrom, Store, StoreError,
    store::{
        ReadQuery, StoreFuture, StoreStats, StoredPublication, StreamAppend, StreamMeta,
        StreamStats, TrimCut, unix_ms,
    },
};
use tokio::sync::{Mutex as AsyncMutex, Semaphore, SemaphorePermit};
use tokio_postgres::{
    Client, NoTls, Statement,
    config::{Host, SslMode},
    error::SqlState,
};
use tracing::{debug, info, warn};

use self::{
    plan::Plan,
    sql::{
        DDL, Query, SCHEMA_VERSION, SQL, clamp, get, stored_publication, stream_meta, stream_stats,
        unsigned,
    },
};

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
///
/// Appends go through one writer connection (the hub sends one batch at a time); every
/// other call takes one of `pool_size` reader connections. Each instance is one run: it
/// marks the streams it opens with `async_writes` with a random run id, which
/// [`close`](Store::close) clears.
///
/// ```no_run
/// use std::time::Duration;
/// use switchboard_core::{ChannelName, Store};
/// use switchboard_store::{PostgresConfig, PostgresStore};
///
/// # async fn demo() -> Result<(), switchboard_core::StoreError> {
/// let store = PostgresStore::new(PostgresConfig {
///     url: "postgres://switchboard@127.0.0.1:5432/switchboard".into(),
///     pool_size: 4,
///     timeout: Duration::from_secs(5),
///     schema: "switchboard".into(),
/// })?; // does not connect yet
/// let news = ChannelName::parse("news").unwrap();
/// let meta = store.open(&news, false).await?; // connects, creates the schema
/// println!("news is at {} in epoch {}", meta.top, meta.epoch.as_str());
/// store.close().await
/// # }
/// ```
pub struct PostgresStore {
    pg: tokio_postgres::Config,
    timeout: Duration,
    /// `host:port/database/schema`, for messages and stats (never the password).
    location: String,
    /// This instance's random id, written in `streams.async_run`.
    run_id: String,
    /// The schema name in double quotes (validated: nothing to escape).
    quoted_schema: String,
    /// Schema creation, a multi-statement string.
    ddl: String,
    /// The text of each [`Query`] for this schema, by index.
    sql: Vec<String>,
    /// The writer connection; `None` until first use and after a failure.
    writer: AsyncMutex<Option<Conn>>,
    /// One permit per reader connection.
    readers: Semaphore,
    /// Reader connections not in use. A std mutex: held only to push or pop.
    idle: Mutex<Vec<Conn>>,
    /// Serializes schema creation between this instance's connections.
    schema_lock: AsyncMutex<()>,
    schema_ready: AtomicBool,
    /// Whether this run marked a stream, so `close` has marks to clear.
    marked: AtomicBool,
    closed: AtomicBool,
    /// Whether the last call reached the database, so outages are logged once.
    available: AtomicBool,
}

/// One connection with every [`Query`] prepared on it.
struct Conn {
    client: Client,
    statements: Vec<Statement>,
}

/// A reader connection lent by the pool. Dropped without [`release`](Self::release) (an
/// error, a timeout, a cancelled call), it closes the connection instead of returning it.
struct Lent<'a> {
    store: &'a PostgresStore,
    conn: Option<Conn>,
    _permit: SemaphorePermit<'a>,
}

/// Why a write transaction failed.
enum WriteError {
    /// A stream's last offset did not match; rolled back, the connection is still good.
    Conflict(StoreError),
    /// A stream was removed by retention between two statements; rolled back, try again.
    Raced,
    /// Anything else; the connection is dropped.
    Store(StoreError),
}

/// Times an append is tried when retention races with it.
const APPEND_ATTEMPTS: usize = 3;
const DEFAULT_PORT: u16 = 5432;
/// Longest schema name PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_SCHEMA_BYTES: usize = 63;

// === impl PostgresStore ===

impl PostgresStore {
    /// A store for `config`. Only checks the settings: it connects on first use.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the URL does not parse, names no host or requires
    /// TLS (not supported: `sslmode=prefer`, the default, connects without), the schema
    /// name is not ASCII letters, digits and underscores (starting with a letter or
    /// underscore, at most 63 bytes), or the timeout is zero.
    pub fn new(config: PostgresConfig) -> Result<Self, StoreError> {
        let invalid = |why: String| {
            StoreError::Unavailable(format!("invalid PostgreSQL store settings: {why}"))
        };
        // The parser's messages never quote the URL, so no password leaks into them.
        let mut pg = tokio_postgres::Config::from_str(&config.url)
            .map_err(|e| invalid(format!("the URL does not parse: {e}")))?;
        if pg.get_hosts().is_empty() && pg.get_hostaddrs().is_empty() {
            return Err(invalid("the URL names no host".to_owned()));
        }
        if pg.get_ssl_mode() == SslMode::Require {
            return Err(invalid(
                "sslmode=require, but this store connects without TLS".to_owned(),
            ));
        }
        let schema = config.schema.as_str();
        let valid_schema = schema.len() <= MAX_SCHEMA_BYTES
            && schema
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_schema {
            return Err(invalid(format!(
                "schema {schema:?} must be ASCII letters, digits and underscores, \
                 starting with a letter or underscore, at most {MAX_SCHEMA_BYTES} bytes"
            )));
        }
        if config.timeout.is_zero() {
            return Err(invalid("the timeout is zero".to_owned()));
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(config.timeout);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("switchboard");
        }
        // The server gives up on a statement when we do; options given in the URL come
        // last and win.
        let options = format!(
            "-c statement_timeout={} {}",
            millis(config.timeout),
            pg.get_options().unwrap_or_default()
        );
        pg.options(options.trim_end());

        let quoted = format!("\"{schema}\"");
        let literal = format!("'{schema}'");
        Ok(Self {
            location: location(&pg, schema),
            run_id: Alphanumeric.sample_string(&mut rand::rng(), 16),
            ddl: DDL
                .replace("{lit}", &literal)
                .replace("{version}", &format!("'{SCHEMA_VERSION}'"))
                .replace("{s}", &quoted),
            sql: SQL
                .iter()
                .map(|(_, text)| text.replace("{s}", &quoted))
                .collect(),
            quoted_schema: quoted,
            timeout: config.timeout,
            writer: AsyncMutex::new(None),
            readers: Semaphore::new(config.pool_size.max(1)),
            idle: Mutex::new(Vec::new()),
            schema_lock: AsyncMutex::new(()),
            schema_ready: AtomicBool::new(false),
            marked: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            available: AtomicBool::new(true),
            pg,
        })
    }

    /// Runs one store call: refused once closed, bounded by the timeout, and logged when
    /// the database goes away or comes back.
    async fn call<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let result = tokio::time::timeout(self.timeout, op)
            .await
            .unwrap_or(Err(StoreError::Timeout(millis(self.timeout))));
        match &result {
            Ok(_) => {
                if !self.available.swap(true, Ordering::AcqRel) {
                    info!(location = %self.location, "PostgreSQL store is available again");
                }
            }
            Err(e @ (StoreError::Unavailable(_) | StoreError::Timeout(_))) => {
                if self.available.swap(false, Ordering::AcqRel) {
                    warn!(location = %self.location, error = %e, "PostgreSQL store is unavailable");
                }
            }
            Err(e @ StoreError::Corrupt(_)) => {
                warn!(location = %self.location, error = %e, "PostgreSQL store data is unreadable");
            }
            Err(StoreError::Conflict { .. } | StoreError::Closed) => {}
        }
        result
    }

    /// A new connection, with the schema ensured and every statement prepared.
    async fn connect(&self) -> Result<Conn, StoreError> {
        let (client, connection) = self.pg.connect(NoTls).await.map_err(|e| self.fail(&e))?;
        let location = self.location.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(%location, error = %e, "PostgreSQL connection ended");
            }
        });
        self.ensure_schema(&client).await?;
        let statements = try_join_all(self.sql.iter().map(|text| client.prepare(text)))
            .await
            .map_err(|e| self.fail(&e))?;
        Ok(Conn { client, statements })
    }

    async fn ensure_schema(&self, client: &Client) -> Result<(), StoreError> {
        if self.schema_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let _creating = self.schema_lock.lock().await;
        if self.schema_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        client
            .batch_execute(&self.ddl)
            .await
            .map_err(|e| self.fail(&e))?;
        let quoted = &self.quoted_schema;
        let version = client
            .query_opt(
                &format!("SELECT value FROM {quoted}.meta WHERE key = 'schema_version'"),
                &[],
            )
            .await
            .map_err(|e| self.fail(&e))?
            .map(|row| get::<String>(&row, 0))
            .transpose()?;
        match version.as_deref() {
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(StoreError::Corrupt(format!(
                    "{}: schema version {other}, this build knows {SCHEMA_VERSION}",
                    self.location
                )));
            }
            None => {
                return Err(StoreError::Corrupt(format!(
                    "{}: the schema version is missing",
                    self.location
                )));
            }
        }
        self.schema_ready.store(true, Ordering::Release);
        info!(location = %self.location, "PostgreSQL store schema is ready");
        Ok(())
    }

    /// A reader connection: an idle one that is still open, or a new one.
    async fn reader(&self) -> Result<Lent<'_>, StoreError> {
        let permit = self
            .readers
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let idle = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.retain(|c| !c.client.is_closed());
            idle.pop()
        };
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        Ok(Lent {
            store: self,
            conn: Some(conn),
            _permit: permit,
        })
    }

    /// The error for a failed statement or connection. Errors that mean the schema is gone
    /// make the next connection create it again.
    fn fail(&self, e: &tokio_postgres::Error) -> StoreError {
        let message = format!("PostgreSQL at {}: {e}", self.location);
        let Some(code) = e.code() else {
            // No SQLSTATE: the connection failed or broke.
            return StoreError::Unavailable(message);
        };
        if [
            SqlState::UNDEFINED_TABLE,
            SqlState::UNDEFINED_COLUMN,
            SqlState::INVALID_SCHEMA_NAME,
        ]
        .contains(code)
        {
            self.schema_ready.store(false, Ordering::Release);
        }
        match code.code().get(..2) {
            // Data exception, integrity violation, syntax or undefined object, internal.
            Some("22" | "23" | "42" | "3F" | "XX") => StoreError::Corrupt(message),
            // Connection, resources, operator intervention, rollbacks: worth retrying.
            _ => StoreError::Unavailable(message),
        }
    }

    async fn open_stream(
        &self,
        channel: &ChannelName,
        async_writes: bool,
    ) -> Result<StreamMeta, StoreError> {
        let conn = self.reader().await?;
        let found = conn
            .client
            .query_opt(conn.statement(Query::OpenSelect), &[&channel.as_str()])
            .await
            .map_err(|e| self.fail(&e))?;
        if let Some(row) = found {
            let mark: Option<String> = get(&row, 2)?;
            let current = match mark.as_deref() {
                None => !async_writes,
                Some(run) => run == self.run_id,
            };
            if current {
                let meta = stream_meta(&row)?;
                conn.release();
                return Ok(meta);
            }
        }
        let fresh = Epoch::generate();
        let mark = async_writes.then_some(self.run_id.as_str());
        if async_writes {
            // Before the write: a mark whose write times out may still land.
            self.marked.store(true, Ordering::Release);
        }
        let row = conn
            .client
            .query_one(
                conn.statement(Query::OpenUpsert),
                &[
                    &channel.as_str(),
                    &fresh.as_str(),
                    &clamp(unix_ms()),
                    &mark,
                    &self.run_id.as_str(),
                ],
            )
            .await
            .map_err(|e| self.fail(&e))?;
        let meta = stream_meta(&row)?;
        conn.release();
        Ok(meta)
    }

    async fn append_batch(&self, batch: Vec<StreamAppend>) -> Result<(), StoreError> {
        let plan = Plan::new(&batch)?;
        if plan.channels.is_empty() {
            return Ok(());
        }
        let mut writer = self.writer.lock().await;
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        for _ in 0..APPEND_ATTEMPTS {
            let conn = match writer.take() {
                Some(conn) if !conn.client.is_closed() => conn,
                _ => self.connect().await?,
            };
            // A cancelled call drops `conn` mid-transaction: the server rolls it back.
            match self.write(&conn, &plan).await {
                Ok(()) => {
                    *writer = Some(conn);
                    return Ok(());
                }
                Err(WriteError::Conflict(e)) => {
                    *writer = Some(conn);
                    return Err(e);
                }
                Err(WriteError::Raced) => *writer = Some(conn),
                Err(WriteError::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(format!(
            "PostgreSQL at {}: retention kept removing streams of the append",
            self.location
        )))
    }

    /// One append transaction: everything but `COMMIT` in one round trip.
    async fn write(&self, conn: &Conn, plan: &Plan<'_>) -> Result<(), WriteError> {
        let fail = |e: tokio_postgres::Error| WriteError::Store(self.fail(&e));
        let now = clamp(unix_ms());
        // Pipelined: each request is sent when first polled, and `join3` polls in order.
        let (begun, created, inserted) = join3(
            conn.client.batch_execute("BEGIN"),
            conn.client.execute(
                conn.statement(Query::AppendCreate),
                &[&plan.names, &plan.epochs, &plan.firsts, &now],
            ),
            conn.client.execute(
                conn.statement(Query::AppendRows),
                &[
                    &plan.names,
                    &plan.firsts,
                    &plan.lasts,
                    &now,
                    &plan.stream_ix,
                    &plan.offsets,
                    &plan.times,
                    &plan.expires,
                    &plan.kinds,
                    &plan.data,
                    &plan.clients,
                    &plan.users,
                    &plan.conn_infos,
                ],
            ),
        )
        .await;
        begun.map_err(fail)?;
        created.map_err(fail)?;
        if inserted.map_err(fail)? == plan.offsets.len() as u64 {
            return conn.client.batch_execute("COMMIT").await.map_err(fail);
        }
        // Some stream did not follow: find which, as this transaction sees them.
        let (tops, ()) = try_join(
            conn.client
                .query(conn.statement(Query::AppendTops), &[&plan.names]),
            conn.client.batch_execute("ROLLBACK"),
        )
        .await
        .map_err(fail)?;
        match plan.conflict(&tops) {
            Ok(Some(conflict)) => Err(WriteError::Conflict(conflict)),
            Ok(None) => Err(WriteError::Raced),
            Err(e) => Err(WriteError::Store(e)),
        }
    }

    async fn read_page(&self, q: ReadQuery) -> Result<Vec<StoredPublication>, StoreError> {
        let (query, bound) = match q.from {
            PageFrom::After(offset) => (Query::ReadAfter, offset),
            PageFrom::Before(offset) => (Query::ReadBefore, offset),
        };
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let conn = self.reader().await?;
        let rows = conn
            .client
            .query(
                conn.statement(query),
                &[
                    &q.channel.as_str(),
                    &clamp(bound),
                    &clamp(q.max_offset),
                    &clamp(q.now_ms),
                    &limit,
                ],
            )
            .await
            .map_err(|e| self.fail(&e))?;
        conn.release();
        rows.iter().map(stored_publication).collect()
    }

    async fn trim_streams(&self, cuts: Vec<TrimCut>) -> Result<u64, StoreError> {
        if cuts.is_empty() {
            return Ok(0);
        }
        let names: Vec<&str> = cuts.iter().map(|c| c.channel.as_str()).collect();
        let throughs: Vec<i64> = cuts.iter().map(|c| clamp(c.through)).collect();
        let conn = self.reader().await?;
        let removed = conn
            .client
            .execute(conn.statement(Query::Trim), &[&names, &throughs])
            .await
            .map_err(|e| self.fail(&e))?;
        conn.release();
        Ok(removed)
    }

    async fn expire_streams(
        &self,
        now_ms: u64,
        stream_idle_ms: u64,
        max_rows: usize,
    ) -> Result<u64, StoreError> {
        let max = i64::try_from(max_rows).unwrap_or(i64::MAX);
        let conn = self.reader().await?;
        let removed = conn
            .client
            .execute(conn.statement(Query::ExpireRows), &[&clamp(now_ms), &max])
            .await
            .map_err(|e| self.fail(&e))?;
        // Idle means the last append is at least `stream_idle_ms` old.
        if let Some(cutoff) = now_ms.checked_sub(stream_idle_ms) {
            conn.client
                .execute(
                    conn.statement(Query::ExpireStreams),
                    &[&clamp(cutoff), &max, &self.run_id.as_str()],
                )
                .await
                .map_err(|e| self.fail(&e))?;
        }
        conn.release();
        Ok(removed)
    }

    async fn store_stats(&self, largest: usize) -> Result<StoreStats, StoreError> {
        let limit = i64::try_from(largest).unwrap_or(i64::MAX);
        let conn = self.reader().await?;
        let (totals, top) = try_join(
            conn.client.query_one(conn.statement(Query::Totals), &[]),
            conn.client.query(conn.statement(Query::Largest), &[&limit]),
        )
        .await
        .map_err(|e| self.fail(&e))?;
        conn.release();
        Ok(StoreStats {
            kind: "postgres",
            location: self.location.clone(),
            streams: unsigned(get(&totals, 0)?)?,
            publications: unsigned(get(&totals, 1)?)?,
            data_bytes: unsigned(get(&totals, 2)?)?,
            disk_bytes: Some(unsigned(get(&totals, 3)?)?),
            largest: top.iter().map(stream_stats).collect::<Result<_, _>>()?,
        })
    }

    async fn some_stream_stats(
        &self,
        channels: Vec<ChannelName>,
    ) -> Result<Vec<StreamStats>, StoreError> {
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = channels.iter().map(ChannelName::as_str).collect();
        let conn = self.reader().await?;
        let rows = conn
            .client
            .query(conn.statement(Query::StreamStats), &[&names])
            .await
            .map_err(|e| self.fail(&e))?;
        conn.release();
        let mut found: HashMap<ChannelName, StreamStats> = rows
            .iter()
            .map(|row| stream_stats(row).map(|s| (s.channel.clone(), s)))
            .collect::<Result<_, _>>()?;
        // In the order asked, once each.
        Ok(channels.iter().filter_map(|c| found.remove(c)).collect())
    }

    async fn ping_server(&self) -> Result<(), StoreError> {
        let conn = self.reader().await?;
        conn.client
            .query_one(conn.statement(Query::Ping), &[])
            .await
            .map_err(|e| self.fail(&e))?;
        conn.release();
        Ok(())
    }

    /// Waits for the append in flight, clears this run's marks and drops every connection.
    async fn close_store(&self) -> Result<(), StoreError> {
        // New reader calls now fail with `Closed`; calls holding a connection finish and
        // drop it instead of returning it.
        self.readers.close();
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let mut writer = self.writer.lock().await;
        let held = writer.take();
        if !self.marked.load(Ordering::Acquire) {
            return Ok(());
        }
        let conn = match held {
            Some(conn) if !conn.client.is_closed() => conn,
            _ => self.connect().await?,
        };
        let cleared = conn
            .client
            .execute(conn.statement(Query::ClearMarks), &[&self.run_id.as_str()])
            .await
            .map_err(|e| self.fail(&e))?;
        debug!(location = %self.location, streams = cleared, "PostgreSQL store closed cleanly");
        Ok(())
    }
}

impl Store for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn open(&self, channel: &ChannelName, async_writes: bool) -> StoreFuture<'_, StreamMeta> {
        let channel = channel.clone();
        Box::pin(self.call(async move { self.open_stream(&channel, async_writes).await }))
    }

    fn append(&self, batch: Vec<StreamAppend>) -> StoreFuture<'_, ()> {
        Box::pin(self.call(self.append_batch(batch)))
    }

    fn read(&self, query: ReadQuery) -> StoreFuture<'_, Vec<StoredPublication>> {
        Box::pin(self.call(self.read_page(query)))
    }

    fn trim(&self, cuts: Vec<TrimCut>) -> StoreFuture<'_, u64> {
        Box::pin(self.call(self.trim_streams(cuts)))
    }

    fn expire(&self, now_ms: u64, stream_idle_ms: u64, max_rows: usize) -> StoreFuture<'_, u64> {
        Box::pin(self.call(self.expire_streams(now_ms, stream_idle_ms, max_rows)))
    }

    fn stats(&self, largest: usize) -> StoreFuture<'_, StoreStats> {
        Box::pin(self.call(self.store_stats(largest)))
    }

    fn stream_stats(&self, channels: Vec<ChannelName>) -> StoreFuture<'_, Vec<StreamStats>> {
        Box::pin(self.call(self.some_stream_stats(channels)))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.call(self.ping_server()))
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            // Marked closed first, so no call starts meanwhile.
            if self.closed.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
            let result = tokio::time::timeout(self.timeout, self.close_store())
                .await
                .unwrap_or(Err(StoreError::Timeout(millis(self.timeout))));
            if let Err(e) = &result {
                warn!(
                    location = %self.location, error = %e,
                    "PostgreSQL store could not mark this run finished; \
                     its async streams will get new epochs"
                );
            }
            result
        })
    }
}

// === impl Lent ===

impl Lent<'_> {
    /// Returns the connection to the pool (after a call that succeeded).
    fn release(mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if !self.store.closed.load(Ordering::Acquire) && !conn.client.is_closed() {
            self.store
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
        }
    }
}

impl std::ops::Deref for Lent<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        // Set at creation, taken only by `release`, which consumes `self`.
        self.conn
            .as_ref()
            .expect("a lent connection is present until released")
    }
}

impl Conn {
    fn statement(&self, query: Query) -> &Statement {
        &self.statements[query as usize]
    }
}

// === helpers ===

/// `host:port/database/schema`: where the data is, without credentials.
fn location(pg: &tokio_postgres::Config, schema: &str) -> String {
    let host = match (pg.get_hosts().first(), pg.get_hostaddrs().first()) {
        (Some(Host::Tcp(host)), _) => host.clone(),
        (Some(Host::Unix(path)), _) => path.display().to_string(),
        (None, Some(addr)) => addr.to_string(),
        (None, None) => String::new(),
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let port = pg.get_ports().first().copied().unwrap_or(DEFAULT_PORT);
    // libpq's default database is the user's name.
    let database = pg.get_dbname().or(pg.get_user()).unwrap_or("postgres");
    format!("{host}:{port}/{database}/{schema}")
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
