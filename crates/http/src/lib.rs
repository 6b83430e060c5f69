//! The one HTTP client stack every crate of tagpilot builds on.
//!
//! reqwest is built with `rustls-no-provider`: rustls then has no crypto provider until one is
//! installed, and reqwest panics when it builds a client without one. [`install_crypto_provider`]
//! installs ring, once per process (the binary calls it at start-up; [`builder`] calls it too,
//! so libraries and their tests never meet the panic). Roots are the system's (reqwest's
//! platform verifier reads the OS store, `SSL_CERT_FILE` included) plus the CAs a Secret's
//! `ca.crt` adds through [`add_pem_roots`].

use std::sync::Once;

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

/// Trusts the certificates of a PEM bundle in addition to the system roots. Each is parsed
/// as a trust anchor here, so a broken `ca.crt` is an error on its object now rather than a
/// failed handshake later.
pub fn add_pem_roots(
    builder: reqwest::ClientBuilder,
    pem: &[u8],
) -> Result<reqwest::ClientBuilder, PemError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let ders = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(PemError::Pem)?;
    if ders.is_empty() {
        return Err(PemError::Empty);
    }
    let mut anchors = rustls::RootCertStore::empty();
    let mut certs = Vec::with_capacity(ders.len());
    for der in ders {
        certs.push(reqwest::Certificate::from_der(&der).map_err(PemError::Client)?);
        anchors.add(der).map_err(PemError::Invalid)?;
    }
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
