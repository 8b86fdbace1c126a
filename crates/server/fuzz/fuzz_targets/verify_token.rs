//! Tokens through `auth::token::verify`. Arbitrary text, as a client sends it, is accepted
//! only if it carries a valid signature by the server's key. Arbitrary claims bytes signed
//! with that key are accepted or refused for their claims, never for the signature, and the
//! claims read back are the token's.
#![no_main]

use std::sync::LazyLock;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use switchboard_server::{
    auth::{KeyConfig, TokenError},
    fuzzing::{TokenVerifier, VerifiedClaims, grants},
};

const SECRET: &str = "fuzzing-secret-of-at-least-32-bytes!";
const HMAC: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

fn verifier(strict: bool) -> TokenVerifier {
    let key = KeyConfig {
        hmac_secret: Some(SECRET.to_owned()),
        ..KeyConfig::default()
    };
    let (aud, iss) = match strict {
        true => (Some("switchboard".to_owned()), Some("backend".to_owned())),
        false => (None, None),
    };
    TokenVerifier::new(&[key], aud, iss, 5, strict).expect("a 32-byte HMAC secret loads")
}

static LENIENT: LazyLock<TokenVerifier> = LazyLock::new(|| verifier(false));
static STRICT: LazyLock<TokenVerifier> = LazyLock::new(|| verifier(true));

fn sign(message: &str, alg: Algorithm) -> String {
    let key =
        EncodingKey::from_secret(SECRET.as_bytes()).expect("an HMAC secret of any length is a key");
    jsonwebtoken::crypto::sign(message.as_bytes(), &key, alg).expect("HMAC signing cannot fail")
}

fn check_claims(c: &VerifiedClaims, strict: bool) {
    let all = &c.all;
    let sub = all
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    assert_eq!(c.user.as_deref(), sub);
    let channels: Vec<&str> = match all.get("channels") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    assert_eq!(c.channels, channels);
    assert!(c.channels.iter().all(|p| grants(&c.channels, p)));
    assert_eq!(
        c.channel.as_deref(),
        all.get("channel").and_then(Value::as_str)
    );
    let info = all
        .get("info")
        .filter(|v| !v.is_null())
        .map(Value::to_string);
    assert_eq!(c.info.as_deref(), info.as_deref().map(str::as_bytes));
    assert_eq!(
        c.expires.is_some(),
        all.get("exp").is_some_and(Value::is_number)
    );
    if strict {
        assert!(c.expires.is_some(), "require_exp");
        assert_eq!(all.get("iss").and_then(Value::as_str), Some("backend"));
        let aud = all.get("aud").expect("audience is required");
        assert!(
            aud == "switchboard"
                || aud
                    .as_array()
                    .is_some_and(|a| a.contains(&"switchboard".into()))
        );
    }
}

fuzz_target!(|input: (bool, bool, u8, &[u8])| {
    let (signed, strict, alg, body) = input;
    let verifier = if strict { &*STRICT } else { &*LENIENT };
    if !signed {
        let Ok(token) = std::str::from_utf8(body) else {
            return;
        };
        if let Ok(claims) = verifier.verify(token) {
            let (message, signature) = token.rsplit_once('.').expect("a JWT has three parts");
            assert!(
                HMAC.iter().any(|alg| sign(message, *alg) == signature),
                "forged token accepted"
            );
            check_claims(&claims, strict);
        }
        return;
    }
    // A token the server's own backend could have signed, around arbitrary claims.
    let alg = HMAC[usize::from(alg) % HMAC.len()];
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg:?}","typ":"JWT"}}"#));
    let message = format!("{header}.{}", URL_SAFE_NO_PAD.encode(body));
    let token = format!("{message}.{}", sign(&message, alg));
    match verifier.verify(&token) {
        Ok(claims) => {
            let sent: Map<String, Value> =
                serde_json::from_slice(body).expect("accepted claims are a JSON object");
            assert_eq!(claims.all, sent);
            check_claims(&claims, strict);
        }
        Err(e @ (TokenError::Signature | TokenError::Algorithm(_) | TokenError::UnknownKey(_))) => {
            panic!("a token signed with the server's key was refused: {e}")
        }
        Err(TokenError::Malformed(_))
            if token.len() > switchboard_server::fuzzing::MAX_TOKEN_BYTES => {}
        Err(_) => {}
    }
});
