//! The admin listener: metrics, health, readiness, reload, rule info and
//! explain (DESIGN §5).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::audit::AuditHandle;
use crate::explain;
use crate::metrics::Metrics;
use crate::reload::Reloader;

/// Explain requests are small JSON documents.
const MAX_EXPLAIN_BODY: usize = 64 * 1024;

pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub reloader: Arc<Reloader>,
    pub audit: AuditHandle,
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
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/metrics") => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.metrics.encode(),
            ),
            (&Method::GET, "/healthz") => reply(StatusCode::OK, "text/plain", "ok\n"),
            (&Method::GET, "/readyz") => {
                if self.audit.healthy() {
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
                let body = match Limited::new(req.into_body(), MAX_EXPLAIN_BODY)
                    .collect()
                    .await
                {
                    Ok(b) => b.to_bytes(),
                    Err(_) => {
                        return json(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            &serde_json::json!({"error": "explain body too large or incomplete"}),
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
    let builder = auto::Builder::new(TokioExecutor::new());
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
