//! Replays every file of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` through the fuzz target of that name, with
//! the same invariant checks libFuzzer runs (`gatekeeper::fuzzing`), on
//! stable Rust and without libFuzzer. See `fuzz/README.md`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use gatekeeper::fuzzing::TARGETS;

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(kind: &str, min_files: usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind);
    let mut failures = Vec::new();
    let mut total = 0;
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let files = files(&dir);
        assert!(
            files.len() >= min_files,
            "{}: {} files, expected at least {min_files}",
            dir.display(),
            files.len()
        );
        for file in files {
            let data = std::fs::read(&file).expect("readable corpus file");
            total += 1;
            // Every file runs, so one failure does not hide the others.
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&data))) {
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                failures.push(format!("{}: {message}", file.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} {kind} files fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every target has a corpus, and all of it passes.
#[test]
fn corpus_replays_clean() {
    replay("corpus", 1);
}

/// Inputs that once crashed a target or broke an invariant.
#[test]
fn regressions_replay_clean() {
    replay("regressions", 0);
}

/// The corpus directories are exactly the targets, so a renamed target
/// cannot leave its corpus unreplayed.
#[test]
fn corpus_directories_are_targets() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(kind)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() {
                assert!(
                    TARGETS.iter().any(|(t, _)| *t == name),
                    "fuzz/{kind}/{name} is no target"
                );
            }
        }
    }
}
