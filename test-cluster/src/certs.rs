//! The control plane's files: a CA, the API server's serving certificate (127.0.0.1 and
//! localhost), an admin client certificate in `system:masters`, and the service-account signing
//! key (EC P-256 throughout: quick to make, and every client here speaks it), and the audit policy.

use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509NameBuilder};

/// The admin's identity: `system:masters` may do anything, as a cluster admin.
pub const ADMIN_USER: &str = "keyfront-test-admin";

pub struct Files {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub service_account_key: PathBuf,
    pub service_account_public: PathBuf,
    /// Audit every request at Metadata level (who, what, answer; never a body).
    pub audit_policy: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
}

impl Files {
    pub fn kubeconfig(&self, server: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: {ADMIN_USER}\n  user:\n    client-certificate: {cert}\n    client-key: {key}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: {ADMIN_USER}\n    namespace: default\ncurrent-context: test\n",
            ca = self.ca_cert.display(),
            cert = self.admin_cert.display(),
            key = self.admin_key.display(),
        )
    }
}

#[derive(Debug)]
pub enum Error {
    Openssl(ErrorStack),
    Io(std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Openssl(e) => write!(f, "openssl: {e}"),
            Error::Io(e) => write!(f, "writing a certificate: {e}"),
        }
    }
}

impl From<ErrorStack> for Error {
    fn from(e: ErrorStack) -> Self {
        Error::Openssl(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

pub fn write(dir: &Path) -> Result<Files, Error> {
    let ca_key = new_key()?;
    let ca = {
        let mut b = builder(&[("CN", "keyfront-test-ca")], &ca_key)?;
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        b.sign(&ca_key, MessageDigest::sha256())?;
        b.build()
    };
    let server_key = new_key()?;
    let server = {
        let mut b = builder(&[("CN", "kube-apiserver")], &server_key)?;
        b.set_issuer_name(ca.subject_name())?;
        let san = SubjectAlternativeName::new()
            .ip("127.0.0.1")
            .dns("localhost")
            .dns("kubernetes.default.svc")
            .build(&b.x509v3_context(Some(&ca), None))?;
        b.append_extension(san)?;
        b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
        b.sign(&ca_key, MessageDigest::sha256())?;
        b.build()
    };
    let admin_key = new_key()?;
    let admin = {
        let mut b = builder(&[("O", "system:masters"), ("CN", ADMIN_USER)], &admin_key)?;
        b.set_issuer_name(ca.subject_name())?;
        b.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
        b.sign(&ca_key, MessageDigest::sha256())?;
        b.build()
    };
    let service_account = new_key()?;

    let file = |name: &str, pem: Vec<u8>| -> Result<PathBuf, Error> {
        let path = dir.join(name);
        std::fs::write(&path, pem)?;
        Ok(path)
    };
    Ok(Files {
        ca_cert: file("ca.crt", ca.to_pem()?)?,
        server_cert: file("apiserver.crt", server.to_pem()?)?,
        server_key: file("apiserver.key", server_key.private_key_to_pem_pkcs8()?)?,
        admin_cert: file("admin.crt", admin.to_pem()?)?,
        admin_key: file("admin.key", admin_key.private_key_to_pem_pkcs8()?)?,
        service_account_key: file("sa.key", service_account.private_key_to_pem_pkcs8()?)?,
        service_account_public: file("sa.pub", service_account.public_key_to_pem()?)?,
        audit_policy: file(
            "audit-policy.yaml",
            b"apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n".to_vec(),
        )?,
    })
}

fn new_key() -> Result<PKey<Private>, ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

/// A certificate builder valid for a day, with its subject and public key set (self-issued
/// until the caller sets an issuer).
fn builder(
    subject: &[(&str, &str)],
    key: &PKey<Private>,
) -> Result<openssl::x509::X509Builder, ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    for (field, value) in subject {
        name.append_entry_by_text(field, value)?;
    }
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(120, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(key)?;
    b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
    b.set_not_after(&*Asn1Time::days_from_now(1)?)?;
    Ok(b)
}
