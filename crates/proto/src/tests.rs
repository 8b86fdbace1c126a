//! Codec tests: each command decodes, bad input gets the documented code, encodings parse
//! back, and arbitrary bytes never panic.

use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Value, json};
use switchboard_core::{ChannelName, Payload, PresenceCount, StreamPosition};

use crate::*;

fn dec(s: &str) -> Result<Request, DecodeError> {
    decode(Format::Json, s.as_bytes())
}

#[test]
fn every_command_decodes_from_json() {
    let r = dec(r#"{"id":1,"cmd":"subscribe","channel":"news","since":{"offset":4,"epoch":"ab"},"join_leave":true}"#).unwrap();
    assert_eq!(r.id, Some(1));
    let Command::Subscribe {
        channel,
        since,
        join_leave,
        ..
    } = r.command
    else {
        panic!()
    };
    assert_eq!(channel.as_str(), "news");
    assert_eq!(since.unwrap().offset, 4);
    assert!(join_leave);

    let r = dec(r#"{"id":2,"cmd":"publish","channel":"a","data":{"x":[1,2]}}"#).unwrap();
    assert_eq!(
        r.command,
        Command::Publish {
            channel: ChannelName::parse("a").unwrap(),
            data: Payload::Json(Bytes::from_static(br#"{"x":[1,2]}"#)),
        }
    );
    let r = dec(r#"{"id":2,"cmd":"publish","channel":"a","data":null}"#).unwrap();
    assert!(
        matches!(r.command, Command::Publish { data: Payload::Json(b), .. } if b.as_ref() == b"null")
    );
    let r = dec(r#"{"cmd":"publish","channel":"a","b64":"AAEC"}"#).unwrap();
    assert_eq!(r.id, None);
    assert!(
        matches!(r.command, Command::Publish { data: Payload::Binary(b), .. } if b.as_ref() == [0, 1, 2])
    );
    assert!(matches!(
        dec(r#"{"id":3,"cmd":"history","channel":"a","limit":5,"before":9}"#)
            .unwrap()
            .command,
        Command::History {
            limit: 5,
            from: Some(switchboard_core::PageFrom::Before(9)),
            ..
        }
    ));
    for cmd in ["ping", "pong"] {
        dec(&format!(r#"{{"cmd":"{cmd}"}}"#)).unwrap();
    }
    for cmd in ["unsubscribe", "presence", "presence_count"] {
        dec(&format!(r#"{{"id":1,"cmd":"{cmd}","channel":"c"}}"#)).unwrap();
    }
    dec(r#"{"id":1,"cmd":"connect","name":"x","info":{"nick":"bob"}}"#).unwrap();
}

#[test]
fn bad_input_gets_the_documented_codes_and_keeps_the_id() {
    let e = dec(r#"{"id":7,"cmd":"publish","channel":"a b","data":1}"#).unwrap_err();
    assert_eq!((e.id, e.code), (Some(7), ErrorCode::InvalidChannel));
    let e = dec(r#"{"id":8,"cmd":"fly"}"#).unwrap_err();
    assert_eq!((e.id, e.code), (Some(8), ErrorCode::UnknownCommand));
    let e = dec(r#"{"id":9,"cmd":"publish","channel":"a"}"#).unwrap_err();
    assert_eq!((e.id, e.code), (Some(9), ErrorCode::InvalidData));
    let e = dec(r#"{"id":10,"cmd":"publish","channel":"a","b64":"%%%"}"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidData);
    let e = dec(r#"{"id":11,"cmd":"subscribe"}"#).unwrap_err();
    assert_eq!((e.id, e.code), (Some(11), ErrorCode::BadRequest));
    let e = dec(r#"{"id":12,"cmd":"history","channel":"a","limit":0}"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
    let e = dec(r#"{"id":13,"cmd":"subscribe","channel":5}"#).unwrap_err();
    assert_eq!((e.id, e.code), (Some(13), ErrorCode::BadRequest));
    let e = dec("not json").unwrap_err();
    assert_eq!((e.id, e.code), (None, ErrorCode::BadRequest));
}

#[test]
fn msgpack_commands_decode_with_binary_and_json_data() {
    let cmd = rmpv::Value::Map(vec![
        ("id".into(), 5u64.into()),
        ("cmd".into(), "publish".into()),
        ("channel".into(), "a".into()),
        ("data".into(), rmpv::Value::Binary(vec![9, 8])),
    ]);
    let mut buf = Vec::new();
    rmpv::encode::write_value(&mut buf, &cmd).unwrap();
    let r = decode(Format::MessagePack, &buf).unwrap();
    assert!(
        matches!(r.command, Command::Publish { data: Payload::Binary(b), .. } if b.as_ref() == [9, 8])
    );

    let cmd = rmpv::Value::Map(vec![
        ("cmd".into(), "publish".into()),
        ("channel".into(), "a".into()),
        (
            "data".into(),
            rmpv::Value::Map(vec![("k".into(), 1.into())]),
        ),
    ]);
    let mut buf = Vec::new();
    rmpv::encode::write_value(&mut buf, &cmd).unwrap();
    let r = decode(Format::MessagePack, &buf).unwrap();
    assert!(
        matches!(r.command, Command::Publish { data: Payload::Json(b), .. } if b.as_ref() == br#"{"k":1}"#)
    );
}

fn published(data: Payload) -> switchboard_core::SharedPublication {
    Arc::new(switchboard_core::Prepared::new(
        switchboard_core::Publication {
            channel: ChannelName::parse("c").unwrap(),
            offset: 1,
            epoch: switchboard_core::Epoch::generate(),
            data,
            info: Some(Arc::new(switchboard_core::ClientInfo {
                client: switchboard_core::ClientId::restore("pub1"),
                user: None,
                conn_info: None,
            })),
            published_at: std::time::Instant::now().into(),
            time_ms: 1,
            except: None,
            volatile: false,
        },
    ))
}

#[test]
fn publication_pushes_parse_back_in_both_formats() {
    let p = published(Payload::json(&br#"{"t":"hi \"x\""}"#[..]).unwrap());
    let v: Value = serde_json::from_slice(&publication_push(Format::Json, &p)).unwrap();
    assert_eq!(v["push"], "publication");
    assert_eq!(v["channel"], "c");
    assert_eq!(v["offset"], 1);
    assert_eq!(v["data"], json!({"t": "hi \"x\""}));
    assert_eq!(
        v["info"]["client"],
        p.info.as_ref().unwrap().client.as_str()
    );

    let m: rmpv::Value =
        rmpv::decode::read_value(&mut &publication_push(Format::MessagePack, &p)[..]).unwrap();
    let data = m
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_str() == Some("data"))
        .unwrap()
        .1
        .clone();
    assert_eq!(
        data,
        rmpv::Value::Map(vec![("t".into(), "hi \"x\"".into())])
    );

    let p = published(Payload::Binary(Bytes::from_static(&[1, 2, 3])));
    let v: Value = serde_json::from_slice(&publication_push(Format::Json, &p)).unwrap();
    assert_eq!(v["b64"], "AQID");
}

#[test]
fn replies_and_errors_are_valid_json() {
    let pos = StreamPosition {
        offset: 3,
        epoch: switchboard_core::Epoch::from_client("e"),
    };
    let v: Value = serde_json::from_slice(&reply(Format::Json, 4, &Reply::Position(&pos))).unwrap();
    assert_eq!(v, json!({"id":4,"result":{"offset":3,"epoch":"e"}}));
    let v: Value = serde_json::from_slice(&reply(
        Format::Json,
        5,
        &Reply::PresenceCount(PresenceCount {
            clients: 2,
            users: 1,
        }),
    ))
    .unwrap();
    assert_eq!(v["result"], json!({"clients":2,"users":1}));
    let v: Value = serde_json::from_slice(&error(
        Format::Json,
        None,
        ErrorCode::BadRequest,
        "bad \"quote\"\n",
    ))
    .unwrap();
    assert_eq!(v["error"]["code"], "bad_request");
    assert!(v.get("id").is_none());
    let v: Value =
        serde_json::from_slice(&disconnect_push(Format::Json, 4001, "slow", true)).unwrap();
    assert_eq!(
        v,
        json!({"push":"disconnect","code":4001,"reason":"slow","reconnect":true})
    );
    let clients = vec![Arc::new(switchboard_core::ClientInfo {
        client: switchboard_core::ClientId::restore("c1"),
        user: Some(switchboard_core::UserId::parse("u\"1").unwrap()),
        conn_info: None,
    })];
    let v: Value =
        serde_json::from_slice(&reply(Format::Json, 1, &Reply::Presence(&clients))).unwrap();
    assert_eq!(v["result"]["clients"][0]["user"], "u\"1");
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(Format::Json, &bytes);
        let _ = decode(Format::MessagePack, &bytes);
    }

    #[test]
    fn publish_commands_round_trip(channel in "[a-z0-9:_.-]{1,40}", n in any::<i64>(), s in ".{0,40}", id in any::<u64>()) {
        let data = json!({"n": n, "s": s});
        let text = serde_json::to_string(&json!({"id": id, "cmd": "publish", "channel": channel, "data": data})).unwrap();
        let r = decode(Format::Json, text.as_bytes()).unwrap();
        prop_assert_eq!(r.id, Some(id));
        let Command::Publish { channel: c, data: Payload::Json(d) } = r.command else { panic!() };
        prop_assert_eq!(c.as_str(), channel.as_str());
        prop_assert_eq!(serde_json::from_slice::<Value>(&d).unwrap(), data);
    }

    #[test]
    fn json_publications_survive_encode_and_parse(n in any::<i64>(), s in ".{0,64}") {
        let data = json!({"n": n, "s": s});
        let p = published(Payload::json(serde_json::to_vec(&data).unwrap()).unwrap());
        let v: Value = serde_json::from_slice(&publication_push(Format::Json, &p)).unwrap();
        prop_assert_eq!(&v["data"], &data);
        let m: rmpv::Value = rmpv::decode::read_value(&mut &publication_push(Format::MessagePack, &p)[..]).unwrap();
        let back: Value = serde_json::to_value(&m).unwrap();
        prop_assert_eq!(&back["data"], &data);
    }
}

#[test]
fn tokens_are_read_from_connect_subscribe_and_refresh() {
    let r = decode(
        Format::Json,
        br#"{"id":1,"cmd":"connect","token":"a.b.c","info":{"name":"x"}}"#,
    )
    .unwrap();
    assert!(matches!(r.command, Command::Connect { token: Some(t), .. } if t == "a.b.c"));
    let r = decode(
        Format::Json,
        br#"{"id":2,"cmd":"subscribe","channel":"p:1","token":"s"}"#,
    )
    .unwrap();
    assert!(matches!(r.command, Command::Subscribe { token: Some(t), .. } if t == "s"));
    let r = decode(Format::Json, br#"{"id":3,"cmd":"refresh","token":"n"}"#).unwrap();
    assert_eq!(
        r.command,
        Command::Refresh {
            token: "n".to_owned()
        }
    );
    let e = decode(Format::Json, br#"{"id":4,"cmd":"refresh"}"#).unwrap_err();
    assert_eq!((e.id, e.code), (Some(4), ErrorCode::BadRequest));
    let e = decode(Format::Json, br#"{"id":5,"cmd":"connect","token":7}"#).unwrap_err();
    assert_eq!((e.id, e.code), (Some(5), ErrorCode::BadRequest));
}

#[test]
fn the_refresh_push_and_reply_carry_the_expiry() {
    assert_eq!(
        refresh_push(Format::Json, 1700000000),
        br#"{"push":"refresh","expires":1700000000}"#
    );
    let b = reply(Format::Json, 9, &Reply::Refresh { expires: Some(5) });
    assert_eq!(b, br#"{"id":9,"result":{"expires":5}}"#);
}

#[test]
fn rpc_decodes_with_its_method_and_data_and_its_answer_encodes_in_both_formats() {
    let r = dec(r#"{"id":3,"cmd":"rpc","method":"add","data":{"a":1}}"#).unwrap();
    assert_eq!(
        r.command,
        Command::Rpc {
            method: "add".into(),
            data: Payload::Json(Bytes::from_static(br#"{"a":1}"#)),
        }
    );
    // No data is null data.
    let r = dec(r#"{"id":3,"cmd":"rpc","method":"now"}"#).unwrap();
    assert!(
        matches!(r.command, Command::Rpc { data: Payload::Json(ref d), .. } if d.as_ref() == b"null")
    );
    for bad in [
        r#"{"id":4,"cmd":"rpc"}"#.to_owned(),
        r#"{"id":4,"cmd":"rpc","method":""}"#.to_owned(),
        format!(
            r#"{{"id":4,"cmd":"rpc","method":"{}"}}"#,
            "m".repeat(MAX_METHOD_BYTES + 1)
        ),
    ] {
        let e = dec(&bad).unwrap_err();
        assert_eq!((e.id, e.code), (Some(4), ErrorCode::BadRequest), "{bad}");
    }
    let answer = switchboard_core::RawJson::new(Bytes::from_static(br#"{"sum":3}"#));
    let json: Value =
        serde_json::from_slice(&reply(Format::Json, 3, &Reply::Rpc(&answer))).unwrap();
    assert_eq!(json, json!({"id":3,"result":{"data":{"sum":3}}}));
    let mp: Value =
        rmp_serde::from_slice(&reply(Format::MessagePack, 3, &Reply::Rpc(&answer))).unwrap();
    assert_eq!(mp, json!({"id":3,"result":{"data":{"sum":3}}}));
}

#[test]
fn json_data_without_a_messagepack_form_is_refused_at_the_edge() {
    // Both pass a syntax check, but MessagePack subscribers would get nil.
    for data in [
        "1e400",
        r#""\ud800""#,
        r#"{"a":[-1e999]}"#,
        r#"{"\udc00":1}"#,
    ] {
        let frame = format!(r#"{{"id":5,"cmd":"publish","channel":"a","data":{data}}}"#);
        let e = dec(&frame).unwrap_err();
        assert_eq!((e.id, e.code), (Some(5), ErrorCode::InvalidData), "{data}");
        let frame = format!(r#"{{"id":6,"cmd":"connect","info":{data}}}"#);
        assert_eq!(
            dec(&frame).unwrap_err().code,
            ErrorCode::InvalidData,
            "{data}"
        );
    }
    // Valid escapes, big integers and small floats stay accepted.
    for data in [
        r#""\ud83d\ude00""#,
        "18446744073709551615",
        "-9223372036854775808",
        "1.5e300",
    ] {
        let frame = format!(r#"{{"id":7,"cmd":"publish","channel":"a","data":{data}}}"#);
        assert!(dec(&frame).is_ok(), "{data}");
    }
}
