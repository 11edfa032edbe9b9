//! TLS over TCP: rustls with the ring provider, PEM files read with
//! rustls-pki-types.
//!
//! - Servers: [`server_config`] loads a certificate chain and its key (ALPN
//!   `h2` and `http/1.1`, for HTTP), [`server_config_with_alpn`] with the
//!   ALPN protocols of your choice (none for RPC). A listener built with
//!   [`ListenerSpec::tls`](crate::listener::ListenerSpec::tls) does the
//!   handshake and hands its protocol a
//!   [`Socket::Tls`](crate::listener::Socket::Tls).
//! - Clients: [`TlsClientOptions`] says whom to trust (a CA file, or, for
//!   tests against a self-signed certificate, anyone) and which name to
//!   check; [`client_config`] and [`connect`] use them. There is no
//!   platform trust store: a CA file or an explicit `insecure` is required.
//!
//! Every error about a file names the file.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsConnector;
/// rustls and tokio-rustls, for the types of this module's functions
/// ([`rustls::ServerConfig`], [`tokio_rustls::server::TlsStream`]).
pub use tokio_rustls::{self, rustls};

/// Why a TLS certificate, key or trust setting cannot be used. Every error
/// about a file names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate file is unreadable or not PEM.
    #[error("TLS: {}: cannot read the certificate: {source}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("TLS: {}: no certificate in the file", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file is unreadable or holds no PEM private key.
    #[error("TLS: {}: cannot read a PEM private key: {source}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// rustls refused the certificate and key (a key that does not fit the
    /// certificate, an unsupported key type).
    #[error("TLS: {}: the key does not fit the certificate {}: {source}", key.display(), cert.display())]
    Mismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// The CA file is unreadable, not PEM, or holds no usable certificate.
    #[error("TLS: {}: cannot use the CA certificates: {message}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A client was given nothing to trust.
    #[error(
        "TLS: no CA file to check the server's certificate against \
         (give a CA file, or trust any certificate for a self-signed test one)"
    )]
    NoTrust,
    /// The name to check the server's certificate against is not a DNS
    /// name or an IP address.
    #[error("TLS: {name:?} is not a valid server name (a DNS name or an IP address)")]
    ServerName {
        /// The name.
        name: String,
    },
    /// rustls refused the client configuration.
    #[error("TLS: {0}")]
    Config(#[source] rustls::Error),
}

/// The ALPN protocols [`server_config`] offers: `h2`, then `http/1.1`.
pub const HTTP_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads a certificate chain and its private key (PEM files) into a server
/// configuration offering ALPN `h2` and `http/1.1`. A key that does not
/// match the certificate is an error.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with_alpn(cert, key, HTTP_ALPN)
}

/// Like [`server_config`], offering the ALPN protocols `alpn` in order of
/// preference (none: the server takes no part in ALPN, and a client that
/// offers protocols is still served).
pub fn server_config_with_alpn(
    cert: &Path,
    key: &Path,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Certificate {
            path: cert.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
        path: key.to_path_buf(),
        source,
    })?;
    let mismatch = |source| TlsError::Mismatch {
        key: key.to_path_buf(),
        cert: cert.to_path_buf(),
        source,
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(mismatch)?
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .map_err(mismatch)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// How a client checks the server it connects to over TLS.
///
/// ```
/// use corral::transport::tls::TlsClientOptions;
/// // Production: the CA that signed the server's certificate.
/// let opts = TlsClientOptions::ca_file("ca.pem").server_name("rpc.example.com");
/// // Tests against a self-signed certificate: no check at all.
/// let insecure = TlsClientOptions::insecure();
/// # let _ = (opts, insecure);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsClientOptions {
    ca_file: Option<PathBuf>,
    insecure: bool,
    server_name: Option<String>,
    alpn: Vec<Vec<u8>>,
}

impl TlsClientOptions {
    /// Trusts the certificates in this PEM file (a CA, or a self-signed
    /// server certificate itself).
    pub fn ca_file(path: impl Into<PathBuf>) -> Self {
        TlsClientOptions {
            ca_file: Some(path.into()),
            ..Self::default()
        }
    }

    /// Trusts any certificate the server shows, without checking its
    /// issuer or name (the handshake's signatures are still verified). For
    /// tests against a self-signed certificate: anyone on the path can
    /// impersonate the server.
    pub fn insecure() -> Self {
        TlsClientOptions {
            insecure: true,
            ..Self::default()
        }
    }

    /// Sets or clears [`TlsClientOptions::insecure`].
    pub fn with_insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Trusts the certificates in this PEM file (see
    /// [`TlsClientOptions::ca_file`]).
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Checks the server's certificate against this name (a DNS name or an
    /// IP address) instead of the host of the address connected to. It is
    /// also sent as SNI.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Offers these ALPN protocols (none by default).
    pub fn alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self
    }

    /// The CA file, if any.
    pub fn ca_file_path(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// True when any certificate is trusted.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// The name the certificate is checked against for a connection to
    /// `addr` (`host:port`, `[v6]:port`): the one set, else the host of
    /// `addr`.
    pub fn server_name_for(&self, addr: &str) -> Result<ServerName<'static>, TlsError> {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => host_of(addr).to_string(),
        };
        ServerName::try_from(name.clone()).map_err(|_| TlsError::ServerName { name })
    }
}

/// The host part of `host:port` or `[v6]:port` (the whole string when it
/// has no port).
fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((host, _)) if !host.contains(':') => host,
        _ => addr,
    }
}

/// The client configuration `opts` describe: the CA file's certificates as
/// the only trust anchors, or (insecure) any certificate.
pub fn client_config(opts: &TlsClientOptions) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?;
    let mut config = match (&opts.ca_file, opts.insecure) {
        (_, true) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustAnyCertificate(provider)))
            .with_no_client_auth(),
        (Some(path), false) => {
            let ca = |message: String| TlsError::CaFile {
                path: path.clone(),
                message,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ca(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca("no certificate in the file".into()));
            }
            let mut roots = RootCertStore::empty();
            for cert in certs {
                roots.add(cert).map_err(|e| ca(e.to_string()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (None, false) => return Err(TlsError::NoTrust),
    };
    config.alpn_protocols = opts.alpn.clone();
    Ok(Arc::new(config))
}

/// Connects to `addr` (`host:port`) over TCP (with `TCP_NODELAY`) and does
/// the TLS handshake as `opts` say. The trust settings are checked before
/// anything is sent; a failed handshake is an `io::Error` whose message
/// says why (an unknown issuer, a name that does not match, ...).
pub async fn connect(
    addr: &str,
    opts: &TlsClientOptions,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
    let config = client_config(opts)?;
    let name = opts.server_name_for(addr)?;
    let tcp = TcpStream::connect(addr).await.map_err(ConnectError::Tcp)?;
    let _ = tcp.set_nodelay(true);
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(ConnectError::Handshake)
}

/// Why [`connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The trust settings are unusable.
    #[error(transparent)]
    Settings(#[from] TlsError),
    /// The TCP connection failed.
    #[error("{0}")]
    Tcp(#[source] std::io::Error),
    /// The TLS handshake failed (the server's certificate was refused, or
    /// the server does not speak TLS).
    #[error("TLS handshake failed: {0}")]
    Handshake(#[source] std::io::Error),
}

/// The verifier of [`TlsClientOptions::insecure`]: any certificate, any
/// name; signatures are still checked, so the session is at least bound to
/// the key of the certificate shown.
#[derive(Debug)]
struct TrustAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for TrustAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_of("localhost:7070"), "localhost");
        assert_eq!(host_of("127.0.0.1:7070"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7070"), "::1");
        assert_eq!(host_of("example.com"), "example.com");
        assert_eq!(host_of("::1"), "::1");
    }

    #[test]
    fn server_names() {
        let opts = TlsClientOptions::insecure();
        assert!(matches!(
            opts.server_name_for("127.0.0.1:1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            opts.server_name_for("localhost:1"),
            Ok(ServerName::DnsName(_))
        ));
        let opts = opts.server_name("not a name");
        assert!(matches!(
            opts.server_name_for("localhost:1"),
            Err(TlsError::ServerName { .. })
        ));
    }

    #[test]
    fn trust_is_required() {
        assert!(matches!(
            client_config(&TlsClientOptions::default()),
            Err(TlsError::NoTrust)
        ));
        assert!(client_config(&TlsClientOptions::insecure()).is_ok());
        let err =
            client_config(&TlsClientOptions::ca_file("/no/such/ca.pem")).expect_err("missing file");
        assert!(err.to_string().contains("/no/such/ca.pem"), "{err}");
    }
}
