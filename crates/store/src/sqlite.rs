//! [`SqliteStore`]: channel streams in one SQLite file, the embedded default [`Store`].
//!
//! One writer thread (`writer.rs`) owns the only write connection. Every change (`open`
//! creating or re-epoching a stream, `append`, `trim`, `expire`, `close`) reaches it through
//! a bounded queue, so writes never contend for SQLite's lock, and appends queued together
//! commit together (one fsync). Appends land in an unindexed log table that the writer moves
//! into the indexed one in bulk (`schema.rs` says why), so a commit over many streams writes
//! a few pages. Reads go to `readers` threads (`reader.rs`) holding read-only
//! connections, which WAL mode lets run beside the writer. Every caller waits on a oneshot
//! answer, bounded by the configured timeout. Nothing here panics on what the file or the
//! disk does: SQLite errors become [`StoreError`]s (`Unavailable` for a full disk, a
//! read-only file, I/O and lock failures; `Corrupt` for data that cannot be read), a failed
//! transaction is rolled back, and the writer carries on with the next command.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    thread,
    time::Duration,
};

use rusqlite::ErrorCode;
use switchboard_core::{
    ChannelName, Epoch, Store, StoreError,
    store::{
        ReadQuery, StoreFuture, StoreStats, StoredPublication, StreamAppend, StreamMeta,
        StreamStats, TrimCut, unix_ms,
    },
};
use tokio::sync::{mpsc, oneshot};

mod reader;
mod schema;
mod writer;

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
    /// Connections serving reads in parallel with the writer (at least one is opened).
    pub readers: usize,
    /// Longest wait for a lock or an answer.
    pub timeout: Duration,
}

/// Streams in one SQLite file.
///
/// Every method must be awaited inside a Tokio runtime with its timer enabled. A call that
/// times out is skipped if the writer has not started it yet; an `append` that timed out may
/// still have committed if it had. Dropping the store without [`Store::close`] stops its
/// threads once their queued work is done but leaves this run's async-write marks in place,
/// exactly as a crash would.
pub struct SqliteStore {
    file: Arc<DbFile>,
    timeout: Duration,
    /// `None` once closed.
    queues: Mutex<Option<Queues>>,
}

#[derive(Clone)]
struct Queues {
    writer: mpsc::Sender<WriteCommand>,
    readers: mpsc::Sender<ReadCommand>,
}

/// Commands waiting for the writer. Each holds at most one batch, so this bounds memory too.
const WRITE_QUEUE: usize = 1024;
/// Read commands waiting for a free reader.
const READ_QUEUE: usize = 1024;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What the writer thread does, in queue order.
enum WriteCommand {
    Open {
        channel: ChannelName,
        async_writes: bool,
        reply: Reply<StreamMeta>,
    },
    Append {
        batch: Vec<StreamAppend>,
        reply: Reply<()>,
    },
    Trim {
        cuts: Vec<TrimCut>,
        reply: Reply<u64>,
    },
    Expire {
        now_ms: u64,
        stream_idle_ms: u64,
        max_rows: usize,
        reply: Reply<u64>,
    },
    /// Clears this run's marks, then stops the writer.
    Close { reply: Reply<()> },
}

/// What a reader thread does.
enum ReadCommand {
    /// The stream when it exists and opening it changes nothing; `None` sends the caller on
    /// to the writer.
    Open {
        channel: ChannelName,
        async_writes: bool,
        reply: Reply<Option<StreamMeta>>,
    },
    Read {
        query: ReadQuery,
        reply: Reply<Vec<StoredPublication>>,
    },
    Stats {
        largest: usize,
        reply: Reply<StoreStats>,
    },
    StreamStats {
        channels: Vec<ChannelName>,
        reply: Reply<Vec<StreamStats>>,
    },
    Ping {
        reply: Reply<()>,
    },
}

// === impl SqliteStore ===

impl SqliteStore {
    /// Opens (creating when missing) the database at `config.path` and starts its writer and
    /// reader threads.
    ///
    /// Fails with [`StoreError::Unavailable`] when the file or its directory cannot be
    /// created or written (the message names the path and the OS reason), and with
    /// [`StoreError::Corrupt`] when the file is not a SQLite database, is damaged, or holds a
    /// schema newer than this build understands. Blocks while it opens the file.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_core::{ChannelName, Store};
    /// use switchboard_store::{SqliteConfig, SqliteStore, Synchronous};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let store = SqliteStore::open(SqliteConfig {
    ///     path: dir.path().join("data/streams.db"),
    ///     synchronous: Synchronous::Full,
    ///     readers: 2,
    ///     timeout: Duration::from_secs(5),
    /// })?;
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// let news = ChannelName::parse("news")?;
    /// let meta = runtime.block_on(store.open(&news, false))?;
    /// assert_eq!(meta.top, 0);
    /// runtime.block_on(store.close())?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(config: SqliteConfig) -> Result<Self, StoreError> {
        let file = Arc::new(DbFile {
            label: config.path.display().to_string(),
            path: config.path.clone(),
        });
        schema::prepare_file(&file)?;
        let conn = schema::connect(&file, config.timeout, false)?;
        let version = schema::set_up(&conn, &file, config.synchronous)?;
        let mut reader_conns = Vec::new();
        for _ in 0..config.readers.max(1) {
            reader_conns.push(schema::connect(&file, config.timeout, true)?);
        }

        // Names this process run in `streams.async_run`; it must never repeat.
        let run: Arc<str> = Arc::from(format!(
            "{}-{:x}-{}",
            std::process::id(),
            unix_ms(),
            Epoch::generate()
        ));
        let (writer_tx, writer_rx) = mpsc::channel(WRITE_QUEUE);
        let (readers_tx, readers_rx) = mpsc::channel(READ_QUEUE);
        let readers_rx = Arc::new(Mutex::new(readers_rx));
        for (n, conn) in reader_conns.into_iter().enumerate() {
            let reader = reader::Reader::new(conn, file.clone(), run.clone());
            let queue = readers_rx.clone();
            thread::Builder::new()
                .name(format!("sqlite-reader-{n}"))
                .spawn(move || reader.run(&queue))
                .map_err(|e| file.io_error("cannot start a reader thread", &e))?;
        }
        let writer = writer::Writer::new(conn, file.clone(), run);
        thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || writer.run(writer_rx))
            .map_err(|e| file.io_error("cannot start the writer thread", &e))?;
        tracing::debug!(path = %file.label, version, "sqlite store opened");

        Ok(Self {
            file,
            timeout: config.timeout,
            queues: Mutex::new(Some(Queues {
                writer: writer_tx,
                readers: readers_tx,
            })),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    fn queues(&self) -> Result<Queues, StoreError> {
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(StoreError::Closed)
    }

    async fn write<T>(
        &self,
        command: impl FnOnce(Reply<T>) -> WriteCommand,
    ) -> Result<T, StoreError> {
        let queue = self.queues()?.writer;
        ask(self.timeout, &queue, command).await
    }

    async fn read_with<T>(
        &self,
        command: impl FnOnce(Reply<T>) -> ReadCommand,
    ) -> Result<T, StoreError> {
        let queue = self.queues()?.readers;
        ask(self.timeout, &queue, command).await
    }
}

/// Queues `command` and waits for its answer, both within `timeout`. A caller that gives up
/// drops its answer channel, and the worker then skips the command if it has not started it.
async fn ask<C, T>(
    timeout: Duration,
    queue: &mpsc::Sender<C>,
    command: impl FnOnce(Reply<T>) -> C,
) -> Result<T, StoreError> {
    let (reply, answer) = oneshot::channel();
    let exchange = async move {
        queue
            .send(command(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        // The worker dropped the command unanswered: it stopped (closed store).
        answer.await.map_err(|_| StoreError::Closed)?
    };
    let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| StoreError::Timeout(ms))?
}

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    /// Looks the stream up on a reader first; only a stream to create, or whose async mark
    /// must change, goes to the writer.
    fn open(&self, channel: &ChannelName, async_writes: bool) -> StoreFuture<'_, StreamMeta> {
        let channel = channel.clone();
        Box::pin(async move {
            let known = self
                .read_with(|reply| ReadCommand::Open {
                    channel: channel.clone(),
                    async_writes,
                    reply,
                })
                .await?;
            match known {
                Some(meta) => Ok(meta),
                None => {
                    self.write(|reply| WriteCommand::Open {
                        channel,
                        async_writes,
                        reply,
                    })
                    .await
                }
            }
        })
    }

    fn append(&self, batch: Vec<StreamAppend>) -> StoreFuture<'_, ()> {
        Box::pin(self.write(|reply| WriteCommand::Append { batch, reply }))
    }

    fn read(&self, query: ReadQuery) -> StoreFuture<'_, Vec<StoredPublication>> {
        Box::pin(self.read_with(|reply| ReadCommand::Read { query, reply }))
    }

    fn trim(&self, cuts: Vec<TrimCut>) -> StoreFuture<'_, u64> {
        Box::pin(self.write(|reply| WriteCommand::Trim { cuts, reply }))
    }

    fn expire(&self, now_ms: u64, stream_idle_ms: u64, max_rows: usize) -> StoreFuture<'_, u64> {
        Box::pin(self.write(move |reply| WriteCommand::Expire {
            now_ms,
            stream_idle_ms,
            max_rows,
            reply,
        }))
    }

    fn stats(&self, largest: usize) -> StoreFuture<'_, StoreStats> {
        Box::pin(self.read_with(move |reply| ReadCommand::Stats { largest, reply }))
    }

    fn stream_stats(&self, channels: Vec<ChannelName>) -> StoreFuture<'_, Vec<StreamStats>> {
        Box::pin(self.read_with(|reply| ReadCommand::StreamStats { channels, reply }))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.read_with(|reply| ReadCommand::Ping { reply }))
    }

    /// Clears this run's async-write marks, checkpoints the WAL into the database file and
    /// stops the threads once the work queued before it is done. Closing twice is a no-op.
    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let taken = self
                .queues
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let Some(queues) = taken else {
                return Ok(());
            };
            // Readers stop when the last sender of their queue is gone.
            drop(queues.readers);
            ask(self.timeout, &queues.writer, |reply| WriteCommand::Close {
                reply,
            })
            .await
        })
    }
}

// === errors ===

/// The database file, as errors name it.
struct DbFile {
    path: PathBuf,
    label: String,
}

impl DbFile {
    fn io_error(&self, what: &str, e: &io::Error) -> StoreError {
        StoreError::Unavailable(format!("{}: {what}: {e}", self.label))
    }

    /// Maps a SQLite error to the store's vocabulary: conditions of the disk, the file's
    /// permissions or a lock are `Unavailable` (retrying may work), unreadable content is
    /// `Corrupt`.
    fn error(&self, e: rusqlite::Error) -> StoreError {
        let label = &self.label;
        let rusqlite::Error::SqliteFailure(failure, _) = &e else {
            // A value of an unexpected type or range.
            return StoreError::Corrupt(format!("{label}: unexpected database content: {e}"));
        };
        match failure.code {
            ErrorCode::DiskFull => StoreError::Unavailable(format!("{label}: disk full ({e})")),
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                StoreError::Corrupt(format!("{label}: {e}"))
            }
            // A statement of ours failing on its own terms: the file does not hold the schema
            // we wrote.
            ErrorCode::Unknown | ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch => {
                StoreError::Corrupt(format!("{label}: unexpected database content: {e}"))
            }
            ErrorCode::SystemIoFailure
            | ErrorCode::ReadOnly
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied => {
                let reason = self.os_reason().unwrap_or_default();
                StoreError::Unavailable(format!(
                    "{label}: {e} (sqlite code {}){reason}",
                    failure.extended_code
                ))
            }
            _ => StoreError::Unavailable(format!(
                "{label}: {e} (sqlite code {})",
                failure.extended_code
            )),
        }
    }

    /// SQLite does not say why the OS refused; trying to open the files for writing usually
    /// does (an immutable file, a read-only mount, missing permissions). Failure path only.
    fn os_reason(&self) -> Option<String> {
        [self.path.clone(), self.wal()].iter().find_map(|p| {
            match fs::OpenOptions::new().write(true).open(p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    Some(format!("; {}: {e}", p.display()))
                }
                _ => None,
            }
        })
    }

    /// The write-ahead log beside the database.
    fn wal(&self) -> PathBuf {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        PathBuf::from(wal)
    }
}

/// Offsets and times are `u64`, SQLite integers `i64`; values past `i64::MAX` (only bounds
/// such as `u64::MAX`) saturate, which keeps comparisons right.
fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Back from SQLite; a negative value (which we never write) reads as 0.
fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
