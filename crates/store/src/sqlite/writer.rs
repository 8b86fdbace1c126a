//! The writer thread: owns the only write connection and runs every change, one
//! `BEGIN IMMEDIATE … COMMIT` per command (or per group of queued appends). It never panics
//! and never stops on a failed transaction: it rolls back, answers the error, and takes the
//! next command. It stops on `Close` or when the store is dropped.
//!
//! Appends go to the unindexed `log` table (see `schema.rs`), so a group commit over many
//! streams writes a few pages instead of one index page per stream. The writer moves the
//! log into `publications` inside an append's transaction once it holds [`LOG_MAX_ROWS`]
//! rows or [`LOG_MAX_BYTES`] of data, and before every trim, expiry and close, which then
//! only have `publications` to deal with.

use std::{collections::HashMap, sync::Arc};

use rusqlite::{Connection, OptionalExtension, params};
use switchboard_core::{
    ChannelName, Epoch, Payload, StoreError,
    store::{StreamAppend, StreamMeta, TrimCut, expires_at, unix_ms},
};
use tokio::sync::mpsc;

use super::{
    DbFile, Reply, WriteCommand, from_sql,
    schema::{self, KIND_BINARY, KIND_JSON},
    to_sql,
};

/// Most queued appends committed in one transaction.
const MAX_GROUP: usize = 64;
/// Channel → stream id entries remembered before starting over.
const MAX_CACHED_IDS: usize = 100_000;
/// Streams examined for idleness per `expire` call.
const STREAM_SWEEP: i64 = 1000;
/// Rows of `log` that make the next append move it into `publications`. Readers scan the
/// log without an index, so this bounds their extra work; a move writes each stream's
/// index page once for the commits it gathers (64 publications per commit over 64 streams:
/// one move per 32 commits).
const LOG_MAX_ROWS: u64 = 2048;
/// Bytes of publication data in `log` that make the next append move it: large
/// publications are moved sooner, which keeps the log's pages few.
const LOG_MAX_BYTES: u64 = 1024 * 1024;

pub(super) struct Writer {
    conn: Connection,
    file: Arc<DbFile>,
    /// This process run, written into `streams.async_run`.
    run: Arc<str>,
    /// Channel → `streams.id`, so an append usually skips the lookup by name. Every use
    /// checks it (the update also matches the channel), so a stale entry costs a lookup,
    /// never a wrong write.
    ids: HashMap<ChannelName, i64>,
    /// `streams.id` after which the next idle-stream sweep starts.
    sweep_after: i64,
    /// Failed transactions in a row, to log the start and the end of an outage only.
    failures: u64,
    /// What `log` holds, as of the open transaction; restored when it rolls back.
    log: LogSize,
}

/// Rows and data bytes in the `log` table.
#[derive(Debug, Clone, Copy, Default)]
struct LogSize {
    rows: u64,
    bytes: u64,
}

impl Writer {
    pub(super) fn new(conn: Connection, file: Arc<DbFile>, run: Arc<str>) -> Self {
        Self {
            conn,
            file,
            run,
            ids: HashMap::new(),
            sweep_after: 0,
            failures: 0,
            // `set_up` moved the log on open.
            log: LogSize::default(),
        }
    }

    /// Serves `queue` until `Close`, or until every sender is gone (the store was dropped
    /// without `close`: this run's marks stay, as after a crash).
    pub(super) fn run(mut self, mut queue: mpsc::Receiver<WriteCommand>) {
        let mut next = None;
        while let Some(command) = next.take().or_else(|| queue.blocking_recv()) {
            match command {
                WriteCommand::Append { batch, reply } => {
                    // Appends already waiting commit together: one fsync for all of them.
                    let mut group = vec![(batch, reply)];
                    while group.len() < MAX_GROUP {
                        match queue.try_recv() {
                            Ok(WriteCommand::Append { batch, reply }) => group.push((batch, reply)),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.append_group(group);
                }
                WriteCommand::Open {
                    channel,
                    async_writes,
                    reply,
                } => self.answer(reply, |w| w.open(&channel, async_writes)),
                WriteCommand::Trim { cuts, reply } => self.answer(reply, |w| w.trim(&cuts)),
                WriteCommand::Expire {
                    now_ms,
                    stream_idle_ms,
                    max_rows,
                    reply,
                } => self.answer(reply, |w| w.expire(now_ms, stream_idle_ms, max_rows)),
                WriteCommand::Close { reply } => {
                    let closed = self.close();
                    let _ = reply.send(closed);
                    return;
                }
            }
        }
    }

    /// Runs `body` in a transaction and answers, unless the caller already gave up.
    fn answer<T>(
        &mut self,
        reply: Reply<T>,
        body: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) {
        if !reply.is_closed() {
            let result = self.transaction(body);
            let _ = reply.send(result);
        }
    }

    fn exec(&self, sql: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(drop)
            .map_err(|e| self.file.error(e))
    }

    /// Runs `body` in one `BEGIN IMMEDIATE … COMMIT`, rolled back on any error.
    fn transaction<T>(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let log = self.log;
        let result = self
            .exec("BEGIN IMMEDIATE")
            .and_then(|()| body(self))
            .and_then(|v| self.exec("COMMIT").map(|()| v));
        // SQLite may have rolled back on its own already (disk full, I/O error).
        if result.is_err()
            && !self.conn.is_autocommit()
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(path = %self.file.label, error = %e, "sqlite rollback failed");
        }
        if result.is_err() {
            self.log = log;
        }
        self.note(result.as_ref().err());
        result
    }

    /// Moves `log` into `publications` inside the open transaction.
    fn move_log(&mut self) -> Result<(), StoreError> {
        if self.log.rows > 0 {
            self.conn
                .execute_batch(schema::MOVE_LOG)
                .map_err(|e| self.file.error(e))?;
            self.log = LogSize::default();
        }
        Ok(())
    }

    /// Logs when writes start failing and when they work again, not every failure.
    fn note(&mut self, error: Option<&StoreError>) {
        match error {
            None | Some(StoreError::Conflict { .. }) => {
                if self.failures > 0 {
                    tracing::info!(
                        path = %self.file.label,
                        failures = self.failures,
                        "sqlite writes work again"
                    );
                    self.failures = 0;
                }
            }
            Some(e) => {
                if self.failures == 0 {
                    tracing::warn!(path = %self.file.label, error = %e, "sqlite write failed");
                }
                self.failures += 1;
            }
        }
    }

    // === append ===

    /// Commits every append of `group` in one transaction, each in its own savepoint so
    /// that a conflicting one is refused alone. Any other failure (disk full, I/O) fails the
    /// whole group: it would fail each of them anyway.
    ///
    /// An append whose caller gave up (timed out) before it was written is rolled back: the
    /// caller was told it failed. Only a caller giving up during the commit itself can still
    /// see a failure for an append that landed; the next append then meets a `Conflict`.
    fn append_group(&mut self, group: Vec<(Vec<StreamAppend>, Reply<()>)>) {
        let group: Vec<_> = group.into_iter().filter(|(_, r)| !r.is_closed()).collect();
        if group.is_empty() {
            return;
        }
        let now_ms = unix_ms();
        let mut created = Vec::new();
        let mut outcomes = Vec::with_capacity(group.len());
        let result = self.transaction(|w| {
            if w.log.rows >= LOG_MAX_ROWS || w.log.bytes >= LOG_MAX_BYTES {
                w.move_log()?;
            }
            if let [(batch, reply)] = group.as_slice() {
                // One append (the hub's case: its writer waits for each commit): the
                // transaction is the unit, no savepoint and its page copies needed.
                w.append(batch, now_ms, &mut created)?;
                if reply.is_closed() {
                    return Err(StoreError::Timeout(0));
                }
                outcomes.push(Ok(()));
                return Ok(());
            }
            for (batch, reply) in &group {
                w.exec("SAVEPOINT batch")?;
                let mark = created.len();
                let log = w.log;
                let applied = w.append(batch, now_ms, &mut created);
                match &applied {
                    Ok(()) if !reply.is_closed() => {}
                    Ok(()) | Err(StoreError::Conflict { .. }) => {
                        w.exec("ROLLBACK TO batch")?;
                        w.forget(created.drain(mark..));
                        w.log = log;
                    }
                    Err(_) => return applied,
                }
                w.exec("RELEASE batch")?;
                outcomes.push(applied);
            }
            Ok(())
        });
        if let Err(e) = result {
            self.forget(created.drain(..));
            outcomes = vec![Err(e); group.len()];
        }
        for ((_, reply), outcome) in group.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }

    /// Drops the cached ids of streams whose creation was rolled back.
    fn forget(&mut self, channels: impl Iterator<Item = ChannelName>) {
        for channel in channels {
            self.ids.remove(&channel);
        }
    }

    fn remember(&mut self, channel: &ChannelName, id: i64) {
        if self.ids.len() >= MAX_CACHED_IDS {
            self.ids.clear();
        }
        self.ids.insert(channel.clone(), id);
    }

    /// Appends one batch to `log` inside the open transaction; `created` collects the
    /// streams it inserted.
    fn append(
        &mut self,
        batch: &[StreamAppend],
        now_ms: u64,
        created: &mut Vec<ChannelName>,
    ) -> Result<(), StoreError> {
        for a in batch {
            let first = a.publications.first().map(|p| p.offset);
            if let Some(first) = first {
                for (i, p) in a.publications.iter().enumerate() {
                    let expected = first.saturating_add(i as u64);
                    if p.offset != expected {
                        return Err(StoreError::Conflict {
                            channel: a.channel.clone(),
                            expected,
                            got: p.offset,
                        });
                    }
                }
            }
            let last = a.publications.last().map_or(0, |p| p.offset);
            let stream = self.advance(a, first, last, now_ms, created)?;
            let mut insert = self
                .conn
                .prepare_cached(
                    "INSERT INTO log (stream, offset, time_ms, expires_ms, kind, data, \
                     client, user_id, conn_info) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(|e| self.file.error(e))?;
            for p in &a.publications {
                let (kind, data) = match &p.data {
                    Payload::Json(b) => (KIND_JSON, b),
                    Payload::Binary(b) => (KIND_BINARY, b),
                };
                let info = p.info.as_deref();
                insert
                    .execute(params![
                        stream,
                        to_sql(p.offset),
                        to_sql(p.time_ms),
                        to_sql(expires_at(p.time_ms, a.ttl_ms)),
                        kind,
                        &data[..],
                        info.map(|i| i.client.as_str()),
                        info.and_then(|i| i.user.as_ref()).map(|u| u.as_str()),
                        info.and_then(|i| i.conn_info.as_ref())
                            .map(|j| &j.as_bytes()[..]),
                    ])
                    .map_err(|e| self.file.error(e))?;
                self.log.rows += 1;
                self.log.bytes += data.len() as u64;
            }
        }
        Ok(())
    }

    /// Checks that `first` follows the stream's top and moves the top to `last` (an empty
    /// append only refreshes the last append time), creating the stream with the append's
    /// epoch when absent. Returns the stream id.
    fn advance(
        &mut self,
        a: &StreamAppend,
        first: Option<u64>,
        last: u64,
        now_ms: u64,
        created: &mut Vec<ChannelName>,
    ) -> Result<i64, StoreError> {
        let channel = a.channel.as_str();
        let prev = first.and_then(|f| f.checked_sub(1));
        // The usual case in one statement: a known stream, at the expected offset.
        if let (Some(&id), Some(prev)) = (self.ids.get(&a.channel), prev) {
            let moved = self
                .conn
                .prepare_cached(
                    "UPDATE streams SET top = ?1, last_append_ms = ?2 \
                     WHERE id = ?3 AND channel = ?4 AND top = ?5",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        to_sql(last),
                        to_sql(now_ms),
                        id,
                        channel,
                        to_sql(prev)
                    ])
                })
                .map_err(|e| self.file.error(e))?;
            if moved == 1 {
                return Ok(id);
            }
        }
        let found: Option<(i64, i64)> = self
            .conn
            .prepare_cached("SELECT id, top FROM streams WHERE channel = ?1")
            .and_then(|mut s| {
                s.query_row([channel], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.file.error(e))?;
        let Some((id, top)) = found else {
            if first == Some(0) {
                return Err(StoreError::Conflict {
                    channel: a.channel.clone(),
                    expected: 1,
                    got: 0,
                });
            }
            self.conn
                .prepare_cached(
                    "INSERT INTO streams (channel, epoch, top, last_append_ms) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        channel,
                        a.epoch.as_str(),
                        to_sql(last),
                        to_sql(now_ms)
                    ])
                })
                .map_err(|e| self.file.error(e))?;
            let id = self.conn.last_insert_rowid();
            self.remember(&a.channel, id);
            created.push(a.channel.clone());
            return Ok(id);
        };
        self.remember(&a.channel, id);
        let top = from_sql(top);
        let new_top = match first {
            None => top,
            Some(_) if prev == Some(top) => last,
            Some(got) => {
                return Err(StoreError::Conflict {
                    channel: a.channel.clone(),
                    expected: top.saturating_add(1),
                    got,
                });
            }
        };
        self.conn
            .prepare_cached("UPDATE streams SET top = ?1, last_append_ms = ?2 WHERE id = ?3")
            .and_then(|mut s| s.execute(params![to_sql(new_top), to_sql(now_ms), id]))
            .map_err(|e| self.file.error(e))?;
        Ok(id)
    }

    // === open, trim, expire, close ===

    /// `open` for a stream that is absent or whose async mark must change.
    fn open(
        &mut self,
        channel: &ChannelName,
        async_writes: bool,
    ) -> Result<StreamMeta, StoreError> {
        let mark = async_writes.then(|| &*self.run);
        let found: Option<(i64, String, i64, Option<String>)> = self
            .conn
            .prepare_cached("SELECT id, epoch, top, async_run FROM streams WHERE channel = ?1")
            .and_then(|mut s| {
                s.query_row([channel.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
            })
            .map_err(|e| self.file.error(e))?;
        let Some((id, epoch, top, async_run)) = found else {
            let epoch = Epoch::generate();
            self.conn
                .prepare_cached(
                    "INSERT INTO streams (channel, epoch, top, last_append_ms, async_run) \
                     VALUES (?1, ?2, 0, ?3, ?4)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        channel.as_str(),
                        epoch.as_str(),
                        to_sql(unix_ms()),
                        mark
                    ])
                })
                .map_err(|e| self.file.error(e))?;
            return Ok(StreamMeta { epoch, top: 0 });
        };
        let top = from_sql(top);
        match async_run {
            // Marked by a run that did not close cleanly: it may have delivered offsets this
            // file never got, so the stream gets a new epoch (keeping its offsets and rows).
            Some(other) if other != *self.run => {
                let epoch = Epoch::generate();
                tracing::info!(
                    %channel,
                    previous_run = %other,
                    "stream written ahead of the store by an unclean run gets a new epoch"
                );
                self.conn
                    .prepare_cached("UPDATE streams SET epoch = ?1, async_run = ?2 WHERE id = ?3")
                    .and_then(|mut s| s.execute(params![epoch.as_str(), mark, id]))
                    .map_err(|e| self.file.error(e))?;
                Ok(StreamMeta { epoch, top })
            }
            // Once marked by this run, a stream stays marked until `close`, whatever later
            // opens ask: the hub may still hold offsets delivered ahead of the store.
            None if async_writes => {
                self.conn
                    .prepare_cached("UPDATE streams SET async_run = ?1 WHERE id = ?2")
                    .and_then(|mut s| s.execute(params![mark, id]))
                    .map_err(|e| self.file.error(e))?;
                Ok(StreamMeta {
                    epoch: Epoch::from_client(&epoch),
                    top,
                })
            }
            _ => Ok(StreamMeta {
                epoch: Epoch::from_client(&epoch),
                top,
            }),
        }
    }

    /// Moves the log first: the cut may reach into it.
    fn trim(&mut self, cuts: &[TrimCut]) -> Result<u64, StoreError> {
        self.move_log()?;
        let mut delete = self
            .conn
            .prepare_cached(
                "DELETE FROM publications \
                 WHERE stream = (SELECT id FROM streams WHERE channel = ?1) AND offset <= ?2",
            )
            .map_err(|e| self.file.error(e))?;
        let mut removed = 0u64;
        for cut in cuts {
            let n = delete
                .execute(params![cut.channel.as_str(), to_sql(cut.through)])
                .map_err(|e| self.file.error(e))?;
            removed += n as u64;
        }
        Ok(removed)
    }

    /// Moves the log first, so expiry and the idle-stream sweep see every publication in
    /// `publications`.
    fn expire(
        &mut self,
        now_ms: u64,
        stream_idle_ms: u64,
        max_rows: usize,
    ) -> Result<u64, StoreError> {
        self.move_log()?;
        let removed = self
            .conn
            .prepare_cached(
                "DELETE FROM publications WHERE rowid IN \
                 (SELECT rowid FROM publications WHERE expires_ms <= ?1 LIMIT ?2)",
            )
            .and_then(|mut s| s.execute(params![to_sql(now_ms), to_sql(max_rows as u64)]))
            .map_err(|e| self.file.error(e))?;
        if let Some(cutoff) = now_ms.checked_sub(stream_idle_ms) {
            self.drop_idle_streams(cutoff)?;
        }
        Ok(removed as u64)
    }

    /// Deletes streams with no publication whose last append is at or before `cutoff` (the
    /// caller moved the log, so `publications` holds them all),
    /// except those this run marked for async writes: the append that would create one again
    /// could not restore its mark, and a crash would then keep an epoch it must change. Each
    /// call examines at most [`STREAM_SWEEP`] streams, going on from where the previous one
    /// stopped, so it stays short however many streams there are (an index on the last
    /// append time would cost every append an index update instead).
    fn drop_idle_streams(&mut self, cutoff: u64) -> Result<(), StoreError> {
        let mut budget = STREAM_SWEEP;
        let mut after = self.sweep_after;
        let mut idle = Vec::new();
        loop {
            let mut seen = 0;
            let mut last = after;
            self.conn
                .prepare_cached(
                    "SELECT id, channel, last_append_ms <= ?3 \
                     AND async_run IS NOT ?4 \
                     AND NOT EXISTS (SELECT 1 FROM publications WHERE stream = streams.id) \
                     FROM streams WHERE id > ?1 ORDER BY id LIMIT ?2",
                )
                .and_then(|mut s| {
                    let mut rows = s.query(params![after, budget, to_sql(cutoff), &*self.run])?;
                    while let Some(row) = rows.next()? {
                        seen += 1;
                        last = row.get(0)?;
                        if row.get::<_, bool>(2)? {
                            idle.push((last, row.get::<_, String>(1)?));
                        }
                    }
                    Ok(())
                })
                .map_err(|e| self.file.error(e))?;
            budget -= seen;
            if budget > 0 && after > 0 {
                // Reached the last stream: go on from the first with what is left.
                after = 0;
                continue;
            }
            self.sweep_after = if budget > 0 { 0 } else { last };
            break;
        }
        for (id, channel) in idle {
            self.conn
                .prepare_cached("DELETE FROM streams WHERE id = ?1")
                .and_then(|mut s| s.execute([id]))
                .map_err(|e| self.file.error(e))?;
            if let Ok(channel) = ChannelName::parse(&channel) {
                self.ids.remove(&channel);
            }
        }
        Ok(())
    }

    /// Clears this run's marks (what tells the next run this one stopped cleanly) and moves
    /// the log, then checkpoints the WAL into the database file and closes the connection.
    fn close(mut self) -> Result<(), StoreError> {
        let run = self.run.clone();
        let cleared = self.transaction(|w| {
            w.move_log()?;
            w.conn
                .prepare_cached("UPDATE streams SET async_run = NULL WHERE async_run = ?1")
                .and_then(|mut s| s.execute([&*run]))
                .map_err(|e| w.file.error(e))
        });
        if cleared.is_ok()
            && let Err(e) = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            tracing::warn!(path = %self.file.label, error = %e, "sqlite checkpoint on close failed");
        }
        if let Err((_, e)) = self.conn.close() {
            tracing::warn!(path = %self.file.label, error = %e, "sqlite close failed");
        }
        cleared.map(drop)
    }
}
