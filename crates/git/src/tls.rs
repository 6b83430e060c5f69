//! Trusting a Git server's certificate through a configured CA (`ca.crt`) in addition to the
//! system roots that libgit2 checks itself. Pure: verifies a DER leaf against PEM anchors.

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// CA certificates from `ca.crt` (PEM, one or more).
#[derive(Debug, Clone)]
pub struct ExtraRoots {
    ders: Vec<CertificateDer<'static>>,
}

impl ExtraRoots {
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let ders = tagpilot_http::ca_certificates(pem).map_err(|e| format!("ca.crt {e}"))?;
        Ok(ExtraRoots { ders })
    }

    /// Whether the server certificate `leaf` (DER) chains to one of these CAs and is valid for
    /// `host` now.
    pub fn verifies(&self, leaf: &[u8], host: &str) -> Result<(), String> {
        let anchors: Vec<_> = self
            .ders
            .iter()
            .filter_map(|d| webpki::anchor_from_trusted_cert(d).ok())
            .collect();
        let leaf = CertificateDer::from(leaf);
        let ee = webpki::EndEntityCert::try_from(&leaf).map_err(|e| format!("{e:?}"))?;
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &[],
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| format!("{e:?}"))?;
        let name = ServerName::try_from(host).map_err(|e| format!("{e:?}"))?;
        ee.verify_is_valid_for_subject_name(&name)
            .map_err(|e| format!("{e:?}"))
    }
}
