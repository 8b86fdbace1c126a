//! TLS for `wss://` (and `https://` base URLs): the rustls client configuration, built once
//! per client by [`Client::connect`](crate::Client::connect) from the system's root
//! certificates plus [`ClientOptions::ca_file`](crate::ClientOptions::ca_file). The
//! connection task hands it to every (re)connect. Reading certificates is blocking file I/O,
//! so callers run [`client_config`] on the blocking pool. Never used for `ws://`.

use std::{path::Path, sync::Arc};

use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};
use tracing::debug;

use crate::error::ClientError;

/// The client configuration: the system's roots and the certificates of `ca_file`.
///
/// System roots that cannot be read are skipped (a container may have none); `ca_file`
/// must be readable and hold at least one PEM certificate. A server whose certificate no
/// root vouches for fails at the handshake, with [`ClientError::Connect`].
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, ClientError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        debug!(errors = ?native.errors, "some system root certificates cannot be read");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    debug!(added, ignored, "system root certificates");
    if let Some(path) = ca_file {
        for certificate in read_certificates(path)? {
            roots.add(certificate).map_err(|e| ClientError::CaFile {
                path: path.to_owned(),
                reason: format!("not a usable certificate: {e}"),
            })?;
        }
    }
    // ring, the provider the rest of the workspace (server, reqwest) uses: one provider in
    // the tree, and no reliance on a process-wide default. rustls deprecates it for lacking
    // post-quantum key exchange; X25519 and P-256 remain.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring's default provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The WebSocket upgrade is an HTTP/1.1 request.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The PEM certificates of `path`.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let fail = |reason: String| ClientError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(pem_error(e)))?;
    if certificates.is_empty() {
        return Err(fail(
            "no PEM certificate found (expected -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certificates)
}

fn pem_error(error: rustls::pki_types::pem::Error) -> String {
    match error {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::client_config;
    use crate::error::ClientError;

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            client_config(Some(&missing)),
            Err(ClientError::CaFile { path, .. }) if path == missing
        ));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let error = client_config(Some(&empty)).err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("no PEM certificate")),
            "{error:?}"
        );
    }

    #[test]
    fn without_a_ca_file_the_system_roots_are_enough_to_build() {
        assert!(client_config(None).is_ok());
    }
}
