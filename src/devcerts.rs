//! `gatekeeper certs dev`: a throwaway CA, a server certificate for the
//! loopback names and client certificates for `[[peer]]`s, so TLS and mTLS
//! can be tried and tested without a real PKI. Nothing here is for
//! production: the keys are written unencrypted.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};

pub struct Request {
    pub out: PathBuf,
    /// DNS names and addresses of the server certificate.
    pub server_names: Vec<String>,
    /// One client certificate per name, with the name as its DNS SAN.
    pub clients: Vec<String>,
    pub force: bool,
}

/// One written certificate: its files and SHA-256 fingerprint (what a
/// `[[peer]]` `cert_sha256` names).
pub struct Issued {
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub sha256: String,
}

pub fn make(req: &Request) -> Result<Vec<Issued>, String> {
    std::fs::create_dir_all(&req.out).map_err(|e| format!("{}: {e}", req.out.display()))?;
    let err = |e: rcgen::Error| e.to_string();

    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "Gatekeeper development CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;

    let mut issued = vec![write(req, "ca", ca_cert.der(), &ca_cert.pem(), &ca_key)?];
    let mut leaf = |name: &str, sans: &[String], usage| -> Result<(), String> {
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, name);
        for san in sans {
            params.subject_alt_names.push(match san.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(san.clone().try_into().map_err(err)?),
            });
        }
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca_cert, &ca_key).map_err(err)?;
        issued.push(write(req, name, cert.der(), &cert.pem(), &key)?);
        Ok(())
    };
    leaf(
        "server",
        &req.server_names,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    for client in &req.clients {
        leaf(
            client,
            std::slice::from_ref(client),
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
    }
    Ok(issued)
}

fn write(
    req: &Request,
    name: &str,
    der: &[u8],
    pem: &str,
    key: &KeyPair,
) -> Result<Issued, String> {
    let cert_path = req.out.join(format!("{name}.pem"));
    let key_path = req.out.join(format!("{name}-key.pem"));
    create(&cert_path, pem.as_bytes(), 0o644, req.force)?;
    create(&key_path, key.serialize_pem().as_bytes(), 0o600, req.force)?;
    Ok(Issued {
        name: name.to_owned(),
        cert: cert_path,
        key: key_path,
        sha256: hex::encode(Sha256::digest(der)),
    })
}

fn create(path: &Path, bytes: &[u8], mode: u32, force: bool) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut open = std::fs::OpenOptions::new();
    open.write(true).mode(mode);
    if force {
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    let mut f = open.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            format!("{} exists; --force replaces it", path.display())
        }
        _ => format!("{}: {e}", path.display()),
    })?;
    f.write_all(bytes)
        .map_err(|e| format!("{}: {e}", path.display()))
}
