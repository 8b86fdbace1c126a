use bytes::Bytes;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::{Command, Incoming, Push, Secret, decode_binary, decode_text, encode};
use crate::{
    error::{ClientError, ErrorCode},
    history::{HistoryFrom, HistoryOptions},
    options::Format,
    publication::{Data, StreamPosition},
};

fn json_of(message: Message) -> serde_json::Value {
    match message {
        Message::Text(text) => serde_json::from_str(&text).expect("valid JSON"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

fn msgpack_of(message: Message) -> rmpv::Value {
    match message {
        Message::Binary(bytes) => {
            rmpv::decode::read_value(&mut &bytes[..]).expect("valid MessagePack")
        }
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

fn msgpack(value: rmpv::Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &value).expect("writing to a Vec cannot fail");
    out
}

fn map(entries: Vec<(&str, rmpv::Value)>) -> rmpv::Value {
    rmpv::Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

#[test]
fn commands_encode_as_in_the_protocol_examples() {
    let since = StreamPosition::new(4, "q8d2x0aa");
    let subscribe = Command::Subscribe {
        channel: "news",
        since: Some(&since),
        join_leave: false,
        token: None,
    };
    assert_eq!(
        json_of(encode(Format::Json, Some(2), subscribe).expect("encodes")),
        json!({"id":2,"cmd":"subscribe","channel":"news","since":{"offset":4,"epoch":"q8d2x0aa"}})
    );
    let data = Data::Json(json!({"title":"hello"}));
    let publish = Command::Publish {
        channel: "news",
        data: &data,
    };
    assert_eq!(
        json_of(encode(Format::Json, Some(3), publish).expect("encodes")),
        json!({"id":3,"cmd":"publish","channel":"news","data":{"title":"hello"}})
    );
    assert_eq!(
        json_of(encode(Format::Json, None, Command::Pong).expect("encodes")),
        json!({"cmd":"pong"})
    );
    let connect = Command::Connect {
        name: Some("demo"),
        version: None,
        info: None,
        token: None,
    };
    assert_eq!(
        json_of(encode(Format::Json, Some(1), connect).expect("encodes")),
        json!({"id":1,"cmd":"connect","name":"demo"})
    );
    let options = HistoryOptions {
        limit: Some(10),
        from: Some(HistoryFrom::Before(7)),
    };
    let history = Command::History {
        channel: "news",
        options: &options,
    };
    assert_eq!(
        json_of(encode(Format::Json, Some(5), history).expect("encodes")),
        json!({"id":5,"cmd":"history","channel":"news","limit":10,"before":7})
    );
}

#[test]
fn tokens_go_into_connect_refresh_and_subscribe_but_never_into_debug_output() {
    let connect = Command::Connect {
        name: None,
        version: None,
        info: None,
        token: Some(Secret("conn.jwt")),
    };
    assert_eq!(
        json_of(encode(Format::Json, Some(1), connect).expect("encodes")),
        json!({"id":1,"cmd":"connect","token":"conn.jwt"})
    );
    let refresh = Command::Refresh {
        token: Secret("next.jwt"),
    };
    assert_eq!(
        json_of(encode(Format::Json, Some(2), refresh).expect("encodes")),
        json!({"id":2,"cmd":"refresh","token":"next.jwt"})
    );
    let subscribe = Command::Subscribe {
        channel: "private:x",
        since: None,
        join_leave: false,
        token: Some(Secret("sub.jwt")),
    };
    assert_eq!(
        msgpack_of(encode(Format::MessagePack, Some(3), subscribe).expect("encodes")),
        map(vec![
            ("id", 3.into()),
            ("cmd", "subscribe".into()),
            ("channel", "private:x".into()),
            ("token", "sub.jwt".into()),
        ])
    );
    for command in [connect, refresh, subscribe] {
        let shown = format!("{command:?}");
        assert!(!shown.contains(".jwt"), "{shown}");
    }
}

#[test]
fn binary_data_is_base64_in_json_and_bin_in_msgpack() {
    let data = Data::Binary(Bytes::from_static(b"\x00\x01hi"));
    let publish = Command::Publish {
        channel: "raw",
        data: &data,
    };
    assert_eq!(
        json_of(encode(Format::Json, Some(1), publish).expect("encodes")),
        json!({"id":1,"cmd":"publish","channel":"raw","b64":"AAFoaQ=="})
    );
    let packed = msgpack_of(encode(Format::MessagePack, Some(1), publish).expect("encodes"));
    assert_eq!(
        packed,
        map(vec![
            ("id", 1.into()),
            ("cmd", "publish".into()),
            ("channel", "raw".into()),
            ("data", rmpv::Value::Binary(b"\x00\x01hi".to_vec())),
        ])
    );
}

#[test]
fn json_data_is_a_native_value_in_msgpack() {
    let data = Data::Json(json!({"n": 1, "list": [true, null]}));
    let publish = Command::Publish {
        channel: "c",
        data: &data,
    };
    let packed = msgpack_of(encode(Format::MessagePack, Some(9), publish).expect("encodes"));
    let rmpv::Value::Map(entries) = packed else {
        panic!("not a map");
    };
    let data = entries
        .iter()
        .find(|(k, _)| k.as_str() == Some("data"))
        .map(|(_, v)| v.clone());
    assert_eq!(
        data,
        // serde_json::Map keeps keys sorted.
        Some(map(vec![
            (
                "list",
                rmpv::Value::Array(vec![true.into(), rmpv::Value::Nil])
            ),
            ("n", 1.into()),
        ]))
    );
}

#[test]
fn publication_push_decodes_from_json_with_data_or_b64() {
    let Incoming::Push(Push::Publication(p)) = decode_text(
        r#"{"push":"publication","channel":"news","offset":7,"epoch":"e1","data":{"title":"hi"},"info":{"client":"k3"}}"#,
    )
    .expect("decodes") else {
        panic!("not a publication");
    };
    assert_eq!(
        (p.channel.as_str(), p.offset, p.epoch.as_str()),
        ("news", 7, "e1")
    );
    assert_eq!(p.data, Data::Json(json!({"title":"hi"})));
    assert_eq!(p.info.map(|i| i.client), Some("k3".to_owned()));

    let Incoming::Push(Push::Publication(p)) =
        decode_text(r#"{"push":"publication","channel":"c","offset":1,"epoch":"e","b64":"aGk="}"#)
            .expect("decodes")
    else {
        panic!("not a publication");
    };
    assert_eq!(p.data, Data::Binary(Bytes::from_static(b"hi")));
}

#[test]
fn null_data_is_json_null_not_missing_data() {
    let Incoming::Push(Push::Publication(p)) =
        decode_text(r#"{"push":"publication","channel":"c","offset":1,"epoch":"e","data":null}"#)
            .expect("decodes")
    else {
        panic!("not a publication");
    };
    assert_eq!(p.data, Data::Json(serde_json::Value::Null));
}

#[test]
fn publication_push_decodes_from_msgpack_with_bin_or_json_data() {
    let frame = msgpack(map(vec![
        ("push", "publication".into()),
        ("channel", "c".into()),
        ("offset", 3.into()),
        ("epoch", "e".into()),
        ("data", rmpv::Value::Binary(vec![1, 2, 3])),
    ]));
    let Incoming::Push(Push::Publication(p)) = decode_binary(&frame).expect("decodes") else {
        panic!("not a publication");
    };
    assert_eq!(p.data, Data::Binary(Bytes::from_static(&[1, 2, 3])));

    let frame = msgpack(map(vec![
        ("push", "publication".into()),
        ("channel", "c".into()),
        ("offset", 4.into()),
        ("epoch", "e".into()),
        (
            "data",
            map(vec![("a", rmpv::Value::Array(vec![1.into(), "x".into()]))]),
        ),
    ]));
    let Incoming::Push(Push::Publication(p)) = decode_binary(&frame).expect("decodes") else {
        panic!("not a publication");
    };
    assert_eq!(p.data, Data::Json(json!({"a": [1, "x"]})));
}

#[test]
fn replies_decode_results_and_errors() {
    let Incoming::Reply { id, result } = decode_text(
        r#"{"id":2,"result":{"offset":6,"epoch":"q8","recovered":true,"publications":[{"channel":"news","offset":5,"epoch":"q8","data":1},{"offset":6,"data":2}]}}"#,
    )
    .expect("decodes") else {
        panic!("not a reply");
    };
    assert_eq!(id, 2);
    let mut body = result.expect("a result");
    assert_eq!(
        body.position("subscribe").expect("position"),
        StreamPosition::new(6, "q8")
    );
    assert_eq!(body.recovered, Some(true));
    let publications = body.take_publications("news", "q8").expect("valid");
    assert_eq!(
        publications
            .iter()
            .map(|p| (p.offset, p.epoch.as_str(), p.channel.as_str()))
            .collect::<Vec<_>>(),
        [(5, "q8", "news"), (6, "q8", "news")]
    );

    let Incoming::Reply { id, result } =
        decode_text(r#"{"id":3,"error":{"code":"invalid_channel","message":"bad name"}}"#)
            .expect("decodes")
    else {
        panic!("not a reply");
    };
    assert_eq!(id, 3);
    assert!(matches!(
        result,
        Err(ClientError::Server { code: ErrorCode::InvalidChannel, message }) if message == "bad name"
    ));

    assert!(matches!(
        decode_text(r#"{"error":{"code":"bad_request","message":"x"}}"#),
        Ok(Incoming::UnattributedError(ClientError::Server {
            code: ErrorCode::BadRequest,
            ..
        }))
    ));
}

#[test]
fn presence_replies_decode_list_and_count() {
    let Ok(Incoming::Reply {
        result: Ok(body), ..
    }) = decode_text(
        r#"{"id":1,"result":{"clients":[{"client":"a","user":"u","info":{"x":1}},{"client":"b"}]}}"#,
    )
    else {
        panic!("not a reply");
    };
    assert!(matches!(body.clients, Some(super::Clients::List(ref l)) if l.len() == 2));
    let Ok(Incoming::Reply {
        result: Ok(body), ..
    }) = decode_text(r#"{"id":1,"result":{"clients":3,"users":2}}"#)
    else {
        panic!("not a reply");
    };
    assert!(matches!(body.clients, Some(super::Clients::Count(3))));
    assert_eq!(body.users, Some(2));
}

#[test]
fn connect_reply_carries_the_user_and_the_expiry() {
    let Ok(Incoming::Reply {
        result: Ok(body), ..
    }) = decode_text(
        r#"{"id":1,"result":{"client":"k3","version":"0.1.0","ping_interval":25,"max_message_bytes":65536,"user":"alice","expires":1700000000}}"#,
    )
    else {
        panic!("not a reply");
    };
    assert_eq!(body.user.as_deref(), Some("alice"));
    assert_eq!(body.expires, Some(1_700_000_000));
}

#[test]
fn control_pushes_decode() {
    assert!(matches!(
        decode_text(r#"{"push":"ping"}"#),
        Ok(Incoming::Push(Push::Ping))
    ));
    let Ok(Incoming::Push(Push::Disconnect(d))) =
        decode_text(r#"{"push":"disconnect","code":4500,"reason":"bye","reconnect":false}"#)
    else {
        panic!("not a disconnect");
    };
    assert_eq!(
        (d.code, d.reason.as_str(), d.reconnect),
        (Some(4500), "bye", Some(false))
    );
    assert!(matches!(
        decode_text(r#"{"push":"join","channel":"c","info":{"client":"x"}}"#),
        Ok(Incoming::Push(Push::Join { .. }))
    ));
    assert!(matches!(
        decode_text(r#"{"push":"refresh","expires":1700000000}"#),
        Ok(Incoming::Push(Push::Refresh {
            expires: Some(1_700_000_000)
        }))
    ));
    assert!(matches!(
        decode_text(r#"{"push":"something_new","extra":1}"#),
        Ok(Incoming::Push(Push::Unknown(kind))) if kind == "something_new"
    ));
}

#[test]
fn malformed_frames_are_protocol_errors_not_panics() {
    for text in [
        "",
        "[]",
        "{",
        r#"{"push":"publication","channel":"c","offset":-1,"epoch":"e","data":1}"#,
        r#"{"push":"publication","channel":"c","epoch":"e","data":1}"#,
        r#"{"push":"publication","channel":"c","offset":1,"epoch":"e"}"#,
        r#"{"push":"publication","channel":"c","offset":1,"epoch":"e","b64":"***"}"#,
        r#"{"push":"publication","channel":"c","offset":1,"epoch":"e","b64":"aA==","data":1}"#,
        r#"{"id":1}"#,
        r#"{"id":"1","result":{}}"#,
        r#"{"hello":1}"#,
    ] {
        assert!(
            matches!(decode_text(text), Err(ClientError::Protocol(_))),
            "{text}"
        );
    }
    for bytes in [
        &b""[..],
        &[0xc1],
        &[0x81, 0xa1],
        &[0xdf, 0xff, 0xff, 0xff, 0xff],
    ] {
        assert!(matches!(
            decode_binary(bytes),
            Err(ClientError::Protocol(_))
        ));
    }
}
