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

fn split_key(key: &str) -> (&str, &str, &str) {
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

use crate::metrics::label;

/// The fields of a stored status that `/metrics` reports; the rest is skipped unparsed.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct MetricFields<'a> {
    #[serde(borrow)]
    conditions: Vec<ConditionFields<'a>>,
    last_scan_result: Option<ScanFields>,
    #[serde(borrow)]
    latest_ref: Option<LatestFields<'a>>,
    deliveries: Option<DeliveryFields>,
    last_success_time: Option<u64>,
    #[serde(borrow)]
    held_tags: Option<Vec<HeldFields<'a>>>,
    manual_holds: Option<Vec<serde::de::IgnoredAny>>,
    last_push_time: Option<u64>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct ConditionFields<'a> {
    #[serde(borrow, rename = "type")]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    status: std::borrow::Cow<'a, str>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ScanFields {
    tag_count: Option<u64>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct LatestFields<'a> {
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    tag: Option<std::borrow::Cow<'a, str>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct DeliveryFields {
    succeeded: Option<u64>,
    failed: Option<u64>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct HeldFields<'a> {
    #[serde(borrow)]
    verdict: Option<std::borrow::Cow<'a, str>>,
}

/// The per-object families, written while the store is read (one status at a time).
struct ObjectFamilies {
    ready: String,
    tags: String,
    latest: String,
    held: String,
    manual: String,
    pushes: String,
    last_success: String,
    notes: String,
    /// Statuses that could not be read (reported as a count, never a reason to fail).
    unreadable: u64,
}

/// A family's HELP and TYPE lines.
fn family(name: &str, kind: &str, help: &str) -> String {
    format!("# HELP {name} {help}\n# TYPE {name} {kind}\n")
}

impl ObjectFamilies {
    fn new() -> Self {
        ObjectFamilies {
            ready: family(
                "tagpilot_object_ready",
                "gauge",
                "Whether the object's last reconciliation ended Ready.",
            ),
            tags: family(
                "tagpilot_repository_tags",
                "gauge",
                "Tags found by the last accepted scan.",
            ),
            latest: family(
                "tagpilot_policy_latest_info",
                "gauge",
                "The latest image a policy resolved to.",
            ),
            held: family(
                "tagpilot_policy_held_tags",
                "gauge",
                "Candidate tags a rollout gate held at the policy's last resolution.",
            ),
            manual: family(
                "tagpilot_manual_holds",
                "gauge",
                "Policies an automation keeps at a value a person chose (manualChanges: hold).",
            ),
            pushes: family(
                "tagpilot_automation_last_push_timestamp_seconds",
                "gauge",
                "Time of the last push.",
            ),
            last_success: family(
                "tagpilot_last_success_timestamp_seconds",
                "gauge",
                "When the object last ended a reconciliation Ready.",
            ),
            notes: family(
                "tagpilot_notifications_total",
                "counter",
                "Notifications a Provider delivered or failed to deliver.",
            ),
            unreadable: 0,
        }
    }

    fn add(&mut self, key: &str, json: &[u8]) {
        use std::fmt::Write;
        let Ok(status) = serde_json::from_slice::<MetricFields<'_>>(json) else {
            self.unreadable += 1;
            return;
        };
        let (kind, ns, name) = split_key(key);
        let (kind, ns, name) = (label(kind), label(ns), label(name));
        let ready = status
            .conditions
            .iter()
            .any(|c| c.kind == "Ready" && c.status == "True");
        // Writing to a String cannot fail.
        let _ = writeln!(
            self.ready,
            "tagpilot_object_ready{{kind=\"{kind}\",namespace=\"{ns}\",name=\"{name}\"}} {}",
            u8::from(ready)
        );
        if let Some(n) = status.last_scan_result.and_then(|s| s.tag_count) {
            let _ = writeln!(
                self.tags,
                "tagpilot_repository_tags{{namespace=\"{ns}\",name=\"{name}\"}} {n}"
            );
        }
        if let Some(l) = &status.latest_ref {
            if let Some(tag) = &l.tag {
                let _ = writeln!(
                    self.latest,
                    "tagpilot_policy_latest_info{{namespace=\"{ns}\",name=\"{name}\",image=\"{}\",tag=\"{}\"}} 1",
                    label(&l.name),
                    label(tag)
                );
            }
        }
        if let Some(d) = status.deliveries {
            for (n, outcome) in [(d.succeeded, "delivered"), (d.failed, "failed")] {
                if let Some(n) = n {
                    let _ = writeln!(
                        self.notes,
                        "tagpilot_notifications_total{{namespace=\"{ns}\",name=\"{name}\",outcome=\"{outcome}\"}} {n}"
                    );
                }
            }
        }
        if let Some(t) = status.last_success_time {
            let _ = writeln!(
                self.last_success,
                "tagpilot_last_success_timestamp_seconds{{kind=\"{kind}\",namespace=\"{ns}\",name=\"{name}\"}} {t}"
            );
        }
        if let Some(list) = &status.held_tags {
            let mut by_verdict: std::collections::BTreeMap<&str, usize> = Default::default();
            for h in list {
                *by_verdict
                    .entry(h.verdict.as_deref().unwrap_or("unknown"))
                    .or_default() += 1;
            }
            for (verdict, n) in by_verdict {
                let _ = writeln!(
                    self.held,
                    "tagpilot_policy_held_tags{{namespace=\"{ns}\",name=\"{name}\",verdict=\"{}\"}} {n}",
                    label(verdict)
                );
            }
        }
        if let Some(list) = &status.manual_holds {
            let _ = writeln!(
                self.manual,
                "tagpilot_manual_holds{{namespace=\"{ns}\",name=\"{name}\"}} {}",
                list.len()
            );
        }
        if let Some(t) = status.last_push_time {
            let _ = writeln!(
                self.pushes,
                "tagpilot_automation_last_push_timestamp_seconds{{namespace=\"{ns}\",name=\"{name}\"}} {t}"
            );
        }
    }

    fn finish(self) -> String {
        let mut out = self.ready;
        for part in [
            self.tags,
            self.latest,
            self.held,
            self.manual,
            self.pushes,
            self.last_success,
            self.notes,
        ] {
            out.push_str(&part);
        }
        out.push_str(&family(
            "tagpilot_unreadable_statuses",
            "gauge",
            "Stored statuses /metrics could not read.",
        ));
        out.push_str(&format!(
            "tagpilot_unreadable_statuses {}\n",
            self.unreadable
        ));
        out
    }
}

async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    // Reading every status is blocking work: a thread of the blocking pool, not the server's.
    let st = state.clone();
    let objects = web::block(move || {
        let mut families = ObjectFamilies::new();
        st.store
            .each_status(|key, json| families.add(key, json))
            .map(|()| families.finish())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()));
    let mut out = match objects {
        Ok(text) => text,
        Err(e) => return HttpResponse::InternalServerError().body(e),
    };
    out.push_str(&state.metrics.render());
    out.push_str(&registry_metrics(&state.gates));
    out.push_str(&credential_metrics(&state.keyring));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}

/// Per registry host: requests sent and 429 answers received.
fn registry_metrics(gates: &tagpilot_registry::Gates) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let mut requests = String::from("# HELP tagpilot_registry_requests_total Requests sent to a registry host.\n# TYPE tagpilot_registry_requests_total counter\n");
    let mut throttled = String::from("# HELP tagpilot_registry_throttled_total 429 (Too Many Requests) answers from a registry host.\n# TYPE tagpilot_registry_throttled_total counter\n");
    let mut rate = String::from("# HELP tagpilot_registry_request_rate Requests per second tagpilot allows itself on a registry host now (+Inf: no pushback seen, only the concurrency limit).\n# TYPE tagpilot_registry_request_rate gauge\n");
    for (host, gate) in gates.hosts() {
        let host = label(&host);
        requests.push_str(&format!(
            "tagpilot_registry_requests_total{{host=\"{host}\"}} {}\n",
            gate.requests.load(Relaxed)
        ));
        throttled.push_str(&format!(
            "tagpilot_registry_throttled_total{{host=\"{host}\"}} {}\n",
            gate.throttled.load(Relaxed)
        ));
        let r = gate
            .current_rate()
            .map_or("+Inf".to_owned(), |r| format!("{r}"));
        rate.push_str(&format!(
            "tagpilot_registry_request_rate{{host=\"{host}\"}} {r}\n"
        ));
    }
    requests + &throttled + &rate
}

/// Per cloud credential: seconds to expiry, refreshes and refresh failures. Labels name the
/// provider, identity and registry host only.
fn credential_metrics(keyring: &tagpilot_providers::Keyring) -> String {
    let mut expiry = String::from("# HELP tagpilot_credential_expiry_seconds Seconds until the held registry token expires.\n# TYPE tagpilot_credential_expiry_seconds gauge\n");
    let mut refreshes = String::from("# HELP tagpilot_credential_refreshes_total Registry tokens obtained.\n# TYPE tagpilot_credential_refreshes_total counter\n");
    let mut failures = String::from("# HELP tagpilot_credential_refresh_failures_total Failed attempts to obtain a registry token.\n# TYPE tagpilot_credential_refresh_failures_total counter\n");
    for (key, r) in keyring.all() {
        let mut parts = key.splitn(3, '/');
        let labels = format!(
            "provider=\"{}\",identity=\"{}\",registry=\"{}\"",
            label(parts.next().unwrap_or("")),
            label(parts.next().unwrap_or("")),
            label(parts.next().unwrap_or(""))
        );
        let s = r.snapshot();
        if let Some(secs) = s.seconds_to_expiry {
            expiry.push_str(&format!(
                "tagpilot_credential_expiry_seconds{{{labels}}} {secs:.0}\n"
            ));
        }
        refreshes.push_str(&format!(
            "tagpilot_credential_refreshes_total{{{labels}}} {}\n",
            s.refreshes_total
        ));
        failures.push_str(&format!(
            "tagpilot_credential_refresh_failures_total{{{labels}}} {}\n",
            s.failures_total
        ));
    }
    expiry + &refreshes + &failures
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
    use super::{host_of, ObjectFamilies};

    #[test]
    fn metrics_read_the_fields_of_each_status_and_count_unreadable_ones() {
        let mut f = ObjectFamilies::new();
        let policy = serde_json::json!({
            "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded"}],
            "latestRef": {"name": "ghcr.io/org/app", "tag": "1.2.3"},
            "heldTags": [{"tag": "1.3.0", "verdict": "minAge"}, {"tag": "1.2.9", "verdict": "minAge"}],
            "lastSuccessTime": 1700000000u64,
            "observedPolicies": {"ignored": {"name": "x"}},
        });
        f.add("ImagePolicy/apps/web", policy.to_string().as_bytes());
        let repo = serde_json::json!({
            "conditions": [{"type": "Ready", "status": "False"}],
            "lastScanResult": {"tagCount": 7, "scanTime": "2026-01-01T00:00:00Z"},
        });
        f.add("ImageRepository/apps/we\"b", repo.to_string().as_bytes());
        f.add("ImagePolicy/apps/broken", b"{not json");
        let text = f.finish();
        for line in [
            "tagpilot_object_ready{kind=\"ImagePolicy\",namespace=\"apps\",name=\"web\"} 1",
            "tagpilot_policy_latest_info{namespace=\"apps\",name=\"web\",image=\"ghcr.io/org/app\",tag=\"1.2.3\"} 1",
            "tagpilot_policy_held_tags{namespace=\"apps\",name=\"web\",verdict=\"minAge\"} 2",
            "tagpilot_last_success_timestamp_seconds{kind=\"ImagePolicy\",namespace=\"apps\",name=\"web\"} 1700000000",
            "tagpilot_object_ready{kind=\"ImageRepository\",namespace=\"apps\",name=\"we\\\"b\"} 0",
            "tagpilot_repository_tags{namespace=\"apps\",name=\"we\\\"b\"} 7",
            "tagpilot_unreadable_statuses 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("name=\"broken\""), "{text}");
    }

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
