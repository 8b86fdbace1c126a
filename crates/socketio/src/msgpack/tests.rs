use bytes::Bytes;

use crate::{
    JsonText, Limits,
    engineio::Frame,
    msgpack::{DecodeError, decode, encode},
    socketio::{EncodeError, Packet, PacketKind},
};

fn json(text: &'static str) -> JsonText {
    JsonText::parse(Bytes::from_static(text.as_bytes())).expect("test JSON is valid")
}

fn bytes_of(packet: &Packet) -> Bytes {
    let encoded = encode(packet).expect("encodable");
    let [Frame::Binary(bytes)] = encoded.websocket() else {
        panic!("one binary message");
    };
    bytes.clone()
}

fn decode_default(bytes: &[u8]) -> Result<Packet, DecodeError> {
    decode(bytes, &Limits::default())
}

#[test]
fn every_packet_type_round_trips() {
    let packets = [
        Packet::connect("/", None),
        Packet::connect("/admin", Some(json(r#"{"token":"x","n":-5}"#))),
        Packet::disconnect("/"),
        Packet::event("/", json(r#"["hi",1,1.5,null,true,{"a":[]}]"#)).with_id(4_000_000_000),
        Packet::ack("/", 1, json("[]")),
        Packet::connect_error("/", json(r#"{"message":"no"}"#)),
        Packet::connect_error("/", json(r#""no""#)),
        Packet::event("/", json(r#"["f",{"_placeholder":true,"num":0}]"#))
            .with_attachments(vec![Bytes::from_static(b"\x00\x01")]),
    ];
    for packet in packets {
        assert_eq!(decode_default(&bytes_of(&packet)), Ok(packet));
    }
}

#[test]
fn a_connect_packet_is_the_reference_map() {
    // {"type":0,"nsp":"/"} as notepack.io writes it.
    let bytes = bytes_of(&Packet::connect("/", None));
    assert_eq!(&bytes[..], b"\x82\xa4type\x00\xa3nsp\xa1/");
}

#[test]
fn keys_may_come_in_any_order() {
    // {"nsp":"/","id":2,"data":["a"],"type":2}
    let bytes = b"\x84\xa3nsp\xa1/\xa2id\x02\xa4data\x91\xa1a\xa4type\x02";
    let packet = decode_default(bytes).expect("valid");
    assert_eq!(packet, Packet::event("/", json(r#"["a"]"#)).with_id(2));
}

#[test]
fn binaries_become_placeholders_and_back() {
    // {"type":2,"data":["f",<bin 01>],"nsp":"/"}
    let bytes = b"\x83\xa4type\x02\xa4data\x92\xa1f\xc4\x01\x01\xa3nsp\xa1/";
    let packet = decode_default(bytes).expect("valid");
    assert_eq!(
        packet.data.as_ref().map(JsonText::as_str),
        Some(r#"["f",{"_placeholder":true,"num":0}]"#)
    );
    assert_eq!(packet.attachments, [Bytes::from_static(b"\x01")]);
    assert_eq!(bytes_of(&packet), &bytes[..]);
}

#[test]
fn invalid_packets_are_refused_with_their_cause() {
    let cases: [(&[u8], DecodeError); 10] = [
        (b"", DecodeError::Malformed),
        (b"\x91\x00", DecodeError::NotAMap),
        (b"\x81\xa3nsp\xa1/", DecodeError::InvalidType),
        (b"\x82\xa4type\x05\xa3nsp\xa1/", DecodeError::InvalidType),
        (b"\x81\xa4type\x00", DecodeError::InvalidNamespace),
        (b"\x82\xa4type\x02\xa3nsp\xa1/", DecodeError::InvalidPayload),
        (
            b"\x83\xa4type\x02\xa4data\x90\xa2id\xff",
            DecodeError::InvalidNamespace,
        ),
        (
            b"\x84\xa4type\x02\xa4data\x90\xa2id\xff\xa3nsp\xa1/",
            DecodeError::InvalidAckId,
        ),
        (b"\x82\xa4type\x00\xa3nsp\xa1/\x00", DecodeError::Malformed),
        (
            b"\x82\xa4type\x00\xa3nsp\xd5\x01\x00\x00",
            DecodeError::Unsupported,
        ),
    ];
    for (bytes, error) in cases {
        assert_eq!(decode_default(bytes), Err(error), "{bytes:?}");
    }
}

#[test]
fn declared_lengths_beyond_the_input_are_refused_without_allocating() {
    assert_eq!(
        decode_default(b"\xdd\xff\xff\xff\xff"),
        Err(DecodeError::Malformed)
    );
    assert_eq!(
        decode_default(b"\xdf\xff\xff\xff\xff"),
        Err(DecodeError::Malformed)
    );
    assert_eq!(
        decode_default(b"\xc6\xff\xff\xff\xff"),
        Err(DecodeError::Malformed)
    );
}

#[test]
fn deep_nesting_is_refused() {
    let mut bytes = vec![0x91; 200];
    bytes.push(0xc0);
    assert_eq!(decode_default(&bytes), Err(DecodeError::TooDeep));
}

#[test]
fn packets_over_the_limit_are_refused_before_parsing() {
    let limits = Limits {
        max_payload_bytes: 4,
        ..Limits::default()
    };
    assert_eq!(
        decode(b"\x82\xa4type\x00\xa3nsp\xa1/", &limits),
        Err(DecodeError::TooLarge {
            max_payload_bytes: 4
        })
    );
}

#[test]
fn placeholders_without_attachments_cannot_be_encoded() {
    let packet = Packet::event("/", json(r#"["f",{"_placeholder":true,"num":1}]"#))
        .with_attachments(vec![Bytes::new()]);
    assert_eq!(
        encode(&packet).err(),
        Some(EncodeError::MissingAttachment(1))
    );
    assert_eq!(packet.kind, PacketKind::Event);
}

#[test]
fn integral_floats_are_written_as_integers_like_javascript() {
    let packet = Packet::event("/", json(r#"["n",1.0,-2.0,0.5]"#));
    let bytes = bytes_of(&packet);
    let decoded = decode_default(&bytes).expect("valid");
    assert_eq!(
        decoded.data.as_ref().map(JsonText::as_str),
        Some(r#"["n",1,-2,0.5]"#)
    );
}

#[test]
fn placeholder_objects_sent_as_data_are_refused() {
    // {"type":2,"data":["f",{"_placeholder":true,"num":0}],"nsp":"/"}
    let packet = Packet::event("/", json(r#"["f",{"_placeholder":true,"num":0}]"#));
    let bytes = bytes_of(&packet);
    assert_eq!(decode_default(&bytes), Err(DecodeError::PlaceholderInData));
}

#[test]
fn data_without_a_messagepack_form_is_an_encode_error() {
    let deep = format!("[\"n\",{}{}]", "[".repeat(200), "]".repeat(200));
    let too_deep = JsonText::parse(Bytes::from(deep))
        .ok()
        .map(|d| Packet::event("/", d));
    let huge = Packet::event("/", json(r#"["n",1e400]"#));
    for packet in too_deep.into_iter().chain([huge]) {
        assert_eq!(encode(&packet).err(), Some(EncodeError::UnsupportedData));
    }
}

#[test]
fn the_deepest_accepted_packet_encodes_again() {
    // {"type":2,"data":[[[…]]],"nsp":"/"} nested as deep as the reader allows.
    let mut depth = 100;
    let packet = loop {
        let mut bytes = b"\x83\xa4type\x02\xa4data".to_vec();
        bytes.extend(std::iter::repeat_n(0x91, depth - 1));
        bytes.extend_from_slice(b"\x90\xa3nsp\xa1/");
        match decode_default(&bytes) {
            Ok(packet) => break packet,
            Err(e) => {
                assert_eq!(e, DecodeError::TooDeep);
                depth -= 1;
            }
        }
    };
    assert!(depth >= 99, "{depth}");
    assert_eq!(decode_default(&bytes_of(&packet)), Ok(packet));
}

#[test]
fn connect_with_undefined_data_is_a_connect_without_auth() {
    // socket.io-msgpack-parser 3.0.2 encoding {type: 0, nsp: "/", data: undefined} (notepack
    // writes undefined as the extension d4 00 00): what socket.io-client sends without `auth`.
    let bytes = [
        0x83, 0xa4, b't', b'y', b'p', b'e', 0x00, 0xa3, b'n', b's', b'p', 0xa1, b'/', 0xa4, b'd',
        b'a', b't', b'a', 0xd4, 0x00, 0x00,
    ];
    let packet = crate::msgpack::decode(&bytes, &crate::Limits::default()).unwrap();
    assert_eq!(packet.kind, crate::socketio::PacketKind::Connect);
    assert_eq!(packet.data, None);
}

#[test]
fn typed_arrays_are_binary() {
    // socket.io-msgpack-parser 3.0.2 encoding {type: 2, nsp: "/", data: ["bin",
    // new Uint8Array([1, 2, 3, 250])]}: notepack writes typed arrays as extension type 0.
    let bytes = [
        0x83, 0xa4, b't', b'y', b'p', b'e', 0x02, 0xa3, b'n', b's', b'p', 0xa1, b'/', 0xa4, b'd',
        b'a', b't', b'a', 0x92, 0xa3, b'b', b'i', b'n', 0xc7, 0x04, 0x00, 0x01, 0x02, 0x03, 0xfa,
    ];
    let packet = crate::msgpack::decode(&bytes, &crate::Limits::default()).unwrap();
    assert_eq!(
        packet.data.as_ref().map(|d| d.as_str()),
        Some(r#"["bin",{"_placeholder":true,"num":0}]"#)
    );
    assert_eq!(
        packet.attachments,
        [bytes::Bytes::from_static(&[1, 2, 3, 250])]
    );
}
