//! The Ed25519 keys that sign seals and checkpoints: loading, making, and
//! the `key_id` that names a public key in what it signed.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// `key_id`: the first 16 lowercase hex digits of SHA-256 over the 32 bytes
/// of the public key. Keys rotate, so a verifier given several picks the
/// one a statement names.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// The writer's signing key, with its id computed once.
pub(crate) struct Signer {
    pub key: SigningKey,
    pub id: String,
}

impl Signer {
    pub(crate) fn load(path: &Path) -> io::Result<Signer> {
        let pem = fs::read_to_string(path).map_err(|e| in_file(path, e))?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
            invalid(
                path,
                &format!("not an Ed25519 PKCS#8 PEM private key ({e})"),
            )
        })?;
        let id = key_id(&key.verifying_key());
        Ok(Signer { key, id })
    }
}

/// The public keys a verifier trusts, by `key_id`.
#[derive(Default)]
pub struct KeyRing {
    keys: Vec<(String, VerifyingKey)>,
}

impl KeyRing {
    /// Reads SubjectPublicKeyInfo PEM files, as `keygen` writes them.
    pub fn load(paths: &[PathBuf]) -> io::Result<KeyRing> {
        let mut ring = KeyRing::default();
        for path in paths {
            let pem = fs::read_to_string(path).map_err(|e| in_file(path, e))?;
            let key = VerifyingKey::from_public_key_pem(&pem)
                .map_err(|e| invalid(path, &format!("not an Ed25519 public key PEM ({e})")))?;
            ring.keys.push((key_id(&key), key));
        }
        Ok(ring)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, key)| key)
    }
}

/// What `keygen` wrote.
#[derive(Debug)]
pub struct KeyFiles {
    pub private: PathBuf,
    pub public: PathBuf,
    pub key_id: String,
}

/// Makes a key pair: `<dir>/<name>.pem` (PKCS#8, mode 0600, for
/// `audit.signing_key`) and `<dir>/<name>.pub.pem` (for `audit verify
/// --public-key`). An existing key is replaced only with `force`: the logs
/// it signed would otherwise lose the key that checks them.
pub fn keygen(dir: &Path, name: &str, force: bool) -> io::Result<KeyFiles> {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    if !force {
        for path in [&private, &public] {
            if path.exists() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists; --force replaces it", path.display()),
                ));
            }
        }
    }
    fs::create_dir_all(dir).map_err(|e| in_file(dir, e))?;
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| io::Error::other(e.to_string()))?;
    // Removed first so that the mode of a new file applies: opening an
    // existing file keeps its old, perhaps wider, permissions.
    if force {
        for path in [&private, &public] {
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(in_file(path, e)),
                _ => {}
            }
        }
    }
    write_new(&private, private_pem.as_bytes(), 0o600)?;
    write_new(&public, public_pem.as_bytes(), 0o644)?;
    Ok(KeyFiles {
        private,
        public,
        key_id: key_id(&key.verifying_key()),
    })
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| in_file(path, e))?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn in_file(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn invalid(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {why}", path.display()),
    )
}
