//! A fault-injecting TLS proxy in front of the real kube-apiserver (test tier 5).
//!
//! [`FaultProxy`] listens on `127.0.0.1:<free port>` with its own certificate (a throwaway CA
//! made with rcgen signs a serving certificate for `127.0.0.1` and `localhost`), terminates
//! TLS, reads HTTP/1.1 requests and forwards them over TLS to the upstream apiserver. Headers,
//! `Authorization` included, go through unchanged apart from the hop-by-hop ones, which each hop
//! sets for itself. Request and response bodies are streamed in both directions, so chunked
//! uploads and `watch` responses work, and protocol upgrades (`kubectl exec`/`port-forward`)
//! are tunnelled as raw bytes after the `101 Switching Protocols`.
//!
//! Each client connection gets its own upstream connection, opened at its first forwarded
//! request and reused for the following ones, so keep-alive behaves as it does without the proxy.
//!
//! Tests change the [`Rule`]s at run time with [`FaultProxy::set_rules`]. The first rule that
//! matches a request (and still has uses left) decides what happens to it; unmatched requests
//! are forwarded. Every request the proxy reads is recorded, in arrival order, whatever happens
//! to it ([`FaultProxy::requests`], [`FaultProxy::count`]). A request is recorded before it is
//! answered and its status before the response head is sent, so once a client has seen a
//! response, the count includes it.
//!
//! The proxy runs on a tokio runtime of its own on a background thread, so sync tests can use it;
//! dropping the [`FaultProxy`] closes the listener and every connection, hung ones included,
//! before `drop` returns.
//!
//! The proxy speaks HTTP/1.1 only: it offers just `http/1.1` in ALPN, so clients that would use
//! HTTP/2 (kubectl, client-go) fall back to HTTP/1.1 through it. It logs nothing, so it cannot
//! leak tokens. TLS client certificates cannot pass through it: use bearer tokens.

use std::{
    convert::Infallible,
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::{
    HeaderMap, Request, Response, StatusCode, Uri,
    body::{Bytes, Incoming},
    client::conn::http1::SendRequest,
    header::{self, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, pem::PemObject},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::oneshot,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The real apiserver behind the proxy.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// `https://<loopback address>:<port>`.
    pub url: String,
    /// PEM certificates that sign the apiserver's serving certificate.
    pub ca_pem: Vec<u8>,
}

impl Upstream {
    /// An upstream from its URL and CA certificates (PEM).
    pub fn new(url: impl Into<String>, ca_pem: impl Into<Vec<u8>>) -> Self {
        Self {
            url: url.into(),
            ca_pem: ca_pem.into(),
        }
    }

    /// An upstream whose CA certificates are read from a PEM file.
    pub fn from_ca_file(url: impl Into<String>, ca_path: &Path) -> anyhow::Result<Self> {
        let ca_pem = std::fs::read(ca_path)
            .with_context(|| format!("failed to read CA file `{}`", ca_path.display()))?;
        Ok(Self::new(url, ca_pem))
    }
}

/// What the proxy does with a request that a [`Rule`] matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answer with this status and a JSON `Status` body like the apiserver's, without
    /// forwarding. `429` also carries `Retry-After: 1`.
    Status(u16),
    /// Wait this long, then forward.
    Delay(Duration),
    /// Close the client connection without answering.
    Drop,
    /// Forward, let the apiserver carry the request out, then close the client connection
    /// without passing its answer on: a change that landed although the client saw only a
    /// broken connection. The record keeps the status the apiserver answered with.
    LoseAnswer,
    /// Never answer; the connection is closed when the proxy stops (or the client gives up).
    Hang,
    /// Forward with `Accept: application/json`, as through a server or proxy that offers no
    /// protobuf: the answer is JSON whatever the client asked for.
    JsonOnly,
}

/// Matches requests by method and path and says what to do with them.
///
/// ```
/// # use mesh_testbed::fault::Rule;
/// // The next two pod lists fail with 503, later ones go through.
/// let rule = Rule::status(503).method("GET").path_contains("/pods").times(2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// HTTP method (`GET`, `PATCH`, ...), compared case-insensitively; `None` matches any.
    pub method: Option<String>,
    /// Substring of the path (without the query string); `None` matches any.
    pub path_contains: Option<String>,
    /// Substring of the query string (e.g. `watch=true`); `None` matches any query, or none.
    pub query_contains: Option<String>,
    /// Apply to the first `n` matching requests only; `None` for every one.
    pub times: Option<u32>,
    /// What to do with a matching request.
    pub action: Action,
}

impl Rule {
    /// A rule that applies `action` to every request.
    pub fn new(action: Action) -> Self {
        Self {
            method: None,
            path_contains: None,
            query_contains: None,
            times: None,
            action,
        }
    }

    /// Answer matching requests with `code` ([`Action::Status`]).
    pub fn status(code: u16) -> Self {
        Self::new(Action::Status(code))
    }

    /// Forward matching requests after `delay` ([`Action::Delay`]).
    pub fn delay(delay: Duration) -> Self {
        Self::new(Action::Delay(delay))
    }

    /// Close the connection on matching requests ([`Action::Drop`]).
    pub fn close() -> Self {
        Self::new(Action::Drop)
    }

    /// Carry matching requests out but lose their answers ([`Action::LoseAnswer`]).
    pub fn lose_answer() -> Self {
        Self::new(Action::LoseAnswer)
    }

    /// Never answer matching requests ([`Action::Hang`]).
    pub fn hang() -> Self {
        Self::new(Action::Hang)
    }

    /// Answer matching requests in JSON only ([`Action::JsonOnly`]).
    pub fn json_only() -> Self {
        Self::new(Action::JsonOnly)
    }

    /// Match only this method.
    #[must_use]
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Match only paths containing `needle`.
    #[must_use]
    pub fn path_contains(mut self, needle: impl Into<String>) -> Self {
        self.path_contains = Some(needle.into());
        self
    }

    /// Match only query strings containing `needle`.
    #[must_use]
    pub fn query_contains(mut self, needle: impl Into<String>) -> Self {
        self.query_contains = Some(needle.into());
        self
    }

    /// Apply to the first `n` matching requests only.
    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Whether a request matches this rule's predicates (uses left are not considered).
    pub fn matches(&self, method: &str, path: &str, query: Option<&str>) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|needle| path.contains(needle))
            && self
                .query_contains
                .as_deref()
                .is_none_or(|needle| query.unwrap_or("").contains(needle))
    }
}

/// One request the proxy read from a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method, upper case as sent.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Query string without the `?`, if any.
    pub query: Option<String>,
    /// Status sent to the client: the upstream's, an injected one, or `502` when the upstream
    /// could not be reached. `None` while unanswered, and for dropped or hung requests.
    pub status: Option<u16>,
    /// The rule action applied to the request, `None` if no rule matched.
    pub action: Option<Action>,
    /// Why forwarding failed, if it did (never contains headers).
    pub error: Option<String>,
    /// The request's `Accept` header: the one header recorded (which encoding or which view,
    /// e.g. metadata only, the client asked for); never a credential.
    pub accept: Option<String>,
}

impl RequestRecord {
    /// Whether this is a `watch` request (`?watch=true` or `?watch=1`).
    pub fn is_watch(&self) -> bool {
        self.query
            .as_deref()
            .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
    }
}

/// A running fault proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Start a proxy in front of `upstream` on `127.0.0.1:<free port>`.
    pub fn start(upstream: Upstream) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let target = Arc::new(UpstreamTarget::new(&upstream, provider.clone())?);
        let identity = ServerIdentity::generate()?;
        let acceptor = TlsAcceptor::from(Arc::new(identity.server_config(provider)?));

        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("failed to bind the fault proxy to 127.0.0.1")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fault-proxy-worker")
            .enable_all()
            .build()
            .context("failed to build the fault proxy runtime")?;
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(std_listener)?
        };

        let shared = Arc::new(Shared::default());
        let ctx = Arc::new(Ctx {
            shared: shared.clone(),
            upstream: target,
        });
        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(serve(listener, acceptor, ctx, shutdown_rx));
                // Dropping the runtime drops every task: the listener, all client and upstream
                // connections (hung ones too) are closed when this thread ends.
                drop(runtime);
            })
            .context("failed to spawn the fault proxy thread")?;

        Ok(Self {
            addr,
            ca_pem: identity.ca_pem,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// PEM of the CA that signs the proxy's serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A self-contained kubeconfig (CA embedded) whose server is the proxy, authenticating
    /// with `token`. Its cluster, user and context are all named `fault-proxy`.
    pub fn kubeconfig(&self, token: &str) -> String {
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: fault-proxy\n  \
               cluster:\n    \
                 server: {server}\n    \
                 certificate-authority-data: {ca}\n\
             users:\n\
             - name: fault-proxy\n  \
               user:\n    \
                 token: {token}\n\
             contexts:\n\
             - name: fault-proxy\n  \
               context:\n    \
                 cluster: fault-proxy\n    \
                 user: fault-proxy\n\
             current-context: fault-proxy\n",
            server = self.url(),
            ca = base64(self.ca_pem.as_bytes()),
            token = yaml_quote(token),
        )
    }

    /// Write [`FaultProxy::kubeconfig`] to `dir/fault-proxy-<port>.kubeconfig` (mode 0600 on
    /// Unix) and return its path.
    pub fn write_kubeconfig(&self, dir: &Path, token: &str) -> anyhow::Result<PathBuf> {
        let path = dir.join(format!("fault-proxy-{}.kubeconfig", self.addr.port()));
        write_private(&path, self.kubeconfig(token).as_bytes())
            .with_context(|| format!("failed to write kubeconfig `{}`", path.display()))?;
        Ok(path)
    }

    /// Replace the rules; use counts (`times`) start again from zero.
    pub fn set_rules(&self, rules: Vec<Rule>) {
        *lock(&self.shared.rules) = rules
            .into_iter()
            .map(|rule| ActiveRule { rule, used: 0 })
            .collect();
    }

    /// Remove every rule: all requests are forwarded.
    pub fn clear_rules(&self) {
        self.set_rules(Vec::new());
    }

    /// Every request read so far (since the last [`FaultProxy::clear_requests`]), in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.records)
            .iter()
            .map(|(_, _, r)| r.clone())
            .collect()
    }

    /// Every request read so far with when the proxy read it, in arrival order: how long a
    /// client waited between two requests (a `Retry-After` waited out, a backoff) is measured
    /// from these.
    pub fn requests_at(&self) -> Vec<(Instant, RequestRecord)> {
        lock(&self.shared.records)
            .iter()
            .map(|(_, at, r)| (*at, r.clone()))
            .collect()
    }

    /// How many recorded requests satisfy `predicate`.
    pub fn count(&self, predicate: impl Fn(&RequestRecord) -> bool) -> usize {
        lock(&self.shared.records)
            .iter()
            .filter(|(_, _, r)| predicate(r))
            .count()
    }

    /// Forget the recorded requests (requests still in flight are not recorded again).
    pub fn clear_requests(&self) {
        lock(&self.shared.records).clear();
    }

    /// The recorded requests, forgetting them.
    pub fn take_requests(&self) -> Vec<RequestRecord> {
        std::mem::take(&mut *lock(&self.shared.records))
            .into_iter()
            .map(|(_, _, r)| r)
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ----- shared state -----

struct ActiveRule {
    rule: Rule,
    used: u32,
}

#[derive(Default)]
struct Shared {
    rules: Mutex<Vec<ActiveRule>>,
    /// `(id, arrival, record)`; ids are never reused, so late status updates find their record
    /// even after the list was cleared.
    records: Mutex<Vec<(u64, Instant, RequestRecord)>>,
    next_id: Mutex<u64>,
}

impl Shared {
    /// The action of the first matching rule with uses left, consuming one use.
    fn take_action(&self, method: &str, path: &str, query: Option<&str>) -> Option<Action> {
        let mut rules = lock(&self.rules);
        let active = rules.iter_mut().find(|a| {
            a.rule.times.is_none_or(|n| a.used < n) && a.rule.matches(method, path, query)
        })?;
        active.used += 1;
        Some(active.rule.action.clone())
    }

    fn record(&self, record: RequestRecord) -> u64 {
        let id = {
            let mut next = lock(&self.next_id);
            *next += 1;
            *next
        };
        lock(&self.records).push((id, Instant::now(), record));
        id
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut RequestRecord)) {
        let mut records = lock(&self.records);
        if let Some((_, _, record)) = records.iter_mut().rev().find(|(i, _, _)| *i == id) {
            f(record);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Ctx {
    shared: Arc<Shared>,
    upstream: Arc<UpstreamTarget>,
}

// ----- TLS identities -----

struct ServerIdentity {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl ServerIdentity {
    fn generate() -> anyhow::Result<Self> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };

        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "kubectl-mesh fault proxy CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kubectl-mesh fault proxy");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &issuer)?;

        Ok(Self {
            ca_pem: ca_cert.pem(),
            chain: vec![cert.der().clone(), ca_cert.der().clone()],
            key_der: key.serialize_der(),
        })
    }

    fn server_config(&self, provider: Arc<CryptoProvider>) -> anyhow::Result<ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)?;
        // HTTP/1.1 only: clients that prefer h2 (client-go) fall back to HTTP/1.1.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

struct UpstreamTarget {
    authority: String,
    server_name: ServerName<'static>,
    connector: TlsConnector,
}

impl UpstreamTarget {
    fn new(upstream: &Upstream, provider: Arc<CryptoProvider>) -> anyhow::Result<Self> {
        let uri: Uri = upstream
            .url
            .parse()
            .with_context(|| format!("invalid upstream URL `{}`", upstream.url))?;
        if uri.scheme_str() != Some("https") {
            bail!("upstream URL `{}` must use https", upstream.url);
        }
        let host = uri
            .host()
            .with_context(|| format!("upstream URL `{}` has no host", upstream.url))?;
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        if !is_loopback(bare_host) {
            bail!(
                "upstream host `{host}` is not a loopback address: the fault proxy only talks to 127.0.0.0/8, ::1 or localhost"
            );
        }
        let port = uri.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(bare_host.to_owned())
            .with_context(|| format!("invalid upstream host `{host}`"))?;

        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&upstream.ca_pem) {
            roots
                .add(cert.context("invalid PEM in the upstream CA")?)
                .context("unusable upstream CA certificate")?;
        }
        if roots.is_empty() {
            bail!("the upstream CA PEM holds no certificate");
        }
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];

        Ok(Self {
            authority: format!("{host}:{port}"),
            server_name,
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    async fn connect(&self) -> anyhow::Result<SendRequest<Incoming>> {
        let tcp = TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("failed to connect to upstream {}", self.authority))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .with_context(|| format!("TLS handshake with upstream {} failed", self.authority))?;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(tls))
            .await
            .context("HTTP handshake with upstream failed")?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }
}

fn is_loopback(host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

// ----- serving -----

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// The upstream connection of one client connection.
type UpstreamSlot = Arc<tokio::sync::Mutex<Option<SendRequest<Incoming>>>>;

/// Returned by the service to make hyper close the client connection without a response.
#[derive(Debug)]
struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by a fault rule")
    }
}

impl std::error::Error for DropConnection {}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ctx: Arc<Ctx>,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    tokio::spawn(serve_connection(tcp, acceptor.clone(), ctx.clone()));
                }
                // E.g. out of file descriptors: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
        }
    }
}

async fn serve_connection(tcp: TcpStream, acceptor: TlsAcceptor, ctx: Arc<Ctx>) {
    let _ = tcp.set_nodelay(true);
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let slot = UpstreamSlot::default();
    let service = service_fn(move |req| handle(req, ctx.clone(), slot.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades()
        .await;
}

async fn handle(
    req: Request<Incoming>,
    ctx: Arc<Ctx>,
    slot: UpstreamSlot,
) -> Result<Response<ProxyBody>, DropConnection> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let action = ctx.shared.take_action(&method, &path, query.as_deref());
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let id = ctx.shared.record(RequestRecord {
        method,
        path,
        query,
        status: None,
        action: action.clone(),
        error: None,
        accept,
    });

    match action {
        Some(Action::Status(code)) => {
            // Read the request body so the connection can be kept alive.
            let _ = req.into_body().collect().await;
            let response = status_response(code, "injected by the kubectl-mesh fault proxy");
            let code = response.status().as_u16();
            ctx.shared.update(id, |r| r.status = Some(code));
            Ok(response)
        }
        Some(Action::Drop) => Err(DropConnection),
        Some(Action::LoseAnswer) => {
            let response = forward(req, &ctx, &slot, id).await;
            // The whole answer is read, so the apiserver is done with the request.
            let _ = response.into_body().collect().await;
            Err(DropConnection)
        }
        Some(Action::Hang) => std::future::pending().await,
        Some(Action::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            Ok(forward(req, &ctx, &slot, id).await)
        }
        Some(Action::JsonOnly) => {
            let mut req = req;
            req.headers_mut().insert(
                hyper::header::ACCEPT,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            Ok(forward(req, &ctx, &slot, id).await)
        }
        None => Ok(forward(req, &ctx, &slot, id).await),
    }
}

async fn forward(
    mut req: Request<Incoming>,
    ctx: &Ctx,
    slot: &UpstreamSlot,
    id: u64,
) -> Response<ProxyBody> {
    let upgrade = wants_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    strip_hop_by_hop(req.headers_mut(), upgrade);

    let mut response = match send_upstream(ctx, slot, req).await {
        Ok(response) => response,
        Err(err) => {
            let message = format!("{err:#}");
            let response =
                status_response(502, &format!("fault proxy: upstream failed: {message}"));
            ctx.shared.update(id, |r| {
                r.status = Some(502);
                r.error = Some(message);
            });
            return response;
        }
    };

    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        // The upstream connection now belongs to the tunnel.
        slot.lock().await.take();
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                if let (Ok(client), Ok(upstream)) = tokio::join!(client_upgrade, upstream_upgrade) {
                    let _ = tokio::io::copy_bidirectional(
                        &mut TokioIo::new(client),
                        &mut TokioIo::new(upstream),
                    )
                    .await;
                }
            });
        }
    }
    strip_hop_by_hop(response.headers_mut(), switching);
    let status = response.status().as_u16();
    ctx.shared.update(id, |r| r.status = Some(status));
    response.map(|body| body.boxed())
}

/// Send on this client connection's upstream connection, (re)opening it when needed. A request
/// that never reached a stale connection is retried once on a fresh one.
async fn send_upstream(
    ctx: &Ctx,
    slot: &UpstreamSlot,
    mut req: Request<Incoming>,
) -> anyhow::Result<Response<Incoming>> {
    let mut slot = slot.lock().await;
    let mut retried = false;
    loop {
        let mut sender = match slot.take() {
            Some(sender) => match reusable(sender).await {
                Some(sender) => sender,
                None => ctx.upstream.connect().await?,
            },
            None => ctx.upstream.connect().await?,
        };
        match sender.try_send_request(req).await {
            Ok(response) => {
                *slot = Some(sender);
                return Ok(response);
            }
            Err(mut err) => match err.take_message() {
                Some(unsent) if !retried => {
                    retried = true;
                    req = unsent;
                }
                _ => return Err(err.into_error()).context("upstream request failed"),
            },
        }
    }
}

/// The sender if its connection is (or within a second becomes) ready for another request.
async fn reusable(mut sender: SendRequest<Incoming>) -> Option<SendRequest<Incoming>> {
    match tokio::time::timeout(Duration::from_secs(1), sender.ready()).await {
        Ok(Ok(())) => Some(sender),
        _ => None,
    }
}

fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Remove the headers that describe one hop (RFC 9110 §7.6.1); each side of the proxy sets its
/// own framing and connection management. `Connection`/`Upgrade` stay for an upgrade.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let listed: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "upgrade")
        .collect();
    for name in listed {
        headers.remove(name.as_str());
    }
    for name in [
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
    ] {
        headers.remove(name);
    }
    if !keep_upgrade {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

/// A response like the apiserver's errors: a JSON `meta/v1` `Status`.
fn status_response(code: u16, message: &str) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = status.as_u16();
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    };
    let retry_after = code == 429;
    let mut body = format!(
        r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"{}","message":"{}""#,
        if code < 400 { "Success" } else { "Failure" },
        json_escape(message),
    );
    if !reason.is_empty() {
        body.push_str(&format!(r#","reason":"{reason}""#));
    }
    if retry_after {
        body.push_str(r#","details":{"retryAfterSeconds":1}"#);
    }
    body.push_str(&format!(r#","code":{code}}}"#));

    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    if retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn yaml_quote(s: &str) -> String {
    format!("\"{}\"", json_escape(s))
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents)
}

#[cfg(test)]
mod tests {
    //! The proxy against a tiny local TLS upstream, speaking raw HTTP/1.1 bytes on the client
    //! side so framing, keep-alive and connection closes are observed exactly.

    use std::{
        pin::Pin,
        sync::atomic::{AtomicUsize, Ordering},
        task::{Context, Poll},
        time::Instant,
    };

    use hyper::body::Frame;
    use tokio::{
        io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
        sync::{Notify, mpsc},
    };
    use tokio_rustls::client::TlsStream;

    use super::*;

    /// A streamed response body fed by a channel.
    struct ChannelBody(mpsc::Receiver<Bytes>);

    impl hyper::body::Body for ChannelBody {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.get_mut()
                .0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
        }
    }

    type TestBody = BoxBody<Bytes, Infallible>;

    /// Upstream test server: echoes requests, streams on `/stream`, tunnels on `/upgrade`.
    struct Echo {
        url: String,
        ca_pem: String,
        connections: Arc<AtomicUsize>,
        release_stream: Arc<Notify>,
    }

    impl Echo {
        async fn start() -> Self {
            let identity = ServerIdentity::generate().unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let acceptor = TlsAcceptor::from(Arc::new(identity.server_config(provider).unwrap()));
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("https://{}", listener.local_addr().unwrap());
            let connections = Arc::new(AtomicUsize::new(0));
            let release_stream = Arc::new(Notify::new());
            let (conns, release) = (connections.clone(), release_stream.clone());
            tokio::spawn(async move {
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    conns.fetch_add(1, Ordering::SeqCst);
                    let (acceptor, release) = (acceptor.clone(), release.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = service_fn(move |req| echo(req, release.clone()));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .with_upgrades()
                            .await;
                    });
                }
            });
            Self {
                url,
                ca_pem: identity.ca_pem,
                connections,
                release_stream,
            }
        }

        fn proxy(&self) -> FaultProxy {
            FaultProxy::start(Upstream::new(&self.url, self.ca_pem.as_bytes())).unwrap()
        }
    }

    async fn echo(
        mut req: Request<Incoming>,
        release: Arc<Notify>,
    ) -> Result<Response<TestBody>, Infallible> {
        match req.uri().path() {
            "/stream" => {
                let (tx, rx) = mpsc::channel(4);
                tokio::spawn(async move {
                    let _ = tx.send(Bytes::from_static(b"{\"event\":1}\n")).await;
                    release.notified().await;
                    let _ = tx.send(Bytes::from_static(b"{\"event\":2}\n")).await;
                });
                Ok(Response::new(ChannelBody(rx).boxed()))
            }
            "/upgrade" => {
                let upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let mut io = TokioIo::new(upgrade.await.unwrap());
                    let mut buf = [0u8; 64];
                    let n = io.read(&mut buf).await.unwrap();
                    io.write_all(&buf[..n]).await.unwrap();
                    io.flush().await.unwrap();
                });
                let mut response = Response::new(Full::new(Bytes::new()).boxed());
                *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
                response
                    .headers_mut()
                    .insert(header::UPGRADE, HeaderValue::from_static("echo"));
                Ok(response)
            }
            _ => {
                let head = format!(
                    "{} {} auth={} te={}",
                    req.method(),
                    req.uri(),
                    header_str(req.headers(), header::AUTHORIZATION),
                    header_str(req.headers(), header::TRANSFER_ENCODING),
                );
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let text = format!("{head} body={}", String::from_utf8_lossy(&body));
                Ok(Response::new(Full::new(Bytes::from(text)).boxed()))
            }
        }
    }

    fn header_str(headers: &HeaderMap, name: header::HeaderName) -> String {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_else(|| "-".to_owned())
    }

    type Client = BufReader<TlsStream<TcpStream>>;

    async fn connect(proxy: &FaultProxy) -> Client {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let upstream = Upstream::new(proxy.url(), proxy.ca_pem().as_bytes());
        let target = UpstreamTarget::new(&upstream, provider).unwrap();
        let tcp = TcpStream::connect(proxy.addr()).await.unwrap();
        let tls = target
            .connector
            .connect(target.server_name.clone(), tcp)
            .await
            .unwrap();
        BufReader::new(tls)
    }

    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    async fn read_line(client: &mut Client) -> String {
        let mut line = String::new();
        client.read_line(&mut line).await.unwrap();
        line.trim_end_matches(['\r', '\n']).to_owned()
    }

    async fn read_head(client: &mut Client) -> (u16, Vec<(String, String)>) {
        let status_line = read_line(client).await;
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let line = read_line(client).await;
            if line.is_empty() {
                return (status, headers);
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }

    async fn read_chunk(client: &mut Client) -> Option<String> {
        let size = usize::from_str_radix(&read_line(client).await, 16).unwrap();
        if size == 0 {
            assert_eq!(read_line(client).await, "", "no trailers expected");
            return None;
        }
        let mut data = vec![0; size + 2];
        client.read_exact(&mut data).await.unwrap();
        data.truncate(size);
        Some(String::from_utf8(data).unwrap())
    }

    async fn read_reply(client: &mut Client) -> Reply {
        let (status, headers) = read_head(client).await;
        let mut reply = Reply {
            status,
            headers,
            body: String::new(),
        };
        if let Some(len) = reply.header("content-length") {
            let mut body = vec![0; len.parse().unwrap()];
            client.read_exact(&mut body).await.unwrap();
            reply.body = String::from_utf8(body).unwrap();
        } else if reply.header("transfer-encoding") == Some("chunked") {
            while let Some(chunk) = read_chunk(client).await {
                reply.body.push_str(&chunk);
            }
        }
        reply
    }

    async fn get(client: &mut Client, path: &str) -> Reply {
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        client
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        read_reply(client).await
    }

    /// Whether the proxy closes the connection without sending a byte.
    async fn closed_without_reply(client: &mut Client) -> bool {
        let mut buf = Vec::new();
        match tokio::time::timeout(Duration::from_secs(30), client.read_to_end(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => buf.is_empty(),
            Err(_) => false,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forwards_keep_alive_requests_headers_and_chunked_bodies() {
        let echo = Echo::start().await;
        let proxy = echo.proxy();
        let mut client = connect(&proxy).await;

        let request = "GET /api/v1/pods?limit=5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                       Authorization: Bearer secret-token\r\n\r\n";
        client
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let reply = read_reply(&mut client).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.body,
            "GET /api/v1/pods?limit=5 auth=Bearer secret-token te=- body="
        );

        let request = "POST /api/v1/namespaces HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                       Transfer-Encoding: chunked\r\n\r\n\
                       5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        client
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let reply = read_reply(&mut client).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.body,
            "POST /api/v1/namespaces auth=- te=chunked body=hello world"
        );

        let request = "PATCH /api/v1/namespaces/a HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                       Content-Length: 2\r\n\r\n{}";
        client
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let reply = read_reply(&mut client).await;
        assert_eq!(reply.body, "PATCH /api/v1/namespaces/a auth=- te=- body={}");

        assert_eq!(
            proxy.requests(),
            vec![
                record("GET", "/api/v1/pods", Some("limit=5"), Some(200), None),
                record("POST", "/api/v1/namespaces", None, Some(200), None),
                record("PATCH", "/api/v1/namespaces/a", None, Some(200), None),
            ]
        );
        assert_eq!(proxy.count(|r| r.method == "GET"), 1);
        assert_eq!(
            echo.connections.load(Ordering::SeqCst),
            1,
            "one client connection uses one upstream connection"
        );
    }

    fn record(
        method: &str,
        path: &str,
        query: Option<&str>,
        status: Option<u16>,
        action: Option<Action>,
    ) -> RequestRecord {
        RequestRecord {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            status,
            action,
            error: None,
            accept: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn status_rules_apply_the_given_number_of_times_then_clear() {
        let echo = Echo::start().await;
        let proxy = echo.proxy();
        proxy.set_rules(vec![
            Rule::status(503)
                .method("get")
                .path_contains("/pods")
                .times(2),
            Rule::status(429).path_contains("/configmaps").times(1),
        ]);
        let mut client = connect(&proxy).await;

        for _ in 0..2 {
            let reply = get(&mut client, "/api/v1/pods").await;
            assert_eq!(reply.status, 503);
            assert_eq!(reply.header("content-type"), Some("application/json"));
            assert!(
                reply.body.contains(r#""reason":"ServiceUnavailable""#),
                "{}",
                reply.body
            );
            assert!(reply.body.contains(r#""code":503"#), "{}", reply.body);
            assert_eq!(reply.header("retry-after"), None);
        }
        assert_eq!(get(&mut client, "/api/v1/pods").await.status, 200);

        let reply = get(&mut client, "/api/v1/configmaps").await;
        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert!(
            reply.body.contains(r#""retryAfterSeconds":1"#),
            "{}",
            reply.body
        );
        assert_eq!(get(&mut client, "/api/v1/configmaps").await.status, 200);

        let injected = Some(Action::Status(503));
        assert_eq!(
            proxy.take_requests()[..3],
            [
                record("GET", "/api/v1/pods", None, Some(503), injected.clone()),
                record("GET", "/api/v1/pods", None, Some(503), injected),
                record("GET", "/api/v1/pods", None, Some(200), None),
            ]
        );
        assert!(proxy.requests().is_empty());

        // Replacing the rules resets their counts.
        proxy.set_rules(vec![Rule::status(500).times(1)]);
        assert_eq!(get(&mut client, "/api/v1/pods").await.status, 500);
        assert_eq!(get(&mut client, "/api/v1/pods").await.status, 200);
        assert_eq!(echo.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drop_closes_the_connection_without_a_response() {
        let echo = Echo::start().await;
        let proxy = echo.proxy();
        proxy.set_rules(vec![Rule::close().path_contains("/pods").times(1)]);

        let mut client = connect(&proxy).await;
        assert_eq!(get(&mut client, "/api/v1/namespaces").await.status, 200);
        let request = "GET /api/v1/pods HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        client
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        assert!(closed_without_reply(&mut client).await);

        let mut client = connect(&proxy).await;
        assert_eq!(get(&mut client, "/api/v1/pods").await.status, 200);
        assert_eq!(
            proxy.requests()[1],
            record("GET", "/api/v1/pods", None, None, Some(Action::Drop))
        );
        assert_eq!(proxy.count(|r| r.path == "/api/v1/pods"), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delay_forwards_after_the_delay() {
        let echo = Echo::start().await;
        let proxy = echo.proxy();
        let delay = Duration::from_millis(300);
        proxy.set_rules(vec![Rule::delay(delay).method("GET")]);
        let mut client = connect(&proxy).await;
        let started = Instant::now();
        let reply = get(&mut client, "/api/v1/pods").await;
        assert!(started.elapsed() >= delay);
        assert_eq!(reply.status, 200);
        assert_eq!(proxy.requests()[0].action, Some(Action::Delay(delay)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hung_requests_are_closed_when_the_proxy_stops() {
        let echo = Echo::start().await;
        let proxy = echo.proxy();
        proxy.set_rules(vec![Rule::hang()]);
        let mut client = connect(&proxy).await;
        let request = "GET /api/v1/pods HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        client
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let mut byte = [0u8; 1];
        assert!(
            tokio::time::timeout(Duration::from_millis(300), client.read(&mut byte))
                .await
                .is_err(),
            "a hung request gets no answer"
        );
        assert_eq!(
            proxy.requests(),
            [record(
                "GET",
                "/api/v1/pods",
                None,
                None,
                Some(Action::Hang)
            )]
        );
        let addr = proxy.addr();
        drop(proxy);
        assert!(closed_without_reply(&mut client).await);
        assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streams_responses_as_they_come() {
        let echo = Echo::start().await;
        let proxy = echo.proxy();
        let mut client = connect(&proxy).await;
        let request = "GET /stream?watch=true HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        client
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let (status, headers) = read_head(&mut client).await;
        assert_eq!(status, 200);
        assert!(headers.contains(&("transfer-encoding".to_owned(), "chunked".to_owned())));
        // The first event arrives while the upstream holds back the second.
        assert_eq!(read_chunk(&mut client).await.unwrap(), "{\"event\":1}\n");
        assert!(proxy.requests()[0].is_watch());
        assert_eq!(proxy.requests()[0].status, Some(200));
        echo.release_stream.notify_one();
        assert_eq!(read_chunk(&mut client).await.unwrap(), "{\"event\":2}\n");
        assert_eq!(read_chunk(&mut client).await, None);
        // The connection stays usable after the stream.
        assert_eq!(get(&mut client, "/after").await.status, 200);
        assert_eq!(echo.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tunnels_upgraded_connections() {
        let echo = Echo::start().await;
        let proxy = echo.proxy();
        let mut client = connect(&proxy).await;
        let request = "GET /upgrade HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                       Connection: Upgrade\r\nUpgrade: echo\r\n\r\n";
        client
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let (status, headers) = read_head(&mut client).await;
        assert_eq!(status, 101);
        assert!(headers.contains(&("upgrade".to_owned(), "echo".to_owned())));
        client.get_mut().write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        assert_eq!(proxy.requests()[0].status, Some(101));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreachable_upstream_answers_502() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let identity = ServerIdentity::generate().unwrap();
        let proxy = FaultProxy::start(Upstream::new(
            format!("https://127.0.0.1:{port}"),
            identity.ca_pem.as_bytes(),
        ))
        .unwrap();
        let mut client = connect(&proxy).await;
        let reply = get(&mut client, "/version").await;
        assert_eq!(reply.status, 502);
        let record = &proxy.requests()[0];
        assert_eq!(record.status, Some(502));
        assert!(record.error.is_some());
    }

    #[test]
    fn rejects_non_loopback_or_plain_upstreams() {
        let ca = ServerIdentity::generate().unwrap().ca_pem;
        for url in [
            "https://10.0.0.1:6443",
            "http://127.0.0.1:6443",
            "https://example.com",
        ] {
            assert!(
                FaultProxy::start(Upstream::new(url, ca.as_bytes())).is_err(),
                "{url}"
            );
        }
        for url in [
            "https://127.0.0.2:6443",
            "https://[::1]:6443",
            "https://localhost:1",
        ] {
            assert!(
                FaultProxy::start(Upstream::new(url, ca.as_bytes())).is_ok(),
                "{url}"
            );
        }
        assert!(FaultProxy::start(Upstream::new("https://127.0.0.1:1", "no pem")).is_err());
    }

    #[test]
    fn kubeconfig_embeds_the_ca_and_quotes_the_token() {
        let ca = ServerIdentity::generate().unwrap().ca_pem;
        let proxy = FaultProxy::start(Upstream::new("https://127.0.0.1:1", ca)).unwrap();
        let config = proxy.kubeconfig("abc\"def");
        assert!(config.contains(&format!("server: {}\n", proxy.url())));
        assert!(config.contains(&format!(
            "certificate-authority-data: {}\n",
            base64(proxy.ca_pem().as_bytes())
        )));
        assert!(config.contains("token: \"abc\\\"def\"\n"));
        let dir = std::env::temp_dir();
        let path = proxy.write_kubeconfig(&dir, "t").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            proxy.kubeconfig("t")
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn rules_match_method_path_and_query() {
        let rule = Rule::close()
            .method("GET")
            .path_contains("/pods")
            .query_contains("watch=true");
        assert!(rule.matches("get", "/api/v1/namespaces/a/pods", Some("watch=true&x=1")));
        assert!(!rule.matches("GET", "/api/v1/namespaces/a/pods", None));
        assert!(!rule.matches("POST", "/api/v1/pods", Some("watch=true")));
        assert!(!rule.matches("GET", "/api/v1/services", Some("watch=true")));
        assert!(Rule::hang().matches("DELETE", "/", None));
    }
}
