use bytes::Bytes;

use crate::{
    JsonText, Limits, Str,
    engineio::{Frame, Message},
    socketio::{DecodeError, Decoder, EncodeError, Packet, PacketKind},
};

fn json(text: &'static str) -> JsonText {
    JsonText::parse(Bytes::from_static(text.as_bytes())).expect("test JSON is valid")
}

fn decode(text: &'static str) -> Result<Option<Packet>, DecodeError> {
    Decoder::default().decode_text(Str::from_static(text))
}

fn complete(text: &'static str) -> Packet {
    decode(text).expect("valid").expect("complete")
}

/// The Socket.IO text of a packet's first WebSocket message (without Engine.IO's `4`).
fn wire(packet: &Packet) -> String {
    let encoded = packet.encode().expect("encodable");
    let Frame::Text(text) = &encoded.websocket()[0] else {
        panic!("the packet message is text");
    };
    assert_eq!(text[0], b'4');
    String::from_utf8(text[1..].to_vec()).expect("UTF-8")
}

#[test]
fn every_packet_type_encodes_and_decodes_both_ways() {
    let cases = [
        (Packet::connect("/", None), "0"),
        (
            Packet::connect("/admin", Some(json(r#"{"token":"x"}"#))),
            r#"0/admin,{"token":"x"}"#,
        ),
        (Packet::disconnect("/"), "1"),
        (Packet::disconnect("/admin"), "1/admin,"),
        (Packet::event("/", json(r#"["hi",1]"#)), r#"2["hi",1]"#),
        (
            Packet::event("/chat", json(r#"["hi"]"#)).with_id(12),
            r#"2/chat,12["hi"]"#,
        ),
        (Packet::ack("/", 12, json(r#"["ok"]"#)), r#"312["ok"]"#),
        (
            Packet::connect_error("/", json(r#"{"message":"no"}"#)),
            r#"4{"message":"no"}"#,
        ),
        (Packet::connect_error("/a", json(r#""no""#)), r#"4/a,"no""#),
        (
            Packet::event("/", json(r#"["f",{"_placeholder":true,"num":0}]"#))
                .with_attachments(vec![Bytes::from_static(b"\x01")]),
            r#"51-["f",{"_placeholder":true,"num":0}]"#,
        ),
        (
            Packet::ack("/x", 3, json(r#"[{"_placeholder":true,"num":0}]"#))
                .with_attachments(vec![Bytes::from_static(b"")]),
            r#"61-/x,3[{"_placeholder":true,"num":0}]"#,
        ),
    ];
    for (packet, text) in cases {
        assert_eq!(wire(&packet), text);
        let mut decoder = Decoder::default();
        let mut decoded = decoder.decode_text(Str::from(text)).expect(text);
        for attachment in &packet.attachments {
            assert_eq!(decoded, None);
            decoded = decoder.decode_binary(attachment.clone()).expect(text);
        }
        assert_eq!(decoded.as_ref(), Some(&packet), "{text}");
    }
}

#[test]
fn namespace_without_a_trailing_comma_ends_the_packet() {
    let packet = complete("0/admin");
    assert_eq!(packet.namespace, "/admin");
    assert_eq!(packet.data, None);
}

#[test]
fn event_names_come_from_the_first_element() {
    assert_eq!(
        complete(r#"2["a\"b",1]"#).event_name().as_deref(),
        Some("a\"b")
    );
    assert_eq!(complete("2[1]").event_name(), None);
    assert_eq!(complete("3[\"a\"]").event_name(), None, "acks have no name");
}

#[test]
fn payload_shapes_are_checked_per_type() {
    for text in [
        "0[]", "0\"x\"", "1{}", "2{}", "2[]", "2[null]", "3{}", "4[]", "4 1",
    ] {
        assert_eq!(decode(text), Err(DecodeError::InvalidPayload), "{text}");
    }
    for text in ["2[\"a\"", "2[\"a\"]x", "0{", "2/a,[\"x\",]"] {
        assert_eq!(decode(text), Err(DecodeError::InvalidJson), "{text}");
    }
}

#[test]
fn reserved_event_names_are_refused() {
    for text in [
        r#"2["connect"]"#,
        r#"2["disconnect",1]"#,
        r#"2/a,1["newListener"]"#,
    ] {
        assert_eq!(decode(text), Err(DecodeError::ReservedEvent), "{text}");
    }
}

#[test]
fn bad_headers_are_refused_with_their_cause() {
    assert_eq!(decode(""), Err(DecodeError::Empty));
    assert_eq!(decode("7"), Err(DecodeError::UnknownType(b'7')));
    assert_eq!(decode("x"), Err(DecodeError::UnknownType(b'x')));
    for text in ["5", "5-[\"a\"]", "50-[\"a\"]", "5a-[\"a\"]", "51[\"a\"]"] {
        assert_eq!(
            decode(text),
            Err(DecodeError::InvalidAttachmentCount),
            "{text}"
        );
    }
    assert_eq!(
        decode("2123456789012345678901[\"a\"]"),
        Err(DecodeError::InvalidAckId)
    );
}

#[test]
fn attachment_counts_above_the_limit_are_refused_before_waiting() {
    assert_eq!(
        decode(r#"511-["a"]"#),
        Err(DecodeError::TooManyAttachments {
            max_attachments: 10
        })
    );
    assert_eq!(
        decode(r#"599999999999999999999999-["a"]"#),
        Err(DecodeError::InvalidAttachmentCount)
    );
}

#[test]
fn placeholders_must_point_to_a_declared_attachment() {
    for text in [
        r#"51-["a",{"_placeholder":true,"num":1}]"#,
        r#"51-["a",{"_placeholder":true,"num":-1}]"#,
        r#"51-["a",{"_placeholder":true}]"#,
        r#"52-["a",[{"_placeholder":true,"num":"0"}]]"#,
    ] {
        assert_eq!(decode(text), Err(DecodeError::InvalidPlaceholder), "{text}");
    }
    assert_eq!(
        decode(r#"51-["a",{"_placeholder":false,"num":9}]"#),
        Ok(None)
    );
}

#[test]
fn a_binary_packet_waits_for_every_declared_attachment() {
    let mut decoder = Decoder::default();
    let text = Str::from(r#"52-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#);
    assert_eq!(decoder.decode(Message::Text(text)), Ok(None));
    assert_eq!(decoder.pending_attachments(), 2);
    let one = Bytes::from_static(b"1");
    assert_eq!(decoder.decode(Message::Binary(one.clone())), Ok(None));
    assert_eq!(decoder.pending_attachments(), 1);
    let packet = decoder
        .decode(Message::Binary(one.clone()))
        .expect("valid")
        .expect("complete");
    assert_eq!(packet.attachments, [one.clone(), one]);
    assert_eq!(packet.kind, PacketKind::Event);
    assert_eq!(decoder.pending_attachments(), 0);
}

#[test]
fn binary_without_a_waiting_packet_is_refused() {
    let mut decoder = Decoder::default();
    assert_eq!(
        decoder.decode_binary(Bytes::from_static(b"x")),
        Err(DecodeError::UnexpectedBinary)
    );
}

#[test]
fn text_while_attachments_are_pending_is_refused() {
    let mut decoder = Decoder::default();
    let header = Str::from(r#"51-["a",{"_placeholder":true,"num":0}]"#);
    assert_eq!(decoder.decode_text(header), Ok(None));
    assert_eq!(
        decoder.decode_text(Str::from(r#"2["b"]"#)),
        Err(DecodeError::UnexpectedText)
    );
    assert_eq!(decoder.pending_attachments(), 0, "the decoder starts over");
}

#[test]
fn attachments_over_the_byte_limit_are_refused() {
    let limits = Limits {
        max_attachment_bytes: 4,
        ..Limits::default()
    };
    let mut decoder = Decoder::new(limits);
    let header = Str::from(r#"52-["a",{"_placeholder":true,"num":0}]"#);
    assert_eq!(decoder.decode_text(header), Ok(None));
    assert_eq!(decoder.decode_binary(Bytes::from_static(b"123")), Ok(None));
    assert_eq!(
        decoder.decode_binary(Bytes::from_static(b"45")),
        Err(DecodeError::AttachmentsTooLarge {
            max_attachment_bytes: 4
        })
    );
}

#[test]
fn attachments_on_a_connect_packet_cannot_be_encoded() {
    let packet = Packet::connect("/", None).with_attachments(vec![Bytes::new()]);
    assert_eq!(
        packet.encode().err(),
        Some(EncodeError::AttachmentsNotAllowed(PacketKind::Connect))
    );
}

#[test]
fn one_encoding_is_shared_by_websocket_and_polling() {
    let packet = Packet::event("/", json(r#"["f",{"_placeholder":true,"num":0}]"#))
        .with_attachments(vec![Bytes::from_static(&[1, 2, 3, 4])]);
    let encoded = packet.encode().expect("encodable");
    assert_eq!(
        encoded.polling(),
        "451-[\"f\",{\"_placeholder\":true,\"num\":0}]\x1ebAQIDBA=="
    );
    let Frame::Binary(attachment) = &encoded.websocket()[1] else {
        panic!("attachments are binary messages");
    };
    assert_eq!(
        attachment.as_ptr(),
        packet.attachments[0].as_ptr(),
        "attachments are not copied"
    );
    assert_eq!(encoded.polling().as_ptr(), encoded.polling().as_ptr());
}

#[test]
fn event_with_args_writes_the_name_and_the_arguments_verbatim() {
    let args = [json(r#"{ "a" : 1 }"#), json("[2]")];
    let packet = Packet::event_with_args("/", "say \"hi\"", &[&args[0], &args[1]]);
    assert_eq!(wire(&packet), r#"2["say \"hi\"",{ "a" : 1 },[2]]"#);
    assert_eq!(packet.event_name().as_deref(), Some("say \"hi\""));
}

/// The codec side of the `message` cases of the official test suite
/// (socketio/socket.io-protocol `test-suite/test-suite.js`): same inputs, same expected
/// packets and replies.
#[test]
fn official_suite_message_cases_decode_and_encode_as_expected() {
    let plain = complete(r#"2["message",1,"2",{"3":[true]}]"#);
    assert_eq!(plain.event_name().as_deref(), Some("message"));
    let reply = Packet::event("/", json(r#"["message-back",1,"2",{"3":[true]}]"#));
    assert_eq!(wire(&reply), r#"2["message-back",1,"2",{"3":[true]}]"#);

    let with_ack = complete(r#"2456["message-with-ack",1,"2",{"3":[false]}]"#);
    assert_eq!(with_ack.id, Some(456));
    let ack = Packet::ack("/", 456, json(r#"[1,"2",{"3":[false]}]"#));
    assert_eq!(wire(&ack), r#"3456[1,"2",{"3":[false]}]"#);

    let mut decoder = Decoder::default();
    let header =
        r#"52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
    assert_eq!(decoder.decode_text(Str::from(header)), Ok(None));
    assert_eq!(
        decoder.decode_binary(Bytes::from_static(&[1, 2, 3])),
        Ok(None)
    );
    let packet = decoder
        .decode_binary(Bytes::from_static(&[4, 5, 6]))
        .expect("valid")
        .expect("complete");
    assert_eq!(packet.id, Some(789));
    let ack = Packet::ack(
        "/",
        789,
        json(r#"[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#),
    )
    .with_attachments(packet.attachments.clone());
    let encoded = ack.encode().expect("encodable");
    assert_eq!(
        encoded.websocket(),
        [
            Frame::Text(
                r#"462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#.into()
            ),
            Frame::Binary(Bytes::from_static(&[1, 2, 3])),
            Frame::Binary(Bytes::from_static(&[4, 5, 6])),
        ]
    );

    // Each of these closes the connection in the suite.
    assert_eq!(decode("abc"), Err(DecodeError::UnknownType(b'a')));
    assert_eq!(decode("2{}"), Err(DecodeError::InvalidPayload));
    assert_eq!(
        decode(r#"2abc["message-with-ack",1,"2",{"3":[false]}]"#),
        Err(DecodeError::InvalidJson)
    );
}
