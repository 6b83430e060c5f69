//! The HTTP API: health, readiness, Prometheus metrics and every object's status as JSON, from
//! the state store; and the controls `tagpilot suspend|resume|reconcile` use:
//! `POST /api/v1/{suspend,resume,reconcile}/{Kind}/{namespace}/{name}`.
//!
//! Every `/api/v1` route is guarded so that a web page cannot drive or read the daemon: the
//! `Host` must be an IP literal, a loopback name or the listen host (a DNS-rebinding page
//! sends its own name), the token is required when one is configured, and controls need
//! `Content-Type: application/json` or the `X-Tagpilot-Client` header (neither can be sent
//! cross-origin without a CORS preflight, which this server never grants). `/healthz`,
//! `/readyz` and `/metrics` stay open for probes and scrapers; they carry no secret.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use actix::Recipient;
use actix_web::{web, App, HttpResponse, HttpServer};
use tagpilot_api::{Config, Kind};
use tagpilot_store::Store;

use crate::receiver::ReconcileNow;

/// What the handlers share.
#[derive(Debug)]
pub struct ApiState {
    pub store: Arc<Store>,
    /// Set once the first configuration has been loaded.
    pub ready: AtomicBool,
    /// Cloud credentials (their expiry and refresh failures are metrics; never their value).
    pub keyring: Arc<tagpilot_providers::Keyring>,
    /// The loaded configuration and the supervisor, for the controls.
    control: RwLock<Option<(Arc<Config>, Recipient<ReconcileNow>)>>,
    /// Counters the reconciliations feed.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Per registry host politeness, with request and 429 counts.
    pub gates: Arc<tagpilot_registry::Gates>,
    /// When set, every `/api/v1` route needs `Authorization: Bearer <token>`.
    pub control_token: Option<Vec<u8>>,
    /// The host part of the listen address (accepted as `Host` besides loopback names and IP
    /// literals).
    pub listen_host: Option<String>,
}

/// The header the CLI sends with controls; a browser cannot add it cross-origin unasked.
pub const CLIENT_HEADER: &str = "x-tagpilot-client";

/// The host of a `Host` header value or listen address: `[::1]:9480` → `::1`, `a:1` → `a`.
pub fn host_of(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    if value.parse::<std::net::IpAddr>().is_ok() {
        return value;
    }
    match value.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => value,
    }
}

/// Why a request to `/api/v1` is refused, if it is.
fn refused(req: &actix_web::HttpRequest, state: &ApiState, control: bool) -> Option<HttpResponse> {
    use actix_web::http::header;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(host_of)
        .unwrap_or("");
    let host_ok = host.parse::<std::net::IpAddr>().is_ok()
        || host.eq_ignore_ascii_case("localhost")
        || state
            .listen_host
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(host));
    if !host_ok {
        tracing::warn!(
            host,
            path = req.path(),
            "API request with a foreign Host header refused"
        );
        return Some(
            HttpResponse::Forbidden()
                .body("Host must be the listen address, a loopback name or an IP address\n"),
        );
    }
    if let Some(token) = &state.control_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !tagpilot_webhook::constant_time_eq(given.trim().as_bytes(), token) {
            return Some(HttpResponse::Unauthorized().body("a valid API token is required\n"));
        }
    }
    if control {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json && !req.headers().contains_key(CLIENT_HEADER) {
            return Some(HttpResponse::UnsupportedMediaType().body(
                "controls need Content-Type: application/json (or the X-Tagpilot-Client header)\n",
            ));
        }
    }
    None
}

impl ApiState {
    pub fn new(store: Arc<Store>, gates: Arc<tagpilot_registry::Gates>) -> Self {
        ApiState {
            store,
            ready: AtomicBool::new(false),
            keyring: Arc::default(),
            control: RwLock::new(None),
            metrics: Arc::default(),
            gates,
            control_token: None,
            listen_host: None,
        }
    }

    /// Called on every (re)load.
    pub fn set_control(&self, config: Arc<Config>, supervisor: Recipient<ReconcileNow>) {
        *self
            .control
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((config, supervisor));
    }
}

fn requested_at() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = tagpilot_api::rfc3339(now.as_secs());
    format!("{}.{:09}Z", secs.trim_end_matches('Z'), now.subsec_nanos())
}

/// Suspend, resume or reconcile one object now.
async fn control(
    req: actix_web::HttpRequest,
    path: web::Path<(String, String, String, String)>,
    state: web::Data<ApiState>,
) -> HttpResponse {
    if let Some(no) = refused(&req, &state, true) {
        return no;
    }
    let (action, kind, namespace, name) = path.into_inner();
    let Some(kind) = Kind::ALL
        .into_iter()
        .filter(|k| {
            matches!(
                k,
                Kind::ImageRepository | Kind::ImagePolicy | Kind::ImageUpdateAutomation
            )
        })
        .find(|k| k.as_str().eq_ignore_ascii_case(&kind))
    else {
        return HttpResponse::BadRequest().body(format!(
            "unknown kind '{kind}' (ImageRepository, ImagePolicy or ImageUpdateAutomation)\n"
        ));
    };
    let Some((config, supervisor)) = state
        .control
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
    else {
        return HttpResponse::ServiceUnavailable().body("configuration not loaded yet\n");
    };
    let Some(loaded) = config.get(kind, &namespace, &name) else {
        return HttpResponse::NotFound().body(format!("{kind} {namespace}/{name} not found\n"));
    };
    let spec_suspended = match &loaded.object {
        tagpilot_api::Object::ImageRepository(o) => o.spec.suspend,
        tagpilot_api::Object::ImagePolicy(o) => o.spec.suspend,
        tagpilot_api::Object::ImageUpdateAutomation(o) => o.spec.suspend,
        _ => false,
    };
    if action == "release" {
        return release(&config, &state, &supervisor, kind, &namespace, &name);
    }
    let key = format!("{kind}/{namespace}/{name}");
    let current = match state.store.suspended(&key) {
        Ok(o) => o.unwrap_or(spec_suspended),
        Err(e) => return HttpResponse::InternalServerError().body(format!("{e}\n")),
    };
    let wanted = match action.as_str() {
        "suspend" => true,
        "resume" => false,
        "reconcile" if current => {
            return HttpResponse::Conflict().body("resource is suspended\n");
        }
        "reconcile" => current,
        other => return HttpResponse::NotFound().body(format!("unknown action '{other}'\n")),
    };
    if wanted != current || action != "reconcile" {
        // An override only where it differs from the manifest, so a later edit of
        // spec.suspend is not silently overruled.
        let value = (wanted != spec_suspended).then_some(wanted);
        if let Err(e) = state.store.set_suspended(&key, value) {
            return HttpResponse::InternalServerError().body(format!("{e}\n"));
        }
        tracing::info!(kind = %kind, namespace = %namespace, name = %name, suspended = wanted, "{action} requested");
    }
    // Unique per request (nanoseconds, as flux's RFC3339Nano annotation value): the CLI waits
    // for this very value in `lastHandledReconcileAt`, never for an earlier outcome.
    let requested_at = requested_at();
    supervisor.do_send(ReconcileNow(
        vec![(kind, namespace, name)],
        Some(requested_at.clone()),
    ));
    HttpResponse::Ok().json(serde_json::json!({ "requestedAt": requested_at, "suspended": wanted }))
}

/// `GET /api/v1/explain/ImagePolicy/{namespace}/{name}`: every tag of the policy's
/// repository with the verdict of each filter and gate, from the store (no registry call).
async fn explain(
    req: actix_web::HttpRequest,
    path: web::Path<(String, String, String)>,
    state: web::Data<ApiState>,
) -> HttpResponse {
    if let Some(no) = refused(&req, &state, false) {
        return no;
    }
    let (kind, namespace, name) = path.into_inner();
    if !kind.eq_ignore_ascii_case("ImagePolicy") {
        return HttpResponse::BadRequest()
            .body(format!("explain knows ImagePolicy only, not '{kind}'\n"));
    }
    let Some((config, _)) = state
        .control
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
    else {
        return HttpResponse::ServiceUnavailable().body("configuration not loaded yet\n");
    };
    let store = state.store.clone();
    match web::block(move || explain_policy(&config, &store, &namespace, &name)).await {
        Ok(Ok(body)) => HttpResponse::Ok().json(body),
        Ok(Err((status, message))) => HttpResponse::build(status).body(format!("{message}\n")),
        Err(e) => HttpResponse::InternalServerError().body(format!("{e}\n")),
    }
}

type Refusal = (actix_web::http::StatusCode, String);

fn explain_policy(
    config: &Config,
    store: &Store,
    namespace: &str,
    name: &str,
) -> Result<serde_json::Value, Refusal> {
    use actix_web::http::StatusCode;
    use tagpilot_reconcile::gates::{explain_rows, HeldLine};
    let failed = |e: &dyn std::fmt::Display| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let Some(policy) = config.find::<tagpilot_api::ImagePolicy>(namespace, name) else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("ImagePolicy {namespace}/{name} not found"),
        ));
    };
    let (repo_ns, repo_name) = policy.repository_key();
    let repo = config
        .find::<tagpilot_api::ImageRepository>(repo_ns, repo_name)
        .ok_or_else(|| {
            (
                StatusCode::CONFLICT,
                format!("ImageRepository {repo_ns}/{repo_name} not found"),
            )
        })?;
    let engine = tagpilot_api::build_policy(&policy.spec)
        .map_err(|e| (StatusCode::CONFLICT, format!("invalid policy: {e}")))?;
    let image = tagpilot_registry::ImageName::parse(&repo.spec.image)
        .map_err(|e| (StatusCode::CONFLICT, e.to_string()))?;
    let stored = store
        .tags(&image.canonical())
        .map_err(|e| failed(&e))?
        .ok_or_else(|| {
            (
                StatusCode::CONFLICT,
                "no tags in database: the repository was not scanned yet".to_owned(),
            )
        })?;
    let status = store
        .status(&format!("ImagePolicy/{namespace}/{name}"))
        .map_err(|e| failed(&e))?
        .unwrap_or_default();
    let latest = status["latestRef"]["tag"].as_str();
    let held = status["heldTags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| {
            Some((
                h["tag"].as_str()?.to_owned(),
                HeldLine {
                    verdict: h["verdict"].as_str()?.to_owned(),
                    message: h["message"].as_str().unwrap_or_default().to_owned(),
                },
            ))
        })
        .collect();
    // The stored list is the image's whole list; the repository's exclusions apply here.
    let exclusions = tagpilot_policy::Exclusions::new(&repo.spec.exclusion_list)
        .map_err(|e| (StatusCode::CONFLICT, e.to_string()))?;
    let tags: Vec<&str> = stored.iter().map(|t| t.tag.as_str()).collect();
    let ex = engine.explain(&tags, &exclusions);
    let first_seen = |tag: &str| stored.iter().find(|t| t.tag == tag).map(|t| t.first_seen);
    let rows = explain_rows(&ex, &held, latest, first_seen);
    let ready = tagpilot_api::Status::from_value(status.clone());
    Ok(serde_json::json!({
        "kind": "ImagePolicy",
        "namespace": namespace,
        "name": name,
        "policy": ex.policy,
        "gates": policy.spec.gates,
        "latestRef": status.get("latestRef"),
        "message": ready.message(),
        "error": ex.error,
        "tags": rows,
    }))
}

/// Ends the manual holds of a policy (`manualChanges: hold`): the automations that select it
/// write its latest ref at their next round, which is requested now.
fn release(
    config: &Config,
    state: &ApiState,
    supervisor: &Recipient<ReconcileNow>,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> HttpResponse {
    let Some(policy) = config
        .find::<tagpilot_api::ImagePolicy>(namespace, name)
        .filter(|_| kind == Kind::ImagePolicy)
    else {
        return HttpResponse::BadRequest().body("release applies to an ImagePolicy\n");
    };
    let requested_at = requested_at();
    let automations: Vec<(Kind, String, String)> = config
        .all::<tagpilot_api::ImageUpdateAutomation>()
        .filter(|a| a.spec.manual_changes == tagpilot_api::ManualChanges::Hold)
        .filter(|a| tagpilot_reconcile::writers::selects(a, policy))
        .map(|a| {
            (
                Kind::ImageUpdateAutomation,
                a.metadata.namespace.clone(),
                a.metadata.name.clone(),
            )
        })
        .collect();
    // One request per automation: each retires its own when its round applied it.
    for (_, ns, n) in &automations {
        let key = format!("{ns}/{n}|{namespace}/{name}");
        if let Err(e) = state.store.request_release(&key, &requested_at) {
            return HttpResponse::InternalServerError().body(format!("{e}\n"));
        }
    }
    tracing::info!(
        kind = "ImagePolicy",
        namespace,
        name,
        automations = automations.len(),
        "manual holds released by request"
    );
    let names: Vec<String> = automations
        .iter()
        .map(|(_, ns, n)| format!("{ns}/{n}"))
        .collect();
    if !automations.is_empty() {
        supervisor.do_send(ReconcileNow(automations, Some(requested_at.clone())));
    }
    HttpResponse::Ok()
        .json(serde_json::json!({ "requestedAt": requested_at, "automations": names }))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

async fn readyz(state: web::Data<ApiState>) -> HttpResponse {
    if state.ready.load(Ordering::Relaxed) {
        HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("configuration not loaded yet\n")
    }
}

/// A three-part `a/b/c` key (objects in the store, credentials in the keyring) → its parts;
/// a missing part is empty.
pub(crate) fn split_key(key: &str) -> (&str, &str, &str) {
    let mut parts = key.splitn(3, '/');
    (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    )
}

async fn objects(req: actix_web::HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    if let Some(no) = refused(&req, &state, false) {
        return no;
    }
    let st = state.clone();
    match web::block(move || st.store.statuses())
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        Ok(list) => {
            let items: Vec<serde_json::Value> = list
                .into_iter()
                .map(|(key, status)| {
                    let (kind, namespace, name) = split_key(&key);
                    serde_json::json!({ "kind": kind, "namespace": namespace, "name": name, "status": status })
                })
                .collect();
            HttpResponse::Ok().json(serde_json::json!({ "items": items }))
        }
        Err(e) => HttpResponse::InternalServerError().body(e),
    }
}

async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    // Reading every status and writing the page is blocking work: a thread of the blocking
    // pool, not the server's.
    let st = state.clone();
    let page = web::block(move || {
        let mut statuses = crate::metrics::Statuses::default();
        st.store.each_status(|key, json| statuses.add(key, json))?;
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(statuses));
        st.metrics.register(&mut registry);
        registry.register_collector(Box::new(crate::metrics::Hosts(st.gates.clone())));
        registry.register_collector(Box::new(crate::metrics::Credentials(st.keyring.clone())));
        Ok::<_, tagpilot_store::StoreError>(crate::metrics::render(&registry))
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()));
    match page {
        Ok(text) => HttpResponse::Ok()
            .content_type(crate::metrics::CONTENT_TYPE)
            .body(text),
        Err(e) => HttpResponse::InternalServerError().body(e),
    }
}

/// Starts the API server on `address`; it stops with the actix system.
pub fn start(address: &str, state: Arc<ApiState>) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::from(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .route("/api/v1/objects", web::get().to(objects))
            .route(
                "/api/v1/explain/{kind}/{namespace}/{name}",
                web::get().to(explain),
            )
            .route(
                "/api/v1/{action}/{kind}/{namespace}/{name}",
                web::post().to(control),
            )
    })
    .workers(1)
    .disable_signals()
    .bind(address)?
    .run();
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn hosts_of_header_values_and_addresses() {
        assert_eq!(host_of("127.0.0.1:9480"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9480"), "::1");
        assert_eq!(host_of("[::1]"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
        assert_eq!(host_of("evil.example:80"), "evil.example");
        assert_eq!(host_of("::1"), "::1");
    }
}
