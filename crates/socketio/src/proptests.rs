//! Property tests for every codec: what we encode decodes to the same packet, and arbitrary
//! bytes never panic any decoder.

use bytes::Bytes;
use proptest::prelude::*;

use crate::{
    JsonText, Limits, Str, engineio,
    engineio::Frame,
    msgpack,
    socketio::{Decoder, Packet, PacketKind},
};

fn str_strategy() -> impl Strategy<Value = String> {
    "[a-z0-9 é€💬\"\\\\/,-]{0,12}"
}

fn engine_packet() -> impl Strategy<Value = engineio::Packet> {
    prop_oneof![
        Just(engineio::Packet::Close),
        str_strategy().prop_map(|s| engineio::Packet::Ping(s.into())),
        str_strategy().prop_map(|s| engineio::Packet::Pong(s.into())),
        str_strategy().prop_map(engineio::Packet::text),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(engineio::Packet::binary),
        Just(engineio::Packet::Upgrade),
        Just(engineio::Packet::Noop),
    ]
}

/// JSON values without placeholders, as text.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        (-1e6f64..1e6).prop_map(serde_json::Value::from),
        str_strategy().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn namespace() -> impl Strategy<Value = Str> {
    prop_oneof![Just("/".to_owned()), "/[a-z0-9-]{1,8}"].prop_map(Str::from)
}

fn socket_packet() -> impl Strategy<Value = Packet> {
    let args = prop::collection::vec(json_value(), 0..3);
    let attachments = prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 0..3);
    (
        0u8..5,
        namespace(),
        any::<Option<u64>>(),
        args,
        attachments,
        "[a-z]{1,8}",
    )
        .prop_map(|(kind, namespace, id, args, blobs, name)| {
            let placeholders =
                (0..blobs.len()).map(|num| serde_json::json!({"_placeholder": true, "num": num}));
            let attachments: Vec<Bytes> = blobs.into_iter().map(Bytes::from).collect();
            let to_json = |v: serde_json::Value| JsonText::from_serialize(&v).expect("JSON");
            let (kind, data, attachments) = match kind {
                0 => (PacketKind::Connect, None, Vec::new()),
                1 => (PacketKind::Disconnect, None, Vec::new()),
                2 => {
                    let mut items = vec![serde_json::Value::from(format!("ev_{name}"))];
                    items.extend(args);
                    items.extend(placeholders);
                    (PacketKind::Event, Some(to_json(items.into())), attachments)
                }
                3 => {
                    let items: Vec<_> = args.into_iter().chain(placeholders).collect();
                    (PacketKind::Ack, Some(to_json(items.into())), attachments)
                }
                _ => (
                    PacketKind::ConnectError,
                    Some(to_json(name.into())),
                    Vec::new(),
                ),
            };
            Packet {
                kind,
                namespace,
                id: id.filter(|_| matches!(kind, PacketKind::Event | PacketKind::Ack)),
                data,
                attachments,
            }
        })
}

proptest! {
    #[test]
    fn engineio_packets_round_trip_on_both_transports(packet in engine_packet()) {
        let max = usize::MAX;
        prop_assert_eq!(engineio::Packet::decode(packet.to_frame(), max), Ok(packet.clone()));
        prop_assert_eq!(engineio::Packet::decode_text(packet.to_text(), max), Ok(packet));
    }

    #[test]
    fn polling_payloads_round_trip(packets in prop::collection::vec(engine_packet(), 1..6)) {
        let segments: Vec<Bytes> = packets.iter().map(engineio::Packet::to_text).collect();
        let body = engineio::join_payload(&segments);
        prop_assert_eq!(engineio::decode_payload(body, usize::MAX), Ok(packets));
    }

    #[test]
    fn socketio_packets_round_trip(packet in socket_packet()) {
        let encoded = packet.encode().expect("generated packets are encodable");
        let mut decoder = Decoder::default();
        let mut decoded = None;
        for frame in encoded.websocket() {
            decoded = match engineio::Packet::decode(frame.clone(), usize::MAX) {
                Ok(engineio::Packet::Message(message)) => decoder.decode(message).expect("valid"),
                other => panic!("not a message: {other:?}"),
            };
        }
        prop_assert_eq!(decoded, Some(packet.clone()));
        let polled = engineio::decode_payload(encoded.polling().clone(), usize::MAX)
            .expect("valid payload");
        prop_assert_eq!(polled.len(), 1 + packet.attachments.len());
    }

    #[test]
    fn msgpack_packets_round_trip(packet in socket_packet()) {
        let encoded = msgpack::encode(&packet).expect("generated packets are encodable");
        let [Frame::Binary(bytes)] = encoded.websocket() else {
            panic!("one binary message");
        };
        let decoded = msgpack::decode(bytes, &Limits::default()).expect("valid");
        // Numbers may change form (1.0 becomes 1), so compare re-encodings.
        prop_assert_eq!(&packet.attachments, &decoded.attachments);
        let again = msgpack::encode(&decoded).expect("encodable");
        prop_assert_eq!(again.websocket(), encoded.websocket());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_engineio_decoders(data in prop::collection::vec(any::<u8>(), 0..64)) {
        let data = Bytes::from(data);
        let _ = engineio::Packet::decode_text(data.clone(), 32);
        let _ = engineio::Packet::decode(Frame::Binary(data.clone()), 32);
        let _ = engineio::decode_payload(data, 1024);
    }

    #[test]
    fn arbitrary_messages_never_panic_the_socketio_decoder(
        messages in prop::collection::vec((any::<bool>(), "[0-6]{0,2}[0-9-/,]{0,4}[\\[\\]{}\"a-z:,0-9_]{0,16}"), 0..6)
    ) {
        let mut decoder = Decoder::new(Limits { max_attachments: 3, max_attachment_bytes: 8, ..Limits::DEFAULT });
        for (binary, text) in messages {
            let _ = if binary {
                decoder.decode_binary(Bytes::from(text))
            } else {
                decoder.decode_text(Str::from(text))
            };
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_msgpack_decoder(data in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = msgpack::decode(&data, &Limits::default());
    }
}
