//! How [`PostgresStore`](super::PostgresStore) lays streams out in PostgreSQL: the schema,
//! the text of every statement it prepares, and the conversions between column values and
//! core types. Nothing here talks to the database.

use bytes::Bytes;
use switchboard_core::{
    ChannelName, Epoch, Payload, StoreError,
    store::{StoredClientInfo, StoredPublication, StreamMeta, StreamStats},
};
use tokio_postgres::Row;

/// The prepared statements, in the order of [`SQL`].
#[derive(Debug, Clone, Copy)]
pub(super) enum Query {
    OpenSelect,
    OpenUpsert,
    AppendCreate,
    AppendRows,
    AppendTops,
    ReadAfter,
    ReadBefore,
    Trim,
    ExpireRows,
    ExpireStreams,
    Totals,
    Largest,
    StreamStats,
    ClearMarks,
    Ping,
}

/// The schema version this build writes and reads (`meta.schema_version`).
pub(super) const SCHEMA_VERSION: &str = "1";
/// `publications.kind` of [`Payload::Json`].
const KIND_JSON: i16 = 0;
/// `publications.kind` of [`Payload::Binary`].
const KIND_BINARY: i16 = 1;

/// Creates the schema when missing. The advisory lock serializes concurrent creators:
/// `CREATE … IF NOT EXISTS` alone can still fail when two sessions race.
pub(super) const DDL: &str = r#"
BEGIN;
SELECT pg_advisory_xact_lock(hashtext('switchboard schema ' || {lit}));
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO {s}.meta (key, value) VALUES ('schema_version', {version})
    ON CONFLICT (key) DO NOTHING;
CREATE TABLE IF NOT EXISTS {s}.streams (
    id BIGSERIAL PRIMARY KEY,
    channel TEXT NOT NULL UNIQUE,
    epoch TEXT NOT NULL,
    top BIGINT NOT NULL,
    last_append_ms BIGINT NOT NULL,
    async_run TEXT
) WITH (fillfactor = 50);
CREATE TABLE IF NOT EXISTS {s}.publications (
    stream BIGINT NOT NULL,
    "offset" BIGINT NOT NULL,
    time_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    kind SMALLINT NOT NULL,
    data BYTEA NOT NULL,
    client TEXT,
    user_id TEXT,
    conn_info BYTEA,
    PRIMARY KEY (stream, "offset")
);
CREATE INDEX IF NOT EXISTS publications_expires_ms ON {s}.publications (expires_ms);
COMMIT;
"#;

/// Statement texts, `{s}` standing for the quoted schema, in [`Query`] order.
pub(super) const SQL: [(Query, &str); 15] = [
    (
        Query::OpenSelect,
        "SELECT epoch, top, async_run FROM {s}.streams WHERE channel = $1",
    ),
    // A stream marked by another run gets a new epoch and this run's mark (or none).
    (
        Query::OpenUpsert,
        "INSERT INTO {s}.streams AS s (channel, epoch, top, last_append_ms, async_run)
         VALUES ($1, $2, 0, $3, $4)
         ON CONFLICT (channel) DO UPDATE SET
             epoch = CASE WHEN s.async_run <> $5 THEN EXCLUDED.epoch ELSE s.epoch END,
             async_run = CASE WHEN s.async_run <> $5 THEN EXCLUDED.async_run
                              ELSE coalesce(EXCLUDED.async_run, s.async_run) END
         RETURNING epoch, top",
    ),
    // Creates the batch's missing streams at `first - 1`. Existing streams are filtered out
    // first: `ON CONFLICT` alone would still draw a sequence value for each.
    (
        Query::AppendCreate,
        "INSERT INTO {s}.streams (channel, epoch, top, last_append_ms)
         SELECT b.channel, b.epoch, b.first - 1, $4
         FROM unnest($1::text[], $2::text[], $3::int8[]) AS b(channel, epoch, first)
         WHERE NOT EXISTS (SELECT 1 FROM {s}.streams s WHERE s.channel = b.channel)
         ORDER BY b.channel
         ON CONFLICT (channel) DO NOTHING",
    ),
    // Advances (and locks) each stream whose last offset is `first - 1`, and inserts the
    // publications of those streams only: fewer rows than sent means a conflict.
    (
        Query::AppendRows,
        r#"WITH b AS (
             SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[])
                 WITH ORDINALITY AS b(channel, first, last, ix)
         ), moved AS (
             UPDATE {s}.streams s SET top = b.last, last_append_ms = $4
             FROM b WHERE s.channel = b.channel AND s.top = b.first - 1
             RETURNING s.id, b.ix
         )
         INSERT INTO {s}.publications
             (stream, "offset", time_ms, expires_ms, kind, data, client, user_id, conn_info)
         SELECT moved.id, p.o, p.t, p.e, p.k, p.d, p.c, p.usr, p.ci
         FROM unnest($5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::int2[],
                     $10::bytea[], $11::text[], $12::text[], $13::bytea[])
             AS p(ix, o, t, e, k, d, c, usr, ci)
         JOIN moved ON moved.ix = p.ix"#,
    ),
    (
        Query::AppendTops,
        "SELECT channel, top FROM {s}.streams WHERE channel = ANY($1::text[])",
    ),
    (
        Query::ReadAfter,
        r#"SELECT "offset", time_ms, kind, data, client, user_id, conn_info
         FROM {s}.publications
         WHERE stream = (SELECT id FROM {s}.streams WHERE channel = $1)
           AND "offset" > $2 AND "offset" <= $3 AND expires_ms > $4
         ORDER BY "offset" LIMIT $5"#,
    ),
    (
        Query::ReadBefore,
        r#"SELECT "offset", time_ms, kind, data, client, user_id, conn_info
         FROM {s}.publications
         WHERE stream = (SELECT id FROM {s}.streams WHERE channel = $1)
           AND "offset" < $2 AND "offset" <= $3 AND expires_ms > $4
         ORDER BY "offset" DESC LIMIT $5"#,
    ),
    (
        Query::Trim,
        r#"DELETE FROM {s}.publications p
         USING unnest($1::text[], $2::int8[]) AS c(channel, through)
         JOIN {s}.streams s ON s.channel = c.channel
         WHERE p.stream = s.id AND p."offset" <= c.through"#,
    ),
    (
        Query::ExpireRows,
        r#"DELETE FROM {s}.publications p
         USING (SELECT stream, "offset" FROM {s}.publications WHERE expires_ms <= $1 LIMIT $2) d
         WHERE p.stream = d.stream AND p."offset" = d."offset""#,
    ),
    // Skips streams an append holds: they are not idle, and waiting could deadlock. Keeps
    // the streams this run writes ahead ($3): the append that would create one again could
    // not mark it.
    (
        Query::ExpireStreams,
        "DELETE FROM {s}.streams WHERE id IN (
             SELECT s.id FROM {s}.streams s
             WHERE s.last_append_ms <= $1
               AND s.async_run IS DISTINCT FROM $3
               AND NOT EXISTS (SELECT 1 FROM {s}.publications p WHERE p.stream = s.id)
             LIMIT $2
             FOR UPDATE SKIP LOCKED)",
    ),
    (
        Query::Totals,
        "SELECT (SELECT count(*) FROM {s}.streams),
                (SELECT count(*) FROM {s}.publications),
                (SELECT coalesce(sum(length(data)), 0)::int8 FROM {s}.publications),
                (pg_total_relation_size('{s}.streams')
                 + pg_total_relation_size('{s}.publications')
                 + pg_total_relation_size('{s}.meta'))::int8",
    ),
    (
        Query::Largest,
        "SELECT s.channel, s.epoch, s.top, count(p.stream), coalesce(sum(length(p.data)), 0)::int8
         FROM {s}.streams s LEFT JOIN {s}.publications p ON p.stream = s.id
         GROUP BY s.id ORDER BY 4 DESC, s.channel LIMIT $1",
    ),
    (
        Query::StreamStats,
        "SELECT s.channel, s.epoch, s.top, count(p.stream), coalesce(sum(length(p.data)), 0)::int8
         FROM {s}.streams s LEFT JOIN {s}.publications p ON p.stream = s.id
         WHERE s.channel = ANY($1::text[])
         GROUP BY s.id",
    ),
    (
        Query::ClearMarks,
        "UPDATE {s}.streams SET async_run = NULL WHERE async_run = $1",
    ),
    (Query::Ping, "SELECT 1"),
];

/// `publications.kind` and data of a payload.
pub(super) fn payload_columns(data: &Payload) -> (i16, &[u8]) {
    match data {
        Payload::Json(b) => (KIND_JSON, b),
        Payload::Binary(b) => (KIND_BINARY, b),
    }
}

/// Column `ix` of `row`; a value of another type means the tables are not ours.
pub(super) fn get<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r Row,
    ix: usize,
) -> Result<T, StoreError> {
    row.try_get(ix)
        .map_err(|e| StoreError::Corrupt(format!("unexpected column {ix}: {e}")))
}

/// A stream's `epoch, top`.
pub(super) fn stream_meta(row: &Row) -> Result<StreamMeta, StoreError> {
    Ok(StreamMeta {
        epoch: Epoch::from_client(&get::<String>(row, 0)?),
        top: unsigned(get(row, 1)?)?,
    })
}

/// A stream's `channel, epoch, top, publications, bytes`.
pub(super) fn stream_stats(row: &Row) -> Result<StreamStats, StoreError> {
    let name: String = get(row, 0)?;
    Ok(StreamStats {
        channel: ChannelName::parse(&name)
            .map_err(|e| StoreError::Corrupt(format!("stream name {name:?}: {e}")))?,
        epoch: Epoch::from_client(&get::<String>(row, 1)?),
        top: unsigned(get(row, 2)?)?,
        publications: unsigned(get(row, 3)?)?,
        bytes: unsigned(get(row, 4)?)?,
    })
}

/// A publication as `ReadAfter` and `ReadBefore` select it.
pub(super) fn stored_publication(row: &Row) -> Result<StoredPublication, StoreError> {
    let data = Bytes::from(get::<Vec<u8>>(row, 3)?);
    let data = match get::<i16>(row, 2)? {
        KIND_JSON => Payload::Json(data),
        KIND_BINARY => Payload::Binary(data),
        other => {
            return Err(StoreError::Corrupt(format!(
                "unknown publication kind {other}"
            )));
        }
    };
    let info = get::<Option<String>>(row, 4)?.map(|client| -> Result<_, StoreError> {
        Ok(StoredClientInfo {
            client,
            user: get(row, 5)?,
            conn_info: get::<Option<Vec<u8>>>(row, 6)?.map(Bytes::from),
        })
    });
    Ok(StoredPublication {
        offset: unsigned(get(row, 0)?)?,
        data,
        info: info.transpose()?,
        time_ms: unsigned(get(row, 1)?)?,
    })
}

/// A stored BIGINT that must not be negative.
pub(super) fn unsigned(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative value {v}")))
}

/// An offset as a BIGINT; offsets past `i64::MAX` cannot be stored.
pub(super) fn offset(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("offset {v} exceeds BIGINT")))
}

/// A time or bound as a BIGINT, saturating (`u64::MAX` means "no bound").
pub(super) fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_listed_in_query_order() {
        for (i, (query, _)) in SQL.iter().enumerate() {
            assert_eq!(*query as usize, i, "{query:?}");
        }
    }

    #[test]
    fn bounds_saturate_and_offsets_do_not() {
        assert_eq!(clamp(u64::MAX), i64::MAX);
        assert_eq!(clamp(7), 7);
        assert!(offset(u64::MAX).is_err());
        assert!(unsigned(-1).is_err());
    }
}
