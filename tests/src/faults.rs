//! A fault-injecting HTTP/1.1 proxy, to put in front of an S3 server, and a guard around moto's
//! server (an S3 implementation independent of this repository's code).
//!
//! The proxy listens on `127.0.0.1:0` and forwards every request to one upstream address. It
//! injects, instead of or around the upstream's answer, one of the [`Fault`]s:
//!
//! - [at a rate](FaultProxy::inject), into every kind of request alike: of the requests of each
//!   S3 operation (see [`operation`]), one in `1 / rate` gets a fault, the first of them among
//!   the operation's first three requests, so that every operation that occurs at least three
//!   times gets one. The kind of each fault is drawn by a seeded generator, so that a failure
//!   can be replayed (the requests that get a fault also depend on the order in which requests
//!   of one operation arrive);
//! - [targeted](FaultProxy::target): the next requests of one operation get one fault;
//! - [stalled](FaultProxy::stall): the next GETs of one object are accepted and never answered,
//!   or answered with part of their body and then nothing.
//!
//! Every injected fault is counted by operation and kind. Request and response bodies are read
//! whole before they are passed on, so that "the upstream handled it" means it got, and
//! answered, the whole request.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use crate::{Rng, operation_of};

/// The S3 operation of a request, as [`operation_of`] names it, with ListMultipartUploads and
/// the PUTs of table state told apart from the requests they resemble.
pub fn operation(method: &str, uri: &str) -> &'static str {
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    let listing_uploads = query.split('&').any(|p| p == "uploads" || p.starts_with("uploads="));
    match operation_of(method, uri) {
        "GetObject" if listing_uploads => "ListMultipartUploads",
        "PutObject:_tables" => "PutObject",
        op => op,
    }
}

/// A fault the proxy injects into one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// `503 SlowDown` with an S3 XML error body; the request does not reach the upstream.
    SlowDown,
    /// `500 InternalError` with an S3 XML error body; the request does not reach the upstream.
    InternalError,
    /// The connection is reset as soon as the request's head arrives: the upstream never sees it.
    ResetBefore,
    /// The request is passed on and answered by the upstream, then the connection is reset: the
    /// answer is lost.
    ResetAfter,
    /// The answer is held back 0.5 to 2 s before the request is passed on.
    Delay,
    /// A GET answered `200` with a body (an object or a listing): the status, the headers and
    /// the full `Content-Length` are sent, then only part of the body, then the connection is
    /// closed.
    TruncatedBody,
    /// A CompleteMultipartUpload is passed on and completed, then the connection is reset, and
    /// the proxy answers `404 NoSuchUpload` to every later completion of that upload, as S3 does
    /// once it has forgotten a completed upload. Only [targeted](FaultProxy::target) (it is not
    /// in [`Fault::ALL`]).
    LostCompletion,
}

impl Fault {
    /// Every kind, in order.
    pub const ALL: [Fault; 6] = [
        Fault::SlowDown,
        Fault::InternalError,
        Fault::ResetBefore,
        Fault::ResetAfter,
        Fault::Delay,
        Fault::TruncatedBody,
    ];

    /// Whether this fault can be injected into a request of operation `op` (see
    /// [`operation`]): a truncated body needs a GET; the rest fit any request.
    pub fn applies_to(self, op: &str) -> bool {
        match self {
            Fault::TruncatedBody => matches!(op, "GetObject" | "ListObjectsV2" | "ListMultipartUploads"),
            Fault::LostCompletion => op == "CompleteMultipartUpload",
            _ => true,
        }
    }
}

/// How the proxy stalls a GET.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stall {
    /// The request is accepted and never answered.
    NoAnswer,
    /// The status, the headers and part of the body are sent, then nothing more.
    MidBody,
}

/// What the proxy does to the requests it forwards.
#[derive(Debug, Default)]
struct Plan {
    /// One request in `period` of each operation gets a fault (0: none).
    period: u64,
    /// The kinds drawn from (uniformly, among those that apply to the request).
    kinds: Vec<Fault>,
    /// Per operation: the requests seen since the rate was set, and the index (below `period`)
    /// of the faulted ones.
    seen: BTreeMap<&'static str, (u64, u64)>,
    /// Targeted faults: the next `n` requests of an operation (and, if given, whose path ends
    /// so) get a fault.
    targets: Vec<Target>,
    /// Stalled GETs: the next `n` GETs of a path (`/bucket/key`) stall.
    stalls: Vec<(String, Stall, u64)>,
}

/// Requests that get a targeted fault.
#[derive(Debug)]
struct Target {
    op: &'static str,
    path_suffix: Option<String>,
    fault: Fault,
    left: u64,
}

struct Inner {
    /// Uploads completed under [`Fault::LostCompletion`]: the proxy answers NoSuchUpload for them.
    forgotten: Mutex<std::collections::HashSet<String>>,
    upstream: SocketAddr,
    seed: u64,
    plan: Mutex<Plan>,
    rng: Mutex<Rng>,
    injected: Mutex<BTreeMap<(&'static str, Fault), u64>>,
    stalled: AtomicU64,
    requests: Mutex<BTreeMap<&'static str, u64>>,
    answers: Mutex<BTreeMap<(&'static str, u16), u64>>,
    upstream_errors: AtomicU64,
}

impl Inner {
    /// Decides the fault of one request of operation `op`, if any: a targeted one first, else
    /// one at the rate.
    fn draw(&self, op: &'static str, path: &str) -> Option<Fault> {
        let mut plan = self.plan.lock().ok()?;
        let targeted = plan
            .targets
            .iter_mut()
            .find(|t| t.op == op && t.left > 0 && t.path_suffix.as_deref().is_none_or(|suffix| path.ends_with(suffix)));
        if let Some(t) = targeted {
            t.left -= 1;
            return Some(t.fault);
        }
        let kinds: Vec<Fault> = plan.kinds.iter().copied().filter(|k| k.applies_to(op)).collect();
        let period = plan.period;
        if kinds.is_empty() || period == 0 {
            return None;
        }
        let mut rng = self.rng.lock().ok()?;
        let (n, at) = *plan.seen.entry(op).or_insert_with(|| (0, rng.below(period.min(3))));
        plan.seen.insert(op, (n + 1, at));
        (n % period == at).then(|| kinds[rng.below(kinds.len() as u64) as usize])
    }

    fn below(&self, n: u64) -> u64 {
        self.rng.lock().map(|mut r| r.below(n.max(1))).unwrap_or(0)
    }

    fn count(&self, op: &'static str, fault: Fault) {
        if let Ok(mut m) = self.injected.lock() {
            *m.entry((op, fault)).or_default() += 1;
        }
    }

    /// How a GET of `path` stalls, if it does.
    fn stalls(&self, method: &Method, path: &str) -> Option<Stall> {
        if *method != Method::GET {
            return None;
        }
        let mut plan = self.plan.lock().ok()?;
        let s = plan.stalls.iter_mut().find(|s| s.0 == path && s.2 > 0)?;
        s.2 -= 1;
        Some(s.1)
    }
}

/// A running proxy; it stops (and drops every connection) when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    inner: Arc<Inner>,
    shutdown: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy").field("addr", &self.addr).field("upstream", &self.inner.upstream).finish()
    }
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` in front of `upstream`, injecting nothing until
    /// [`FaultProxy::inject`] says so. Faults are drawn from a generator seeded with `seed`.
    pub async fn start(upstream: SocketAddr, seed: u64) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            forgotten: Mutex::default(),
            upstream,
            seed,
            plan: Mutex::new(Plan::default()),
            rng: Mutex::new(Rng::new(seed)),
            injected: Mutex::default(),
            stalled: AtomicU64::new(0),
            requests: Mutex::default(),
            answers: Mutex::default(),
            upstream_errors: AtomicU64::new(0),
        });
        let (shutdown, stop) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, inner.clone(), stop));
        Ok(Self { addr, inner, shutdown, accept })
    }

    /// The proxy's URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The seed of the fault generator.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// From now on, of the requests of each operation, one in `1 / rate` gets a fault (see the
    /// module's documentation), of a kind drawn uniformly from those of `kinds` that apply to
    /// it; a rate of 0 ends it. The generator is seeded again with the proxy's seed and the
    /// operations' counts start over, so that each phase of a test replays on its own.
    pub fn inject(&self, rate: f64, kinds: &[Fault]) {
        if let Ok(mut plan) = self.inner.plan.lock() {
            plan.period = if rate > 0.0 { (1.0 / rate).round().max(1.0) as u64 } else { 0 };
            plan.kinds = kinds.to_vec();
            plan.seen.clear();
        }
        if let Ok(mut rng) = self.inner.rng.lock() {
            *rng = Rng::new(self.inner.seed);
        }
    }

    /// The next `times` requests of operation `op` (see [`operation`]) get `fault`, before any
    /// fault at the rate (and after the targets set before).
    pub fn target(&self, op: &'static str, fault: Fault, times: u64) {
        self.add_target(Target { op, path_suffix: None, fault, left: times });
    }

    /// [`FaultProxy::target`] for the requests whose path ends with `suffix` alone.
    pub fn target_path(&self, op: &'static str, suffix: &str, fault: Fault, times: u64) {
        self.add_target(Target { op, path_suffix: Some(suffix.to_owned()), fault, left: times });
    }

    fn add_target(&self, target: Target) {
        if let Ok(mut plan) = self.inner.plan.lock() {
            plan.targets.push(target);
        }
    }

    /// The next `times` GETs of `path` (`/bucket/key`) stall as `how` says, until the client
    /// gives up or the proxy is dropped.
    pub fn stall(&self, path: &str, how: Stall, times: u64) {
        if let Ok(mut plan) = self.inner.plan.lock() {
            plan.stalls.push((path.to_owned(), how, times));
        }
    }

    /// How many faults of each kind were injected since the last [`FaultProxy::reset_counts`];
    /// every kind is present.
    pub fn injected(&self) -> BTreeMap<Fault, u64> {
        let mut by_kind: BTreeMap<Fault, u64> = Fault::ALL.iter().map(|f| (*f, 0)).collect();
        for ((_, fault), n) in self.injected_by_operation() {
            *by_kind.entry(fault).or_default() += n;
        }
        by_kind
    }

    /// How many faults were injected since the last [`FaultProxy::reset_counts`], by operation
    /// (see [`operation`]) and kind.
    pub fn injected_by_operation(&self) -> BTreeMap<(&'static str, Fault), u64> {
        self.inner.injected.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// How many requests were stalled.
    pub fn stalled(&self) -> u64 {
        self.inner.stalled.load(Ordering::SeqCst)
    }

    /// Requests received, by S3 operation (see [`operation_of`]).
    pub fn requests(&self) -> BTreeMap<&'static str, u64> {
        self.inner.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The answers, by operation and HTTP status: the upstream's (whether or not they reached
    /// the client), and the proxy's NoSuchUpload of [`Fault::LostCompletion`].
    pub fn answers(&self) -> BTreeMap<(&'static str, u16), u64> {
        self.inner.answers.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Requests that could not be passed on because the upstream failed (answered `502`).
    pub fn upstream_errors(&self) -> u64 {
        self.inner.upstream_errors.load(Ordering::SeqCst)
    }

    /// Forgets every count.
    pub fn reset_counts(&self) {
        if let Ok(mut m) = self.inner.injected.lock() {
            m.clear();
        }
        self.inner.stalled.store(0, Ordering::SeqCst);
        self.inner.upstream_errors.store(0, Ordering::SeqCst);
        if let Ok(mut r) = self.inner.requests.lock() {
            r.clear();
        }
        if let Ok(mut a) = self.inner.answers.lock() {
            a.clear();
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(serve_connection(stream, inner.clone(), stop.clone()));
                }
            }
        }
    }
}

/// Serves one client connection until it ends, the proxy stops, or a request asks for a reset:
/// then the socket is closed with `SO_LINGER` 0, which sends an RST.
async fn serve_connection(stream: TcpStream, inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    // A second handle on the socket, to reset it once hyper's handle is dropped.
    let Ok(std_stream) = stream.into_std() else { return };
    let Ok(spare) = std_stream.try_clone() else { return };
    let Ok(stream) = TcpStream::from_std(std_stream) else { return };
    let reset = Arc::new(Notify::new());
    let service = {
        let reset = reset.clone();
        hyper::service::service_fn(move |req| handle(inner.clone(), reset.clone(), req))
    };
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let reset_now = tokio::select! {
        _ = conn.as_mut() => false,
        () = reset.notified() => true,
        _ = stop.changed() => false,
    };
    if reset_now && let Ok(spare) = TcpStream::from_std(spare) {
        // The option belongs to the socket: whichever handle closes last sends the RST.
        let _ = spare.set_zero_linger();
    }
}

/// The proxy's answer to one request.
async fn handle(
    inner: Arc<Inner>,
    reset: Arc<Notify>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let uri = req.uri().to_string();
    let op = operation(req.method().as_str(), &uri);
    if let Ok(mut r) = inner.requests.lock() {
        *r.entry(op).or_default() += 1;
    }
    let stall = inner.stalls(req.method(), req.uri().path());
    if stall == Some(Stall::NoAnswer) {
        inner.stalled.fetch_add(1, Ordering::SeqCst);
        return std::future::pending().await;
    }
    let upload_id = uri
        .split_once('?')
        .and_then(|(_, q)| q.split('&').find_map(|p| p.strip_prefix("uploadId=")).map(str::to_owned));
    let forgotten = op == "CompleteMultipartUpload"
        && upload_id.as_ref().is_some_and(|id| inner.forgotten.lock().is_ok_and(|f| f.contains(id)));
    if forgotten {
        if let Ok(mut a) = inner.answers.lock() {
            *a.entry((op, 404)).or_default() += 1;
        }
        return Ok(s3_error(StatusCode::NOT_FOUND, "NoSuchUpload", "The specified upload does not exist."));
    }
    let fault = if stall.is_some() { None } else { inner.draw(op, req.uri().path()) };
    if fault == Some(Fault::ResetBefore) {
        inner.count(op, Fault::ResetBefore);
        reset.notify_one();
        return std::future::pending().await;
    }
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        // The client went away while sending its body.
        Err(_) => {
            reset.notify_one();
            return std::future::pending().await;
        }
    };
    match fault {
        Some(Fault::SlowDown) => {
            inner.count(op, Fault::SlowDown);
            return Ok(s3_error(StatusCode::SERVICE_UNAVAILABLE, "SlowDown", "Please reduce your request rate."));
        }
        Some(Fault::InternalError) => {
            inner.count(op, Fault::InternalError);
            return Ok(s3_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "We encountered an internal error. Please try again.",
            ));
        }
        Some(Fault::Delay) => {
            inner.count(op, Fault::Delay);
            tokio::time::sleep(Duration::from_millis(500 + inner.below(1501))).await;
        }
        _ => {}
    }
    let head = parts.method == Method::HEAD;
    let (status, headers, answer) = match forward(inner.upstream, parts, body).await {
        Ok(r) => r,
        Err(e) => {
            inner.upstream_errors.fetch_add(1, Ordering::SeqCst);
            let mut resp = Response::new(ProxyBody::full(Bytes::from(format!("fault proxy: upstream: {e}"))));
            *resp.status_mut() = StatusCode::BAD_GATEWAY;
            return Ok(resp);
        }
    };
    if let Ok(mut a) = inner.answers.lock() {
        *a.entry((op, status.as_u16())).or_default() += 1;
    }
    if stall == Some(Stall::MidBody) && status == StatusCode::OK && !head && answer.len() > 1 {
        inner.stalled.fetch_add(1, Ordering::SeqCst);
        let mut resp = Response::new(ProxyBody::Stalled(Some(answer.slice(..answer.len() / 2))));
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(answer.len()));
        return Ok(resp);
    }
    match fault {
        Some(Fault::ResetAfter) => {
            inner.count(op, Fault::ResetAfter);
            reset.notify_one();
            std::future::pending().await
        }
        Some(Fault::LostCompletion) => {
            inner.count(op, Fault::LostCompletion);
            if status == StatusCode::OK
                && let (Some(id), Ok(mut f)) = (upload_id, inner.forgotten.lock())
            {
                f.insert(id);
            }
            reset.notify_one();
            std::future::pending().await
        }
        Some(Fault::TruncatedBody) if status == StatusCode::OK && !head && !answer.is_empty() => {
            inner.count(op, Fault::TruncatedBody);
            let sent = usize::try_from(inner.below(answer.len() as u64)).unwrap_or(0);
            let mut resp = Response::new(ProxyBody::Truncated {
                part: Some(answer.slice(..sent)),
                // Long enough for hyper to flush the part before the body fails.
                fail: Box::pin(tokio::time::sleep(Duration::from_millis(50))),
            });
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(answer.len()));
            Ok(resp)
        }
        _ => {
            let len = answer.len();
            let mut resp = Response::new(ProxyBody::full(answer));
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            if !head && !resp.headers().contains_key(header::CONTENT_LENGTH) {
                resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
            Ok(resp)
        }
    }
}

/// Headers that belong to one connection, not to the request.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

/// Sends the request to the upstream on a connection of its own and reads the whole answer.
async fn forward(
    upstream: SocketAddr,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<(StatusCode, HeaderMap, Bytes), Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(upstream).await?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    if !body.is_empty() || headers.contains_key(header::CONTENT_LENGTH) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut req = Request::new(ProxyBody::full(body));
    *req.method_mut() = parts.method;
    *req.uri_mut() = path.parse()?;
    *req.headers_mut() = headers;
    let resp = sender.send_request(req).await?;
    let (parts, body) = resp.into_parts();
    let answer = body.collect().await?.to_bytes();
    driver.abort();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    Ok((parts.status, headers, answer))
}

/// An S3 error answer.
fn s3_error(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    static ID: AtomicU64 = AtomicU64::new(0);
    let id = ID.fetch_add(1, Ordering::SeqCst);
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
         <RequestId>FAULT{id:012}</RequestId><HostId>fault-proxy</HostId></Error>"
    );
    let len = xml.len();
    let mut resp = Response::new(ProxyBody::full(Bytes::from(xml)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// A body the proxy sends: whole, or cut short and then failed (which makes hyper close the
/// connection without completing the message).
pub enum ProxyBody {
    /// The whole body (taken when sent).
    Full(Option<Bytes>),
    /// Part of a body; after it, once `fail` fires, an error.
    Truncated {
        /// The part that is sent.
        part: Option<Bytes>,
        /// When the body fails.
        fail: Pin<Box<tokio::time::Sleep>>,
    },
    /// Part of a body (taken when sent), and then nothing, ever.
    Stalled(Option<Bytes>),
}

impl ProxyBody {
    fn full(bytes: Bytes) -> Self {
        Self::Full(Some(bytes))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b)))),
            Self::Stalled(part) => match part.take().filter(|p| !p.is_empty()) {
                Some(p) => Poll::Ready(Some(Ok(Frame::data(p)))),
                None => Poll::Pending,
            },
            Self::Truncated { part, fail } => {
                if let Some(p) = part.take().filter(|p| !p.is_empty()) {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                match fail.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "body truncated by the fault proxy",
                    )))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Truncated { .. } | Self::Stalled(_) => SizeHint::default(),
        }
    }
}

/// The seed of a test's fault generator: `CSVLAKE_FAULT_SEED` when set (to replay a failure),
/// else one from the clock.
pub fn fault_seed() -> u64 {
    match std::env::var("CSVLAKE_FAULT_SEED") {
        Ok(s) => s.trim().parse().unwrap_or_else(|e| panic!("CSVLAKE_FAULT_SEED={s:?}: {e}")),
        Err(_) => {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            (nanos.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
        }
    }
}
