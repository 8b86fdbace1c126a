//! Golden fixtures from the reference implementation. `tests/fixtures/fixtures.json` was
//! written by `tests/fixtures/make.mjs` with the official npm packages `engine.io-parser`,
//! `socket.io-parser` and `socket.io-msgpack-parser` (versions in the file and in
//! `package-lock.json`). Each case is decoded with our codecs and encoded again: the bytes
//! must be the ones the reference encoder wrote.

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use serde::Deserialize;
use switchboard_socketio::{
    Limits, Str,
    engineio::{self, Frame},
    msgpack,
    socketio::{Decoder, Packet},
};

#[derive(Deserialize)]
struct Fixtures {
    engineio: Vec<EngineCase>,
    payloads: Vec<PayloadCase>,
    socketio: Vec<SocketCase>,
    msgpack: Vec<MsgpackCase>,
}

#[derive(Deserialize)]
struct EngineCase {
    name: String,
    websocket: WsMessage,
    polling: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum WsMessage {
    Text(String),
    Binary(String),
}

#[derive(Deserialize)]
struct PayloadCase {
    name: String,
    payload: String,
    count: usize,
}

#[derive(Deserialize)]
struct SocketCase {
    name: String,
    text: String,
    attachments: Vec<String>,
}

#[derive(Deserialize)]
struct MsgpackCase {
    name: String,
    bytes: String,
    data: Option<String>,
    attachments: Vec<String>,
}

fn fixtures() -> Fixtures {
    let text = include_str!("fixtures/fixtures.json");
    serde_json::from_str(text).expect("fixtures.json is valid")
}

fn base64(text: &str) -> Bytes {
    Bytes::from(STANDARD.decode(text).expect("fixtures hold valid base64"))
}

const MAX: usize = Limits::DEFAULT.max_payload_bytes;

#[test]
fn engineio_packets_match_the_reference_encoder_on_both_transports() {
    let cases = fixtures().engineio;
    assert!(cases.len() >= 12);
    for case in cases {
        let frame = match &case.websocket {
            WsMessage::Text(text) => Frame::Text(Bytes::from(text.clone())),
            WsMessage::Binary(data) => Frame::Binary(base64(data)),
        };
        let packet = engineio::Packet::decode(frame.clone(), MAX)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(packet.to_frame(), frame, "{}: websocket", case.name);
        let polled = engineio::Packet::decode_text(Bytes::from(case.polling.clone()), MAX)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(polled, packet, "{}: polling decodes the same", case.name);
        assert_eq!(
            packet.to_text(),
            case.polling.as_bytes(),
            "{}: polling",
            case.name
        );
    }
}

#[test]
fn polling_payloads_match_the_reference_encoder() {
    for case in fixtures().payloads {
        let packets = engineio::decode_payload(Bytes::from(case.payload.clone()), MAX)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(packets.len(), case.count, "{}", case.name);
        let segments: Vec<Bytes> = packets.iter().map(engineio::Packet::to_text).collect();
        assert_eq!(
            engineio::join_payload(&segments),
            case.payload.as_bytes(),
            "{}",
            case.name
        );
    }
}

#[test]
fn socketio_packets_match_the_reference_encoder() {
    let cases = fixtures().socketio;
    assert!(cases.len() >= 16);
    for case in cases {
        let mut decoder = Decoder::default();
        let mut packet = decoder
            .decode_text(Str::from(case.text.as_str()))
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        for attachment in &case.attachments {
            assert!(
                packet.is_none(),
                "{}: complete before its attachments",
                case.name
            );
            packet = decoder
                .decode_binary(base64(attachment))
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        }
        let packet = packet.unwrap_or_else(|| panic!("{}: incomplete", case.name));
        let encoded = packet.encode().expect("a decoded packet encodes");
        let mut expected = vec![Frame::Text(Bytes::from(format!("4{}", case.text)))];
        expected.extend(case.attachments.iter().map(|a| Frame::Binary(base64(a))));
        assert_eq!(encoded.websocket(), expected, "{}", case.name);
    }
}

#[test]
fn msgpack_packets_match_the_reference_encoder() {
    let cases = fixtures().msgpack;
    assert!(cases.len() >= 10);
    for case in cases {
        let bytes = base64(&case.bytes);
        let packet: Packet = msgpack::decode(&bytes, &Limits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(
            packet.data.as_ref().map(|d| d.as_str()),
            case.data.as_deref(),
            "{}: data as JSON",
            case.name
        );
        let attachments: Vec<Bytes> = case.attachments.iter().map(|a| base64(a)).collect();
        assert_eq!(packet.attachments, attachments, "{}", case.name);
        let encoded = msgpack::encode(&packet).expect("a decoded packet encodes");
        assert_eq!(encoded.websocket(), [Frame::Binary(bytes)], "{}", case.name);
    }
}
