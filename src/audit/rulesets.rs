//! The rule sets kept beside the log (DESIGN §6, "replayable"): every rule
//! set that comes into force is copied to `<audit dir>/rules/<version>/`,
//! its `*.toml` files under the names they have in the rules directory.
//! `version` hashes exactly those names and bytes, so a copy names its own
//! content: compiling it must give the version it is kept under, which is
//! how both the writer and every reader check it.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::rules::compile;
use crate::rules::model::RuleSet;

/// `<audit dir>/rules`.
#[derive(Clone, Debug)]
pub struct RuleStore {
    dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
    /// The files were edited between compiling and copying; the watcher
    /// reloads them, and that rule set is kept then.
    #[error("the rule files changed while being kept (copy has version {found})")]
    Changed { found: String },
}

impl RuleStore {
    pub fn new(audit_dir: &Path) -> RuleStore {
        RuleStore {
            dir: audit_dir.join("rules"),
        }
    }

    pub fn path(&self, version: &str) -> PathBuf {
        self.dir.join(version)
    }

    /// Keeps a copy of the rule files in `rules_dir`, which compiled to
    /// `version`, unless one is kept already; returns whether it copied.
    /// The copy is built under a temporary name, checked, fsynced and
    /// renamed, so a kept rule set is whole and right or absent; it is on
    /// disk before any record that names it can be.
    pub fn keep(&self, rules_dir: &Path, version: &str) -> Result<bool, KeepError> {
        let target = self.path(version);
        if target.is_dir() {
            return Ok(false);
        }
        let at = |p: &Path| {
            let p = p.to_owned();
            move |e| KeepError::Io(p, e)
        };
        fs::create_dir_all(&self.dir).map_err(at(&self.dir))?;
        let tmp = self.dir.join(format!(
            ".tmp-{version}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let result = copy_tree(rules_dir, &tmp, "")
            .map_err(|(p, e)| KeepError::Io(p, e))
            .and_then(|()| match self.compile(&tmp) {
                Ok(rules) if rules.version == version => Ok(()),
                Ok(rules) => Err(KeepError::Changed {
                    found: rules.version,
                }),
                Err(why) => Err(KeepError::Io(
                    tmp.clone(),
                    io::Error::new(io::ErrorKind::InvalidData, why),
                )),
            })
            .and_then(|()| match fs::rename(&tmp, &target) {
                Ok(()) => Ok(()),
                // Kept meanwhile by another gate sharing the directory.
                Err(_) if target.is_dir() => Ok(()),
                Err(e) => Err(KeepError::Io(target.clone(), e)),
            })
            .and_then(|()| {
                File::open(&self.dir)
                    .and_then(|d| d.sync_all())
                    .map_err(at(&self.dir))
            });
        if tmp.exists() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result.map(|()| true)
    }

    /// The rule set kept under `version`, compiled, and checked to be that
    /// version.
    pub fn load(&self, version: &str) -> Result<RuleSet, String> {
        let path = self.path(version);
        if !path.is_dir() {
            return Err(format!(
                "rule set {version} is not kept beside the log ({} is missing)",
                path.display()
            ));
        }
        let rules = self.compile(&path)?;
        if rules.version != version {
            return Err(format!(
                "{} was altered: its files have version {}",
                path.display(),
                rules.version
            ));
        }
        Ok(rules)
    }

    fn compile(&self, dir: &Path) -> Result<RuleSet, String> {
        // The date only decides which expiry warnings compiling gives.
        compile::load_dir(dir, OffsetDateTime::now_utc().date())
            .map(|c| c.rules)
            .map_err(|errors| {
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
    }
}

/// Copies the `*.toml` files under `from/rel` that the rules compiler
/// reads: names starting with `.` are not rules, links to files are
/// followed, links to directories are not. Each file and directory is
/// fsynced.
fn copy_tree(from: &Path, to: &Path, rel: &str) -> Result<(), (PathBuf, io::Error)> {
    let (src, dst) = (from.join(rel), to.join(rel));
    fs::create_dir_all(&dst).map_err(|e| (dst.clone(), e))?;
    let entries = fs::read_dir(&src).map_err(|e| (src.clone(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| (src.clone(), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            copy_tree(from, to, &rel)?;
        } else if rel.ends_with(".toml") {
            let (s, d) = (from.join(&rel), to.join(&rel));
            fs::copy(&s, &d).map_err(|e| (s, e))?;
            File::open(&d)
                .and_then(|f| f.sync_all())
                .map_err(|e| (d, e))?;
        }
    }
    File::open(&dst)
        .and_then(|d| d.sync_all())
        .map_err(|e| (dst, e))
}
