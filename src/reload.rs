//! Building snapshots and swapping them in: at start, on `SIGHUP`, on
//! `POST /-/reload` and when a rule file or the GeoIP database changes. A
//! reload that fails keeps the rules in force and says why, until a good one
//! clears it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use time::OffsetDateTime;

use crate::audit::rulesets::{KeepError, RuleStore};
use crate::describe::RecordSettings;
use crate::locate::geoip::GeoIp;
use crate::metrics::Metrics;
use crate::rules::compile::{self, Diagnostic};
use crate::s3::Hosts;
use crate::snapshot::{InstanceSettings, Snapshot};

/// Where a snapshot comes from.
#[derive(Clone, Debug)]
pub struct Sources {
    pub rules_dir: PathBuf,
    pub geoip: PathBuf,
    pub instance: InstanceSettings,
}

/// Identity of the files a snapshot was built from: a change in any name,
/// size or modification time is a change.
pub(crate) type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

struct State {
    last_error: Option<Vec<String>>,
    last_error_at: Option<OffsetDateTime>,
    geoip_stamp: Fingerprint,
    fingerprint: Fingerprint,
}

pub struct Reloader {
    sources: Sources,
    current: Arc<ArcSwap<Snapshot>>,
    metrics: Arc<Metrics>,
    record: RecordSettings,
    hosts: Hosts,
    /// Where each rule set is kept beside the audit log before it comes
    /// into force.
    kept: RuleStore,
    /// Serialises reloads: two at once would race to store.
    state: Mutex<State>,
}

/// Builds the first snapshot; any error refuses the start.
pub fn initial(sources: &Sources) -> Result<(Snapshot, Vec<Diagnostic>), Vec<String>> {
    let geoip = GeoIp::open(&sources.geoip)
        .map_err(|e| vec![format!("{}: {e}", sources.geoip.display())])?;
    build(sources, Arc::new(geoip))
}

fn build(sources: &Sources, geoip: Arc<GeoIp>) -> Result<(Snapshot, Vec<Diagnostic>), Vec<String>> {
    let today = OffsetDateTime::now_utc().date();
    let compiled = compile::load_dir(&sources.rules_dir, today)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let snap = Snapshot::build(compiled.rules, geoip, &sources.instance).map_err(|e| vec![e])?;
    Ok((snap, compiled.warnings))
}

pub(crate) fn fingerprint(paths: impl IntoIterator<Item = PathBuf>) -> Fingerprint {
    let mut out: Fingerprint = paths
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (p, len, modified)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn rule_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                files.push(p);
            }
        }
    }
    files
}

impl Reloader {
    pub fn new(
        sources: Sources,
        first: Snapshot,
        metrics: Arc<Metrics>,
        record: RecordSettings,
        hosts: Hosts,
        kept: RuleStore,
    ) -> Reloader {
        metrics.set_rules_version(None, &first.rules.version);
        let state = State {
            last_error: None,
            last_error_at: None,
            geoip_stamp: fingerprint([sources.geoip.clone()]),
            fingerprint: fingerprint(rule_files(&sources.rules_dir)),
        };
        Reloader {
            current: Arc::new(ArcSwap::from_pointee(first)),
            sources,
            metrics,
            record,
            hosts,
            kept,
            state: Mutex::new(state),
        }
    }

    /// The handle requests load their snapshot from.
    pub fn snapshots(&self) -> Arc<ArcSwap<Snapshot>> {
        self.current.clone()
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn record_settings(&self) -> &RecordSettings {
        &self.record
    }

    pub fn hosts(&self) -> &Hosts {
        &self.hosts
    }

    /// Compiles the rules (and reopens the GeoIP database if its file
    /// changed) and swaps the result in with one store. On error the rules
    /// in force stay, and the errors are kept for `/v1/rules`.
    pub fn reload(&self) -> Result<String, Vec<String>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.current.load_full();
        let geoip_stamp = fingerprint([self.sources.geoip.clone()]);
        let geoip = if geoip_stamp == state.geoip_stamp {
            Ok(old.geoip.clone())
        } else {
            GeoIp::open(&self.sources.geoip)
                .map(Arc::new)
                .map_err(|e| vec![format!("{}: {e}", self.sources.geoip.display())])
        };
        state.fingerprint = fingerprint(rule_files(&self.sources.rules_dir));
        match geoip
            .and_then(|g| build(&self.sources, g))
            .and_then(|built| self.keep(built))
        {
            Ok((snap, warnings)) => {
                for w in &warnings {
                    tracing::warn!("{w}");
                }
                let version = snap.rules.version.clone();
                self.metrics
                    .set_rules_version(Some(&old.rules.version), &version);
                self.current.store(Arc::new(snap));
                self.metrics.rules_reloads.with_label_values(&["ok"]).inc();
                state.last_error = None;
                state.last_error_at = None;
                state.geoip_stamp = geoip_stamp;
                tracing::info!(%version, "rules reloaded");
                Ok(version)
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!("reload failed, rules in force kept: {e}");
                }
                self.metrics
                    .rules_reloads
                    .with_label_values(&["error"])
                    .inc();
                state.last_error = Some(errors.clone());
                state.last_error_at = Some(OffsetDateTime::now_utc());
                Err(errors)
            }
        }
    }

    /// Keeps the new rule set beside the audit log. Files edited since they
    /// were compiled fail the reload (the watcher tries again); a copy that
    /// cannot be written does not: new rules matter more than their copy.
    fn keep(
        &self,
        (snap, warnings): (Snapshot, Vec<Diagnostic>),
    ) -> Result<(Snapshot, Vec<Diagnostic>), Vec<String>> {
        match self.kept.keep(&self.sources.rules_dir, &snap.rules.version) {
            Ok(_) => {}
            Err(e @ KeepError::Changed { .. }) => return Err(vec![e.to_string()]),
            Err(e) => tracing::error!(
                version = %snap.rules.version,
                "cannot keep the rule set beside the audit log, so it cannot be replayed: {e}"
            ),
        }
        Ok((snap, warnings))
    }

    /// Reloads when a rule file or the GeoIP database changed since the last
    /// look. Called on a timer; a change is acted on once it has been stable
    /// for one interval, so an editor's half-written save is not compiled.
    pub fn reload_if_changed(&self, pending: &mut Option<(Fingerprint, Fingerprint)>) {
        let now = (
            fingerprint(rule_files(&self.sources.rules_dir)),
            fingerprint([self.sources.geoip.clone()]),
        );
        let changed = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            now.0 != state.fingerprint || now.1 != state.geoip_stamp
        };
        if !changed {
            *pending = None;
            return;
        }
        if pending.as_ref() == Some(&now) {
            *pending = None;
            let _ = self.reload();
        } else {
            *pending = Some(now);
        }
    }

    /// Watches the rule files and the GeoIP database until the process ends.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let mut pending = None;
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let this = self.clone();
            let mut p = pending.take();
            pending = tokio::task::spawn_blocking(move || {
                this.reload_if_changed(&mut p);
                p
            })
            .await
            .unwrap_or(None);
        }
    }

    /// `GET /v1/rules`.
    pub fn info(&self) -> serde_json::Value {
        let snap = self.current.load_full();
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let t = &snap.rules.tables;
        let fmt = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        serde_json::json!({
            "version": snap.rules.version,
            "loaded_at": fmt(snap.loaded_at),
            "counts": {
                "jurisdictions": t.jurisdictions.len(),
                "regions": t.regions.len(),
                "categories": t.categories.len(),
                "tenants": t.tenants.len(),
                "buckets": t.buckets.len(),
                "classify": t.buckets.iter().map(|b| b.classify.len()).sum::<usize>(),
                "networks": t.networks.len(),
                "peers": t.peers.len(),
                "bases": t.bases.len(),
            },
            "geoip": {
                "database_type": snap.geoip.database_type(),
                "build_epoch": snap.geoip.build_epoch(),
            },
            "last_error": state.last_error,
            "last_error_at": state.last_error_at.map(fmt),
        })
    }
}
