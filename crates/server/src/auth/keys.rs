//! Verification keys: loaded at start from the configuration (inline, from a file, or from an
//! environment variable through the usual `SWITCHBOARD_AUTH__…` settings), each with the
//! algorithms it verifies. An HMAC secret verifies HS256/384/512; a PEM public key is
//! recognised as RSA (RS256/384/512, PS256/384/512), EC (ES256, ES384) or Ed25519 (EdDSA).

use std::{fs, path::PathBuf};

use jsonwebtoken::{Algorithm, DecodingKey, jwk::Jwk};
use serde::{Deserialize, Serialize};

/// One verification key of `[[auth.keys]]`: exactly one of the four sources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyConfig {
    /// Only tokens whose header names this `kid` are checked against this key (a key
    /// without one is tried for every token of its algorithms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// An HMAC secret (HS256/384/512).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hmac_secret: Option<String>,
    /// A file holding the HMAC secret (surrounding whitespace is ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hmac_secret_file: Option<PathBuf>,
    /// A PEM public key: RSA, EC P-256/P-384 or Ed25519.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// A file holding a PEM public key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<PathBuf>,
}

/// A key ready to verify.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<String>,
    pub(crate) key: DecodingKey,
    pub(crate) algorithms: Vec<Algorithm>,
}

const HMAC: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Why a configured key cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("auth.keys[{index}]: {reason}")]
pub struct KeyError {
    /// The key's place in `auth.keys` (the `auth.hmac_secret` shortcut comes first).
    pub index: usize,
    /// What is wrong.
    pub reason: String,
}

impl KeyConfig {
    /// Reads and parses the key.
    pub(crate) fn load(&self, index: usize) -> Result<VerifyingKey, KeyError> {
        let fail = |reason: String| KeyError { index, reason };
        let read = |path: &PathBuf| {
            fs::read_to_string(path)
                .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))
        };
        let sources = [
            self.hmac_secret.is_some(),
            self.hmac_secret_file.is_some(),
            self.public_key.is_some(),
            self.public_key_file.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(fail(
                "give exactly one of hmac_secret, hmac_secret_file, public_key, public_key_file"
                    .to_owned(),
            ));
        }
        let (key, algorithms) = if self.hmac_secret.is_some() || self.hmac_secret_file.is_some() {
            let secret = match (&self.hmac_secret, &self.hmac_secret_file) {
                (Some(s), _) => s.clone(),
                (None, Some(path)) => read(path)?.trim().to_owned(),
                (None, None) => String::new(),
            };
            if secret.len() < 32 {
                return Err(fail(
                    "an HMAC secret must be at least 32 bytes (256 bits)".to_owned(),
                ));
            }
            let key = DecodingKey::from_secret(secret.as_bytes())
                .map_err(|e| fail(format!("bad HMAC secret: {e}")))?;
            (key, HMAC.to_vec())
        } else {
            let pem = match (&self.public_key, &self.public_key_file) {
                (Some(p), _) => p.clone(),
                (None, Some(path)) => read(path)?,
                (None, None) => String::new(),
            };
            public_key(pem.as_bytes()).ok_or_else(|| {
                fail("not a PEM RSA, EC (P-256/P-384) or Ed25519 public key".to_owned())
            })?
        };
        Ok(VerifyingKey {
            kid: self.kid.clone(),
            key,
            algorithms,
        })
    }
}

/// Recognises a PEM public key by trying each kind in turn.
fn public_key(pem: &[u8]) -> Option<(DecodingKey, Vec<Algorithm>)> {
    if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        return Some((k, RSA.to_vec()));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        return Some((k, vec![Algorithm::ES256, Algorithm::ES384]));
    }
    if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        return Some((k, vec![Algorithm::EdDSA]));
    }
    None
}

/// A key of a JWKS document; `None` for keys that cannot verify (encryption keys, unknown
/// types or algorithms).
pub(crate) fn from_jwk(jwk: &Jwk) -> Option<VerifyingKey> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, PublicKeyUse};
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    let algorithms = match (&jwk.algorithm, &jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), Some(alg)) => vec![rsa_algorithm(alg)?],
        (AlgorithmParameters::RSA(_), None) => RSA.to_vec(),
        (AlgorithmParameters::EllipticCurve(ec), _) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        (AlgorithmParameters::OctetKeyPair(_), _) => vec![Algorithm::EdDSA],
        _ => return None,
    };
    Some(VerifyingKey {
        kid: jwk.common.key_id.clone(),
        key,
        algorithms,
    })
}

/// The RSA signature algorithm a JWK's `alg` names.
fn rsa_algorithm(alg: &jsonwebtoken::jwk::KeyAlgorithm) -> Option<Algorithm> {
    use jsonwebtoken::jwk::KeyAlgorithm as K;
    Some(match alg {
        K::RS256 => Algorithm::RS256,
        K::RS384 => Algorithm::RS384,
        K::RS512 => Algorithm::RS512,
        K::PS256 => Algorithm::PS256,
        K::PS384 => Algorithm::PS384,
        K::PS512 => Algorithm::PS512,
        _ => return None,
    })
}
