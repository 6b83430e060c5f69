//! Which Alerts an event goes to (Flux notification-controller's rules): the Alert is not
//! suspended; its severity admits the event (`info` admits everything, `error` only errors); an
//! event source matches kind, namespace (the Alert's when unset) and name (`*` with
//! `matchLabels` against the object's labels); the message matches an inclusion regex when any
//! is given and no exclusion regex.

use std::collections::BTreeMap;

use regex::Regex;
use tagpilot_api::{AlertSpec, EventSeverity};

use crate::event::{Event, Severity};

/// Whether the Alert `spec` in `alert_namespace` wants `event`; `labels` are the involved
/// object's labels. Invalid regexes never match (validation reports them at load time).
pub fn alert_matches(
    spec: &AlertSpec,
    alert_namespace: &str,
    event: &Event,
    labels: &BTreeMap<String, String>,
) -> bool {
    if spec.suspend {
        return false;
    }
    if spec.event_severity == EventSeverity::Error && event.severity != Severity::Error {
        return false;
    }
    let o = &event.involved_object;
    let source = spec.event_sources.iter().any(|s| {
        s.kind == o.kind
            && s.namespace.as_deref().unwrap_or(alert_namespace) == o.namespace
            && if s.name == "*" {
                s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            } else {
                s.name == o.name
            }
    });
    if !source {
        return false;
    }
    let hit = |re: &String| Regex::new(re).is_ok_and(|r| r.is_match(&event.message));
    if !spec.inclusion_list.is_empty() && !spec.inclusion_list.iter().any(hit) {
        return false;
    }
    !spec.exclusion_list.iter().any(hit)
}

/// The event as the Alert sends it: the Alert's `summary` and `eventMetadata` are added to the
/// metadata, but never replace a key the emitter set (Flux keeps the original value).
pub fn enrich(spec: &AlertSpec, event: &Event) -> Event {
    let mut e = event.clone();
    let extra = spec
        .summary
        .iter()
        .map(|s| ("summary".to_owned(), s.clone()))
        .chain(spec.event_metadata.clone());
    for (k, v) in extra {
        e.metadata.entry(k).or_insert(v);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::InvolvedObject;
    use tagpilot_api::{EventSource, LocalObjectReference};

    fn event(severity: Severity, message: &str) -> Event {
        Event {
            involved_object: InvolvedObject {
                kind: "ImageUpdateAutomation".into(),
                namespace: "apps".into(),
                name: "podinfo".into(),
                api_version: String::new(),
            },
            severity,
            timestamp: "2026-11-26T00:00:00Z".into(),
            message: message.into(),
            reason: "Succeeded".into(),
            metadata: BTreeMap::from([("revision".into(), "main@sha1:abc".into())]),
            reporting_controller: "image-automation-controller".into(),
            reporting_instance: String::new(),
        }
    }

    fn source(kind: &str, name: &str, ns: Option<&str>, labels: &[(&str, &str)]) -> EventSource {
        EventSource {
            api_version: None,
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(str::to_owned),
            match_labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn alert(sources: Vec<EventSource>) -> AlertSpec {
        AlertSpec {
            provider_ref: LocalObjectReference { name: "p".into() },
            event_severity: EventSeverity::Info,
            event_sources: sources,
            inclusion_list: vec![],
            exclusion_list: vec![],
            event_metadata: BTreeMap::new(),
            summary: None,
            suspend: false,
        }
    }

    #[test]
    fn sources_kind_name_namespace_and_labels() {
        let none = BTreeMap::new();
        let team: BTreeMap<String, String> = [("team".to_owned(), "a".to_owned())].into();
        let e = event(Severity::Info, "pushed commit 'abc' to branch 'main'");
        let cases = [
            (
                source("ImageUpdateAutomation", "podinfo", None, &[]),
                &none,
                true,
            ),
            (
                source("ImageUpdateAutomation", "other", None, &[]),
                &none,
                false,
            ),
            (source("ImagePolicy", "podinfo", None, &[]), &none, false),
            // Namespace defaults to the Alert's (apps); another one does not match.
            (
                source("ImageUpdateAutomation", "podinfo", Some("default"), &[]),
                &none,
                false,
            ),
            (
                source("ImageUpdateAutomation", "*", None, &[("team", "a")]),
                &team,
                true,
            ),
            (
                source("ImageUpdateAutomation", "*", None, &[("team", "b")]),
                &team,
                false,
            ),
            (
                source("ImageUpdateAutomation", "*", None, &[("team", "a")]),
                &none,
                false,
            ),
            (source("ImageUpdateAutomation", "*", None, &[]), &none, true),
        ];
        for (i, (src, labels, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                alert_matches(&alert(vec![src]), "apps", &e, labels),
                want,
                "case {i}"
            );
        }
    }

    #[test]
    fn severity_suspend_and_message_lists() {
        let none = BTreeMap::new();
        let base = alert(vec![source("ImageUpdateAutomation", "podinfo", None, &[])]);
        let info = event(Severity::Info, "pushed commit 'abc' to branch 'main'");
        let error = event(Severity::Error, "failed to push: rejected");

        let mut errors_only = base.clone();
        errors_only.event_severity = EventSeverity::Error;
        assert!(!alert_matches(&errors_only, "apps", &info, &none));
        assert!(alert_matches(&errors_only, "apps", &error, &none));
        assert!(
            alert_matches(&base, "apps", &error, &none),
            "info admits errors too"
        );

        let mut suspended = base.clone();
        suspended.suspend = true;
        assert!(!alert_matches(&suspended, "apps", &info, &none));

        let mut include = base.clone();
        include.inclusion_list = vec!["^pushed".into()];
        assert!(alert_matches(&include, "apps", &info, &none));
        assert!(!alert_matches(&include, "apps", &error, &none));

        let mut exclude = base.clone();
        exclude.exclusion_list = vec!["rejected$".into()];
        assert!(alert_matches(&exclude, "apps", &info, &none));
        assert!(!alert_matches(&exclude, "apps", &error, &none));
    }

    #[test]
    fn enrich_never_overrides_the_emitter() {
        let mut a = alert(vec![]);
        a.summary = Some("staging rollout".into());
        a.event_metadata = BTreeMap::from([
            ("env".into(), "staging".into()),
            ("revision".into(), "forged".into()),
        ]);
        let e = enrich(&a, &event(Severity::Info, "m"));
        assert_eq!(e.metadata["summary"], "staging rollout");
        assert_eq!(e.metadata["env"], "staging");
        assert_eq!(e.metadata["revision"], "main@sha1:abc");
    }
}
