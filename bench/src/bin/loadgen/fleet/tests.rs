//! Frame handling of a subscriber connection, fed with hand-made server frames.

use super::*;

fn server_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 65_536);
    let mut out = vec![first_byte];
    if payload.len() < 126 {
        out.push(payload.len() as u8);
    } else {
        out.push(126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

fn text(payload: &str) -> Vec<u8> {
    server_frame(0x80 | ws::OP_TEXT, payload.as_bytes())
}

fn publication(offset: u64, sent_ns: u64) -> Vec<u8> {
    let mut json = format!(
        r#"{{"push":"publication","channel":"bench","offset":{offset},"epoch":"e","data":"#
    )
    .into_bytes();
    publication::write_payload(&mut json, sent_ns);
    json.push(b'}');
    server_frame(0x80 | ws::OP_TEXT, &json)
}

fn shared_with_window(start: u64, end: u64) -> Shared {
    let shared = Shared::default();
    shared.start_step(start, end);
    shared
}

#[test]
fn gaps_and_reordering_are_counted_per_connection() {
    let shared = shared_with_window(0, u64::MAX);
    let mut conn = Connection::default();
    let buf: Vec<u8> = [1, 2, 5, 4, 6]
        .iter()
        .flat_map(|o| publication(*o, 10))
        .collect();
    let (used, end) = conn.handle_frames(&buf, 20, &shared);
    assert_eq!(used, buf.len());
    assert!(end.is_none());
    assert_eq!(shared.delivered_total.load(Relaxed), 5);
    assert_eq!(shared.gaps.load(Relaxed), 2);
    assert_eq!(shared.reordered.load(Relaxed), 1);
    assert_eq!(conn.last_offset, Some(6));
}

#[test]
fn only_publications_sent_inside_the_window_count() {
    let shared = shared_with_window(100, 200);
    let mut conn = Connection::default();
    let buf: Vec<u8> = [(1, 99), (2, 100), (3, 199), (4, 200)]
        .iter()
        .flat_map(|(o, t)| publication(*o, *t))
        .collect();
    conn.handle_frames(&buf, 1_000_000, &shared);
    assert_eq!(shared.delivered_total.load(Relaxed), 4);
    assert_eq!(shared.delivered_in_window.load(Relaxed), 2);
    assert_eq!(shared.slow_path.load(Relaxed), 0);
}

#[test]
fn a_frame_cut_by_a_read_is_left_for_the_next() {
    let shared = shared_with_window(0, u64::MAX);
    let mut conn = Connection::default();
    let first = publication(1, 5);
    let mut buf = first.clone();
    buf.extend_from_slice(&publication(2, 5)[..30]);
    let (used, end) = conn.handle_frames(&buf, 10, &shared);
    assert!(end.is_none());
    assert_eq!(used, first.len());
    assert_eq!(shared.delivered_total.load(Relaxed), 1);
}

#[test]
fn fragmented_text_messages_are_reassembled() {
    let shared = shared_with_window(0, u64::MAX);
    let mut conn = Connection::default();
    let whole = publication(7, 5);
    let json = &whole[4..];
    let (a, b) = json.split_at(40);
    let mut buf = server_frame(ws::OP_TEXT, a);
    buf.extend(server_frame(0x80 | ws::OP_CONTINUATION, b));
    let (used, end) = conn.handle_frames(&buf, 10, &shared);
    assert_eq!(used, buf.len());
    assert!(end.is_none());
    assert_eq!(shared.delivered_total.load(Relaxed), 1);
    assert_eq!(conn.last_offset, Some(7));
}

#[test]
fn pings_get_pongs_and_a_close_frame_ends_the_connection() {
    let shared = shared_with_window(0, u64::MAX);
    let mut conn = Connection::default();
    let mut buf = server_frame(0x80 | ws::OP_PING, b"hi");
    buf.extend(text(r#"{"push":"ping"}"#));
    buf.extend(server_frame(0x80 | ws::OP_CLOSE, b"\x0f\xa1slow_consumer"));
    let (_, end) = conn.handle_frames(&buf, 10, &shared);
    let Some(End::Close { code, reason }) = end else {
        panic!("expected a close")
    };
    assert_eq!((code, reason.as_str()), (Some(4001), "slow_consumer"));
    let mut expected = Vec::new();
    ws::encode_masked(&mut expected, ws::OP_PONG, b"hi", MASK);
    ws::encode_masked(&mut expected, ws::OP_TEXT, br#"{"cmd":"pong"}"#, MASK);
    assert_eq!(conn.replies, expected);
}

#[test]
fn the_subscribe_reply_sets_the_position_gaps_are_counted_from() {
    let shared = shared_with_window(0, u64::MAX);
    let mut conn = Connection::default();
    let mut buf = text(r#"{"id":1,"result":{"offset":41,"epoch":"e"}}"#);
    buf.extend(publication(43, 5));
    conn.handle_frames(&buf, 10, &shared);
    assert!(matches!(conn.ack, Some(Ok(()))));
    assert_eq!(shared.gaps.load(Relaxed), 1);
}

#[test]
fn a_refused_subscribe_is_reported_with_the_error() {
    let shared = shared_with_window(0, u64::MAX);
    let mut conn = Connection::default();
    let buf = text(r#"{"id":1,"error":{"code":"invalid_channel","message":"bad"}}"#);
    conn.handle_frames(&buf, 10, &shared);
    assert!(matches!(&conn.ack, Some(Err(e)) if e.contains("invalid_channel")));
}

#[test]
fn a_masked_server_frame_ends_the_connection() {
    let shared = shared_with_window(0, u64::MAX);
    let mut conn = Connection::default();
    let (_, end) = conn.handle_frames(&[0x81, 0x81, 0, 0, 0, 0, b'x'], 10, &shared);
    assert!(matches!(end, Some(End::Frame(ws::FrameError::Masked))));
}

fn sio_pub(seq: u64, sent_ns: u64) -> Vec<u8> {
    let mut message = Vec::new();
    publication::write_sio_pub(&mut message, seq, sent_ns);
    server_frame(0x80 | ws::OP_TEXT, &message)
}

#[test]
fn a_socketio_connection_joins_then_counts_pub_events_by_seq() {
    let shared = shared_with_window(0, u64::MAX);
    let frames = Arc::new(sio::Frames::new("bench").expect("frames"));
    let mut conn = Connection::socketio(frames);
    let open = text(r#"0{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#);
    conn.handle_frames(&open, 1, &shared);
    assert!(!conn.replies.is_empty(), "CONNECT is sent");
    assert!(!conn.join_sent());
    conn.replies.clear();
    conn.handle_frames(&text(r#"40{"sid":"t"}"#), 1, &shared);
    assert!(conn.join_sent());
    assert!(!conn.replies.is_empty(), "join is emitted");
    conn.replies.clear();
    conn.handle_frames(&text(r#"431[{"ok":true}]"#), 1, &shared);
    assert!(matches!(conn.ack, Some(Ok(()))));
    assert!(!conn.join_sent());

    shared.start_step(0, u64::MAX);
    let buf: Vec<u8> = [1, 3, 2, 4]
        .iter()
        .flat_map(|s| sio_pub(*s, 10))
        .chain(text("2"))
        .collect();
    let (used, end) = conn.handle_frames(&buf, 20, &shared);
    assert_eq!(used, buf.len());
    assert!(end.is_none());
    assert_eq!(shared.delivered_total.load(Relaxed), 4);
    assert_eq!(shared.gaps.load(Relaxed), 1);
    assert_eq!(shared.reordered.load(Relaxed), 1);
    let mut pong = Vec::new();
    ws::encode_masked(&mut pong, ws::OP_TEXT, b"3", MASK);
    assert_eq!(conn.replies, pong);
    assert_eq!(shared.slow_path.load(Relaxed), 1, "only the ping");

    let (_, end) = conn.handle_frames(&text("41"), 30, &shared);
    assert!(matches!(end, Some(End::SocketIo(_))));
}
