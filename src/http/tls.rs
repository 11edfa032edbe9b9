//! TLS for HTTP listeners: rustls with the ring provider, PEM files read
//! with rustls-pki-types, ALPN `h2` and `http/1.1`.

use super::HttpError;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls::{self, ServerConfig};

/// Loads a certificate chain and its private key (PEM files) into a server
/// configuration offering ALPN `h2` and `http/1.1`. Every error names the
/// file it concerns; a key that does not match the certificate is an error.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, HttpError> {
    let tls_err = |path: &Path, message: String| HttpError::Tls {
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(cert, format!("cannot read the certificate: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(cert, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err(cert, "no certificate in the file".into()));
    }
    let private_key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls_err(key, format!("cannot read a PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert, format!("TLS set-up: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .map_err(|e| {
            tls_err(
                key,
                format!(
                    "the key does not fit the certificate {}: {e}",
                    cert.display()
                ),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
