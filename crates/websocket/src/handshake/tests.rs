use super::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn valid() -> UpgradeRequest<'static> {
    UpgradeRequest {
        method: "GET",
        upgrade: Some("websocket"),
        connection: Some("Upgrade"),
        version: Some("13"),
        key: Some(KEY),
    }
}

#[test]
fn accept_key_matches_the_rfc_example() {
    assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn a_valid_request_yields_the_accept_value() {
    assert_eq!(validate_upgrade(&valid()), Ok(accept_key(KEY)));
}

#[test]
fn header_tokens_compare_case_insensitively_inside_lists() {
    let request = UpgradeRequest {
        upgrade: Some("h2c, WebSocket"),
        connection: Some("keep-alive,  UPGRADE "),
        version: Some(" 13 "),
        key: Some("  dGhlIHNhbXBsZSBub25jZQ== "),
        ..valid()
    };
    assert_eq!(validate_upgrade(&request), Ok(accept_key(KEY)));
}

#[test]
fn a_method_other_than_get_is_a_bad_request() {
    let err = validate_upgrade(&UpgradeRequest {
        method: "POST",
        ..valid()
    });
    assert_eq!(err, Err(HandshakeError::MethodNotGet));
    assert_eq!(HandshakeError::MethodNotGet.http_status(), 400);
}

#[test]
fn missing_or_wrong_upgrade_header_is_a_bad_request() {
    for upgrade in [None, Some("h2c"), Some("websockets"), Some("")] {
        let err = validate_upgrade(&UpgradeRequest { upgrade, ..valid() });
        assert_eq!(err, Err(HandshakeError::MissingUpgrade), "{upgrade:?}");
    }
}

#[test]
fn connection_must_list_the_upgrade_token() {
    for connection in [None, Some("keep-alive"), Some("upgraded")] {
        let err = validate_upgrade(&UpgradeRequest {
            connection,
            ..valid()
        });
        assert_eq!(
            err,
            Err(HandshakeError::MissingConnectionUpgrade),
            "{connection:?}"
        );
    }
}

#[test]
fn other_versions_get_426() {
    for version in [None, Some("8"), Some("13, 8"), Some("")] {
        let err = validate_upgrade(&UpgradeRequest { version, ..valid() });
        assert_eq!(err, Err(HandshakeError::UnsupportedVersion), "{version:?}");
    }
    assert_eq!(HandshakeError::UnsupportedVersion.http_status(), 426);
}

#[test]
fn keys_must_be_base64_of_sixteen_bytes() {
    let bad = [
        None,
        Some(""),
        Some("dGhlIHNhbXBsZSBub25jZQ"),       // unpadded
        Some("dGhlIHNhbXBsZSBub25jZSE="),     // 17 bytes
        Some("dGhlIHNhbXBsZSBub25jZQ==AAAA"), // too long
        Some("dGhlIHNhbXBsZSBub25jZ!=="),     // not base64
    ];
    for key in bad {
        let err = validate_upgrade(&UpgradeRequest { key, ..valid() });
        assert_eq!(err, Err(HandshakeError::InvalidKey), "{key:?}");
    }
}

#[test]
fn subprotocol_follows_server_preference() {
    let supported = ["b", "a"];
    assert_eq!(select_subprotocol(Some("a,b"), &supported), Some("b"));
    assert_eq!(select_subprotocol(Some(" a "), &supported), Some("a"));
    assert_eq!(select_subprotocol(Some("A"), &supported), None);
    assert_eq!(select_subprotocol(None, &supported), None);
    assert_eq!(select_subprotocol(Some("a"), &[]), None);
}

#[test]
fn response_lists_optional_headers_only_when_given() {
    let head = switching_protocols_response("x", Some("p"), Some("permessage-deflate"));
    assert_eq!(
        head,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: x\r\nSec-WebSocket-Protocol: p\r\n\
         Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    );
    assert!(!switching_protocols_response("x", None, None).contains("Sec-WebSocket-Protocol"));
}
