//! The HTTP API: health, readiness, Prometheus metrics and every object's status as JSON, from
//! the state store. Read-only for now.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use tagpilot_store::Store;

/// What the handlers share.
#[derive(Debug)]
pub struct ApiState {
    pub store: Arc<Store>,
    /// Set once the first configuration has been loaded.
    pub ready: AtomicBool,
    /// Cloud credentials (their expiry and refresh failures are metrics; never their value).
    pub keyring: Arc<tagpilot_providers::Keyring>,
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

async fn objects(state: web::Data<ApiState>) -> HttpResponse {
    match state.store.statuses() {
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
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

/// Prometheus label value escaping.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    let mut out = String::from(
        "# HELP tagpilot_object_ready Whether the object's last reconciliation ended Ready.\n# TYPE tagpilot_object_ready gauge\n",
    );
    let statuses = state.store.statuses().unwrap_or_default();
    let mut tags = String::from("# HELP tagpilot_repository_tags Tags found by the last accepted scan.\n# TYPE tagpilot_repository_tags gauge\n");
    let mut latest = String::from("# HELP tagpilot_policy_latest_info The latest image a policy resolved to.\n# TYPE tagpilot_policy_latest_info gauge\n");
    let mut notes = String::from("# HELP tagpilot_notifications_total Notifications a Provider delivered or failed to deliver.\n# TYPE tagpilot_notifications_total counter\n");
    let mut pushes = String::from("# HELP tagpilot_automation_last_push_timestamp_seconds Time of the last push.\n# TYPE tagpilot_automation_last_push_timestamp_seconds gauge\n");
    for (key, status) in &statuses {
        let (kind, ns, name) = split_key(key);
        let ready = status["conditions"][0]["status"] == "True";
        out.push_str(&format!(
            "tagpilot_object_ready{{kind=\"{}\",namespace=\"{}\",name=\"{}\"}} {}\n",
            label(kind),
            label(ns),
            label(name),
            u8::from(ready)
        ));
        if let Some(n) = status["lastScanResult"]["tagCount"].as_u64() {
            tags.push_str(&format!(
                "tagpilot_repository_tags{{namespace=\"{}\",name=\"{}\"}} {n}\n",
                label(ns),
                label(name)
            ));
        }
        if let Some(tag) = status["latestRef"]["tag"].as_str() {
            let image = status["latestRef"]["name"].as_str().unwrap_or("");
            latest.push_str(&format!(
                "tagpilot_policy_latest_info{{namespace=\"{}\",name=\"{}\",image=\"{}\",tag=\"{}\"}} 1\n",
                label(ns),
                label(name),
                label(image),
                label(tag)
            ));
        }
        for (field, outcome) in [("succeeded", "delivered"), ("failed", "failed")] {
            if let Some(n) = status["deliveries"][field].as_u64() {
                notes.push_str(&format!(
                    "tagpilot_notifications_total{{namespace=\"{}\",name=\"{}\",outcome=\"{outcome}\"}} {n}\n",
                    label(ns),
                    label(name)
                ));
            }
        }
        if let Some(t) = status["lastPushTime"].as_u64() {
            pushes.push_str(&format!("tagpilot_automation_last_push_timestamp_seconds{{namespace=\"{}\",name=\"{}\"}} {t}\n", label(ns), label(name)));
        }
    }
    out.push_str(&tags);
    out.push_str(&latest);
    out.push_str(&pushes);
    out.push_str(&notes);
    out.push_str(&credential_metrics(&state.keyring));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
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
    })
    .workers(1)
    .disable_signals()
    .bind(address)?
    .run();
    Ok(server)
}
