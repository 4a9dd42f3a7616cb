//! Certificates for the TLS tests: a CA made for one test run and server
//! certificates it signs (rcgen, ECDSA P-256), written as PEM files into a
//! temporary directory that is removed on drop.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use crate::servers::unique;

/// A certificate authority of the test's own, trusted by nobody else.
#[derive(Debug)]
pub struct TestCa {
    dir: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct ServerCert {
    /// The certificate (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key_file: PathBuf,
}

impl TestCa {
    /// A fresh CA named `name`; its certificate is written to [`TestCa::ca_file`].
    pub fn new(name: &str) -> Result<TestCa, String> {
        let dir = std::env::temp_dir().join(format!("memdex-certs-{}-{}", std::process::id(), unique()));
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(|e| e.to_string())?;
        let ca = TestCa { dir, issuer };
        write(&ca.ca_file(), &ca.issuer.pem())?;
        Ok(ca)
    }

    /// The CA's certificate (PEM), for clients to trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A server certificate for `names` (host names or IP addresses), signed by
    /// this CA, written next to the CA's file.
    pub fn server_cert(&self, names: &[&str]) -> Result<ServerCert, String> {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).map_err(|e| e.to_string())?;
        params.distinguished_name.push(DnType::CommonName, names.first().cloned().unwrap_or_default());
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = params.signed_by(&key, &self.issuer).map_err(|e| e.to_string())?;
        let stem = format!("server-{}", unique());
        let written = ServerCert {
            cert_file: self.dir.join(format!("{stem}.crt")),
            key_file: self.dir.join(format!("{stem}.key")),
        };
        write(&written.cert_file, &cert.pem())?;
        write(&written.key_file, &key.serialize_pem())?;
        Ok(written)
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
