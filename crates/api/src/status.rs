//! The status of every object, Flux's model: conditions `Ready`, `Reconciling` and `Stalled`
//! (kstatus: the last two are negative polarity and present only while True) with Flux's
//! reasons, `lastTransitionTime` changed only when a condition's status changes,
//! `observedGeneration` and `lastHandledReconcileAt`. One type serves the store, the API, the
//! CLI and the metrics; the fields of one kind (`lastScanResult`, `latestRef`,
//! `lastPushCommit`, …) sit beside the common ones with Flux's names.

use serde::{Deserialize, Deserializer, Serialize};

/// A condition's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionType {
    Ready,
    Reconciling,
    Stalled,
}

impl ConditionType {
    /// As Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Reconciling => "Reconciling",
            ConditionType::Stalled => "Stalled",
        }
    }
}

/// `True`, `False` or `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    /// As Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// One condition, as Kubernetes prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: ConditionType,
    pub status: ConditionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339, UTC.
    #[serde(deserialize_with = "lenient_time")]
    pub last_transition_time: String,
    pub reason: String,
    pub message: String,
}

/// Earlier releases stored Unix seconds; read them as RFC 3339.
fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Time {
        Text(String),
        Secs(u64),
    }
    Ok(match Time::deserialize(d)? {
        Time::Text(t) => t,
        Time::Secs(s) => crate::rfc3339(s),
    })
}

/// Flux's reasons (fluxcd/pkg `apis/meta` and the image controllers).
pub mod reason {
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILURE: &str = "Failure";
    pub const PROGRESSING: &str = "Progressing";
    pub const PROGRESSING_WITH_RETRY: &str = "ProgressingWithRetry";
    pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    pub const READ_OPERATION_FAILED: &str = "ReadOperationFailed";
    pub const IMAGE_URL_INVALID: &str = "ImageURLInvalid";
    pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
    pub const INVALID_POLICY: &str = "InvalidPolicy";
    pub const INTERVAL_NOT_CONFIGURED: &str = "IntervalNotConfigured";
    pub const SOURCE_MANAGER_FAILED: &str = "SourceManagerFailed";
    pub const GIT_OPERATION_FAILED: &str = "GitOperationFailed";
    pub const UPDATE_FAILED: &str = "UpdateFailed";
    pub const INVALID_SOURCE_CONFIGURATION: &str = "InvalidSourceConfiguration";
    pub const TOKEN_NOT_FOUND: &str = "TokenNotFound";
    /// A Receiver's CEL expression does not compile (notification-controller's reason).
    pub const INVALID_CEL_EXPRESSION: &str = "InvalidCELExpression";
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
    /// tagpilot's: the manifest on disk does not load and no earlier version runs.
    pub const INVALID_MANIFEST: &str = "InvalidManifest";
    pub const SUSPENDED: &str = "Suspended";
}

/// How a reconciliation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Ready True.
    Ready,
    /// Ready False; it will be retried (Reconciling True, `ProgressingWithRetry`).
    Failed,
    /// Ready False; retrying cannot help until the object changes (Stalled True).
    Stalled,
}

/// The outcome of one reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ending: Ending,
    pub reason: String,
    pub message: String,
}

/// The message of a reconciliation skipped because the object is suspended.
pub const SUSPENDED_MESSAGE: &str = "suspended";

impl Outcome {
    /// Whether this outcome only says the object is suspended (nothing was reconciled).
    pub fn is_suspension(&self) -> bool {
        self.ending == Ending::Ready && self.message == SUSPENDED_MESSAGE
    }

    pub fn ready(message: impl Into<String>) -> Self {
        Outcome {
            ending: Ending::Ready,
            reason: reason::SUCCEEDED.to_owned(),
            message: message.into(),
        }
    }

    pub fn failed(reason: &str, message: impl Into<String>) -> Self {
        Outcome {
            ending: Ending::Failed,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    pub fn stalled(reason: &str, message: impl Into<String>) -> Self {
        Outcome {
            ending: Ending::Stalled,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ending == Ending::Ready
    }
}

/// An object's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The generation last reconciled: a hash of the spec stands in for Kubernetes'
    /// counter ([`crate::Manifest::generation`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The `reconcile.fluxcd.io/requestedAt` value last acted on (`tagpilot reconcile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// When the object last ended Ready (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<u64>,
    /// Set while the object runs its last good version because the manifest on disk is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
    /// Suspended (`spec.suspend` or `tagpilot suspend`): not reconciled, the conditions of
    /// the last reconciliation stay, as Flux's do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
    /// Fields of the manifest that tagpilot ignores (`spec.intreval: unknown field, …`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_warnings: Vec<String>,
    /// The fields of one kind, with Flux's names (`lastScanResult`, `latestRef`, …).
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl Status {
    /// Reads a stored status; anything unreadable is an empty status.
    pub fn from_value(value: serde_json::Value) -> Self {
        serde_json::from_value(value).unwrap_or_default()
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    pub fn condition(&self, t: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == t)
    }

    /// Whether the Ready condition is True.
    pub fn is_ready(&self) -> bool {
        self.condition(ConditionType::Ready)
            .is_some_and(|c| c.status == ConditionStatus::True)
    }

    /// The Ready condition's message ("" without one).
    pub fn message(&self) -> &str {
        self.condition(ConditionType::Ready)
            .map_or("", |c| c.message.as_str())
    }

    /// A kind-specific field.
    pub fn field(&self, name: &str) -> &serde_json::Value {
        self.fields.get(name).unwrap_or(&serde_json::Value::Null)
    }

    /// Sets a condition; its `lastTransitionTime` changes only when its status does.
    pub fn set(
        &mut self,
        t: ConditionType,
        status: ConditionStatus,
        reason: &str,
        message: &str,
        now: &str,
    ) {
        let generation = self.observed_generation;
        match self.conditions.iter_mut().find(|c| c.type_ == t) {
            Some(c) => {
                if c.status != status {
                    c.status = status;
                    c.last_transition_time = now.to_owned();
                }
                c.reason = reason.to_owned();
                c.message = message.to_owned();
                c.observed_generation = generation;
            }
            None => self.conditions.push(Condition {
                type_: t,
                status,
                observed_generation: generation,
                last_transition_time: now.to_owned(),
                reason: reason.to_owned(),
                message: message.to_owned(),
            }),
        }
        // Ready first, then Reconciling, then Stalled, whatever the order they were set in.
        self.conditions.sort_by_key(|c| c.type_ as u8);
    }

    /// Removes a negative-polarity condition (kstatus: present only while True).
    pub fn remove(&mut self, t: ConditionType) {
        self.conditions.retain(|c| c.type_ != t);
    }

    /// A reconciliation of `generation` started: Reconciling True (`Progressing`).
    pub fn progressing(&mut self, message: &str, now: &str) {
        self.set(
            ConditionType::Reconciling,
            ConditionStatus::True,
            reason::PROGRESSING,
            message,
            now,
        );
    }

    /// A reconciliation of `generation` ended with `outcome` at `now` (RFC 3339).
    pub fn finish(&mut self, outcome: &Outcome, generation: Option<i64>, now: &str) {
        self.observed_generation = generation.or(self.observed_generation);
        let (ready, reason, message) = (
            if outcome.is_ready() {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            outcome.reason.as_str(),
            outcome.message.as_str(),
        );
        self.set(ConditionType::Ready, ready, reason, message, now);
        match outcome.ending {
            Ending::Ready => {
                self.remove(ConditionType::Reconciling);
                self.remove(ConditionType::Stalled);
            }
            Ending::Failed => {
                self.remove(ConditionType::Stalled);
                self.set(
                    ConditionType::Reconciling,
                    ConditionStatus::True,
                    reason::PROGRESSING_WITH_RETRY,
                    message,
                    now,
                );
            }
            Ending::Stalled => {
                self.remove(ConditionType::Reconciling);
                self.set(
                    ConditionType::Stalled,
                    ConditionStatus::True,
                    reason,
                    message,
                    now,
                );
            }
        }
    }
}

/// Flux's stand-in for `metadata.generation`: a stable hash of the spec, so that any change of
/// the spec is a new generation and nothing else is. Kept below 2^53 so that JSON readers see
/// the exact number.
pub fn generation_of(spec: &impl Serialize) -> i64 {
    let bytes = serde_json::to_vec(spec).unwrap_or_default();
    // FNV-1a: stable across releases and platforms (std's hasher is not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h & ((1 << 53) - 1)) as i64
}

impl<S: Serialize> crate::Manifest<S> {
    /// See [`generation_of`].
    pub fn generation(&self) -> i64 {
        generation_of(&self.spec)
    }
}

impl crate::Object {
    /// The object's generation ([`generation_of`] its spec; a Secret's data).
    pub fn generation(&self) -> i64 {
        use crate::Object::*;
        match self {
            ImageRepository(o) => o.generation(),
            ImagePolicy(o) => o.generation(),
            ImageUpdateAutomation(o) => o.generation(),
            GitRepository(o) => o.generation(),
            Receiver(o) => o.generation(),
            Provider(o) => o.generation(),
            Alert(o) => o.generation(),
            Secret(o) => generation_of(&o.body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let mut s = Status::default();
        s.finish(
            &Outcome::ready("found 3 tags"),
            Some(7),
            "2026-01-01T00:00:00Z",
        );
        s.finish(
            &Outcome::ready("found 4 tags"),
            Some(7),
            "2026-01-01T00:05:00Z",
        );
        let ready = s.condition(ConditionType::Ready).cloned().expect("ready");
        assert_eq!(ready.last_transition_time, "2026-01-01T00:00:00Z");
        assert_eq!(ready.message, "found 4 tags");
        assert_eq!(s.conditions.len(), 1);
        s.finish(
            &Outcome::failed(reason::READ_OPERATION_FAILED, "scan failed: timeout"),
            Some(7),
            "2026-01-01T00:10:00Z",
        );
        let ready = s.condition(ConditionType::Ready).cloned().expect("ready");
        assert_eq!(ready.status, ConditionStatus::False);
        assert_eq!(ready.last_transition_time, "2026-01-01T00:10:00Z");
        let rec = s
            .condition(ConditionType::Reconciling)
            .cloned()
            .expect("reconciling");
        assert_eq!(rec.reason, reason::PROGRESSING_WITH_RETRY);
        assert!(s.condition(ConditionType::Stalled).is_none());
        s.finish(
            &Outcome::stalled(reason::INVALID_POLICY, "invalid policy: bad range"),
            Some(8),
            "2026-01-01T00:11:00Z",
        );
        assert!(s.condition(ConditionType::Reconciling).is_none());
        assert_eq!(
            s.condition(ConditionType::Stalled)
                .map(|c| c.reason.as_str()),
            Some(reason::INVALID_POLICY)
        );
        // Still False: the Ready transition time stays.
        assert_eq!(
            s.condition(ConditionType::Ready)
                .map(|c| c.last_transition_time.as_str()),
            Some("2026-01-01T00:10:00Z")
        );
        assert_eq!(s.observed_generation, Some(8));
        s.finish(&Outcome::ready("ok"), Some(9), "2026-01-01T00:12:00Z");
        assert_eq!(
            s.conditions.iter().map(|c| c.type_).collect::<Vec<_>>(),
            [ConditionType::Ready]
        );
        assert!(s.is_ready());
        s.finish(
            &Outcome::failed(reason::FAILURE, "x"),
            None,
            "2026-01-01T00:13:00Z",
        );
        assert!(!s.is_ready());
    }

    #[test]
    fn kind_fields_and_old_records_round_trip() {
        let old = serde_json::json!({
            "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                            "message": "ok", "lastTransitionTime": 1_607_874_708u64}],
            "lastScanResult": {"tagCount": 3},
            "lastSuccessTime": 5,
        });
        let s = Status::from_value(old);
        assert_eq!(s.conditions[0].last_transition_time, "2020-12-13T15:51:48Z");
        assert_eq!(s.field("lastScanResult")["tagCount"], 3);
        assert_eq!(s.last_success_time, Some(5));
        let v = s.to_value();
        assert_eq!(v["lastScanResult"]["tagCount"], 3);
        assert_eq!(v["conditions"][0]["type"], "Ready");
        assert_eq!(
            Status::from_value(serde_json::json!("garbage")),
            Status::default()
        );
    }

    #[test]
    fn generation_is_a_stable_hash_of_the_spec() {
        let a = generation_of(&serde_json::json!({"interval": "1m"}));
        assert_eq!(a, generation_of(&serde_json::json!({"interval": "1m"})));
        assert_ne!(a, generation_of(&serde_json::json!({"interval": "2m"})));
        assert!((0..(1 << 53)).contains(&a));
    }
}
