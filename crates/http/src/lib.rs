//! The one HTTP client stack every crate of tagpilot builds on.
//!
//! reqwest is built with `rustls-no-provider`: rustls then has no crypto provider until one is
//! installed, and reqwest panics when it builds a client without one. [`install_crypto_provider`]
//! installs ring, once per process (the binary calls it at start-up; [`builder`] calls it too,
//! so libraries and their tests never meet the panic). Roots are the system's (reqwest's
//! platform verifier reads the OS store, `SSL_CERT_FILE` included) plus the CAs a Secret's
//! `ca.crt` adds through [`add_pem_roots`].

use std::sync::Once;

use rustls::pki_types::CertificateDer;

/// `tagpilot/<version>`, sent by every client.
pub const USER_AGENT: &str = concat!("tagpilot/", env!("CARGO_PKG_VERSION"));

/// Installs ring as the process's rustls crypto provider. Idempotent; a provider installed
/// earlier by someone else stays (rustls refuses a second one).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only when a provider is already installed, which is what we want.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client builder with the provider installed and tagpilot's user agent set.
pub fn builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder().user_agent(USER_AGENT)
}

/// A `ca.crt` that cannot be trusted as it is.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("is not valid PEM")]
    Pem(#[source] rustls::pki_types::pem::Error),
    #[error("holds a certificate that is not a valid X.509 trust anchor")]
    Invalid(#[source] rustls::Error),
    #[error("is rejected by the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("holds no certificate")]
    Empty,
}

/// The certificates of a `ca.crt` bundle, each checked as a trust anchor, so a broken
/// `ca.crt` is an error on its object now rather than a failed handshake later. The HTTP
/// clients ([`add_pem_roots`]) and the Git transport's CA check read `ca.crt` through this.
pub fn ca_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    use rustls::pki_types::pem::PemObject;
    let ders = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(PemError::Pem)?;
    if ders.is_empty() {
        return Err(PemError::Empty);
    }
    let mut anchors = rustls::RootCertStore::empty();
    for der in &ders {
        anchors.add(der.clone()).map_err(PemError::Invalid)?;
    }
    Ok(ders)
}

/// Trusts the certificates of a PEM bundle ([`ca_certificates`]) in addition to the system
/// roots.
pub fn add_pem_roots(
    builder: reqwest::ClientBuilder,
    pem: &[u8],
) -> Result<reqwest::ClientBuilder, PemError> {
    let certs = ca_certificates(pem)?
        .iter()
        .map(|der| reqwest::Certificate::from_der(der).map_err(PemError::Client))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(builder.tls_certs_merge(certs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_builds_without_anyone_installing_a_provider_first() {
        // Without the provider reqwest would panic here.
        assert!(builder().build().is_ok());
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }

    #[test]
    fn pem_bundles_without_certificates_are_refused() {
        assert!(matches!(
            add_pem_roots(builder(), b"not pem at all"),
            Err(PemError::Empty)
        ));
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = add_pem_roots(builder(), garbage);
        assert!(matches!(e, Err(PemError::Invalid(_))), "{e:?}");
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let e = add_pem_roots(builder(), broken);
        assert!(matches!(e, Err(PemError::Pem(_))), "{e:?}");
    }
}
