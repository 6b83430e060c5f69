//! The webhook receiver server: Flux's `Receiver` objects as HTTP endpoints
//! (`/hook/<sha256(token+name+namespace)>`). A valid request makes its target objects reconcile
//! now, without waiting for their intervals. Validation rules live in `tagpilot-webhook`; this
//! module adds the HTTP edge (limits, status codes) and the hand-off to the supervisor.
//!
//! Status codes follow Flux: 200, 404 unknown path, 503 suspended or not ready, 400 missing
//! token or invalid request, 413 body over 3 MiB, 500 when a target is missing; plus 429 when one
//! client sends too many requests and 408 when a body arrives too slowly.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt as _;
use tagpilot_api::{Config, Kind, Receiver, ReceiverType};

/// Flux's body cap.
pub const MAX_BODY: usize = 3 << 20;
/// How long a client may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Per-client rate limit: burst size and refill per second.
const BURST: u32 = 30;
const REFILL_PER_SECOND: u32 = 10;

/// Requests per client address (governor's GCRA, one cell per address).
type ClientLimiter = governor::DefaultKeyedRateLimiter<IpAddr>;

fn client_limiter() -> ClientLimiter {
    let per_second =
        std::num::NonZeroU32::new(REFILL_PER_SECOND).unwrap_or(std::num::NonZeroU32::MIN);
    let burst = std::num::NonZeroU32::new(BURST).unwrap_or(std::num::NonZeroU32::MIN);
    governor::RateLimiter::keyed(governor::Quota::per_second(per_second).allow_burst(burst))
}

/// An object to reconcile now.
pub type Target = (Kind, String, String);

/// A request to reconcile objects now: from a valid webhook, or from the API with the
/// `requestedAt` token its status echoes in `lastHandledReconcileAt` when handled.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReconcileNow(pub Vec<Target>, pub Option<String>);

/// One Receiver as the server sees it.
#[derive(Clone)]
pub struct Route {
    pub path: String,
    pub namespace: String,
    pub name: String,
    pub kind: ReceiverType,
    pub token: Vec<u8>,
    pub events: Vec<String>,
    pub suspended: bool,
    /// `gcr` only: the Secret's `audience` and `email`.
    pub gcr: Option<tagpilot_webhook::GcrExpect>,
    /// `spec.resourceFilter` and `spec.resources[].filter`, compiled.
    pub filters: Arc<tagpilot_webhook::filter::ResourceFilters>,
    /// `generic-oidc` only: each provider with its compiled claim checks.
    pub oidc: Arc<
        Vec<(
            tagpilot_api::OidcProvider,
            tagpilot_webhook::filter::ClaimChecks,
        )>,
    >,
}

// By hand, so that the token never reaches a log line.
impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("path", &self.path)
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("suspended", &self.suspended)
            .finish_non_exhaustive()
    }
}

/// The routes of the current configuration, swapped on reload.
pub struct Routes {
    pub by_path: HashMap<String, Route>,
    pub config: Arc<Config>,
    pub supervisor: Recipient<ReconcileNow>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("by_path", &self.by_path)
            .finish_non_exhaustive()
    }
}

/// Shared between the server's workers and the supervisor.
#[derive(Debug)]
pub struct ReceiverState {
    /// None until the first configuration is loaded (every path is then unknown).
    pub routes: RwLock<Option<Routes>>,
    limiter: ClientLimiter,
    /// Google's signing keys, for `gcr` receivers.
    pub google_keys: GoogleKeys,
    /// generic-oidc issuers' keys.
    pub issuer_keys: IssuerKeys,
}

/// Where Google's OIDC signing keys are published.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// How long a fetched key set is used before it is fetched again.
const KEYS_TTL: Duration = Duration::from_secs(3600);
/// At most one fetch per this interval, whatever tokens arrive (unknown `kid`s included).
const KEYS_MIN_REFETCH: Duration = Duration::from_secs(30);

/// Google's JWKS, fetched on first use, cached for an hour, fetched again early when a token
/// names a key the cache lacks (Google rotates keys) — one fetch at a time, and never more
/// often than every 30 s.
#[derive(Debug, Default)]
pub struct GoogleKeys {
    /// None: [`GOOGLE_JWKS_URL`].
    pub url: Option<String>,
    cache: tokio::sync::Mutex<KeyCache>,
}

#[derive(Debug, Default)]
struct KeyCache {
    keys: Option<(Instant, tagpilot_webhook::oidc::KeySet)>,
    last_fetch: Option<Instant>,
}

impl GoogleKeys {
    pub fn new(url: Option<String>) -> Self {
        GoogleKeys {
            url,
            cache: tokio::sync::Mutex::default(),
        }
    }

    async fn get(&self, kid: Option<&str>) -> Result<tagpilot_webhook::oidc::KeySet, String> {
        let url = self.url.as_deref().unwrap_or(GOOGLE_JWKS_URL);
        self.cache
            .lock()
            .await
            .get(kid, "Google's key set is unavailable", || fetch_keys(url))
            .await
    }
}

impl KeyCache {
    /// The cached key set while it is fresh and knows `kid`; else one fetch (at most every
    /// [`KEYS_MIN_REFETCH`]), keeping a stale set while the endpoint is down. The caller holds
    /// the cache's lock, so concurrent requests wait for one fetch.
    async fn get<F, Fut>(
        &mut self,
        kid: Option<&str>,
        unavailable: &str,
        fetch: F,
    ) -> Result<tagpilot_webhook::oidc::KeySet, String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<tagpilot_webhook::oidc::KeySet, String>>,
    {
        let now = Instant::now();
        let usable = self.keys.as_ref().filter(|(at, keys)| {
            now.duration_since(*at) < KEYS_TTL && kid.is_none_or(|k| keys.has(k))
        });
        let recently = self
            .last_fetch
            .is_some_and(|t| now.duration_since(t) < KEYS_MIN_REFETCH);
        if let Some((_, keys)) = usable {
            return Ok(keys.clone());
        }
        if recently {
            return self
                .keys
                .as_ref()
                .map(|(_, k)| k.clone())
                .ok_or_else(|| unavailable.to_owned());
        }
        self.last_fetch = Some(now);
        match fetch().await {
            Ok(keys) => {
                self.keys = Some((now, keys.clone()));
                Ok(keys)
            }
            // A stale key set beats none while the endpoint is down.
            Err(e) => self.keys.as_ref().map(|(_, k)| k.clone()).ok_or(e),
        }
    }
}

/// The key sets of `generic-oidc` issuers, found through OIDC discovery
/// (`<issuer>/.well-known/openid-configuration`, whose `issuer` must be the issuer itself, as
/// go-oidc checks), cached per issuer like Google's.
#[derive(Debug, Default)]
pub struct IssuerKeys {
    caches: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<KeyCache>>>>,
}

impl IssuerKeys {
    async fn get(
        &self,
        issuer: &str,
        kid: Option<&str>,
    ) -> Result<tagpilot_webhook::oidc::KeySet, String> {
        let cache = self
            .caches
            .lock()
            .await
            .entry(issuer.to_owned())
            .or_default()
            .clone();
        let mut cache = cache.lock().await;
        cache
            .get(kid, "the issuer's key set is unavailable", || {
                discover(issuer)
            })
            .await
    }
}

/// Discovery, then the key set it names.
async fn discover(issuer: &str) -> Result<tagpilot_webhook::oidc::KeySet, String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let body = get_small(&url).await?;
    let d: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| format!("{url}: not an OIDC discovery document: {e}"))?;
    let (Some(found), Some(jwks_uri)) = (d["issuer"].as_str(), d["jwks_uri"].as_str()) else {
        return Err(format!(
            "{url}: no issuer or jwks_uri in the discovery document"
        ));
    };
    if found != issuer {
        return Err(format!(
            "oidc: issuer did not match the issuer returned by provider, expected \"{issuer}\" got \"{found}\""
        ));
    }
    fetch_keys(jwks_uri).await
}

/// A GET of at most 1 MiB.
async fn get_small(url: &str) -> Result<Vec<u8>, String> {
    let client = tagpilot_http::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("fetching {url}: {}", e.without_url()))?;
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("fetching {url}: {}", e.without_url()))?;
    if body.len() > 1 << 20 {
        return Err(format!("{url}: larger than 1 MiB"));
    }
    Ok(body.to_vec())
}

async fn fetch_keys(url: &str) -> Result<tagpilot_webhook::oidc::KeySet, String> {
    let body = get_small(url).await?;
    tagpilot_webhook::oidc::KeySet::parse(&body).map_err(|e| format!("{url}: {e}"))
}

impl Default for ReceiverState {
    fn default() -> Self {
        ReceiverState {
            routes: RwLock::new(None),
            limiter: client_limiter(),
            google_keys: GoogleKeys::default(),
            issuer_keys: IssuerKeys::default(),
        }
    }
}

impl ReceiverState {
    pub fn new(google_keys: GoogleKeys) -> Self {
        ReceiverState {
            google_keys,
            ..ReceiverState::default()
        }
    }

    pub fn replace(&self, routes: Routes) {
        *self
            .routes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(routes);
    }

    /// Whether the client may send one more request now.
    fn admit(&self, ip: IpAddr) -> bool {
        // Forget clients back at a full burst so the map cannot grow without bound.
        if self.limiter.len() > 10_000 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&ip).is_ok()
    }
}

/// The objects a Receiver's `spec.resources` name, as the configuration holds them. Kinds
/// tagpilot does not run (Kustomization, HelmRelease …) are skipped: their controllers are not
/// here. A named object that does not exist is an error (Flux answers 500).
pub fn targets(config: &Config, receiver: &Receiver) -> Result<Vec<Target>, String> {
    Ok(indexed_targets(config, receiver)?
        .into_iter()
        .map(|(_, t)| t)
        .collect())
}

/// [`targets`], each with the index of the `spec.resources` entry that named it (whose
/// filter applies).
fn indexed_targets(config: &Config, receiver: &Receiver) -> Result<Vec<(usize, Target)>, String> {
    let mut out = Vec::new();
    for (index, r) in receiver.spec.resources.iter().enumerate() {
        let namespace = r
            .namespace
            .clone()
            .unwrap_or_else(|| receiver.metadata.namespace.clone());
        let Some(kind) = Kind::from_name(&r.kind).filter(|k| {
            matches!(
                k,
                Kind::ImageRepository
                    | Kind::ImagePolicy
                    | Kind::ImageUpdateAutomation
                    | Kind::GitRepository
            )
        }) else {
            tracing::debug!(kind = "Receiver", namespace = %receiver.metadata.namespace, name = %receiver.metadata.name, target_kind = %r.kind, "target kind not run by tagpilot, skipped");
            continue;
        };
        if r.name == "*" {
            let before = out.len();
            for l in config.of_kind(kind) {
                let m = l.object.metadata();
                if m.namespace == namespace
                    && r.match_labels
                        .iter()
                        .all(|(k, v)| m.labels.get(k) == Some(v))
                {
                    out.push((index, (kind, m.namespace.clone(), m.name.clone())));
                }
            }
            if out.len() == before {
                tracing::info!(kind = "Receiver", namespace = %receiver.metadata.namespace, name = %receiver.metadata.name, target_kind = %r.kind, "no object matches the labels");
            }
        } else if config.get(kind, &namespace, &r.name).is_some() {
            out.push((index, (kind, namespace, r.name.clone())));
        } else {
            return Err(format!("{} '{namespace}/{}' not found", r.kind, r.name));
        }
    }
    Ok(out)
}

fn text(mut builder: actix_web::HttpResponseBuilder, body: impl Into<String>) -> HttpResponse {
    builder.content_type("text/plain").body(body.into() + "\n")
}

async fn hook(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<ReceiverState>,
) -> HttpResponse {
    let ip = req
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    if !state.admit(ip) {
        return text(HttpResponse::TooManyRequests(), "too many requests");
    }
    let path = req.path().to_owned();
    let (route, config, supervisor) = {
        let routes = state
            .routes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match routes
            .as_ref()
            .and_then(|r| Some((r, r.by_path.get(&path)?)))
        {
            Some((r, route)) => (route.clone(), r.config.clone(), r.supervisor.clone()),
            None => return text(HttpResponse::NotFound(), "not found"),
        }
    };
    let (ns, name) = (route.namespace.as_str(), route.name.as_str());
    if route.suspended {
        return text(HttpResponse::ServiceUnavailable(), "receiver is suspended");
    }

    let body = match read_body(&mut payload).await {
        Ok(b) => b,
        Err(resp) => {
            tracing::warn!(kind = "Receiver", namespace = %ns, name = %name, status = resp.status().as_u16(), "request body refused");
            return resp;
        }
    };
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let mut claims = None;
    let validated = match &route.gcr {
        None if route.kind == ReceiverType::GenericOidc => {
            verify_oidc(&state, &route, &headers).await.map(|c| {
                claims = Some(c);
                tagpilot_webhook::Accepted::default()
            })
        }
        Some(expect) => {
            let kid = tagpilot_webhook::bearer_token(&headers)
                .ok()
                .and_then(tagpilot_webhook::oidc::key_id);
            match state.google_keys.get(kid.as_deref()).await {
                Ok(keys) => {
                    tagpilot_webhook::validate_gcr(expect, &keys, unix_now(), &headers, &body)
                }
                Err(e) => {
                    tracing::warn!(kind = "Receiver", namespace = %ns, name = %name, error = %e, "cannot check the ID token");
                    return text(HttpResponse::ServiceUnavailable(), e);
                }
            }
        }
        None => {
            tagpilot_webhook::validate(route.kind, &route.token, &route.events, &headers, &body)
        }
    };
    let accepted = match validated {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(kind = "Receiver", namespace = %ns, name = %name, error = %e, "webhook rejected");
            return text(HttpResponse::BadRequest(), e.to_string());
        }
    };
    let Some(receiver) = config.find::<Receiver>(&route.namespace, &route.name) else {
        return text(HttpResponse::ServiceUnavailable(), "not ready");
    };
    let targets = match indexed_targets(&config, receiver)
        .and_then(|t| filtered(&config, &route, &headers, &body, claims.as_ref(), t))
    {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(kind = "Receiver", namespace = %ns, name = %name, error = %e, "webhook targets unresolved");
            return text(HttpResponse::InternalServerError(), e);
        }
    };
    tracing::info!(
        kind = "Receiver",
        namespace = %ns,
        name = %name,
        event = accepted.event.as_deref().unwrap_or(""),
        image = accepted.image.as_deref().unwrap_or(""),
        tag = accepted.tag.as_deref().unwrap_or(""),
        targets = targets.len(),
        "webhook accepted"
    );
    supervisor.do_send(ReconcileNow(targets, None));
    text(HttpResponse::Ok(), "ok")
}

/// A generic-oidc request's token, verified with its issuer's keys and the provider's
/// checks; the claims.
async fn verify_oidc(
    state: &ReceiverState,
    route: &Route,
    headers: &Vec<(String, String)>,
) -> Result<serde_json::Value, tagpilot_webhook::Rejected> {
    use tagpilot_webhook::{oidc, Rejected};
    let token = tagpilot_webhook::bearer_token(headers)?;
    let issuer = oidc::unverified_issuer(token)
        .ok_or(Rejected::BadIdToken("failed to parse bearer token"))?;
    let Some((provider, checks)) = route.oidc.iter().find(|(p, _)| p.issuer_url == issuer) else {
        return Err(Rejected::UnknownIssuer(issuer));
    };
    let keys = state
        .issuer_keys
        .get(&provider.issuer_url, oidc::key_id(token).as_deref())
        .await
        .map_err(|e| {
            tracing::warn!(kind = "Receiver", namespace = %route.namespace, name = %route.name, issuer = %provider.issuer_url, error = %e, "cannot get the issuer's keys");
            Rejected::BadIdToken("failed to initialize the OIDC provider")
        })?;
    tagpilot_webhook::verify_generic_oidc(token, provider, checks, &keys, unix_now())
}

/// The targets the Receiver's CEL filters accept (all of them without filters). `req` is the
/// body when it is JSON, else an empty map, as in notification-controller.
fn filtered(
    config: &Config,
    route: &Route,
    headers: &[(String, String)],
    body: &[u8],
    claims: Option<&serde_json::Value>,
    targets: Vec<(usize, Target)>,
) -> Result<Vec<Target>, String> {
    if route.filters.is_empty() {
        return Ok(targets.into_iter().map(|(_, t)| t).collect());
    }
    let json = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .and_then(|(_, v)| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("application/json") || v.ends_with("+json")
        });
    let req: serde_json::Value = if json {
        serde_json::from_slice(body)
            .map_err(|e| format!("failed to parse request body as JSON: {e}"))?
    } else {
        serde_json::json!({})
    };
    let mut out = Vec::new();
    for (index, target) in targets {
        let (kind, ns, name) = &target;
        let Some(loaded) = config.get(*kind, ns, name) else {
            continue;
        };
        let res = tagpilot_webhook::filter::resource_value(
            loaded.object.api_version(),
            kind.as_str(),
            loaded.object.metadata(),
        );
        if route.filters.accepts(index, &res, &req, claims)? {
            out.push(target);
        } else {
            tracing::info!(kind = "Receiver", namespace = %route.namespace, name = %route.name, target = %format!("{}/{ns}/{name}", kind.as_str()), "not reconciled: the CEL filter returned false");
        }
    }
    Ok(out)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads the body with Flux's 3 MiB cap and a deadline for slow senders.
async fn read_body(payload: &mut web::Payload) -> Result<Vec<u8>, HttpResponse> {
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| text(HttpResponse::BadRequest(), e.to_string()))?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(text(
                    HttpResponse::PayloadTooLarge(),
                    "request body is larger than 3 MiB",
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(r) => r,
        Err(_) => Err(text(
            HttpResponse::RequestTimeout(),
            "request body too slow",
        )),
    }
}

/// A TLS server configuration from PEM files: the certificate chain and its private key.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, String> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    // The key's own text never goes into the error.
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|_| format!("{}: no usable private key", key.display()))?;
    // The process's one provider (ring), as every client uses.
    tagpilot_http::install_crypto_provider();
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            format!(
                "TLS setup with {} and {}: {e}",
                cert.display(),
                key.display()
            )
        })
}

/// Starts the receiver server on `address` (HTTPS when `tls` is given); it stops with the
/// actix system.
pub fn start(
    address: &str,
    state: Arc<ReceiverState>,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::from(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(hook))
    })
    .workers(1)
    .client_request_timeout(Duration::from_secs(10))
    .max_connection_rate(256)
    .disable_signals();
    let server = match tls {
        Some(config) => server.bind_rustls_0_23(address, config)?,
        None => server.bind(address)?,
    };
    Ok(server.run())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: web, namespace: apps, labels: {team: a}}
spec: {image: example.com/web, interval: 1m}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: api, namespace: apps, labels: {team: b}}
spec: {image: example.com/api, interval: 1m}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: by-label, namespace: apps}
spec:
  type: generic
  secretRef: {name: t}
  resources:
    - {apiVersion: image.toolkit.fluxcd.io/v1, kind: ImageRepository, name: "*", matchLabels: {team: a}}
    - {apiVersion: kustomize.toolkit.fluxcd.io/v1, kind: Kustomization, name: apps}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: missing, namespace: apps}
spec:
  type: generic
  secretRef: {name: t}
  resources:
    - {apiVersion: image.toolkit.fluxcd.io/v1, kind: ImageRepository, name: web}
    - {apiVersion: image.toolkit.fluxcd.io/v1, kind: ImageRepository, name: gone}
"#;

    fn receiver<'a>(config: &'a Config, name: &str) -> &'a Receiver {
        config
            .find::<Receiver>("apps", name)
            .unwrap_or_else(|| panic!("no receiver {name}: {:?}", config.errors))
    }

    #[test]
    fn targets_by_labels_skip_foreign_kinds_and_fail_on_missing_names() {
        let config = tagpilot_api::load_str(CONFIG, std::path::Path::new("c.yaml"));
        assert!(config.errors.is_empty(), "{:?}", config.errors);
        assert_eq!(
            targets(&config, receiver(&config, "by-label")),
            Ok(vec![(Kind::ImageRepository, "apps".into(), "web".into())])
        );
        assert_eq!(
            targets(&config, receiver(&config, "missing")),
            Err("ImageRepository 'apps/gone' not found".into())
        );
    }

    #[test]
    fn one_client_gets_a_burst_then_is_limited_and_others_are_not() {
        let state = ReceiverState::default();
        let a = IpAddr::from([127, 0, 0, 2]);
        let b = IpAddr::from([127, 0, 0, 3]);
        let admitted = (0..100).filter(|_| state.admit(a)).count();
        // The burst, plus at most what refilled while the loop ran.
        assert!((30..=31).contains(&admitted), "{admitted}");
        assert!(state.admit(b));
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let r = Route {
            path: "/hook/x".into(),
            namespace: "n".into(),
            name: "r".into(),
            kind: ReceiverType::Generic,
            token: b"s3cret".to_vec(),
            events: Vec::new(),
            suspended: false,
            gcr: None,
            filters: Arc::default(),
            oidc: Arc::default(),
        };
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("/hook/x"),
            "{shown}"
        );
    }
}
