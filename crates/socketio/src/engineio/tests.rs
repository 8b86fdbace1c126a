use std::time::Duration;

use bytes::Bytes;

use crate::{
    Str,
    engineio::{Frame, Handshake, Message, Packet, PacketError, decode_payload, join_payload},
};

const MAX: usize = 1_000_000;

fn text(s: &'static str) -> Result<Packet, PacketError> {
    Packet::decode_text(Bytes::from_static(s.as_bytes()), MAX)
}

fn handshake() -> Handshake {
    Handshake {
        sid: "abc".into(),
        upgrades: vec!["websocket".into()],
        ping_interval: Duration::from_millis(25_000),
        ping_timeout: Duration::from_millis(20_000),
        max_payload_bytes: 1_000_000,
    }
}

#[test]
fn open_packet_writes_the_handshake_fields_in_reference_order() {
    let open = Packet::Open(handshake());
    let expected = r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
    assert_eq!(open.to_text(), expected);
    assert_eq!(text(expected), Ok(open));
}

#[test]
fn every_packet_type_round_trips_through_its_text_form() {
    let packets = [
        Packet::Open(handshake()),
        Packet::Close,
        Packet::ping(),
        Packet::Pong(Str::default()),
        Packet::Ping(Packet::PROBE.into()),
        Packet::Pong(Packet::PROBE.into()),
        Packet::text("hello"),
        Packet::binary(Bytes::from_static(b"\x00\xff")),
        Packet::Upgrade,
        Packet::Noop,
    ];
    for packet in packets {
        let wire = packet.to_text();
        assert_eq!(Packet::decode_text(wire, MAX).as_ref(), Ok(&packet));
        assert_eq!(Packet::decode(packet.to_frame(), MAX).as_ref(), Ok(&packet));
    }
}

#[test]
fn text_packets_decode_to_their_types() {
    assert_eq!(text("1"), Ok(Packet::Close));
    assert_eq!(text("2"), Ok(Packet::ping()));
    assert_eq!(text("3probe"), Ok(Packet::Pong("probe".into())));
    assert!(text("2probe").is_ok_and(|p| p.is_probe()));
    assert_eq!(text("4hi"), Ok(Packet::text("hi")));
    assert_eq!(text("4"), Ok(Packet::text("")));
    assert_eq!(text("5"), Ok(Packet::Upgrade));
    assert_eq!(text("6"), Ok(Packet::Noop));
}

#[test]
fn binary_is_raw_over_websocket_and_base64_over_polling() {
    let packet = Packet::binary(Bytes::from_static(&[1, 2, 3, 4]));
    assert_eq!(
        packet.to_frame(),
        Frame::Binary(Bytes::from_static(&[1, 2, 3, 4]))
    );
    assert_eq!(packet.to_text(), "bAQIDBA==");
    assert_eq!(text("bAQIDBA=="), Ok(packet.clone()));
    assert_eq!(text("bAQIDBA"), Ok(packet), "padding is optional");
}

#[test]
fn bad_packets_are_refused_with_their_cause() {
    assert_eq!(text(""), Err(PacketError::Empty));
    assert_eq!(text("7"), Err(PacketError::UnknownType(b'7')));
    assert_eq!(text("x4"), Err(PacketError::UnknownType(b'x')));
    // Found by fuzzing: a multi-byte first character is an unknown type, not a slice panic.
    assert_eq!(text("\u{665};"), Err(PacketError::UnknownType(0xd9)));
    assert_eq!(text("b!!!"), Err(PacketError::InvalidBase64));
    assert_eq!(text("0{}"), Err(PacketError::InvalidHandshake));
    assert_eq!(
        Packet::decode_text(Bytes::from_static(b"4\xff"), MAX),
        Err(PacketError::InvalidUtf8)
    );
}

#[test]
fn packets_over_the_limit_are_refused_before_decoding() {
    let big = Bytes::from(format!("4{}", "x".repeat(10)));
    assert_eq!(
        Packet::decode_text(big.clone(), 10),
        Err(PacketError::TooLarge {
            max_payload_bytes: 10
        })
    );
    assert!(Packet::decode_text(big, 11).is_ok());
    assert_eq!(
        Packet::decode(Frame::Binary(Bytes::from(vec![0; 11])), 10),
        Err(PacketError::TooLarge {
            max_payload_bytes: 10
        })
    );
}

#[test]
fn payloads_split_on_the_record_separator() {
    let body = Bytes::from_static(b"2\x1e4hello\x1ebAQID\x1e6");
    let packets = decode_payload(body.clone(), MAX).expect("valid payload");
    assert_eq!(
        packets,
        [
            Packet::ping(),
            Packet::text("hello"),
            Packet::Message(Message::Binary(Bytes::from_static(&[1, 2, 3]))),
            Packet::Noop,
        ]
    );
    let segments: Vec<_> = packets.iter().map(Packet::to_text).collect();
    assert_eq!(join_payload(&segments), body);
}

#[test]
fn a_payload_with_an_empty_or_bad_segment_is_refused() {
    for body in [&b""[..], b"4a\x1e", b"\x1e4a", b"4a\x1e9"] {
        assert!(
            decode_payload(Bytes::copy_from_slice(body), MAX).is_err(),
            "{body:?}"
        );
    }
}

#[test]
fn a_payload_over_the_limit_is_refused_before_splitting() {
    assert_eq!(
        decode_payload(Bytes::from_static(b"4a\x1e4b"), 4),
        Err(PacketError::TooLarge {
            max_payload_bytes: 4
        })
    );
}

/// The codec side of the official Engine.IO test suite (socketio/engine.io-protocol
/// `test-suite/test-suite.js`): the payloads and messages it sends decode, echo back
/// byte for byte, and its invalid packet is refused.
#[test]
fn official_suite_payloads_and_messages_echo_byte_for_byte() {
    for body in [
        "4hello",
        "4test1\x1e4test2\x1e4test3",
        "4hello\x1ebAQIDBA==",
    ] {
        let packets = decode_payload(Bytes::from(body), MAX).expect(body);
        let segments: Vec<_> = packets.iter().map(Packet::to_text).collect();
        assert_eq!(join_payload(&segments), body);
    }
    assert_eq!(
        decode_payload(Bytes::from_static(b"abc"), MAX),
        Err(PacketError::UnknownType(b'a'))
    );

    let hello = Packet::decode(Frame::Text(Bytes::from_static(b"4hello")), MAX);
    assert_eq!(
        hello.map(|p| p.to_frame()),
        Ok(Frame::Text("4hello".into()))
    );
    let binary = Frame::Binary(Bytes::from_static(&[1, 2, 3, 4]));
    assert_eq!(
        Packet::decode(binary.clone(), MAX).map(|p| p.to_frame()),
        Ok(binary)
    );
    assert_eq!(text("abc"), Err(PacketError::UnknownType(b'a')));
    for (ping, pong) in [("2", "3"), ("2probe", "3probe")] {
        let Ok(Packet::Ping(data)) = text(ping) else {
            panic!("{ping} is a ping");
        };
        assert_eq!(Packet::Pong(data).to_text(), pong);
    }
}
