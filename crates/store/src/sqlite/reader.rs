//! Reader threads: each holds one read-only connection and serves the shared read queue
//! (pages, sizes, pings, and the lookup that lets most `open` calls skip the writer). In WAL
//! mode they read a committed snapshot while the writer goes on. They never write.
//! Publications are in two tables (`publications`, and `log` for the latest commits; see
//! `schema.rs`): every statement here reads both, in one statement or one read transaction,
//! so a move from one to the other can never hide or double a row.

use std::{
    fs,
    sync::{Arc, Mutex, PoisonError},
};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use switchboard_core::{
    ChannelName, Epoch, PageFrom, Payload, StoreError,
    store::{ReadQuery, StoreStats, StoredClientInfo, StoredPublication, StreamMeta, StreamStats},
};
use tokio::sync::mpsc;

use super::{
    DbFile, ReadCommand, Reply, from_sql,
    schema::{KIND_BINARY, KIND_JSON},
    to_sql,
};

pub(super) struct Reader {
    conn: Connection,
    file: Arc<DbFile>,
    /// This process run, to recognise streams it already marked.
    run: Arc<str>,
}

impl Reader {
    pub(super) fn new(conn: Connection, file: Arc<DbFile>, run: Arc<str>) -> Self {
        Self { conn, file, run }
    }

    /// Serves `queue` until every sender is gone (the store was closed or dropped).
    pub(super) fn run(mut self, queue: &Mutex<mpsc::Receiver<ReadCommand>>) {
        loop {
            // The lock is held only while waiting: one idle reader waits on the queue, the
            // others wait for the lock.
            let command = queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .blocking_recv();
            let Some(command) = command else { break };
            match command {
                ReadCommand::Open {
                    channel,
                    async_writes,
                    reply,
                } => answer(reply, || self.open(&channel, async_writes)),
                ReadCommand::Read { query, reply } => answer(reply, || self.read(&query)),
                ReadCommand::Stats { largest, reply } => answer(reply, || self.stats(largest)),
                ReadCommand::StreamStats { channels, reply } => {
                    answer(reply, || self.stream_stats(&channels));
                }
                ReadCommand::Ping { reply } => answer(reply, || {
                    self.conn
                        .query_row("SELECT 1", [], |_| Ok(()))
                        .map_err(|e| self.file.error(e))
                }),
            }
        }
    }

    /// The stream, when it exists and opening it would change nothing.
    fn open(
        &self,
        channel: &ChannelName,
        async_writes: bool,
    ) -> Result<Option<StreamMeta>, StoreError> {
        let found: Option<(String, i64, Option<String>)> = self
            .conn
            .prepare_cached("SELECT epoch, top, async_run FROM streams WHERE channel = ?1")
            .and_then(|mut s| {
                s.query_row([channel.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
            })
            .map_err(|e| self.file.error(e))?;
        Ok(found.and_then(|(epoch, top, async_run)| {
            let unchanged = match async_run {
                Some(run) => run == *self.run,
                None => !async_writes,
            };
            unchanged.then(|| StreamMeta {
                epoch: Epoch::from_client(&epoch),
                top: from_sql(top),
            })
        }))
    }

    /// One statement, so the page comes from one snapshot. SQLite merges the two ordered
    /// halves of the compound select (the index of `publications` in order, the few log rows
    /// sorted) and stops at the limit.
    fn read(&self, q: &ReadQuery) -> Result<Vec<StoredPublication>, StoreError> {
        const AFTER: &str = "
            SELECT offset, time_ms, kind, data, client, user_id, conn_info FROM publications
            WHERE stream = (SELECT id FROM streams WHERE channel = ?1)
            AND offset > ?2 AND offset <= ?3 AND expires_ms > ?4
            UNION ALL
            SELECT offset, time_ms, kind, data, client, user_id, conn_info FROM log
            WHERE stream = (SELECT id FROM streams WHERE channel = ?1)
            AND offset > ?2 AND offset <= ?3 AND expires_ms > ?4
            ORDER BY offset ASC LIMIT ?5";
        const BEFORE: &str = "
            SELECT offset, time_ms, kind, data, client, user_id, conn_info FROM publications
            WHERE stream = (SELECT id FROM streams WHERE channel = ?1)
            AND offset < ?2 AND offset <= ?3 AND expires_ms > ?4
            UNION ALL
            SELECT offset, time_ms, kind, data, client, user_id, conn_info FROM log
            WHERE stream = (SELECT id FROM streams WHERE channel = ?1)
            AND offset < ?2 AND offset <= ?3 AND expires_ms > ?4
            ORDER BY offset DESC LIMIT ?5";
        let (sql, bound) = match q.from {
            PageFrom::After(after) => (AFTER, after),
            PageFrom::Before(before) => (BEFORE, before),
        };
        let err = |e| self.file.error(e);
        let mut statement = self.conn.prepare_cached(sql).map_err(err)?;
        let mut rows = statement
            .query(params![
                q.channel.as_str(),
                to_sql(bound),
                to_sql(q.max_offset),
                to_sql(q.now_ms),
                to_sql(q.limit as u64),
            ])
            .map_err(err)?;
        let mut page = Vec::with_capacity(q.limit.min(1024));
        while let Some(row) = rows.next().map_err(err)? {
            page.push(stored_publication(row).map_err(err)?);
        }
        Ok(page)
    }

    fn stats(&mut self, largest: usize) -> Result<StoreStats, StoreError> {
        let file = self.file.clone();
        let err = |e| file.error(e);
        // One read transaction: every figure comes from the same snapshot.
        let tx = self.conn.transaction().map_err(err)?;
        let streams: i64 = tx
            .query_row("SELECT count(*) FROM streams", [], |r| r.get(0))
            .map_err(err)?;
        let (publications, data_bytes): (i64, i64) = tx
            .query_row(
                "SELECT sum(n), sum(b) FROM ( \
                 SELECT count(*) AS n, coalesce(sum(length(data)), 0) AS b FROM publications \
                 UNION ALL \
                 SELECT count(*), coalesce(sum(length(data)), 0) FROM log)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(err)?;
        let mut top = Vec::new();
        {
            let mut statement = tx
                .prepare_cached(&format!(
                    "{STREAM_SIZES} GROUP BY s.id ORDER BY 4 DESC, s.channel LIMIT ?1"
                ))
                .map_err(err)?;
            let mut rows = statement.query([to_sql(largest as u64)]).map_err(err)?;
            while let Some(row) = rows.next().map_err(err)? {
                top.push(stream_stats(row, &file)?);
            }
        }
        tx.finish().map_err(err)?;
        let size = |p| fs::metadata(p).map_or(0, |m| m.len());
        Ok(StoreStats {
            kind: "sqlite",
            location: file.label.clone(),
            streams: from_sql(streams),
            publications: from_sql(publications),
            data_bytes: from_sql(data_bytes),
            disk_bytes: Some(size(&file.path) + size(&file.wal())),
            largest: top,
        })
    }

    fn stream_stats(&mut self, channels: &[ChannelName]) -> Result<Vec<StreamStats>, StoreError> {
        let file = self.file.clone();
        let err = |e| file.error(e);
        let tx = self.conn.transaction().map_err(err)?;
        let mut found = Vec::with_capacity(channels.len());
        {
            let mut statement = tx
                .prepare_cached(&format!(
                    "{STREAM_SIZES} WHERE s.channel = ?1 GROUP BY s.id"
                ))
                .map_err(err)?;
            for channel in channels {
                let mut rows = statement.query([channel.as_str()]).map_err(err)?;
                if let Some(row) = rows.next().map_err(err)? {
                    found.push(stream_stats(row, &file)?);
                }
            }
        }
        tx.finish().map_err(err)?;
        Ok(found)
    }
}

/// Each stream's name, epoch, top, publication count and data bytes, to complete with a
/// `WHERE` and `GROUP BY s.id`. `log` is small: it is summed per stream once per statement.
const STREAM_SIZES: &str = "
    SELECT s.channel, s.epoch, s.top,
        count(p.stream) + max(coalesce(l.n, 0)),
        coalesce(sum(length(p.data)), 0) + max(coalesce(l.b, 0))
    FROM streams s
    LEFT JOIN publications p ON p.stream = s.id
    LEFT JOIN (SELECT stream, count(*) AS n, sum(length(data)) AS b FROM log GROUP BY stream) l
        ON l.stream = s.id";

fn answer<T>(reply: Reply<T>, work: impl FnOnce() -> Result<T, StoreError>) {
    // A caller that gave up (timed out, dropped) needs no answer and no work.
    if !reply.is_closed() {
        let _ = reply.send(work());
    }
}

fn stored_publication(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredPublication> {
    let data = Bytes::from(row.get::<_, Vec<u8>>(3)?);
    let data = match row.get::<_, i64>(2)? {
        KIND_JSON => Payload::Json(data),
        KIND_BINARY => Payload::Binary(data),
        other => return Err(rusqlite::Error::IntegralValueOutOfRange(2, other)),
    };
    let info = match row.get::<_, Option<String>>(4)? {
        Some(client) => Some(StoredClientInfo {
            client,
            user: row.get(5)?,
            conn_info: row.get::<_, Option<Vec<u8>>>(6)?.map(Bytes::from),
        }),
        None => None,
    };
    Ok(StoredPublication {
        offset: from_sql(row.get(0)?),
        data,
        info,
        time_ms: from_sql(row.get(1)?),
    })
}

fn stream_stats(row: &rusqlite::Row<'_>, file: &DbFile) -> Result<StreamStats, StoreError> {
    let err = |e| file.error(e);
    let channel: String = row.get(0).map_err(err)?;
    let channel = ChannelName::parse(&channel).map_err(|e| {
        StoreError::Corrupt(format!(
            "{}: stored channel name {channel:?}: {e}",
            file.label
        ))
    })?;
    Ok(StreamStats {
        channel,
        epoch: Epoch::from_client(&row.get::<_, String>(1).map_err(err)?),
        top: from_sql(row.get(2).map_err(err)?),
        publications: from_sql(row.get(3).map_err(err)?),
        bytes: from_sql(row.get(4).map_err(err)?),
    })
}
