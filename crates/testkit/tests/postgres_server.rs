//! The PostgreSQL harness against the real server programs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use switchboard_testkit::{PostgresServer, PostgresServerError};

#[test]
fn a_started_server_answers_and_keeps_data_across_stop_and_kill() {
    let mut pg = PostgresServer::start().unwrap();
    assert!(pg.url().starts_with("postgres://postgres@127.0.0.1:"));
    assert_eq!(pg.psql("postgres", "SHOW fsync").unwrap(), "on");

    let url = pg.create_database("harness_check").unwrap();
    assert_eq!(url, pg.url_for("harness_check"));
    pg.psql(
        "harness_check",
        "CREATE TABLE t (n INT); INSERT INTO t VALUES (1)",
    )
    .unwrap();

    pg.stop().unwrap();
    assert!(!pg.is_running());
    assert!(pg.psql("harness_check", "SELECT 1").is_err(), "stopped");
    let port = pg.port();
    pg.start_again().unwrap();
    assert_eq!(pg.port(), port, "the same port after a restart");
    pg.psql("harness_check", "INSERT INTO t VALUES (2)")
        .unwrap();

    pg.kill().unwrap();
    assert!(!pg.is_running());
    pg.start_again().unwrap();
    assert_eq!(
        pg.psql(
            "harness_check",
            "SELECT string_agg(n::text, ',' ORDER BY n) FROM t"
        )
        .unwrap(),
        "1,2",
        "committed rows survive a kill"
    );
    assert!(
        pg.log_tail(200).contains("not properly shut down"),
        "the kill made the server recover: {}",
        pg.log_tail(20)
    );
}

#[test]
fn dropping_the_server_stops_it_and_removes_its_files() {
    let pg = PostgresServer::start().unwrap();
    let data = pg.data_dir().to_owned();
    let port = pg.port();
    assert!(data.join("PG_VERSION").is_file());
    drop(pg);
    assert!(!data.exists(), "the data directory is removed");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens any more"
    );
}

#[test]
fn database_names_are_validated() {
    let pg = PostgresServer::start().unwrap();
    let err = pg.create_database("bad\"; DROP").unwrap_err();
    assert!(matches!(err, PostgresServerError::InvalidName(_)), "{err}");
    assert!(pg.create_database("1abc").is_err());
    let err = pg
        .psql("postgres", "SELECT * FROM missing_table")
        .unwrap_err();
    assert!(err.to_string().contains("missing_table"), "{err}");
}

#[test]
fn a_paused_server_answers_once_resumed() {
    use std::{
        io::{ErrorKind, Read, Write},
        net::TcpStream,
        time::Duration,
    };

    let mut pg = PostgresServer::start().unwrap();
    pg.pause().unwrap();
    // The kernel still accepts the connection; nobody answers PostgreSQL's SSLRequest.
    let mut socket = TcpStream::connect(("127.0.0.1", pg.port())).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    socket
        .write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .unwrap();
    let mut answer = [0u8; 1];
    let err = socket.read_exact(&mut answer).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err:?}"
    );
    pg.resume().unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"N", "no TLS, but an answer");
}
