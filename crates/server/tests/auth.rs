//! Authentication and permissions over real sockets, for every transport: tokens signed with
//! every accepted algorithm, forged, `alg: none`, wrong key, expired, not yet valid, wrong
//! audience; refresh without reconnecting; subscription tokens, `channels` grants, user-limited
//! channels and namespace rules; origins and cookie CSRF. Each refusal asserts the documented
//! code, that the refusal metric moved, and (where it matters) that a well-behaved client on
//! the same server kept receiving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{path::PathBuf, time::Duration};

use common::{TestServer, Ws, metric};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use switchboard_core::{Access, NamespaceOptions};
use switchboard_server::{AuthConfig, Config, auth::KeyConfig};

const SECRET: &str = "test-secret-of-at-least-thirty-two-bytes!";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn key_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

fn sign_with(alg: Algorithm, key: &EncodingKey, claims: Value, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn hs(claims: Value) -> String {
    sign_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        claims,
        None,
    )
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(key_file(name)).unwrap()
}

/// A server that requires HS256 tokens (anonymous off), edited further by `edit`.
async fn secured(edit: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::with(|c| {
        c.auth = AuthConfig {
            hmac_secret: Some(SECRET.to_owned()),
            ..AuthConfig::default()
        };
        edit(c);
    })
    .await
}

async fn refusals(server: &TestServer, transport: &str, reason: &str) -> f64 {
    let text = server.metrics().await;
    metric(
        &text,
        &format!(
            "switchboard_security_refusals_total{{transport=\"{transport}\",reason=\"{reason}\"}}"
        ),
    )
}

/// A WebSocket that sent `connect` with `token`; returns it and the reply.
async fn connect(server: &TestServer, token: &str) -> (Ws, Value) {
    let mut ws = Ws::connect(server).await;
    let r = ws.call(json!({"cmd":"connect","token":token})).await;
    (ws, r)
}

/// A subscriber that must keep receiving while others misbehave.
async fn bystander(server: &TestServer, channel: &str) -> Ws {
    let (mut ws, r) = connect(server, &hs(json!({"sub":"bystander","aud":"switchboard"}))).await;
    assert!(r.get("result").is_some(), "{r}");
    ws.subscribe(channel).await;
    ws
}

async fn still_receives(server: &TestServer, ws: &mut Ws, channel: &str, n: u64) {
    server.publish(channel, json!({"n": n})).await;
    loop {
        let v = ws.recv().await;
        if v["push"] == "publication" {
            assert_eq!(v["data"]["n"], n, "{v}");
            return;
        }
    }
}

#[tokio::test]
async fn a_valid_token_names_the_user_and_its_info_shows_in_presence() {
    let server = secured(|_| {}).await;
    let token = hs(json!({"sub":"42","exp":now() + 3600,"info":{"name":"Ada"}}));
    let (mut ws, r) = connect(&server, &token).await;
    assert_eq!(r["result"]["user"], "42", "{r}");
    assert!(near(&r["result"]["expires"], now() + 3600), "{r}");
    ws.subscribe("room").await;
    let p = ws.call(json!({"cmd":"presence","channel":"room"})).await;
    assert_eq!(p["result"]["clients"][0]["user"], "42", "{p}");
    assert_eq!(p["result"]["clients"][0]["info"]["name"], "Ada", "{p}");
    server.stop().await;
}

/// `v` is unix second `t`, give or take the seconds a test takes.
fn near(v: &Value, t: u64) -> bool {
    v.as_u64().is_some_and(|v| v.abs_diff(t) <= 2)
}

#[tokio::test]
async fn every_accepted_algorithm_verifies_with_its_configured_key() {
    let server = TestServer::with(|c| {
        c.auth.keys = vec![
            KeyConfig {
                public_key_file: Some(key_file("rsa.pub.pem")),
                ..KeyConfig::default()
            },
            KeyConfig {
                public_key_file: Some(key_file("ec256.pub.pem")),
                ..KeyConfig::default()
            },
            KeyConfig {
                public_key_file: Some(key_file("ec384.pub.pem")),
                ..KeyConfig::default()
            },
            KeyConfig {
                public_key: Some(String::from_utf8(pem("ed25519.pub.pem")).unwrap()),
                ..KeyConfig::default()
            },
            KeyConfig {
                hmac_secret: Some(SECRET.to_owned()),
                ..KeyConfig::default()
            },
        ];
    })
    .await;
    let rsa = EncodingKey::from_rsa_pem(&pem("rsa.pem")).unwrap();
    let hmac = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    let cases = [
        (Algorithm::RS256, rsa.clone()),
        (Algorithm::RS384, rsa.clone()),
        (Algorithm::RS512, rsa.clone()),
        (Algorithm::PS256, rsa.clone()),
        (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&pem("ec256.pem")).unwrap(),
        ),
        (
            Algorithm::ES384,
            EncodingKey::from_ec_pem(&pem("ec384.pem")).unwrap(),
        ),
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&pem("ed25519.pem")).unwrap(),
        ),
        (Algorithm::HS256, hmac.clone()),
        (Algorithm::HS384, hmac.clone()),
        (Algorithm::HS512, hmac),
    ];
    for (alg, key) in cases {
        let token = sign_with(alg, &key, json!({"sub": format!("{alg:?}")}), None);
        let (_ws, r) = connect(&server, &token).await;
        assert_eq!(r["result"]["user"], format!("{alg:?}"), "{alg:?}: {r}");
    }
    server.stop().await;
}

#[tokio::test]
async fn forged_and_invalid_tokens_are_refused_and_others_keep_receiving() {
    let server = secured(|c| c.auth.audience = Some("switchboard".to_owned())).await;
    let mut ok = bystander(&server, "feed").await;
    let exp = now() + 600;
    let other_secret =
        EncodingKey::from_secret(b"another-secret-of-at-least-thirty-two-b").unwrap();
    let other_rsa = EncodingKey::from_rsa_pem(&pem("other-rsa.pem")).unwrap();
    let good = json!({"sub":"1","aud":"switchboard","exp":exp});
    // `alg: none`, hand-made: no library signs it.
    let b64 = |v: Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(json!({"alg":"none","typ":"JWT"})),
        b64(good.clone())
    );
    let tampered = {
        let t = hs(good.clone());
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged_claims = b64(json!({"sub":"admin","aud":"switchboard","exp":exp}));
        parts[1] = &forged_claims;
        parts.join(".")
    };
    let cases: Vec<(&str, String, &str, u16)> = vec![
        (
            "wrong secret",
            sign_with(Algorithm::HS256, &other_secret, good.clone(), None),
            "signature",
            4501,
        ),
        ("tampered claims", tampered, "signature", 4501),
        ("alg none", none, "algorithm", 4501),
        (
            "RSA key not configured",
            sign_with(Algorithm::RS256, &other_rsa, good.clone(), None),
            "algorithm",
            4501,
        ),
        ("garbage", "not.a.token".to_owned(), "malformed", 4501),
        (
            "expired",
            hs(json!({"sub":"1","aud":"switchboard","exp":now() - 60})),
            "expired",
            4003,
        ),
        (
            "not yet valid",
            hs(json!({"sub":"1","aud":"switchboard","nbf":now() + 600})),
            "not_yet_valid",
            4501,
        ),
        (
            "wrong audience",
            hs(json!({"sub":"1","aud":"other","exp":exp})),
            "audience",
            4501,
        ),
        (
            "no audience",
            hs(json!({"sub":"1","exp":exp})),
            "missing_claim",
            4501,
        ),
        (
            "anonymous sub",
            hs(json!({"sub":"","aud":"switchboard"})),
            "anonymous",
            4501,
        ),
        (
            "subscription token",
            hs(json!({"sub":"1","aud":"switchboard","channel":"x"})),
            "subscription_token",
            4501,
        ),
    ];
    // SSE and polling: the same tokens get HTTP 401 with the same codes.
    let http = reqwest::Client::new();
    for (what, token, reason, code) in &cases {
        for (transport, path) in [("sse", "/sse?channel=feed"), ("poll", "/poll?channel=feed")] {
            let before = refusals(&server, transport, reason).await;
            let r = http
                .get(server.url(path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{transport} {what}");
            let body: Value = r.json().await.unwrap();
            let want = if *code == 4003 {
                "token_expired"
            } else {
                "unauthorized"
            };
            assert_eq!(body["error"]["code"], want, "{transport} {what}: {body}");
            assert_eq!(
                refusals(&server, transport, reason).await,
                before + 1.0,
                "{transport} {what}"
            );
        }
    }
    for (what, token, reason, code) in cases {
        let before = refusals(&server, "websocket", reason).await;
        let (mut ws, r) = connect(&server, &token).await;
        let want = if code == 4003 {
            "token_expired"
        } else {
            "unauthorized"
        };
        assert_eq!(r["error"]["code"], want, "{what}: {r}");
        assert_eq!(ws.closed().await, code, "{what}");
        assert_eq!(
            refusals(&server, "websocket", reason).await,
            before + 1.0,
            "{what}"
        );
    }
    still_receives(&server, &mut ok, "feed", 1).await;
    server.stop().await;
}

#[tokio::test]
async fn without_a_token_nothing_but_connect_is_accepted() {
    let server = secured(|c| c.auth.connect_timeout_seconds = 1).await;
    let mut ws = Ws::connect(&server).await;
    let r = ws.call(json!({"cmd":"subscribe","channel":"news"})).await;
    assert_eq!(r["error"]["code"], "unauthorized", "{r}");
    assert_eq!(ws.closed().await, 4501);
    let mut ws = Ws::connect(&server).await;
    let r = ws.call(json!({"cmd":"connect"})).await;
    assert_eq!(r["error"]["code"], "unauthorized", "{r}");
    assert_eq!(ws.closed().await, 4501);
    // A connection that says nothing is closed after the connect timeout.
    let mut idle = Ws::connect(&server).await;
    assert_eq!(idle.closed().await, 4005);
    assert_eq!(refusals(&server, "websocket", "connect_timeout").await, 1.0);
    server.stop().await;
}

#[tokio::test]
async fn a_token_in_the_upgrade_request_authenticates_before_the_upgrade() {
    let server = secured(|_| {}).await;
    let bearer = format!("Bearer {}", hs(json!({"sub":"7"})));
    let mut ws = Ws::connect_with(&server, "/ws", &[("authorization", &bearer)])
        .await
        .unwrap();
    // No connect needed: the first command registers the connection as user 7.
    ws.subscribe("room").await;
    let p = ws.call(json!({"cmd":"presence","channel":"room"})).await;
    assert_eq!(p["result"]["clients"][0]["user"], "7", "{p}");
    let query = format!("/ws?token={}", hs(json!({"sub":"8"})));
    let mut ws = Ws::connect_with(&server, &query, &[]).await.unwrap();
    let r = ws.call(json!({"cmd":"connect"})).await;
    assert_eq!(r["result"]["user"], "8", "{r}");
    let forged = format!("Bearer {}x", hs(json!({"sub":"7"})));
    let refused = Ws::connect_with(&server, "/ws", &[("authorization", &forged)]).await;
    assert_eq!(refused.err(), Some(401));
    server.stop().await;
}

#[tokio::test]
async fn a_connection_refreshes_its_token_without_reconnecting() {
    let server = secured(|c| c.auth.refresh_before_seconds = 60).await;
    // Asked to refresh at half its remaining life (2 s of 4), closed at expiry otherwise.
    let (mut lazy, _) = connect(&server, &hs(json!({"sub":"5","exp":now() + 3}))).await;
    let (mut ws, r) = connect(&server, &hs(json!({"sub":"5","exp":now() + 4}))).await;
    assert!(r.get("result").is_some(), "{r}");
    ws.subscribe("clock").await;
    let push = loop {
        let v = ws.recv().await;
        if v["push"] == "refresh" {
            break v;
        }
    };
    assert!(push["expires"].as_u64().unwrap() >= now(), "{push}");
    let r = ws
        .call(json!({"cmd":"refresh","token":hs(json!({"sub":"5","exp":now() + 3600}))}))
        .await;
    assert!(near(&r["result"]["expires"], now() + 3600), "{r}");
    assert_eq!(lazy.closed().await, 4003, "no refresh: closed at expiry");
    // Past the first token's expiry the refreshed connection still receives.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    still_receives(&server, &mut ws, "clock", 1).await;
    // A refresh with another user's token is refused and ends the connection.
    let r = ws
        .call(json!({"cmd":"refresh","token":hs(json!({"sub":"6"}))}))
        .await;
    assert_eq!(r["error"]["code"], "unauthorized", "{r}");
    assert_eq!(ws.closed().await, 4501);
    assert_eq!(refusals(&server, "websocket", "wrong_user").await, 1.0);
    server.stop().await;
}

fn namespaces(c: &mut Config) {
    c.namespaces.insert(
        "private".to_owned(),
        NamespaceOptions {
            subscribe: Some(Access::NOBODY),
            ..NamespaceOptions::default()
        },
    );
    c.namespaces.insert(
        "news".to_owned(),
        NamespaceOptions {
            publish: Some(Access::NOBODY),
            read_history: Some(
                serde_json::from_value(json!({"claim":"plan","any_of":["pro"]})).unwrap(),
            ),
            ..NamespaceOptions::default()
        },
    );
}

#[tokio::test]
async fn channel_rules_grants_and_subscription_tokens_decide_who_subscribes() {
    let server = secured(namespaces).await;
    let mut ok = bystander(&server, "feed").await;
    let (mut ws, _) = connect(&server, &hs(json!({"sub":"1"}))).await;
    let before = refusals(&server, "websocket", "permission_denied").await;
    let r = ws
        .call(json!({"cmd":"subscribe","channel":"private:a"}))
        .await;
    assert_eq!(r["error"]["code"], "permission_denied", "{r}");
    // A subscription token from the application opens it; one for another channel or
    // another user does not, and the connection stays open.
    let for_a = hs(json!({"sub":"1","channel":"private:a","exp":now() + 60}));
    let for_b = hs(json!({"sub":"1","channel":"private:b"}));
    let for_2 = hs(json!({"sub":"2","channel":"private:a"}));
    let r = ws
        .call(json!({"cmd":"subscribe","channel":"private:a","token":for_b}))
        .await;
    assert_eq!(r["error"]["code"], "unauthorized", "{r}");
    let r = ws
        .call(json!({"cmd":"subscribe","channel":"private:a","token":for_2}))
        .await;
    assert_eq!(r["error"]["code"], "unauthorized", "{r}");
    let r = ws
        .call(json!({"cmd":"subscribe","channel":"private:a","token":for_a}))
        .await;
    assert!(r.get("result").is_some(), "{r}");
    // A `channels` claim grants a whole namespace.
    let (mut granted, _) = connect(&server, &hs(json!({"sub":"3","channels":["private:*"]}))).await;
    granted.subscribe("private:z").await;
    // Publishing where only reading is allowed, reading history without the claim.
    let r = ws
        .call(json!({"cmd":"publish","channel":"news:1","data":{}}))
        .await;
    assert_eq!(r["error"]["code"], "permission_denied", "{r}");
    let r = ws.call(json!({"cmd":"history","channel":"news:1"})).await;
    assert_eq!(r["error"]["code"], "permission_denied", "{r}");
    let (mut pro, _) = connect(&server, &hs(json!({"sub":"4","plan":"pro"}))).await;
    let r = pro.call(json!({"cmd":"history","channel":"news:1"})).await;
    assert!(r.get("result").is_some(), "{r}");
    assert!(refusals(&server, "websocket", "permission_denied").await >= before + 3.0);
    still_receives(&server, &mut ok, "feed", 2).await;
    server.stop().await;
}

#[tokio::test]
async fn user_limited_channels_refuse_other_users_on_every_transport() {
    let server = secured(|_| {}).await;
    let (mut owner, _) = connect(&server, &hs(json!({"sub":"42"}))).await;
    owner.subscribe("dialog#42,43").await;
    let (mut other, _) = connect(&server, &hs(json!({"sub":"7"}))).await;
    for cmd in [
        json!({"cmd":"subscribe","channel":"dialog#42,43"}),
        json!({"cmd":"publish","channel":"dialog#42,43","data":{}}),
        json!({"cmd":"history","channel":"dialog#42,43"}),
        json!({"cmd":"presence","channel":"dialog#42,43"}),
    ] {
        let r = other.call(cmd.clone()).await;
        assert_eq!(r["error"]["code"], "permission_denied", "{cmd}: {r}");
    }
    let http = reqwest::Client::new();
    let seven = hs(json!({"sub":"7"}));
    let sse = http
        .get(server.url("/sse?channel=dialog%2342%2C43"))
        .bearer_auth(&seven)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 403);
    let poll = http
        .get(server.url(&format!("/poll?channel=dialog%2342%2C43&token={seven}")))
        .send()
        .await
        .unwrap();
    assert_eq!(poll.status(), 403);
    let post = http
        .post(server.url("/poll"))
        .bearer_auth(&seven)
        .body(r#"{"channel":"dialog#42,43","data":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 403);
    assert_eq!(refusals(&server, "sse", "permission_denied").await, 1.0);
    assert_eq!(refusals(&server, "poll", "permission_denied").await, 2.0);
    server.stop().await;
}

#[tokio::test]
async fn sse_and_poll_take_tokens_from_the_header_the_query_or_a_cookie() {
    let server = secured(|c| c.auth.cookie = Some("sb".to_owned())).await;
    let http = reqwest::Client::new();
    let token = hs(json!({"sub":"9"}));
    let (status, body) = {
        let r = http
            .get(server.url("/poll?channel=a"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("unauthorized")),
        "{body}"
    );
    for req in [
        http.get(server.url("/poll?channel=a")).bearer_auth(&token),
        http.get(server.url(&format!("/poll?channel=a&token={token}"))),
        http.get(server.url("/poll?channel=a"))
            .header("cookie", format!("sb={token}")),
    ] {
        assert_eq!(req.send().await.unwrap().status(), 200);
    }
    let expired = hs(json!({"sub":"9","exp":now() - 60}));
    let r = http
        .get(server.url(&format!("/sse?channel=a&token={expired}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "token_expired"
    );
    // A cookie-authenticated publish needs an Origin (CSRF); an allowed one passes.
    let post = |origin: Option<&str>| {
        let mut r = http
            .post(server.url("/poll"))
            .header("cookie", format!("sb={token}"))
            .body(r#"{"channel":"a","data":{"x":1}}"#);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    let r = post(None).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "origin_not_allowed"
    );
    assert_eq!(refusals(&server, "poll", "csrf").await, 1.0);
    assert_eq!(post(Some(&server.url(""))).await.unwrap().status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn an_sse_stream_ends_with_4003_when_its_token_expires() {
    let server = secured(|_| {}).await;
    let token = hs(json!({"sub":"9","exp":now() + 2}));
    let mut r = reqwest::Client::new()
        .get(server.url(&format!("/sse?channel=a&token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(common::WAIT, r.chunk())
        .await
        .unwrap()
        .unwrap()
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: disconnect"), "{text}");
    assert!(text.contains("\"code\":4003"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn disallowed_origins_are_refused_and_allowed_ones_get_cors_headers() {
    let server =
        TestServer::with(|c| c.allowed_origins = vec!["https://app.example".to_owned()]).await;
    let evil = [("origin", "https://evil.example")];
    assert_eq!(
        Ws::connect_with(&server, "/ws", &evil).await.err(),
        Some(403)
    );
    assert!(
        Ws::connect_with(&server, "/ws", &[("origin", "https://app.example")])
            .await
            .is_ok()
    );
    let same = server.url("");
    assert!(
        Ws::connect_with(&server, "/ws", &[("origin", &same)])
            .await
            .is_ok()
    );
    let http = reqwest::Client::new();
    let r = http
        .get(server.url("/poll?channel=a"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .request(reqwest::Method::OPTIONS, server.url("/poll"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let r = http
        .get(server.url("/sse?channel=a"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(refusals(&server, "websocket", "origin").await, 1.0);
    assert_eq!(refusals(&server, "poll", "origin").await, 1.0);
    server.stop().await;
}

#[tokio::test]
async fn keys_published_as_a_jwks_verify_tokens_and_a_new_kid_is_fetched() {
    use std::sync::{Arc, Mutex};
    let rsa = EncodingKey::from_rsa_pem(&pem("rsa.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&pem("ec256.pem")).unwrap();
    let jwk = |key: &EncodingKey, alg, kid: &str| {
        let mut j = jsonwebtoken::jwk::Jwk::from_encoding_key(key, alg).unwrap();
        j.common.key_id = Some(kid.to_owned());
        j
    };
    let doc = Arc::new(Mutex::new(
        json!({"keys":[jwk(&rsa, Algorithm::RS256, "k1")]}),
    ));
    let served = doc.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let d = served.lock().unwrap().clone();
            async move { axum::Json(d) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let server = TestServer::with(|c| {
        c.auth.jwks_url = Some(format!("http://{jwks_addr}/jwks.json"));
        c.auth.jwks_min_refetch_seconds = 0;
    })
    .await;
    let t1 = sign_with(Algorithm::RS256, &rsa, json!({"sub":"j1"}), Some("k1"));
    let (_a, r) = connect(&server, &t1).await;
    assert_eq!(r["result"]["user"], "j1", "{r}");
    // The key server rotates: a token with the new kid makes the server fetch again.
    doc.lock().unwrap()["keys"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::to_value(jwk(&ec, Algorithm::ES256, "k2")).unwrap());
    let t2 = sign_with(Algorithm::ES256, &ec, json!({"sub":"j2"}), Some("k2"));
    let (_b, r) = connect(&server, &t2).await;
    assert_eq!(r["result"]["user"], "j2", "{r}");
    let t3 = sign_with(Algorithm::ES256, &ec, json!({"sub":"j3"}), Some("k3"));
    let (mut c, r) = connect(&server, &t3).await;
    assert_eq!(r["error"]["code"], "unauthorized", "{r}");
    assert_eq!(c.closed().await, 4501);
    server.stop().await;
}
