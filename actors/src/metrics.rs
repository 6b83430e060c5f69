//! Counters and summaries the reconciliations feed and `/metrics` shows (Prometheus text):
//! scans and their failures and durations per ImageRepository, pushes, failed Git rounds and
//! round durations per ImageUpdateAutomation. Kept in memory for the life of the process (they
//! reset on restart, as Prometheus counters may); labels are object names only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// The families, with their type and help text, in output order.
const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "tagpilot_scans_total",
        "counter",
        "Scans of an ImageRepository.",
    ),
    (
        "tagpilot_scan_failures_total",
        "counter",
        "Scans of an ImageRepository that failed.",
    ),
    (
        "tagpilot_scan_duration_seconds",
        "summary",
        "How long scans of an ImageRepository took.",
    ),
    (
        "tagpilot_pushes_total",
        "counter",
        "Commits an ImageUpdateAutomation pushed.",
    ),
    (
        "tagpilot_push_failures_total",
        "counter",
        "Git rounds of an ImageUpdateAutomation that failed.",
    ),
    (
        "tagpilot_push_duration_seconds",
        "summary",
        "How long Git rounds that pushed took.",
    ),
];

/// (family, rendered labels `namespace="…",name="…"`) → (value or sum, observation count).
type Series = BTreeMap<(&'static str, String), (f64, u64)>;

#[derive(Debug, Default)]
pub struct Metrics {
    values: Mutex<Series>,
}

/// Prometheus label value escaping.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The labels of an object.
pub fn object_labels(namespace: &str, name: &str) -> String {
    format!(
        "namespace=\"{}\",name=\"{}\"",
        label(namespace),
        label(name)
    )
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Series> {
        self.values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds one to a counter.
    pub fn inc(&self, family: &'static str, labels: &str) {
        let mut v = self.lock();
        let e = v.entry((family, labels.to_owned())).or_default();
        e.0 += 1.0;
    }

    /// Adds an observation to a summary (its sum and count).
    pub fn observe(&self, family: &'static str, labels: &str, d: Duration) {
        let mut v = self.lock();
        let e = v.entry((family, labels.to_owned())).or_default();
        e.0 += d.as_secs_f64();
        e.1 += 1;
    }

    /// The Prometheus text of every family.
    pub fn render(&self) -> String {
        let v = self.lock();
        let mut out = String::new();
        for (family, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
            for ((f, labels), (value, count)) in v.iter() {
                if f != family {
                    continue;
                }
                if *kind == "summary" {
                    let _ = writeln!(out, "{family}_sum{{{labels}}} {value}");
                    let _ = writeln!(out, "{family}_count{{{labels}}} {count}");
                } else {
                    let _ = writeln!(out, "{family}{{{labels}}} {value}");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_summaries_render_as_prometheus_text() {
        let m = Metrics::default();
        let l = object_labels("apps", "we\"b");
        m.inc("tagpilot_scans_total", &l);
        m.inc("tagpilot_scans_total", &l);
        m.observe(
            "tagpilot_scan_duration_seconds",
            &l,
            Duration::from_millis(250),
        );
        m.observe(
            "tagpilot_scan_duration_seconds",
            &l,
            Duration::from_millis(750),
        );
        let text = m.render();
        assert!(
            text.contains("# TYPE tagpilot_scans_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("tagpilot_scans_total{namespace=\"apps\",name=\"we\\\"b\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "tagpilot_scan_duration_seconds_sum{namespace=\"apps\",name=\"we\\\"b\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "tagpilot_scan_duration_seconds_count{namespace=\"apps\",name=\"we\\\"b\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE tagpilot_push_duration_seconds summary\n"),
            "{text}"
        );
    }
}
