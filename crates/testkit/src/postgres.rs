//! [`PostgresServer`]: a throwaway PostgreSQL cluster for tests. It is made by `initdb` in a
//! temporary directory and served by a `postgres` child process on `127.0.0.1` and a free
//! port, with trust authentication for the `postgres` superuser.
//!
//! PostgreSQL refuses to run as root, so when the tests are root the programs run as the
//! `postgres` user that Debian's package creates, and the temporary directory is given to it.
//! [`PostgresServer::kill`] and [`PostgresServer::pause`] signal the postmaster and every
//! process it forked, as a crash or a hang of the database host would take them all.

use std::{
    fs::{self, OpenOptions},
    io,
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::unix::{fs::chown, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use rustix::process::{Pid, Signal, kill_process};
use tempfile::TempDir;

/// Where Debian's `postgresql-15` package puts the server programs.
const DEBIAN_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The Debian package to install when the server programs are missing.
const APT_PACKAGE: &str = "postgresql-15";
/// The superuser `initdb` creates, and the OS user the server runs as under root.
const SUPERUSER: &str = "postgres";
/// Longest wait for the server to accept connections (crash recovery included).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a fast shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the processes of a killed server to disappear.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for `psql` to connect.
const CONNECT_TIMEOUT_S: &str = "10";
/// How often readiness and exit are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Starts tried before giving up when the port was taken meanwhile.
const START_ATTEMPTS: usize = 5;
/// Lines of the server log quoted in errors.
const LOG_TAIL_LINES: usize = 40;

/// Why the harness could not run PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum PostgresServerError {
    /// The server programs (`initdb`, `postgres`) are not installed.
    #[error(
        "PostgreSQL server programs not found (looked in {searched}); \
         install them with `apt-get install {APT_PACKAGE}`"
    )]
    NotInstalled {
        /// The directories that were searched.
        searched: String,
    },
    /// The tests run as root and there is no `postgres` user to run the server as.
    #[error(
        "running as root and there is no `{SUPERUSER}` user to run PostgreSQL as; \
         `apt-get install {APT_PACKAGE}` creates it"
    )]
    NoServerUser,
    /// A file or process operation failed.
    #[error("could not {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A PostgreSQL program (`initdb`, `psql`) exited with an error.
    #[error("{program} failed ({status}): {output}")]
    CommandFailed {
        /// The program.
        program: String,
        /// How it exited.
        status: ExitStatus,
        /// What it printed on stderr and stdout.
        output: String,
    },
    /// The server exited while starting.
    #[error("PostgreSQL exited while starting ({status}); server log:\n{log_tail}")]
    Exited {
        /// How it exited.
        status: ExitStatus,
        /// The end of the server log.
        log_tail: String,
    },
    /// The server did not accept connections in time; it was killed.
    #[error(
        "PostgreSQL did not accept connections on port {port} within {timeout:?}; \
         server log:\n{log_tail}"
    )]
    NotReady {
        /// The port it was started on.
        port: u16,
        /// How long the harness waited.
        timeout: Duration,
        /// The end of the server log.
        log_tail: String,
    },
    /// A fast shutdown did not finish in time; the server was killed.
    #[error("PostgreSQL did not stop within {timeout:?}; server log:\n{log_tail}")]
    NotStopped {
        /// How long the harness waited.
        timeout: Duration,
        /// The end of the server log.
        log_tail: String,
    },
    /// A database name other than ASCII letters, digits and underscores.
    #[error(
        "invalid database name {0:?}: use ASCII letters, digits and underscores, \
         starting with a letter"
    )]
    InvalidName(String),
}

/// A running (or stopped) PostgreSQL server owned by a test.
///
/// Dropping it stops the server (fast shutdown, then `SIGKILL` if that fails) and removes
/// its data directory. A test process that is itself killed leaves the server running.
///
/// ```no_run
/// use switchboard_testkit::PostgresServer;
///
/// let mut pg = PostgresServer::start()?;
/// let url = pg.create_database("orders")?;
/// assert!(url.ends_with("/orders"));
/// pg.kill()?; // as a crash would
/// pg.start_again()?; // same data, same port
/// assert_eq!(pg.psql("orders", "SELECT 1")?, "1");
/// # Ok::<(), switchboard_testkit::PostgresServerError>(())
/// ```
#[derive(Debug)]
pub struct PostgresServer {
    bin_dir: PathBuf,
    owner: Option<Owner>,
    port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    // Last, so the directory is removed after everything else is dropped.
    dir: TempDir,
}

/// The OS user the server programs run as (when the tests are root).
#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

// === impl PostgresServer ===

impl PostgresServer {
    /// Creates a cluster in a new temporary directory and starts it on a free port; returns
    /// once it accepts connections.
    ///
    /// # Errors
    ///
    /// When PostgreSQL is not installed, `initdb` fails, or the server does not come up
    /// within 30 s (the error quotes the end of the server log).
    pub fn start() -> Result<Self, PostgresServerError> {
        let bin_dir = find_bin_dir()?;
        let owner = server_owner()?;
        let dir = tempfile::Builder::new()
            .prefix("switchboard-pg-")
            .tempdir()
            .map_err(io_error("create a temporary directory"))?;
        let data_dir = dir.path().join("data");
        fs::create_dir(&data_dir).map_err(io_error("create the data directory"))?;
        if let Some(o) = owner {
            for path in [dir.path(), data_dir.as_path()] {
                chown(path, Some(o.uid), Some(o.gid))
                    .map_err(io_error(format!("give {} to {SUPERUSER}", path.display())))?;
            }
        }
        let mut server = Self {
            log_path: dir.path().join("postgres.log"),
            bin_dir,
            owner,
            port: 0,
            data_dir,
            child: None,
            dir,
        };
        server.initdb()?;
        let mut attempt = 1;
        loop {
            server.port = free_port()?;
            match server.spawn_and_wait() {
                Err(PostgresServerError::Exited { log_tail, .. })
                    if attempt < START_ATTEMPTS && log_tail.contains("already in use") =>
                {
                    attempt += 1;
                }
                other => return other.map(|()| server),
            }
        }
    }

    /// The port the server listens on (kept across [`start_again`](Self::start_again)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of the `postgres` database, as the `postgres` superuser (no password).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of `database`, as the `postgres` superuser (no password).
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// The data directory (the cluster's files).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Creates a database and returns its URL.
    ///
    /// # Errors
    ///
    /// When `name` is not ASCII letters, digits and underscores starting with a letter, or
    /// when `CREATE DATABASE` fails (the server is stopped, the database exists).
    pub fn create_database(&self, name: &str) -> Result<String, PostgresServerError> {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(PostgresServerError::InvalidName(name.to_owned()));
        }
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url_for(name))
    }

    /// Runs `sql` with `psql` in `database` and returns what it printed: unaligned rows,
    /// one per line, fields separated by `|`, without headers, trimmed.
    ///
    /// # Errors
    ///
    /// When `psql` cannot connect within 10 s or the statement fails (it stops at the
    /// first error).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, PostgresServerError> {
        let mut cmd = Command::new(self.bin_dir.join("psql"));
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .arg("-p")
        .arg(self.port.to_string())
        .args(["-U", SUPERUSER, "-d", database, "-c", sql])
        .env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_S)
        .stdin(Stdio::null());
        let out = run(&mut cmd, "psql")?;
        Ok(out.trim().to_owned())
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops the server with a fast shutdown (open transactions are rolled back, committed
    /// ones are on disk) and waits for it to exit. Does nothing when it is not running.
    ///
    /// # Errors
    ///
    /// When it has not stopped after 30 s; it is then killed.
    pub fn stop(&mut self) -> Result<(), PostgresServerError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if child.try_wait().ok().flatten().is_some() {
            return Ok(());
        }
        let pid = Pid::from_child(&child);
        // SIGINT is PostgreSQL's fast shutdown.
        if let Err(e) = kill_process(pid, Signal::INT) {
            self.child = Some(child);
            return Err(io_error("signal PostgreSQL to stop")(e.into()));
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                Ok(None) | Err(_) => {
                    self.child = Some(child);
                    self.kill()?;
                    return Err(PostgresServerError::NotStopped {
                        timeout: STOP_TIMEOUT,
                        log_tail: self.log_tail(LOG_TAIL_LINES),
                    });
                }
            }
        }
    }

    /// Kills the server and all its processes with `SIGKILL`, as a crash would: nothing is
    /// flushed, and the next start runs crash recovery. Does nothing when it is not running.
    ///
    /// # Errors
    ///
    /// When the processes cannot be signalled or waited for.
    pub fn kill(&mut self) -> Result<(), PostgresServerError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let postmaster = Pid::from_child(&child);
        // Stopped first, so it forks nothing while its children are listed and killed.
        let mut processes = vec![postmaster];
        let signalled = signal(postmaster, Signal::STOP).and_then(|()| {
            processes.extend(children(postmaster));
            processes.iter().try_for_each(|&p| signal(p, Signal::KILL))
        });
        if let Err(e) = signalled {
            self.child = Some(child);
            return Err(io_error("kill PostgreSQL")(e));
        }
        child.wait().map_err(io_error("wait for PostgreSQL"))?;
        // Processes detach from shared memory as they die, and a new server refuses to
        // start while any is attached: wait until they are gone (or zombies).
        let deadline = Instant::now() + KILL_TIMEOUT;
        while processes.iter().any(|&p| alive(p)) && Instant::now() < deadline {
            thread::sleep(POLL_INTERVAL);
        }
        Ok(())
    }

    /// Freezes the server and all its backends with `SIGSTOP`: connections are still
    /// accepted by the kernel but nothing answers, as with a hung host. Undo with
    /// [`resume`](Self::resume); dropping a paused server resumes it first.
    ///
    /// # Errors
    ///
    /// When it is not running or cannot be signalled.
    pub fn pause(&mut self) -> Result<(), PostgresServerError> {
        let postmaster = self.postmaster("pause PostgreSQL")?;
        // The postmaster first, so it forks nothing meanwhile.
        signal(postmaster, Signal::STOP)
            .and_then(|()| {
                children(postmaster)
                    .into_iter()
                    .try_for_each(|p| signal(p, Signal::STOP))
            })
            .map_err(io_error("pause PostgreSQL"))
    }

    /// Lets a [`pause`](Self::pause)d server run again.
    ///
    /// # Errors
    ///
    /// When it is not running or cannot be signalled.
    pub fn resume(&mut self) -> Result<(), PostgresServerError> {
        let postmaster = self.postmaster("resume PostgreSQL")?;
        children(postmaster)
            .into_iter()
            .try_for_each(|p| signal(p, Signal::CONT))
            .and_then(|()| signal(postmaster, Signal::CONT))
            .map_err(io_error("resume PostgreSQL"))
    }

    fn postmaster(&self, action: &str) -> Result<Pid, PostgresServerError> {
        self.child.as_ref().map(Pid::from_child).ok_or_else(|| {
            io_error(action)(io::Error::new(
                io::ErrorKind::NotFound,
                "the server is not running",
            ))
        })
    }

    /// Starts the server again on the same data directory and port, after
    /// [`stop`](Self::stop) or [`kill`](Self::kill); returns once it accepts connections
    /// (after crash recovery, if it was killed). Does nothing when it is running.
    ///
    /// # Errors
    ///
    /// When the port was taken meanwhile, or the server does not come up within 30 s.
    pub fn start_again(&mut self) -> Result<(), PostgresServerError> {
        if self.is_running() {
            return Ok(());
        }
        let mut attempt = 1;
        loop {
            match self.spawn_and_wait() {
                // Killed backends may still hold the old shared memory for a moment.
                Err(PostgresServerError::Exited { log_tail, .. })
                    if attempt < START_ATTEMPTS && log_tail.contains("still in use") =>
                {
                    attempt += 1;
                    thread::sleep(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }

    /// The last `lines` lines of the server log (all starts appended).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A command for a server program, run as the server's owner.
    fn server_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        // The test's working directory may be closed to the `postgres` user.
        cmd.current_dir(self.dir.path()).stdin(Stdio::null());
        if let Some(o) = self.owner {
            cmd.uid(o.uid).gid(o.gid);
        }
        cmd
    }

    fn initdb(&self) -> Result<(), PostgresServerError> {
        let mut cmd = self.server_command("initdb");
        cmd.arg("-D").arg(&self.data_dir).args([
            "--auth=trust",
            "--username",
            SUPERUSER,
            "--encoding=UTF8",
            "--locale=C",
            // Only skips initdb's own final flush of the new files: a power loss right
            // after initdb is not a case tests care about. The server keeps fsync on.
            "--no-sync",
            "--no-instructions",
        ]);
        run(&mut cmd, "initdb").map(drop)
    }

    /// Starts the server process and waits until it accepts connections.
    fn spawn_and_wait(&mut self) -> Result<(), PostgresServerError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(io_error("open the server log"))?;
        let log_err = log.try_clone().map_err(io_error("open the server log"))?;
        let mut cmd = self.server_command("postgres");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.data_dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=on",
                "-c",
                "synchronous_commit=on",
            ])
            .stdout(log)
            .stderr(log_err);
        let child = cmd.spawn().map_err(io_error("start postgres"))?;
        let pid = child.id();
        let child = self.child.insert(child);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => {
                    self.child = None;
                    return Err(PostgresServerError::Exited {
                        status,
                        log_tail: self.log_tail(LOG_TAIL_LINES),
                    });
                }
                Err(e) => return Err(io_error("watch postgres")(e)),
            }
            if ready(&self.data_dir, pid)
                && TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log_tail = self.log_tail(LOG_TAIL_LINES);
                self.kill()?;
                return Err(PostgresServerError::NotReady {
                    port: self.port,
                    timeout: START_TIMEOUT,
                    log_tail,
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // A paused server cannot shut down.
        let _ = self.resume();
        if self.stop().is_err() {
            // `stop` killed it; nothing more can be done here.
            let _ = self.kill();
        }
    }
}

// === helpers ===

/// Whether `postmaster.pid` says the server started as `pid` accepts connections. Its first
/// line is the postmaster's pid (a killed server leaves a stale file) and its eighth the
/// status, as `pg_ctl` reads it.
fn ready(data_dir: &Path, pid: u32) -> bool {
    let Ok(text) = fs::read_to_string(data_dir.join("postmaster.pid")) else {
        return false;
    };
    let lines: Vec<&str> = text.lines().collect();
    lines.first().map(|l| l.trim()) == Some(pid.to_string().as_str())
        && lines.get(7).map(|l| l.trim()) == Some("ready")
}

/// Sends `sig` to `pid`; one that is already gone is not an error.
fn signal(pid: Pid, sig: Signal) -> io::Result<()> {
    match kill_process(pid, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The processes whose parent is `parent`. Every PostgreSQL process is a child of the
/// postmaster, and each makes itself a session leader (`setsid`), so the postmaster's
/// process group does not reach them.
fn children(parent: Pid) -> Vec<Pid> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(Pid::from_raw)
        .filter(|&p| proc_stat(p).is_some_and(|(_, ppid)| ppid == parent.as_raw_nonzero().get()))
        .collect()
}

/// Whether `pid` is still running (neither gone nor a zombie).
fn alive(pid: Pid) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// The state and parent pid of a process, from `/proc/PID/stat`.
fn proc_stat(pid: Pid) -> Option<(char, i32)> {
    let stat = fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())).ok()?;
    // `pid (comm) state ppid …`; comm may contain spaces and parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The directory holding `initdb` and `postgres`: `pg_config --bindir`, else Debian's.
fn find_bin_dir() -> Result<PathBuf, PostgresServerError> {
    let mut candidates = Vec::new();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    candidates.push(PathBuf::from(DEBIAN_BIN_DIR));
    candidates
        .iter()
        .find(|d| d.join("postgres").is_file() && d.join("initdb").is_file())
        .cloned()
        .ok_or_else(|| PostgresServerError::NotInstalled {
            searched: candidates
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The user to run the server as: `postgres` under root, else the current user.
fn server_owner() -> Result<Option<Owner>, PostgresServerError> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let id = |flag: &str| -> Result<u32, PostgresServerError> {
        let out = Command::new("id")
            .args([flag, SUPERUSER])
            .output()
            .map_err(io_error("run `id`"))?;
        if !out.status.success() {
            return Err(PostgresServerError::NoServerUser);
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| PostgresServerError::NoServerUser)
    };
    Ok(Some(Owner {
        uid: id("-u")?,
        gid: id("-g")?,
    }))
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16, PostgresServerError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(io_error("find a free loopback port"))?;
    let addr = listener
        .local_addr()
        .map_err(io_error("find a free loopback port"))?;
    Ok(addr.port())
}

/// Runs `cmd` to completion; its stdout, or an error quoting what it printed.
fn run(cmd: &mut Command, program: &str) -> Result<String, PostgresServerError> {
    let out = cmd.output().map_err(io_error(format!("run {program}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(PostgresServerError::CommandFailed {
            program: program.to_owned(),
            status: out.status,
            output: format!("{}{stdout}", String::from_utf8_lossy(&out.stderr)),
        })
    }
}

fn io_error(action: impl Into<String>) -> impl FnOnce(io::Error) -> PostgresServerError {
    let action = action.into();
    move |source| PostgresServerError::Io { action, source }
}
