//! The upstream: a pooled hyper client, and the built-in local store.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::body::{BoxError, ReqBody};
use super::fetch::{FetchError, Fetched, Fetcher};

/// Why the upstream gave no response head.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Could not connect, or the connection failed: `502`.
    #[error("{0}")]
    Unavailable(hyper_util::client::legacy::Error),
    /// The same, on the gate's own GET and HEAD client.
    #[error("{0}")]
    Fetch(FetchError),
    /// No response head within the configured time: `504`.
    #[error("no response head in time")]
    Timeout,
}

impl UpstreamError {
    /// The `kind` label of `gatekeeper_upstream_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Unavailable(e) if e.is_connect() => "connect",
            UpstreamError::Fetch(e) if e.is_connect() => "connect",
            UpstreamError::Unavailable(_) | UpstreamError::Fetch(_) => "protocol",
            UpstreamError::Timeout => "timeout",
        }
    }
}

/// An upstream response's body: hyper's, or the gate's own client's.
pub type UpBody = Either<Incoming, Fetched>;

pub struct Upstream {
    /// GET and HEAD to a plain-HTTP upstream; everything else goes through
    /// `client`.
    fetch: Option<Arc<Fetcher>>,
    client: Client<ToUpstream, ReqBody>,
    scheme: Scheme,
    response_timeout: Duration,
}

/// The authority of every request handed to the client, in place of the
/// upstream's own: the client keys its pool by it and hashes it a byte at a
/// time (SipHash, twice a request: ~2,500 instructions for
/// `127.0.0.1:9000`), while there is only one upstream to key.
/// [`ToUpstream`] connects to the real one. HTTP/1.1 requests go out in
/// origin form, with the client's own Host, so it is never sent.
const POOL_KEY: Authority = Authority::from_static("u");

pub struct UpstreamOptions {
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub pool_idle: Duration,
    /// PEM CA for an https:// upstream; None: the system's roots.
    pub ca: Option<PathBuf>,
    /// PEM certificate and key the gate presents to an https:// upstream.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl Upstream {
    pub fn new(base: &Uri, opts: &UpstreamOptions) -> Result<Upstream, String> {
        let scheme = base
            .scheme()
            .cloned()
            .ok_or("upstream url needs a scheme")?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(format!("upstream scheme {scheme}: use http:// or https://"));
        }
        if base.authority().is_none() {
            return Err("upstream url needs a host".into());
        }
        let connector = connector(
            opts.connect_timeout,
            opts.ca.as_deref(),
            opts.client_cert.as_ref(),
        )?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(opts.pool_idle)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            // The client's own Host header is what it signed; it is never replaced.
            .set_host(false)
            .build(ToUpstream {
                connector,
                target: base.clone(),
            });
        let fetch = (scheme == Scheme::HTTP)
            .then(|| base.host())
            .flatten()
            .map(|host| {
                Arc::new(Fetcher::new(
                    host,
                    base.port_u16().unwrap_or(80),
                    opts.connect_timeout,
                    opts.pool_idle,
                ))
            });
        Ok(Upstream {
            fetch,
            client,
            scheme,
            response_timeout: opts.response_timeout,
        })
    }

    /// Sends the request as the client sent it: same method, target, headers
    /// and body bytes. Only the connection it travels on changes.
    pub async fn send(&self, mut req: Request<ReqBody>) -> Result<Response<UpBody>, UpstreamError> {
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        // HTTP/2 clients name the host only in :authority; HTTP/1.1 upstreams
        // need it as Host, and it is the value the client signed.
        if !req.headers().contains_key(http::header::HOST) {
            if let Some(a) = &parts.authority {
                if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                    req.headers_mut().insert(http::header::HOST, v);
                }
            }
        }
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(POOL_KEY);
        *req.uri_mut() = Uri::from_parts(parts).expect("scheme, authority and path make a URI");
        *req.version_mut() = http::Version::HTTP_11;
        if let Some(fetch) = self.fetch.as_ref().filter(|_| Fetcher::takes(&req)) {
            return match tokio::time::timeout(self.response_timeout, fetch.send(&req)).await {
                Ok(Ok(resp)) => Ok(resp.map(Either::Right)),
                Ok(Err(e)) => Err(UpstreamError::Fetch(e)),
                Err(_) => Err(UpstreamError::Timeout),
            };
        }
        match tokio::time::timeout(self.response_timeout, self.client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp.map(Either::Left)),
            Ok(Err(e)) => Err(UpstreamError::Unavailable(e)),
            Err(_) => Err(UpstreamError::Timeout),
        }
    }
}

/// Connects to the upstream whatever the request's URI names (see
/// [`POOL_KEY`]).
#[derive(Clone)]
struct ToUpstream {
    connector: HttpsConnector<HttpConnector>,
    target: Uri,
}

/// A connection that tells hyper nothing about itself: hyper would
/// otherwise copy the upstream's addresses (`HttpInfo`) into every
/// response's extensions, three allocations per request for something the
/// gate never reads. Only HTTP/1.1 is offered upstream, so there is no
/// negotiated HTTP/2 to tell.
struct Bare<T>(T);

impl tower_service::Service<Uri> for ToUpstream {
    type Response = Bare<MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.connector.poll_ready(cx)
    }

    fn call(&mut self, _pool_key: Uri) -> Self::Future {
        let connecting = self.connector.call(self.target.clone());
        Box::pin(async move { connecting.await.map(Bare) })
    }
}

impl<T> Connection for Bare<T> {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl<T: Read + Unpin> Read for Bare<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Bare<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// Connects to http:// and https:// targets alike: the upstream, and the
/// bucket audit segments are archived to. `ca` replaces the system's roots;
/// `client_cert` is a PEM certificate and key to present.
pub fn connector(
    connect_timeout: Duration,
    ca: Option<&Path>,
    client_cert: Option<&(PathBuf, PathBuf)>,
) -> Result<HttpsConnector<HttpConnector>, String> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    // The https connector takes the target's own scheme: http:// stays
    // plain.
    http.enforce_http(false);
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(client_tls(ca, client_cert)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

fn client_tls(
    ca: Option<&Path>,
    client_cert: Option<&(PathBuf, PathBuf)>,
) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?;
    let builder = match ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in crate::tls::read_certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            builder.with_root_certificates(roots)
        }
        None => builder
            .with_native_roots()
            .map_err(|e| format!("system CA certificates: {e}"))?,
    };
    match client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(crate::tls::read_certs(cert)?, crate::tls::read_key(key)?)
            .map_err(|e| format!("{}: {e}", cert.display())),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// Starts the built-in local S3 store (s3s-fs over `dir`) on an ephemeral
/// loopback port and returns its address; it checks SigV4 with the given
/// keys. It serves path-style requests only: s3s matches virtual-host
/// domains with the port included, and would read any other Host as a
/// CNAME bucket, so the gate and the store could disagree on the bucket.
pub async fn start_embedded(
    dir: &Path,
    access_key: &str,
    secret_key: &str,
) -> std::io::Result<SocketAddr> {
    start_store(dir, access_key, secret_key, StoreOptions::default()).await
}

/// How the local store listens, beyond the built-in defaults: what the
/// tests need to stand in for real storage.
#[derive(Default)]
pub struct StoreOptions {
    /// Read `bucket.{domain}` as virtual-hosted style (s3s compares the
    /// whole Host, port included).
    pub domain: Option<String>,
    /// Serve over TLS.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

pub async fn start_store(
    dir: &Path,
    access_key: &str,
    secret_key: &str,
    opts: StoreOptions,
) -> std::io::Result<SocketAddr> {
    use s3s::service::S3ServiceBuilder;
    std::fs::create_dir_all(dir)?;
    let fs = s3s_fs::FileSystem::new(dir).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    let mut b = S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(access_key, secret_key));
    if let Some(domain) = &opts.domain {
        let host = s3s::host::SingleDomain::new(domain)
            .map_err(|e| std::io::Error::other(format!("{domain}: {e:?}")))?;
        b.set_host(host);
    }
    let service = b.build();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let server = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let server = server.clone();
            let service = service.clone();
            let tls = opts.tls.clone();
            tokio::spawn(async move {
                let _ = match tls {
                    None => server.serve_connection(TokioIo::new(socket), service).await,
                    Some(tls) => match tls.accept(socket).await {
                        Ok(stream) => server.serve_connection(TokioIo::new(stream), service).await,
                        Err(_) => return,
                    },
                };
            });
        }
    });
    Ok(addr)
}
