//! Everything `/metrics` shows, as typed `prometheus-client` families (OpenMetrics text):
//! - counters and histograms the reconciliations feed ([`Metrics`]): scans, their failures and
//!   durations per ImageRepository; pushes, failed Git rounds and round durations per
//!   ImageUpdateAutomation. In memory for the life of the process (they reset on restart, as
//!   Prometheus counters may);
//! - per-object gauges read from the stored statuses at each scrape ([`Statuses`]);
//! - per registry host requests, 429s and the current adaptive rate ([`Hosts`]);
//! - per cloud credential expiry and refreshes ([`Credentials`]).
//!
//! Labels are object names, hosts and credential identities only; never a secret. A family's
//! name exists once, in its registration, so a typo can no longer drop a series unnoticed.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

/// A label value, escaped as the exposition format requires (prometheus-client writes label
/// values verbatim, so a `"` in an object's name would otherwise break the page).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Esc<S>(pub S);

impl<S: AsRef<str>> EncodeLabelValue for Esc<S> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        for c in self.0.as_ref().chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// `namespace` and `name` of an object.
type ObjectLabels = [(&'static str, Esc<String>); 2];

fn object_labels(namespace: &str, name: &str) -> ObjectLabels {
    [
        ("namespace", Esc(namespace.to_owned())),
        ("name", Esc(name.to_owned())),
    ]
}

fn duration_histogram() -> Histogram {
    // 10 ms … 41 s: a scan of one repository up to a slow Git round.
    Histogram::new(exponential_buckets(0.01, 2.0, 13))
}

type Durations = Family<ObjectLabels, Histogram, fn() -> Histogram>;

/// The counters and histograms the reconciliations feed.
#[derive(Debug, Clone)]
pub struct Metrics {
    scans: Family<ObjectLabels, Counter>,
    scan_failures: Family<ObjectLabels, Counter>,
    scan_durations: Durations,
    pushes: Family<ObjectLabels, Counter>,
    push_failures: Family<ObjectLabels, Counter>,
    push_durations: Durations,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            scans: Family::default(),
            scan_failures: Family::default(),
            scan_durations: Family::new_with_constructor(duration_histogram),
            pushes: Family::default(),
            push_failures: Family::default(),
            push_durations: Family::new_with_constructor(duration_histogram),
        }
    }
}

impl Metrics {
    /// A scan of an ImageRepository ended (failed or not) after `took`.
    pub fn scanned(&self, namespace: &str, name: &str, took: Duration, failed: bool) {
        let labels = object_labels(namespace, name);
        self.scans.get_or_create(&labels).inc();
        self.scan_durations
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if failed {
            self.scan_failures.get_or_create(&labels).inc();
        }
    }

    /// An automation's Git round pushed a commit after `took`.
    pub fn pushed(&self, namespace: &str, name: &str, took: Duration) {
        let labels = object_labels(namespace, name);
        self.pushes.get_or_create(&labels).inc();
        self.push_durations
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// An automation's Git round (or its plan) failed.
    pub fn push_failed(&self, namespace: &str, name: &str) {
        self.push_failures
            .get_or_create(&object_labels(namespace, name))
            .inc();
    }

    /// Adds the families to `registry` (they stay shared: a family is a handle).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "tagpilot_scans",
            "Scans of an ImageRepository",
            self.scans.clone(),
        );
        registry.register(
            "tagpilot_scan_failures",
            "Scans of an ImageRepository that failed",
            self.scan_failures.clone(),
        );
        registry.register_with_unit(
            "tagpilot_scan_duration",
            "How long scans of an ImageRepository took",
            Unit::Seconds,
            self.scan_durations.clone(),
        );
        registry.register(
            "tagpilot_pushes",
            "Commits an ImageUpdateAutomation pushed",
            self.pushes.clone(),
        );
        registry.register(
            "tagpilot_push_failures",
            "Git rounds of an ImageUpdateAutomation that failed",
            self.push_failures.clone(),
        );
        registry.register_with_unit(
            "tagpilot_push_duration",
            "How long Git rounds that pushed took",
            Unit::Seconds,
            self.push_durations.clone(),
        );
    }
}

/// The page of a registry: OpenMetrics text, `# EOF` included.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; a collector's error would be a bug in this module.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!(error = %e, "encoding /metrics failed");
    }
    out
}

/// The content type of [`render`]'s page.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The fields of a stored status `/metrics` reports; the rest is skipped unparsed.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct StatusFields<'a> {
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

/// What `/metrics` reports of one stored status (the few fields it needs, owned, so that the
/// store's read transaction ends before the page is written).
#[derive(Debug, Default)]
struct ObjectRecord {
    kind: String,
    namespace: String,
    name: String,
    ready: bool,
    tags: Option<u64>,
    /// (image, tag)
    latest: Option<(String, String)>,
    /// (verdict, candidates held with it)
    held: Vec<(String, u64)>,
    manual_holds: Option<u64>,
    last_push: Option<u64>,
    last_success: Option<u64>,
    delivered: Option<u64>,
    failed_deliveries: Option<u64>,
}

/// The per-object gauges of one scrape, read from the stored statuses.
#[derive(Debug, Default)]
pub struct Statuses {
    records: Vec<ObjectRecord>,
    /// Statuses that could not be read (reported as a count, never a reason to fail).
    unreadable: u64,
}

impl Statuses {
    /// Adds the stored status `json` of `key` (`Kind/namespace/name`).
    pub fn add(&mut self, key: &str, json: &[u8]) {
        let Ok(s) = serde_json::from_slice::<StatusFields<'_>>(json) else {
            self.unreadable += 1;
            return;
        };
        let (kind, namespace, name) = crate::api::split_key(key);
        let mut held = std::collections::BTreeMap::<&str, u64>::new();
        for h in s.held_tags.iter().flatten() {
            *held
                .entry(h.verdict.as_deref().unwrap_or("unknown"))
                .or_default() += 1;
        }
        self.records.push(ObjectRecord {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ready: s
                .conditions
                .iter()
                .any(|c| c.kind == "Ready" && c.status == "True"),
            tags: s.last_scan_result.and_then(|r| r.tag_count),
            latest: s
                .latest_ref
                .and_then(|l| Some((l.name.into_owned(), l.tag?.into_owned()))),
            held: held.into_iter().map(|(v, n)| (v.to_owned(), n)).collect(),
            manual_holds: s.manual_holds.map(|l| l.len() as u64),
            last_push: s.last_push_time,
            last_success: s.last_success_time,
            delivered: s.deliveries.as_ref().and_then(|d| d.succeeded),
            failed_deliveries: s.deliveries.as_ref().and_then(|d| d.failed),
        });
    }
}

/// Writes one family: its descriptor, then a sample per record that has a value.
fn family<L: EncodeLabelSet, V>(
    encoder: &mut DescriptorEncoder,
    (name, help, unit, kind): (&str, &str, Option<&Unit>, MetricType),
    records: impl IntoIterator<Item = (L, V)>,
    mut sample: impl FnMut(&mut prometheus_client::encoding::MetricEncoder, &V) -> std::fmt::Result,
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, unit, kind)?;
    for (labels, value) in records {
        sample(&mut metric.encode_family(&labels)?, &value)?;
    }
    Ok(())
}

fn kind_labels(r: &ObjectRecord) -> [(&'static str, Esc<&str>); 3] {
    [
        ("kind", Esc(r.kind.as_str())),
        ("namespace", Esc(r.namespace.as_str())),
        ("name", Esc(r.name.as_str())),
    ]
}

fn name_labels(r: &ObjectRecord) -> [(&'static str, Esc<&str>); 2] {
    [
        ("namespace", Esc(r.namespace.as_str())),
        ("name", Esc(r.name.as_str())),
    ]
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    m: &mut prometheus_client::encoding::MetricEncoder,
    v: &V,
) -> std::fmt::Result {
    m.encode_gauge(v)
}

fn counter(m: &mut prometheus_client::encoding::MetricEncoder, v: &u64) -> std::fmt::Result {
    m.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(v, None)
}

impl Collector for Statuses {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rs = &self.records;
        let seconds = Some(&Unit::Seconds);
        family(
            &mut e,
            (
                "tagpilot_object_ready",
                "Whether the object's last reconciliation ended Ready.",
                None,
                MetricType::Gauge,
            ),
            rs.iter().map(|r| (kind_labels(r), u32::from(r.ready))),
            gauge,
        )?;
        family(
            &mut e,
            (
                "tagpilot_repository_tags",
                "Tags found by the last accepted scan.",
                None,
                MetricType::Gauge,
            ),
            rs.iter().filter_map(|r| Some((name_labels(r), r.tags?))),
            gauge,
        )?;
        // An info family has no per-sample family step: each sample is its label set.
        let mut info = e.encode_descriptor(
            "tagpilot_policy_latest",
            "The latest image a policy resolved to.",
            None,
            MetricType::Info,
        )?;
        for r in rs {
            if let Some((image, tag)) = &r.latest {
                let [ns, name] = name_labels(r);
                info.encode_info(&[ns, name, ("image", Esc(image)), ("tag", Esc(tag))])?;
            }
        }
        family(
            &mut e,
            (
                "tagpilot_policy_held_tags",
                "Candidate tags a rollout gate held at the policy's last resolution.",
                None,
                MetricType::Gauge,
            ),
            rs.iter().flat_map(|r| {
                r.held.iter().map(move |(verdict, n)| {
                    let [ns, name] = name_labels(r);
                    ([ns, name, ("verdict", Esc(verdict.as_str()))], *n)
                })
            }),
            gauge,
        )?;
        family(
            &mut e,
            (
                "tagpilot_manual_holds",
                "Policies an automation keeps at a value a person chose (manualChanges: hold).",
                None,
                MetricType::Gauge,
            ),
            rs.iter()
                .filter_map(|r| Some((name_labels(r), r.manual_holds?))),
            gauge,
        )?;
        family(
            &mut e,
            (
                "tagpilot_automation_last_push_timestamp",
                "Time of the last push.",
                seconds,
                MetricType::Gauge,
            ),
            rs.iter()
                .filter_map(|r| Some((name_labels(r), r.last_push?))),
            gauge,
        )?;
        family(
            &mut e,
            (
                "tagpilot_last_success_timestamp",
                "When the object last ended a reconciliation Ready.",
                seconds,
                MetricType::Gauge,
            ),
            rs.iter()
                .filter_map(|r| Some((kind_labels(r), r.last_success?))),
            gauge,
        )?;
        family(
            &mut e,
            (
                "tagpilot_notifications",
                "Notifications a Provider delivered or failed to deliver.",
                None,
                MetricType::Counter,
            ),
            rs.iter().flat_map(|r| {
                [("delivered", r.delivered), ("failed", r.failed_deliveries)]
                    .into_iter()
                    .filter_map(move |(outcome, n)| {
                        let [ns, name] = name_labels(r);
                        Some(([ns, name, ("outcome", Esc(outcome))], n?))
                    })
            }),
            counter,
        )?;
        let metric = e.encode_descriptor(
            "tagpilot_unreadable_statuses",
            "Stored statuses /metrics could not read.",
            None,
            MetricType::Gauge,
        )?;
        prometheus_client::metrics::gauge::ConstGauge::new(self.unreadable as i64).encode(metric)
    }
}

/// Per registry host: requests sent, 429 answers, the rate tagpilot allows itself now.
#[derive(Debug)]
pub struct Hosts(pub Arc<tagpilot_registry::Gates>);

impl Collector for Hosts {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let hosts = self.0.hosts();
        let host = |h: &str| [("host", Esc(h.to_owned()))];
        family(
            &mut e,
            (
                "tagpilot_registry_requests",
                "Requests sent to a registry host.",
                None,
                MetricType::Counter,
            ),
            hosts
                .iter()
                .map(|(h, g)| (host(h), g.requests.load(Relaxed))),
            counter,
        )?;
        family(
            &mut e,
            (
                "tagpilot_registry_throttled",
                "429 (Too Many Requests) answers from a registry host.",
                None,
                MetricType::Counter,
            ),
            hosts
                .iter()
                .map(|(h, g)| (host(h), g.throttled.load(Relaxed))),
            counter,
        )?;
        family(
            &mut e,
            (
                "tagpilot_registry_request_rate",
                "Requests per second tagpilot allows itself on a registry host now (+Inf: no pushback seen, only the concurrency limit).",
                None,
                MetricType::Gauge,
            ),
            hosts
                .iter()
                .map(|(h, g)| (host(h), g.current_rate().unwrap_or(f64::INFINITY))),
            gauge,
        )
    }
}

/// Per cloud credential: seconds to expiry, refreshes and refresh failures. Labels name the
/// provider, identity and registry host only.
#[derive(Debug)]
pub struct Credentials(pub Arc<tagpilot_providers::Keyring>);

impl Collector for Credentials {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all: Vec<_> = self
            .0
            .all()
            .into_iter()
            .map(|(key, r)| {
                let (provider, identity, registry) = crate::api::split_key(&key);
                let labels = [
                    ("provider", Esc(provider.to_owned())),
                    ("identity", Esc(identity.to_owned())),
                    ("registry", Esc(registry.to_owned())),
                ];
                (labels, r.snapshot())
            })
            .collect();
        family(
            &mut e,
            (
                "tagpilot_credential_expiry",
                "Seconds until the held registry token expires.",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            ),
            all.iter()
                .filter_map(|(l, s)| Some((l.as_slice(), s.seconds_to_expiry?.round()))),
            gauge,
        )?;
        family(
            &mut e,
            (
                "tagpilot_credential_refreshes",
                "Registry tokens obtained.",
                None,
                MetricType::Counter,
            ),
            all.iter().map(|(l, s)| (l.as_slice(), s.refreshes_total)),
            counter,
        )?;
        family(
            &mut e,
            (
                "tagpilot_credential_refresh_failures",
                "Failed attempts to obtain a registry token.",
                None,
                MetricType::Counter,
            ),
            all.iter().map(|(l, s)| (l.as_slice(), s.failures_total)),
            counter,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(register: impl FnOnce(&mut Registry)) -> String {
        let mut r = Registry::default();
        register(&mut r);
        render(&r)
    }

    fn has(text: &str, line: &str) {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }

    #[test]
    fn counters_and_histograms_render_as_openmetrics_text() {
        let m = Metrics::default();
        m.scanned("apps", "we\"b", Duration::from_millis(250), false);
        m.scanned("apps", "we\"b", Duration::from_millis(750), true);
        m.pushed("apps", "auto", Duration::from_millis(20));
        let text = page(|r| m.register(r));
        for line in [
            "# TYPE tagpilot_scans counter",
            "# HELP tagpilot_scans Scans of an ImageRepository.",
            "tagpilot_scans_total{namespace=\"apps\",name=\"we\\\"b\"} 2",
            "tagpilot_scan_failures_total{namespace=\"apps\",name=\"we\\\"b\"} 1",
            "# TYPE tagpilot_scan_duration_seconds histogram",
            "tagpilot_scan_duration_seconds_sum{namespace=\"apps\",name=\"we\\\"b\"} 1.0",
            "tagpilot_scan_duration_seconds_count{namespace=\"apps\",name=\"we\\\"b\"} 2",
            "tagpilot_scan_duration_seconds_bucket{le=\"0.32\",namespace=\"apps\",name=\"we\\\"b\"} 1",
            "tagpilot_pushes_total{namespace=\"apps\",name=\"auto\"} 1",
            "# EOF",
        ] {
            has(&text, line);
        }
        // No failure was counted for the automation: no series, not a zero.
        assert!(!text.contains("tagpilot_push_failures"), "{text}");
    }

    #[test]
    fn statuses_give_the_per_object_families_and_count_unreadable_ones() {
        let mut s = Statuses::default();
        let policy = serde_json::json!({
            "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded"}],
            "latestRef": {"name": "ghcr.io/org/app", "tag": "1.2.3"},
            "heldTags": [{"tag": "1.3.0", "verdict": "minAge"}, {"tag": "1.2.9", "verdict": "minAge"}, {"tag": "2.0.0"}],
            "lastSuccessTime": 1700000000u64,
            "observedPolicies": {"ignored": {"name": "x"}},
        });
        s.add("ImagePolicy/apps/web", policy.to_string().as_bytes());
        let repo = serde_json::json!({
            "conditions": [{"type": "Ready", "status": "False"}],
            "lastScanResult": {"tagCount": 7, "scanTime": "2026-01-01T00:00:00Z"},
        });
        s.add(
            "ImageRepository/apps/we\"b\\\n",
            repo.to_string().as_bytes(),
        );
        let auto = serde_json::json!({
            "lastPushTime": 1700000100u64,
            "manualHolds": [{"policy": "a"}],
            "deliveries": {"succeeded": 3},
        });
        s.add(
            "ImageUpdateAutomation/apps/auto",
            auto.to_string().as_bytes(),
        );
        s.add("ImagePolicy/apps/broken", b"{not json");
        let text = page(|r| r.register_collector(Box::new(s)));
        for line in [
            "# TYPE tagpilot_object_ready gauge",
            "tagpilot_object_ready{kind=\"ImagePolicy\",namespace=\"apps\",name=\"web\"} 1",
            "tagpilot_object_ready{kind=\"ImageUpdateAutomation\",namespace=\"apps\",name=\"auto\"} 0",
            "# TYPE tagpilot_policy_latest info",
            "tagpilot_policy_latest_info{namespace=\"apps\",name=\"web\",image=\"ghcr.io/org/app\",tag=\"1.2.3\"} 1",
            "tagpilot_policy_held_tags{namespace=\"apps\",name=\"web\",verdict=\"minAge\"} 2",
            "tagpilot_policy_held_tags{namespace=\"apps\",name=\"web\",verdict=\"unknown\"} 1",
            "tagpilot_last_success_timestamp_seconds{kind=\"ImagePolicy\",namespace=\"apps\",name=\"web\"} 1700000000",
            "tagpilot_object_ready{kind=\"ImageRepository\",namespace=\"apps\",name=\"we\\\"b\\\\\\n\"} 0",
            "tagpilot_repository_tags{namespace=\"apps\",name=\"we\\\"b\\\\\\n\"} 7",
            "tagpilot_automation_last_push_timestamp_seconds{namespace=\"apps\",name=\"auto\"} 1700000100",
            "tagpilot_manual_holds{namespace=\"apps\",name=\"auto\"} 1",
            "tagpilot_notifications_total{namespace=\"apps\",name=\"auto\",outcome=\"delivered\"} 3",
            "tagpilot_unreadable_statuses 1",
            "# EOF",
        ] {
            has(&text, line);
        }
        assert!(!text.contains("name=\"broken\""), "{text}");
        assert!(!text.contains("outcome=\"failed\""), "{text}");
    }

    #[test]
    fn hosts_report_counts_and_an_unlimited_rate_as_infinity() {
        let gates = Arc::new(tagpilot_registry::Gates::new(
            tagpilot_registry::Limits::default(),
        ));
        gates.get("registry.example:5000");
        let text = page(|r| r.register_collector(Box::new(Hosts(gates))));
        has(
            &text,
            "tagpilot_registry_requests_total{host=\"registry.example:5000\"} 0",
        );
        has(
            &text,
            "tagpilot_registry_throttled_total{host=\"registry.example:5000\"} 0",
        );
        has(
            &text,
            "tagpilot_registry_request_rate{host=\"registry.example:5000\"} inf",
        );
    }
}
