//! The TLS listener's configuration: certificates chosen by SNI, client
//! certificates checked against `client_ca` and matched to `[[peer]]`s,
//! and reloading when the files change (a bad new file keeps the old
//! configuration, as with rules).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::rules::model::{PeerId, RuleSet};

/// Where the TLS listener's certificates and client CA come from.
#[derive(Clone, Debug)]
pub struct Files {
    /// (certificate chain, private key) pairs; the first answers a client
    /// that sends no SNI or a name no certificate has.
    pub certs: Vec<(PathBuf, PathBuf)>,
    pub client_ca: Option<PathBuf>,
}

/// What a client certificate that verified against `client_ca` says about
/// its holder. Matched to a `[[peer]]` per request, against the rules in
/// force then: a reload may add or remove peers on a kept-alive connection.
#[derive(Debug)]
pub struct ClientCert {
    pub sha256: [u8; 32],
    pub dns_names: Vec<String>,
}

impl ClientCert {
    fn of(der: &CertificateDer<'_>) -> ClientCert {
        ClientCert {
            sha256: Sha256::digest(der.as_ref()).into(),
            dns_names: dns_names(der),
        }
    }

    /// The `[[peer]]` this certificate names: by fingerprint first, then
    /// by any of its DNS names. None: an ordinary client.
    pub fn peer(&self, rules: &RuleSet) -> Option<PeerId> {
        rules
            .peer_by_fingerprint(&self.sha256)
            .or_else(|| self.dns_names.iter().find_map(|n| rules.peer_by_san(n)))
    }
}

/// The client certificate of a finished handshake, if one was sent (it has
/// verified by then: rustls refuses the handshake otherwise).
pub fn client_cert(conn: &ServerConnection) -> Option<Arc<ClientCert>> {
    let chain = conn.peer_certificates()?;
    chain.first().map(|leaf| Arc::new(ClientCert::of(leaf)))
}

/// The TLS configuration in force, and the file stamps it was built from.
pub struct Tls {
    files: Files,
    current: ArcSwap<ServerConfig>,
    stamp: Mutex<Stamp>,
}

type Stamp = Vec<(u64, Option<SystemTime>)>;

impl Tls {
    pub fn load(files: Files) -> Result<Tls, String> {
        let stamp = stamp(&files);
        let config = build(&files)?;
        Ok(Tls {
            files,
            current: ArcSwap::from_pointee(config),
            stamp: Mutex::new(stamp),
        })
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }

    /// Rebuilds the configuration when a file changed since the last look;
    /// on error the old one stays in force.
    pub fn reload_if_changed(&self) -> Option<Result<(), String>> {
        let mut seen = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamp(&self.files);
        if now == *seen {
            return None;
        }
        *seen = now;
        Some(build(&self.files).map(|c| self.current.store(Arc::new(c))))
    }
}

fn stamp(files: &Files) -> Stamp {
    let paths = files
        .certs
        .iter()
        .flat_map(|(c, k)| [c, k])
        .chain(files.client_ca.as_ref());
    paths
        .map(|p| match std::fs::metadata(p) {
            Ok(m) => (m.len(), m.modified().ok()),
            Err(_) => (0, None),
        })
        .collect()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build(files: &Files) -> Result<ServerConfig, String> {
    let provider = provider();
    let mut resolver = SniResolver::default();
    for (cert, key) in &files.certs {
        resolver.add(&provider, cert, key)?;
    }
    let verifier = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(ca)? {
                roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            // A client without a certificate is an ordinary client, located
            // by its address like on the plain listener.
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?
        }
        None => WebPkiClientVerifier::no_client_auth(),
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn dns_names(der: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Chooses the certificate by the SNI name: exact DNS name, then a
/// `*.` wildcard one label deep, then the first certificate.
#[derive(Debug, Default)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    fn add(&mut self, provider: &CryptoProvider, cert: &Path, key: &Path) -> Result<(), String> {
        let chain = read_certs(cert)?;
        let key_der = read_key(key)?;
        let signing = provider
            .key_provider
            .load_private_key(key_der)
            .map_err(|e| format!("{}: {e}", key.display()))?;
        let certified = CertifiedKey::new(chain, signing);
        certified
            .keys_match()
            .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
        let certified = Arc::new(certified);
        for name in dns_names(&certified.cert[0]) {
            self.by_name
                .entry(name)
                .or_insert_with(|| certified.clone());
        }
        self.default.get_or_insert(certified);
        Ok(())
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return self.default.clone();
        };
        let name = name.to_ascii_lowercase();
        let wildcard = name.split_once('.').map(|(_, rest)| format!("*.{rest}"));
        self.by_name
            .get(&name)
            .or_else(|| wildcard.and_then(|w| self.by_name.get(&w)))
            .or(self.default.as_ref())
            .cloned()
    }
}
