//! rustls client configurations shared by the PostgreSQL drivers and the memcached
//! transports (feature `tls`): the ring crypto provider, the trust roots (a PEM file
//! of your own CA, else the Mozilla roots of `webpki-roots`), and how much of the
//! server's certificate is checked.
//!
//! Three levels, after libpq's `sslmode`: [`Verify::Full`] checks the chain and that
//! the certificate names the host; [`Verify::Chain`] checks the chain only
//! (`verify-ca`); [`Verify::Nothing`] encrypts without checking who answers
//! (`require`, `prefer`). Even then the handshake's signatures are verified, so the
//! connection is encrypted to whoever holds the certificate's key.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How much of the server's certificate a client checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// memcached always verifies in full; the weaker levels are PostgreSQL's.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) enum Verify {
    /// Encrypt, check nothing about the certificate.
    Nothing,
    /// The certificate chains to a trusted root; any host name.
    Chain,
    /// The certificate chains to a trusted root and names the host.
    Full,
}

/// A client configuration trusting the certificates in `ca_file` (PEM), or the
/// Mozilla roots when there is none. The error says what is wrong, in words.
pub(crate) fn client_config(verify: Verify, ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?;
    let config = match verify {
        Verify::Full => builder.with_root_certificates(roots(ca_file)?).with_no_client_auth(),
        Verify::Chain | Verify::Nothing => {
            let chain = match verify {
                Verify::Chain => Some(
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots(ca_file)?), provider.clone())
                        .build()
                        .map_err(|e| format!("TLS trust roots: {e}"))?,
                ),
                _ => None,
            };
            let verifier = Lenient { chain, algorithms: provider.signature_verification_algorithms };
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// The roots to trust: every certificate of `ca_file`, else the Mozilla roots.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let Some(path) = ca_file else {
        return Ok(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() });
    };
    let unreadable = |e: rustls::pki_types::pem::Error| format!("CA file {}: {e}", path.display());
    let mut store = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(path).map_err(unreadable)? {
        store.add(certificate.map_err(unreadable)?).map_err(|e| format!("CA file {}: {e}", path.display()))?;
    }
    if store.is_empty() {
        return Err(format!("CA file {}: no PEM certificate in it", path.display()));
    }
    Ok(store)
}

/// The checks short of [`Verify::Full`]: with `chain`, the chain must be trusted
/// but the host name may be any (`verify-ca`); without, any certificate is taken
/// (`require`, `prefer`). Either way the handshake's signatures must be made with
/// the certificate's key.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // The name is checked last, after the chain: a name mismatch means the
            // chain itself was trusted.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
