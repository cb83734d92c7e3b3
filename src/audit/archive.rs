//! Ships sealed segments to an S3 bucket, so that a fleet of gates keeps
//! one place of record (`[audit.archive]`).
//!
//! Every `interval`, each sealed segment still on disk is uploaded with its
//! seal to `<prefix>/<instance>/<file name>`, under Object Lock retention
//! when the bucket has Object Lock. An upload counts once a `HEAD` of the
//! object shows its size and its ETag (the MD5 both S3 and the stores the
//! tests run compute for a single-part upload) equal to the local file's.
//! Only then, once both the segment and its seal are confirmed, is the
//! segment's data deleted, and only if [`archivable`](super::archivable)
//! lists it (never the newest segment with records, which the writer
//! resumes from); the seal stays, and `verify` reads it in the segment's
//! place. A segment already in the bucket with the same contents is
//! not sent again, so a restart repeats nothing. Anything that fails ends
//! the round, is counted, and is tried again the next one: nothing is
//! deleted on doubt.
//!
//! Requests are signed with SigV4 over the real SHA-256 of the body, read
//! from disk in a first pass; the body is then streamed from disk, so a
//! segment is never held in memory.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Limited, StreamBody};
use hyper::body::Frame;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::chain;
use super::seal;
use crate::config::{Archive, LockMode};

/// As `x-amz-object-lock-mode` names it.
fn lock_mode(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Compliance => "COMPLIANCE",
        LockMode::Governance => "GOVERNANCE",
    }
}

/// Counters for the metrics module, read at scrape time.
#[derive(Debug, Default)]
pub struct ArchiveStats {
    /// Segments confirmed in the bucket with their seals.
    pub segments_total: AtomicU64,
    /// Bytes uploaded: segments and seals.
    pub bytes_total: AtomicU64,
    /// Rounds that ended in a failure (retried the next round).
    pub errors_total: AtomicU64,
}

/// The running archiver; stops when told to or dropped.
pub struct Archiver {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Starts archiving the log in `dir`, written by `instance`, on the
/// current tokio runtime; the first round runs at once. The credentials
/// are read from their files now: a gate that could never archive does
/// not start.
pub fn start(
    settings: Archive,
    dir: &Path,
    instance: &str,
    stats: Arc<ArchiveStats>,
) -> Result<Archiver, String> {
    let connector =
        crate::proxy::forward::connector(CONNECT_TIMEOUT, settings.ca.as_deref(), None)?;
    let client = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector);
    let host = settings
        .endpoint
        .authority()
        .ok_or("audit.archive.url needs a host")?
        .to_string();
    let shipper = Shipper {
        signer: Signer {
            access_key: read_key(&settings.access_key_file, "access_key_file")?,
            secret_key: read_key(&settings.secret_key_file, "secret_key_file")?,
            region: settings.region.clone(),
        },
        settings,
        dir: dir.to_owned(),
        instance: instance.to_owned(),
        client,
        host,
        stats,
        lock: None,
        shipped: HashMap::new(),
    };
    let (stop, stopped) = oneshot::channel();
    Ok(Archiver {
        stop,
        task: tokio::spawn(shipper.run(stopped)),
    })
}

fn read_key(path: &Path, key: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("audit.archive.{key} {}: {e}", path.display()))?;
    match text.trim() {
        "" => Err(format!("audit.archive.{key} {} is empty", path.display())),
        key => Ok(key.to_owned()),
    }
}

impl Archiver {
    /// Stops at once, also in the middle of an upload: nothing is deleted
    /// before its upload is confirmed, so a cut upload is only sent again.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One request, body included: a 64 MiB segment at 1 Mbit/s takes less.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(900);
/// The most of a response body read: S3 answers these requests with a
/// small XML document or nothing.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
const CHUNK: usize = 64 << 10;

type Body = UnsyncBoxBody<Bytes, io::Error>;

struct Shipper {
    settings: Archive,
    /// The audit log directory.
    dir: PathBuf,
    /// Names this gate's folder in the bucket.
    instance: String,
    client: Client<HttpsConnector<HttpConnector>, Body>,
    /// The Host header: the endpoint's authority.
    host: String,
    signer: Signer,
    stats: Arc<ArchiveStats>,
    /// Whether the bucket has Object Lock, once it has said.
    lock: Option<bool>,
    /// Segments confirmed in the bucket by this process and kept on disk
    /// (the newest, or all without `delete_local`), by first seq: they are
    /// not hashed and sent again every round.
    shipped: HashMap<u64, Contents>,
}

/// What a file holds, as far as an upload needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Contents {
    len: u64,
    sha256: [u8; 32],
    md5: [u8; 16],
}

impl Shipper {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut tick = tokio::time::interval(self.settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
            }
            tokio::select! {
                _ = &mut stop => return,
                result = self.round() => if let Err(e) = result {
                    self.stats.errors_total.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, retry_in = ?self.settings.interval, "audit archive failed");
                },
            }
        }
    }

    async fn round(&mut self) -> Result<(), String> {
        let lock = match self.lock {
            Some(lock) => lock,
            None => *self.lock.insert(self.object_lock().await?),
        };
        let dir = self.dir.clone();
        let (sealed, archivable) = tokio::task::spawn_blocking(move || {
            io::Result::Ok((sealed_segments(&dir)?, super::archivable(&dir)?))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("listing {}: {e}", self.dir.display()))?;
        let deletable: HashSet<u64> = archivable.iter().map(|s| s.first_seq).collect();
        for seg in sealed {
            let earlier = self.shipped.get(&seg.first_seq).cloned();
            let contents = match &earlier {
                Some(contents) => contents.clone(),
                None => {
                    let contents = self.put(&seg.segment, lock).await?;
                    self.put(&seg.seal, lock).await?;
                    self.stats.segments_total.fetch_add(1, Relaxed);
                    tracing::info!(segment = %seg.segment.display(), bytes = contents.len, "audit segment archived");
                    self.shipped.insert(seg.first_seq, contents.clone());
                    contents
                }
            };
            if !self.settings.delete_local || !deletable.contains(&seg.first_seq) {
                continue;
            }
            // Confirmed rounds ago: what if it was removed from the bucket since?
            if earlier.is_some() && !self.holds(&self.key(&seg.segment), &contents).await? {
                self.shipped.remove(&seg.first_seq);
                return Err(format!(
                    "{} is no longer in the bucket as it was uploaded; sending it again",
                    seg.segment.display()
                ));
            }
            std::fs::remove_file(&seg.segment)
                .map_err(|e| format!("deleting {}: {e}", seg.segment.display()))?;
            self.shipped.remove(&seg.first_seq);
        }
        Ok(())
    }

    /// Asks the bucket once whether it has Object Lock. Storage without
    /// Object Lock gets uploads without retention, which is said once.
    async fn object_lock(&self) -> Result<bool, String> {
        let path = format!("/{}", encode(&self.settings.bucket));
        let (status, _, body) = self
            .send(Method::GET, &path, "object-lock=", Vec::new(), None)
            .await?;
        let enabled = match (status, s3_code(&body).as_deref()) {
            (StatusCode::OK, _) => {
                xml_text(&body, "ObjectLockEnabled").as_deref() == Some("Enabled")
            }
            (_, Some("ObjectLockConfigurationNotFoundError" | "NotImplemented")) => false,
            _ => return Err(failure("GET ?object-lock", &path, status, &body)),
        };
        match (enabled, self.settings.retention) {
            (true, _) => {
                tracing::info!(bucket = %self.settings.bucket, "audit archive bucket has Object Lock")
            }
            (false, Some(_)) => {
                tracing::warn!(bucket = %self.settings.bucket, "audit archive bucket has no Object Lock: segments are uploaded without retention")
            }
            (false, None) => {
                tracing::info!(bucket = %self.settings.bucket, "audit archive bucket has no Object Lock")
            }
        }
        Ok(enabled)
    }

    fn key(&self, file: &Path) -> String {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        match self.settings.prefix.as_str() {
            "" => format!("{}/{name}", self.instance),
            prefix => format!("{prefix}/{}/{name}", self.instance),
        }
    }

    /// Uploads `file` unless the bucket holds it already, and confirms it
    /// is there.
    async fn put(&self, file: &Path, lock: bool) -> Result<Contents, String> {
        let key = self.key(file);
        let owned = file.to_owned();
        let contents = tokio::task::spawn_blocking(move || read_contents(&owned))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("reading {}: {e}", file.display()))?;
        if self.holds(&key, &contents).await? {
            return Ok(contents);
        }
        let body = tokio::fs::File::open(file)
            .await
            .map_err(|e| format!("reading {}: {e}", file.display()))?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut headers = vec![
            ("content-length".into(), contents.len.to_string()),
            ("content-md5".into(), b64.encode(contents.md5)),
            ("x-amz-checksum-sha256".into(), b64.encode(contents.sha256)),
        ];
        if let (true, Some(retention)) = (lock, self.settings.retention) {
            // At most 36,500 days (config.rs): no overflow.
            let days = time::Duration::days(retention.days as i64);
            let until = OffsetDateTime::now_utc() + days;
            headers.push((
                "x-amz-object-lock-mode".into(),
                lock_mode(retention.mode).into(),
            ));
            headers.push((
                "x-amz-object-lock-retain-until-date".into(),
                until
                    .format(RETAIN_UNTIL)
                    .map_err(|e| format!("retain-until date: {e}"))?,
            ));
        }
        let path = self.path(&key);
        let (status, _, answer) = self
            .send(Method::PUT, &path, "", headers, Some((body, &contents)))
            .await?;
        if status != StatusCode::OK {
            return Err(failure("PUT", &path, status, &answer));
        }
        self.stats.bytes_total.fetch_add(contents.len, Relaxed);
        if !self.holds(&key, &contents).await? {
            return Err(format!(
                "PUT {path} succeeded, but the object is not what was sent (size or ETag differ)"
            ));
        }
        Ok(contents)
    }

    /// Whether the bucket holds `key` with `contents`: its size, and its
    /// ETag as the MD5 of a single-part upload.
    async fn holds(&self, key: &str, contents: &Contents) -> Result<bool, String> {
        let path = self.path(key);
        let (status, headers, body) = self.send(Method::HEAD, &path, "", Vec::new(), None).await?;
        match status {
            StatusCode::OK => {
                let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
                let len = header("content-length").and_then(|l| l.parse::<u64>().ok());
                let etag = header("etag").map(|e| e.trim_matches('"').to_ascii_lowercase());
                Ok(len == Some(contents.len) && etag == Some(hex::encode(contents.md5)))
            }
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(failure("HEAD", &path, status, &body)),
        }
    }

    fn path(&self, key: &str) -> String {
        format!("/{}/{}", encode(&self.settings.bucket), encode(key))
    }

    /// Sends one signed request. `query` is in canonical form; `body` is a
    /// file with what it holds, else the request has none.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &str,
        mut headers: Vec<(String, String)>,
        body: Option<(tokio::fs::File, &Contents)>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), String> {
        let payload = match &body {
            Some((_, contents)) => hex::encode(contents.sha256),
            None => hex::encode(Sha256::digest(b"")),
        };
        headers.push(("host".into(), self.host.clone()));
        headers.push(("x-amz-content-sha256".into(), payload));
        self.signer.sign(
            method.as_str(),
            path,
            query,
            &mut headers,
            OffsetDateTime::now_utc(),
        );
        let target = match query {
            "" => format!("{}{path}", origin(&self.settings.endpoint)),
            q => format!("{}{path}?{q}", origin(&self.settings.endpoint)),
        };
        let mut req = Request::builder().method(method.clone()).uri(&target);
        for (name, value) in &headers {
            req = req.header(name, value);
        }
        let body = match body {
            Some((file, _)) => file_body(file),
            None => Empty::new().map_err(|never| match never {}).boxed_unsync(),
        };
        let req = req
            .body(body)
            .map_err(|e| format!("{method} {target}: {e}"))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{method} {target}: {}", source_chain(&e)))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| format!("{method} {target}: reading the answer: {e}"))?
                .to_bytes();
            Ok((parts.status, parts.headers, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{method} {target}: no answer within {REQUEST_TIMEOUT:?}"))?
    }
}

/// `2026-12-31T23:59:59Z`, as S3 takes `x-amz-object-lock-retain-until-date`.
const RETAIN_UNTIL: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

fn origin(endpoint: &Uri) -> String {
    format!(
        "{}://{}",
        endpoint.scheme_str().unwrap_or("http"),
        endpoint.authority().map_or("", |a| a.as_str())
    )
}

/// Why a connection failed, down to its cause (hyper's own message is only
/// "client error (Connect)").
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn failure(what: &str, path: &str, status: StatusCode, body: &[u8]) -> String {
    match s3_code(body) {
        Some(code) => format!("{what} {path}: {status} {code}"),
        None => format!("{what} {path}: {status}"),
    }
}

/// The `Code` of an S3 error document.
fn s3_code(body: &[u8]) -> Option<String> {
    xml_text(body, "Code")
}

/// The text of the first element named `tag`.
fn xml_text(body: &[u8], tag: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut inside = false;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => inside = e.local_name().as_ref() == tag.as_bytes(),
            Event::Text(t) if inside => return t.unescape().ok().map(|t| t.trim().to_owned()),
            Event::End(_) => inside = false,
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// The body of a PUT, read from disk as it is sent.
fn file_body(file: tokio::fs::File) -> Body {
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = BytesMut::with_capacity(CHUNK);
        match file.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(Frame::data(buf.freeze())), Some(file))),
            // Ends the body: hyper then aborts the request.
            Err(e) => Some((Err(e), None)),
        }
    });
    StreamBody::new(chunks).boxed_unsync()
}

/// The first pass over a file: its length and digests.
fn read_contents(path: &Path) -> io::Result<Contents> {
    use md5::Digest as _;
    let mut file = File::open(path)?;
    let mut sha256 = Sha256::new();
    let mut md5 = md5::Md5::new();
    let mut len = 0;
    let mut buf = vec![0; CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha256.update(&buf[..n]);
        md5.update(&buf[..n]);
        len += n as u64;
    }
    Ok(Contents {
        len,
        sha256: sha256.finalize().into(),
        md5: md5.finalize().into(),
    })
}

/// A sealed segment whose data is still on disk.
#[derive(Debug, PartialEq, Eq)]
struct Sealed {
    first_seq: u64,
    segment: PathBuf,
    seal: PathBuf,
}

/// The sealed segments in `dir` whose data is still there, oldest first:
/// all are shipped, the newest too, though only those
/// [`archivable`](super::archivable) lists may then be deleted.
fn sealed_segments(dir: &Path) -> io::Result<Vec<Sealed>> {
    Ok(chain::segments(dir)?
        .into_iter()
        .filter_map(|(first_seq, segment)| {
            let seal = seal::seal_path(&segment);
            seal.exists().then_some(Sealed {
                first_seq,
                segment,
                seal,
            })
        })
        .collect())
}

/// What SigV4 leaves unencoded in a path: RFC 3986 unreserved characters,
/// and `/` between segments.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

fn encode(text: &str) -> String {
    utf8_percent_encode(text, PATH).to_string()
}

/// AWS Signature Version 4 for S3, with the payload's SHA-256 signed.
struct Signer {
    access_key: String,
    secret_key: String,
    region: String,
}

impl Signer {
    /// Adds `x-amz-date` and `authorization` to `headers`, which hold
    /// `host`, `x-amz-content-sha256` and every other header to be sent,
    /// all signed, under lower-case names. `path` is URI-encoded and
    /// `query` canonical (sorted, encoded, `name=value`).
    fn sign(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &mut Vec<(String, String)>,
        now: OffsetDateTime,
    ) {
        let stamp = now
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .expect("a UTC time formats");
        let date = &stamp[..8];
        headers.push(("x-amz-date".into(), stamp.clone()));
        headers.sort();
        let payload = headers
            .iter()
            .find(|(name, _)| name == "x-amz-content-sha256")
            .map_or("UNSIGNED-PAYLOAD", |(_, v)| v.as_str())
            .to_owned();
        let signed: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
        let signed = signed.join(";");
        let canonical_headers: String = headers
            .iter()
            .map(|(name, value)| format!("{name}:{}\n", value.trim()))
            .collect();
        let canonical =
            format!("{method}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{payload}");
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let key = [date, &self.region, "s3", "aws4_request"].iter().fold(
            format!("AWS4{}", self.secret_key).into_bytes(),
            |key, part| hmac(&key, part.as_bytes()).to_vec(),
        );
        let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
        headers.push((
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
                self.access_key
            ),
        ));
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_signer() -> Signer {
        Signer {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            region: "us-east-1".into(),
        }
    }

    fn signature(method: &str, path: &str, query: &str, extra: &[(&str, &str)]) -> String {
        let mut headers: Vec<(String, String)> = [
            ("host", "examplebucket.s3.amazonaws.com"),
            (
                "x-amz-content-sha256",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
        ]
        .iter()
        .chain(extra)
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
        let now = time::macros::datetime!(2013-05-24 0:00 UTC);
        example_signer().sign(method, path, query, &mut headers, now);
        let auth = &headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .unwrap()
            .1;
        auth.rsplit_once("Signature=").unwrap().1.to_owned()
    }

    /// The examples of the S3 API reference, "Signature Calculations for
    /// the Authorization Header: Transferring Payload in a Single Chunk".
    #[test]
    fn signs_like_the_aws_examples() {
        assert_eq!(
            signature("GET", "/test.txt", "", &[("range", "bytes=0-9")]),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert_eq!(
            signature("GET", "/", "lifecycle=", &[]),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
        assert_eq!(
            signature("GET", "/", "max-keys=2&prefix=J", &[]),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn keys_are_encoded_once_with_slashes_kept() {
        assert_eq!(
            encode("audit/gate 1/segment-01.jsonl"),
            "audit/gate%201/segment-01.jsonl"
        );
        assert_eq!(encode("a~b_c-d.e+f"), "a~b_c-d.e%2Bf");
    }

    #[test]
    fn reads_s3_answers() {
        let lock = b"<?xml version=\"1.0\"?><ObjectLockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>";
        assert_eq!(
            xml_text(lock, "ObjectLockEnabled").as_deref(),
            Some("Enabled")
        );
        let error =
            b"<Error><Code>ObjectLockConfigurationNotFoundError</Code><Message>x</Message></Error>";
        assert_eq!(
            s3_code(error).as_deref(),
            Some("ObjectLockConfigurationNotFoundError")
        );
        assert_eq!(s3_code(b""), None);
    }

    /// Every sealed segment still here is listed, the newest too.
    #[test]
    fn lists_the_sealed_segments_still_here() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(&chain::segment_name(1), "a\n");
        write("segment-00000000000000000001.seal.json", "{}\n");
        write(&chain::segment_name(3), "b\n");
        write("segment-00000000000000000003.seal.json", "{}\n");
        write(&chain::segment_name(5), "c\n");
        // A seal whose segment is gone (archived before) is not listed.
        write("segment-00000000000000000000.seal.json", "{}\n");
        let sealed = sealed_segments(dir.path()).unwrap();
        let seqs: Vec<u64> = sealed.iter().map(|s| s.first_seq).collect();
        assert_eq!(seqs, [1, 3]);
        assert_eq!(
            sealed[1].seal,
            dir.path().join("segment-00000000000000000003.seal.json")
        );
    }

    /// A segment of up to 64 MiB is never held whole: the body is read
    /// from disk a chunk at a time as it is sent.
    #[tokio::test]
    async fn a_body_is_streamed_from_disk_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..(CHUNK * 3 + 5)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut body = file_body(tokio::fs::File::open(&path).await.unwrap());
        let (mut sent, mut frames) = (Vec::new(), 0);
        while let Some(frame) = body.frame().await {
            let chunk = frame.unwrap().into_data().unwrap();
            assert!(chunk.len() <= CHUNK);
            sent.extend_from_slice(&chunk);
            frames += 1;
        }
        assert!(sent == data);
        assert!(frames >= 4, "{frames} frames");
    }

    #[test]
    fn contents_are_hashed_in_one_pass() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..(CHUNK * 2 + 7)).map(|i| i as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let c = read_contents(&path).unwrap();
        assert_eq!(c.len, data.len() as u64);
        assert_eq!(c.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
        // RFC 1321's test suite.
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(
            hex::encode(read_contents(&path).unwrap().md5),
            "900150983cd24fb0d6963f7d28e17f72"
        );
    }
}
