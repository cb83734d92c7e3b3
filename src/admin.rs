//! The admin listener: metrics, health, readiness, reload, rule info and
//! explain (DESIGN §5).

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::audit::AuditHandle;
use crate::explain;
use crate::metrics::Metrics;
use crate::proxy::server::EdgeMetrics;
use crate::reload::{fingerprint, Fingerprint, Reloader};

pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub edge_metrics: Arc<EdgeMetrics>,
    pub reloader: Arc<Reloader>,
    pub audit: AuditHandle,
    /// Set on SIGTERM: `/readyz` answers 503 from then on, so that load
    /// balancers stop sending before the listeners close.
    pub draining: Arc<AtomicBool>,
    /// Required by `POST` endpoints and `/v1/explain` when set.
    pub token: Option<Arc<TokenFile>>,
    /// `limits.max_explain_body_bytes`.
    pub max_explain_body: usize,
    /// `limits.header_timeout`: the admin listener may be off loopback.
    pub header_timeout: Duration,
}

/// The admin bearer token, kept as an HMAC tag under a key of this process
/// so that a presented token is checked by comparing tags in constant time
/// (`verify_slice`): neither the token's bytes nor its length show in how
/// long a wrong guess takes.
struct Token {
    key: [u8; 32],
    tag: Vec<u8>,
}

type Mac = hmac::Hmac<sha2::Sha256>;

/// `admin.token_file` and the token in force. A rotated token is taken up
/// once the file has stayed the same for one look, so that a half-written
/// file is not read; a file that is missing, empty or unreadable then keeps
/// the token in force, because an admin listener without a token would be
/// open to anyone who reaches it.
pub struct TokenFile {
    path: PathBuf,
    current: ArcSwap<Token>,
    looks: Mutex<Looks>,
}

struct Looks {
    /// The file as it was when last read (whether or not the read worked).
    read: Fingerprint,
    /// A change seen at the last look, read if the next look sees it again.
    pending: Option<Fingerprint>,
}

impl TokenFile {
    pub fn load(path: &Path) -> Result<TokenFile, String> {
        let read = fingerprint([path.to_path_buf()]);
        Ok(TokenFile {
            current: ArcSwap::from_pointee(Token::load(path)?),
            path: path.to_path_buf(),
            looks: Mutex::new(Looks {
                read,
                pending: None,
            }),
        })
    }

    /// Called on a timer: reads the file again once a change has settled.
    /// `None` when there was nothing to read.
    pub fn reload_if_changed(&self) -> Option<Result<(), String>> {
        let now = fingerprint([self.path.clone()]);
        let mut looks = self.looks.lock().unwrap_or_else(PoisonError::into_inner);
        if now == looks.read {
            looks.pending = None;
            return None;
        }
        if looks.pending.as_ref() != Some(&now) {
            looks.pending = Some(now);
            return None;
        }
        looks.pending = None;
        looks.read = now;
        Some(Token::load(&self.path).map(|t| self.current.store(Arc::new(t))))
    }

    fn admits(&self, headers: &http::HeaderMap) -> bool {
        self.current.load().admits(headers)
    }
}

impl Token {
    /// Reads the token from `admin.token_file`: its first line, without
    /// surrounding whitespace.
    fn load(path: &Path) -> Result<Token, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("admin.token_file {}: {e}", path.display()))?;
        let token = text.lines().next().unwrap_or_default().trim();
        if token.is_empty() {
            return Err(format!("admin.token_file {} is empty", path.display()));
        }
        Ok(Token::new(token.as_bytes()))
    }

    fn new(token: &[u8]) -> Token {
        use hmac::Mac as _;
        let key = rand::random::<[u8; 32]>();
        let tag = Token::mac(&key, token).finalize().into_bytes().to_vec();
        Token { key, tag }
    }

    fn mac(key: &[u8; 32], data: &[u8]) -> Mac {
        use hmac::Mac as _;
        let mut mac = Mac::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(data);
        mac
    }

    /// Whether `headers` carry exactly one `Authorization: Bearer <token>`
    /// with this token.
    fn admits(&self, headers: &http::HeaderMap) -> bool {
        use hmac::Mac as _;
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let Some((scheme, presented)) = value.as_bytes().split_at_checked(7) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(b"bearer ")
            && Token::mac(&self.key, presented)
                .verify_slice(&self.tag)
                .is_ok()
    }
}

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

fn json(status: StatusCode, v: &serde_json::Value) -> Resp {
    reply(
        status,
        "application/json",
        serde_json::to_vec_pretty(v).unwrap_or_default(),
    )
}

impl Admin {
    async fn route(self: Arc<Self>, req: Request<Incoming>) -> Resp {
        let guarded = req.method() == Method::POST || req.uri().path() == "/v1/explain";
        if let (true, Some(token)) = (guarded, &self.token) {
            if !token.admits(req.headers()) {
                self.edge_metrics.admin_refused("unauthorized");
                let mut r = json(
                    StatusCode::UNAUTHORIZED,
                    &serde_json::json!({"error": "this endpoint needs Authorization: Bearer <admin token>"}),
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                return r;
            }
        }
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/metrics") => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.metrics.encode(),
            ),
            (&Method::GET, "/healthz") => reply(StatusCode::OK, "text/plain", "ok\n"),
            (&Method::GET, "/readyz") => {
                if self.draining.load(Ordering::Relaxed) {
                    reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "draining\n")
                } else if self.audit.healthy() {
                    reply(StatusCode::OK, "text/plain", "ready\n")
                } else {
                    reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        "audit trail unavailable\n",
                    )
                }
            }
            (&Method::POST, "/-/reload") => match self.reloader.reload() {
                Ok(version) => json(
                    StatusCode::OK,
                    &serde_json::json!({"result": "ok", "version": version}),
                ),
                Err(errors) => json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &serde_json::json!({"result": "error", "errors": errors}),
                ),
            },
            (&Method::GET, "/v1/rules") => json(StatusCode::OK, &self.reloader.info()),
            (&Method::POST, "/v1/explain") => {
                let body = match Limited::new(req.into_body(), self.max_explain_body)
                    .collect()
                    .await
                {
                    Ok(b) => b.to_bytes(),
                    Err(e) if e.is::<LengthLimitError>() => {
                        self.edge_metrics.admin_refused("body_too_large");
                        let error = format!("explain body over {} bytes", self.max_explain_body);
                        return json(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            &serde_json::json!({ "error": error }),
                        );
                    }
                    Err(_) => {
                        return json(
                            StatusCode::BAD_REQUEST,
                            &serde_json::json!({"error": "explain body incomplete"}),
                        )
                    }
                };
                let snap = self.reloader.current();
                match explain::from_json(&body).and_then(|q| {
                    explain::explain(
                        &snap,
                        self.reloader.record_settings(),
                        self.reloader.hosts(),
                        &q,
                    )
                }) {
                    Ok(answer) => json(StatusCode::OK, &answer),
                    Err(e) => json(StatusCode::BAD_REQUEST, &serde_json::json!({"error": e})),
                }
            }
            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        }
    }
}

pub async fn serve(listener: TcpListener, admin: Arc<Admin>, shutdown: impl Future<Output = ()>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(admin.header_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
            () = shutdown.as_mut() => return,
        };
        let admin = admin.clone();
        let service = service_fn(move |req| {
            let admin = admin.clone();
            async move { Ok::<_, Infallible>(admin.route(req).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(socket), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
