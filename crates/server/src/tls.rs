//! TLS: HTTPS and WSS served directly (rustls, `ring` provider), from PEM certificate and key
//! files that `Tls::reload` rereads on SIGHUP without dropping a connection, or from a
//! self-signed certificate for development (`--tls-self-signed`), kept under the data
//! directory so that a browser told to trust it keeps trusting it across restarts.

use std::{
    io,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use rustls::{
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio_rustls::TlsAcceptor;

/// `[tls]`: serve HTTPS/WSS instead of plain HTTP.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain (leaf first).
    pub cert_file: Option<PathBuf>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// Generate (once, under `store.data_dir/tls/`) and serve a self-signed certificate for
    /// `localhost`, `127.0.0.1` and `::1`. For development only: browsers warn about it.
    pub self_signed: bool,
}

impl TlsConfig {
    /// Whether TLS is on.
    pub fn enabled(&self) -> bool {
        self.self_signed || self.cert_file.is_some() || self.key_file.is_some()
    }
}

/// Why the certificate or key could not be used.
#[derive(Debug, Error)]
pub enum TlsError {
    /// `cert_file` without `key_file` or the other way round, or both with `self_signed`.
    #[error("invalid setting `tls`: {0}")]
    Config(&'static str),
    /// A file cannot be read.
    #[error("cannot read {what} file {path}: {detail}")]
    Read {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The certificate file holds no certificate.
    #[error("{0}: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate(PathBuf),
    /// The key is not usable, or does not belong to the certificate.
    #[error("the private key in {path} cannot be used: {detail}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The self-signed certificate could not be made or saved.
    #[error("cannot create the self-signed certificate in {dir}: {detail}")]
    SelfSigned {
        /// Where it goes.
        dir: PathBuf,
        /// Why.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
struct Source {
    cert: PathBuf,
    key: PathBuf,
}

/// A TLS acceptor whose certificate can be swapped while it serves.
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
    resolver: Arc<Resolver>,
    source: Source,
    provider: Arc<CryptoProvider>,
}

impl Tls {
    /// Builds the acceptor from `config` (`None` when TLS is off). `data_dir` is where a
    /// self-signed certificate lives.
    pub(crate) fn new(config: &TlsConfig, data_dir: &Path) -> Result<Option<Self>, TlsError> {
        if !config.enabled() {
            return Ok(None);
        }
        let source = match (&config.cert_file, &config.key_file, config.self_signed) {
            (Some(cert), Some(key), false) => Source {
                cert: cert.clone(),
                key: key.clone(),
            },
            (None, None, true) => self_signed(&data_dir.join("tls"))?,
            (_, _, true) => {
                return Err(TlsError::Config(
                    "self_signed cannot be combined with cert_file and key_file",
                ));
            }
            _ => {
                return Err(TlsError::Config(
                    "cert_file and key_file must be given together",
                ));
            }
        };
        // ring, the provider reqwest (JWKS, hooks) already brings: one provider in the
        // tree. rustls deprecates it for lacking post-quantum key exchange (X25519MLKEM768,
        // aws-lc-rs only); X25519 and P-256 remain.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = load(&source, &provider)?;
        let resolver = Arc::new(Resolver(RwLock::new(Arc::new(key))));
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        // The server speaks HTTP/1.1 only (WebSocket upgrades need it).
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            resolver,
            source,
            provider,
        }))
    }

    /// The acceptor for new connections.
    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// The certificate file in use.
    pub(crate) fn cert_path(&self) -> &Path {
        &self.source.cert
    }

    /// Rereads the certificate and key files; on any error the current certificate stays.
    /// Connections already open keep the certificate they started with.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let key = load(&self.source, &self.provider)?;
        let mut current = self
            .resolver
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = Arc::new(key);
        Ok(())
    }
}

/// Hands every handshake the current certificate.
#[derive(Debug)]
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

fn load(source: &Source, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    fn read_err(what: &'static str, path: &Path, e: rustls::pki_types::pem::Error) -> TlsError {
        TlsError::Read {
            what,
            path: path.to_owned(),
            detail: match e {
                rustls::pki_types::pem::Error::Io(io) => io.to_string(),
                other => format!("{other:?}"),
            },
        }
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&source.cert)
        .map_err(|e| read_err("certificate", &source.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_err("certificate", &source.cert, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(source.cert.clone()));
    }
    let key = PrivateKeyDer::from_pem_file(&source.key).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Key {
            path: source.key.clone(),
            detail: "no PEM private key found (expected -----BEGIN PRIVATE KEY-----)".into(),
        },
        other => read_err("private key", &source.key, other),
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: source.key.clone(),
            detail: e.to_string(),
        })?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| TlsError::Key {
        path: source.key.clone(),
        detail: format!(
            "it does not match the certificate in {}: {e}",
            source.cert.display()
        ),
    })?;
    Ok(certified)
}

/// The self-signed pair under `dir`, made on first use.
fn self_signed(dir: &Path) -> Result<Source, TlsError> {
    let source = Source {
        cert: dir.join("self-signed.crt"),
        key: dir.join("self-signed.key"),
    };
    if source.cert.exists() && source.key.exists() {
        return Ok(source);
    }
    let fail = |detail: String| TlsError::SelfSigned {
        dir: dir.to_owned(),
        detail,
    };
    let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let made = rcgen::generate_simple_self_signed(names).map_err(|e| fail(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    write_private(&source.key, made.signing_key.serialize_pem().as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    std::fs::write(&source.cert, made.cert.pem()).map_err(|e| fail(e.to_string()))?;
    tracing::warn!(
        cert = %source.cert.display(),
        "generated a self-signed TLS certificate for localhost: for development only"
    );
    Ok(source)
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
