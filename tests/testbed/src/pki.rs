//! Certificates of one test cluster, made with rcgen: a CA, the apiserver's serving certificate,
//! the injector webhook's serving certificate (both for `127.0.0.1`) and the service-account
//! signing key. Everything is written as PEM into `<dir>/pki`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// PEM files of one cluster.
#[derive(Debug, Clone)]
pub struct Pki {
    /// CA certificate (PEM) that signed both serving certificates.
    pub ca_cert: PathBuf,
    /// kube-apiserver serving certificate and key.
    pub apiserver_cert: PathBuf,
    /// Key of `apiserver_cert`.
    pub apiserver_key: PathBuf,
    /// Service-account signing key (ECDSA P-256, PKCS#8).
    pub sa_key: PathBuf,
    /// Its public key (the apiserver's `--service-account-key-file` wants a public key).
    pub sa_pub: PathBuf,
    /// Injector webhook certificate chain and key (PEM strings, served from memory).
    pub webhook_cert_pem: String,
    /// Key of the webhook certificate.
    pub webhook_key_pem: String,
    /// CA certificate PEM (the `caBundle` of the webhooks, before base64).
    pub ca_pem: String,
}

impl Pki {
    /// Generates all keys and certificates into `<dir>/pki`.
    pub fn generate(dir: &Path) -> Result<Self> {
        let pki = dir.join("pki");
        std::fs::create_dir_all(&pki)?;
        let ca = ca()?;
        let api_names = ["127.0.0.1", "localhost", "kubernetes", "kubernetes.default"]
            .into_iter()
            .chain([
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "10.96.0.1",
            ]);
        let (api_cert, api_key) = leaf(&ca, "kube-apiserver", api_names)?;
        let (wh_cert, wh_key) = leaf(
            &ca,
            "mesh-testbed-injector",
            ["127.0.0.1", "localhost"].into_iter(),
        )?;
        let sa = KeyPair::generate()?;
        let out = Self {
            ca_cert: pki.join("ca.crt"),
            apiserver_cert: pki.join("apiserver.crt"),
            apiserver_key: pki.join("apiserver.key"),
            sa_key: pki.join("sa.key"),
            sa_pub: pki.join("sa.pub"),
            webhook_cert_pem: wh_cert,
            webhook_key_pem: wh_key,
            ca_pem: ca.pem(),
        };
        write(&out.ca_cert, &out.ca_pem)?;
        write(&out.apiserver_cert, &api_cert)?;
        write(&out.apiserver_key, &api_key)?;
        write(&out.sa_key, &sa.serialize_pem())?;
        write(&out.sa_pub, &sa.public_key_pem())?;
        Ok(out)
    }
}

fn write(path: &Path, pem: &str) -> Result<()> {
    std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))
}

fn ca() -> Result<CertifiedIssuer<'static, KeyPair>> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "mesh-testbed-ca");
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(CertifiedIssuer::self_signed(p, KeyPair::generate()?)?)
}

/// A serving certificate for `names` (IP strings become IP SANs); returns (cert PEM, key PEM).
fn leaf<'a>(
    ca: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(String, String)> {
    let mut p = CertificateParams::new(names.map(str::to_owned).collect::<Vec<_>>())?;
    p.distinguished_name.push(DnType::CommonName, cn);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &**ca)?;
    Ok((cert.pem(), key.serialize_pem()))
}
