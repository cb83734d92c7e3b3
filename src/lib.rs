//! # Gatekeeper
//!
//! A reverse proxy in front of S3-compatible storage that enforces data
//! residency: every request is classified, located, resolved against the
//! rules, decided, forwarded (or refused) and recorded.
//!
//! # Layout
//!
//! Imports point downwards only.
//!
//! - `cli` — the command line (`main.rs` only dispatches to it).
//! - `proxy` — sockets, streaming, timeouts: the phases, once per request.
//! - `admin`, `metrics` — the admin listener and Prometheus metrics.
//! - `audit` — decision and completion records, the hash chain, the writer.
//! - `policy` — the decision of DESIGN §3: pure, no I/O, no clock.
//! - `snapshot` — one `Arc` holding the rules, GeoIP reader and settings a
//!   request is decided against.
//! - `locate` — where the requester is (peer, network, GeoIP).
//! - `s3` — the S3 wire protocol: operations, addressing, errors, XML.
//! - `rules` — rule files: raw → compiled → indexed `RuleSet`.
//! - `config` — `gatekeeper.toml`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod cli;
pub mod config;
pub mod describe;
pub mod devcerts;
pub mod explain;
#[doc(hidden)]
pub mod fuzzing;
pub mod locate;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod rules;
pub mod s3;
pub mod snapshot;
pub mod tls;

/// mimalloc rather than glibc's malloc: a request allocates about 34
/// times, and glibc's consolidation and chunk unlinking showed up in the
/// profile. Declared here, not in `main.rs`, so that the tests and
/// benches, which link this crate, run on the allocator the gate ships
/// with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
