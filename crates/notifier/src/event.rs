//! Flux's event (`github.com/fluxcd/pkg/apis/event/v1beta1.Event`), the body a generic Provider
//! posts and what a Flux Receiver or any consumer of Flux notifications already understands.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Error,
}

/// The object the event is about (a Kubernetes ObjectReference, as far as tagpilot knows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvolvedObject {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub involved_object: InvolvedObject,
    pub severity: Severity,
    /// RFC 3339, UTC.
    pub timestamp: String,
    pub message: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    pub reporting_controller: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reporting_instance: String,
}

/// The controller name in events about image update automations: consumers that key on Flux's
/// controller names (dashboards, the `gotk-component` header) keep working.
pub const AUTOMATION_CONTROLLER: &str = "image-automation-controller";
