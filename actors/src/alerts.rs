//! Post-push notifications, wired: Git rounds emit Flux-shaped events, every matching Alert picks
//! its Provider, the Provider's Secret fills in the address, token and headers, and delivery runs
//! apart from the Git round (the daemon never waits for it before the next round). Outcomes end
//! in the Provider's status (with delivery counters) and in the logs — never a secret.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tagpilot_api::{Alert, AlertProvider, Kind};
use tagpilot_notifier::payload::parse_headers;
pub use tagpilot_notifier::Retry;
use tagpilot_notifier::{
    alert_matches, build_request, deliver, enrich, Delivered, DeliveryError, Event, Request, Target,
};

use crate::engine::{format_chain, Engine};

/// Flux's default Provider timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// One request to send for one (Alert, event).
#[derive(Debug)]
pub struct Notification {
    /// The Provider's (namespace, name).
    pub provider: (String, String),
    /// `Kind ns/name` of the object the event is about, for logs and status.
    pub about: String,
    pub request: Request,
    pub timeout: Duration,
    pub ca_pem: Option<Vec<u8>>,
    pub proxy: Option<String>,
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

impl Engine {
    fn provider(&self, namespace: &str, name: &str) -> Option<&AlertProvider> {
        self.config().find(namespace, name)
    }

    /// Records each Alert's status: Ready when its Provider exists.
    pub fn check_alerts(&self) {
        for a in self.config().all::<Alert>() {
            let (ns, name) = (&a.metadata.namespace, &a.metadata.name);
            let provider = &a.spec.provider_ref.name;
            let (ready, message) = if a.spec.suspend {
                (true, "suspended".to_owned())
            } else if self.provider(ns, provider).is_some() {
                (true, "Initialized".to_owned())
            } else {
                (false, format!("Provider {ns}/{provider} not found"))
            };
            self.record(Kind::Alert, ns, name, ready, message);
        }
    }

    /// The address, secrets and transport settings of a Provider.
    fn target(
        &self,
        p: &AlertProvider,
    ) -> anyhow::Result<(Target, Option<Vec<u8>>, Option<String>)> {
        let ns = &p.metadata.namespace;
        let s = &p.spec;
        let secret = |key: &str| -> anyhow::Result<Option<String>> {
            Ok(match &s.secret_ref {
                Some(r) => self.secrets().get(ns, &r.name, key)?.map(text),
                None => None,
            })
        };
        let address = secret("address")?
            .or_else(|| s.address.clone())
            .ok_or_else(|| {
                anyhow::anyhow!("no address in spec.address or the Secret's 'address' key")
            })?;
        let headers = match secret("headers")? {
            Some(h) => parse_headers(&h)?,
            None => BTreeMap::new(),
        };
        let ca = match &s.cert_secret_ref {
            Some(r) => self.secrets().get(ns, &r.name, "ca.crt")?,
            None => None,
        };
        let proxy = secret("proxy")?.or_else(|| s.proxy.clone());
        let target = Target {
            provider_type: s.provider_type,
            address,
            token: secret("token")?,
            headers,
            channel: s.channel.clone(),
            username: s.username.clone(),
        };
        Ok((target, ca, proxy))
    }

    /// The requests `events` cause. A Provider that cannot be set up is reported not Ready.
    pub fn notifications(&self, events: &[Event]) -> Vec<Notification> {
        let mut out = Vec::new();
        for event in events {
            let o = &event.involved_object;
            let labels = Kind::from_name(&o.kind)
                .and_then(|k| self.config().get(k, &o.namespace, &o.name))
                .map(|l| l.object.metadata().labels.clone())
                .unwrap_or_default();
            for a in self.config().all::<Alert>() {
                let ns = &a.metadata.namespace;
                if !alert_matches(&a.spec, ns, event, &labels) {
                    continue;
                }
                let Some(p) = self.provider(ns, &a.spec.provider_ref.name) else {
                    continue; // reported by check_alerts
                };
                if p.spec.suspend {
                    continue;
                }
                let key = (p.metadata.namespace.clone(), p.metadata.name.clone());
                let built = self.target(p).and_then(|(target, ca_pem, proxy)| {
                    let request = build_request(&target, &enrich(&a.spec, event))?;
                    Ok((request, ca_pem, proxy))
                });
                match built {
                    Ok((request, ca_pem, proxy)) => out.push(Notification {
                        provider: key,
                        about: format!("{} {}/{}", o.kind, o.namespace, o.name),
                        request,
                        timeout: p.spec.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0 .0),
                        ca_pem,
                        proxy,
                    }),
                    Err(e) => self.record_delivery(
                        &key,
                        false,
                        format!("cannot prepare notification: {}", format_chain(&e)),
                    ),
                }
            }
        }
        out
    }

    /// Records a delivery outcome on the Provider, carrying its counters forward.
    fn record_delivery(&self, provider: &(String, String), ok: bool, message: String) {
        // Deliveries of several writers may finish together: one read-modify-write at a time.
        let _guard = self
            .shared()
            .deliveries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = format!("{}/{}/{}", Kind::Provider, provider.0, provider.1);
        let old = self.store().status(&key).ok().flatten().unwrap_or_default();
        let count = |k: &str| old["deliveries"][k].as_u64().unwrap_or(0);
        let (mut succeeded, mut failed) = (count("succeeded"), count("failed"));
        if ok {
            succeeded += 1;
        } else {
            failed += 1;
        }
        self.record_with(
            Kind::Provider,
            &provider.0,
            &provider.1,
            ok,
            message,
            json!({ "deliveries": { "succeeded": succeeded, "failed": failed } }),
        );
    }
}

/// Sends every notification (concurrently), retrying each as [`Retry::default`] says, and
/// records the outcomes.
pub async fn deliver_all(engine: &Engine, notes: Vec<Notification>, retry: Retry) {
    let sends = notes.into_iter().map(|n| async move {
        let outcome = match tagpilot_notifier::deliver::client(
            n.timeout,
            n.ca_pem.as_deref(),
            n.proxy.as_deref(),
        ) {
            Ok(c) => deliver(&c, &n.request, &retry).await,
            Err(e) => Err(e),
        };
        (n, outcome)
    });
    for (n, outcome) in futures_util::future::join_all(sends).await {
        let (ns, name) = (&n.provider.0, &n.provider.1);
        match outcome {
            Ok(Delivered { status, attempts }) => {
                tracing::info!(kind = "Provider", namespace = %ns, name = %name, about = %n.about, status, attempts, "notification delivered");
                engine.record_delivery(
                    &n.provider,
                    true,
                    format!(
                        "delivered event for {}: HTTP {status} after {attempts} attempt(s)",
                        n.about
                    ),
                );
            }
            Err(e) => {
                let e: DeliveryError = e;
                tracing::warn!(kind = "Provider", namespace = %ns, name = %name, about = %n.about, error = %e, "notification failed");
                engine.record_delivery(
                    &n.provider,
                    false,
                    format!("failed to deliver event for {}: {e}", n.about),
                );
            }
        }
    }
}
