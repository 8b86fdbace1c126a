//! The SQLite file's layout and how connections to it are opened: WAL mode, durability, the
//! tables, and the schema version that keeps an older build from misreading a newer file.
//! Called by [`SqliteStore::open`](super::SqliteStore::open) only.

use std::{fs, time::Duration};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use switchboard_core::StoreError;

use super::{DbFile, Synchronous};

/// The version of [`SCHEMA`]. A file with a higher one was written by a newer switchboard
/// and is refused rather than misread; a file with a lower one is migrated by [`set_up`].
///
/// 1. `streams`, `publications`.
/// 2. adds `log` (an older build would not read it, hence the new version).
const SCHEMA_VERSION: i64 = 2;

/// `publications` is a rowid table with `(stream, offset)` as a separate unique index, not a
/// `WITHOUT ROWID` table: data reaches 64 KiB, and a `WITHOUT ROWID` table keeps whole rows
/// in its interior pages and spills anything past ~1 KiB to overflow pages, which ruins its
/// fan-out. The rowid table keeps rows up to ~4 KiB on their leaf, appends at its right
/// edge, and expiry deletes by rowid. Measured with `append_throughput`: equal for 100-byte
/// data, `WITHOUT ROWID` about 1.5–2× slower for 4 KiB data.
///
/// `log` holds the publications committed since they were last moved into `publications`,
/// in commit order, with no index at all: an append writes only the pages at its right edge
/// (a few for a whole group commit), where inserting into `publications` dirties one
/// `(stream, offset)` index page per stream of the commit. The writer moves the log into
/// `publications` in bulk (see `writer.rs`), so each stream's index page is written once
/// for many commits; readers read both tables. A stream's rows in `log` always follow its
/// rows in `publications` (the move takes the whole log), and `log` stays small (bounded
/// by the writer), so reading it without an index is cheap.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL UNIQUE,
    epoch TEXT NOT NULL,
    top INTEGER NOT NULL,
    last_append_ms INTEGER NOT NULL,
    async_run TEXT
);
CREATE TABLE IF NOT EXISTS publications (
    stream INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    data BLOB NOT NULL,
    client TEXT,
    user_id TEXT,
    conn_info BLOB,
    PRIMARY KEY (stream, offset)
);
CREATE INDEX IF NOT EXISTS publications_by_expiry ON publications (expires_ms);
CREATE TABLE IF NOT EXISTS log (
    stream INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    data BLOB NOT NULL,
    client TEXT,
    user_id TEXT,
    conn_info BLOB
);
";

/// Moves every row of `log` into `publications`, oldest first, and empties `log`. Run by the
/// writer inside its transaction.
pub(super) const MOVE_LOG: &str = "
INSERT INTO publications (stream, offset, time_ms, expires_ms, kind, data, client, user_id,
    conn_info)
SELECT stream, offset, time_ms, expires_ms, kind, data, client, user_id, conn_info
FROM log ORDER BY rowid;
DELETE FROM log;
";

/// `publications.kind` of JSON data.
pub(super) const KIND_JSON: i64 = 0;
/// `publications.kind` of binary data.
pub(super) const KIND_BINARY: i64 = 1;

/// Creates the directory and checks the file can be opened for writing, so that a failure
/// names the OS reason rather than SQLite's "unable to open database file".
pub(super) fn prepare_file(file: &DbFile) -> Result<(), StoreError> {
    if let Some(dir) = file.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| {
            file.io_error(&format!("cannot create directory {}", dir.display()), &e)
        })?;
    }
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&file.path)
        .map(drop)
        .map_err(|e| file.io_error("cannot open for writing", &e))
}

/// A connection for one thread; `timeout` bounds waits for SQLite's locks.
pub(super) fn connect(
    file: &DbFile,
    timeout: Duration,
    read_only: bool,
) -> Result<Connection, StoreError> {
    let access = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    };
    // Each connection stays on one thread, so SQLite's per-connection mutex is not needed.
    let conn = Connection::open_with_flags(&file.path, access | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| file.error(e))?;
    conn.busy_timeout(timeout).map_err(|e| file.error(e))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Puts the writer's connection in WAL mode with the configured durability, creates, checks
/// or migrates the schema (one transaction: a failed migration leaves the file as it was),
/// and moves what `log` holds into `publications`. Returns the schema version found.
pub(super) fn set_up(
    conn: &Connection,
    file: &DbFile,
    synchronous: Synchronous,
) -> Result<i64, StoreError> {
    let err = |e| file.error(e);
    // The first statement to read the file: a file that is not a database fails here.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{}: cannot switch to WAL mode (still {mode})",
            file.label
        )));
    }
    let level = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", level)
        .map_err(err)?;
    // Checkpoint every 4000 pages (16 MiB) rather than 1000: appends over many streams dirty
    // the same index pages commit after commit, and a rarer checkpoint writes each of them
    // once (measured with `append_throughput`).
    conn.pragma_update(None, "wal_autocheckpoint", 4000)
        .map_err(err)?;
    // Bounds the WAL file a burst leaves behind once it has been checkpointed.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(err)?;
    // The writer's page cache (16 MiB) holds the pages appends keep touching.
    conn.pragma_update(None, "cache_size", -16 * 1024)
        .map_err(err)?;
    // Savepoints (one per queued append) keep their undo pages in memory instead of a
    // temporary file that is written, closed and deleted by every commit.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(err)?;

    conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
    let created = create(conn, file);
    let end = if created.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    let ended = conn.execute_batch(end).map_err(err);
    let version = created?;
    ended?;
    Ok(version)
}

fn create(conn: &Connection, file: &DbFile) -> Result<i64, StoreError> {
    let err = |e| file.error(e);
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    )
    .map_err(err)?;
    let found: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(err)?;
    match found {
        Some(v) if v > SCHEMA_VERSION => Err(StoreError::Corrupt(format!(
            "{}: schema version {v} was written by a newer switchboard \
             (this one knows up to {SCHEMA_VERSION})",
            file.label
        ))),
        Some(v) if v < 1 => Err(StoreError::Corrupt(format!(
            "{}: unknown schema version {v}",
            file.label
        ))),
        _ => {
            // Version 1 → 2 only adds `log`: `CREATE … IF NOT EXISTS` is the migration.
            conn.execute_batch(SCHEMA).map_err(err)?;
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [SCHEMA_VERSION],
            )
            .map_err(err)?;
            if let Some(v) = found.filter(|v| *v < SCHEMA_VERSION) {
                tracing::info!(
                    path = %file.label,
                    from = v,
                    to = SCHEMA_VERSION,
                    "sqlite schema migrated"
                );
            }
            // What a run that stopped without moving its log left behind.
            conn.execute_batch(MOVE_LOG).map_err(err)?;
            Ok(found.unwrap_or(SCHEMA_VERSION))
        }
    }
}
