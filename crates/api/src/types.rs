//! Serde types for the Flux objects tagpilot reads. Field names, defaults and optionality follow
//! the Flux CRDs (reference §1); one type serves every accepted apiVersion because the fields
//! tagpilot uses did not change between v1beta1, v1beta2 and v1.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::{GoDuration, Timeout};

/// Where an object without `metadata.namespace` lives, as in Kubernetes.
pub(crate) fn default_namespace() -> String {
    "default".to_owned()
}

/// `metadata`, as far as tagpilot cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ObjectMeta {
    pub fn new(name: &str, namespace: &str) -> Self {
        ObjectMeta {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// `{name}`: a Secret or other object in the same namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalObjectReference {
    pub name: String,
}

/// `{name, namespace?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespacedObjectReference {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A Kubernetes label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector (an empty selector matches everything).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator {
                    SelectorOperator::In => value.is_some_and(|v| r.values.contains(v)),
                    SelectorOperator::NotIn => !value.is_some_and(|v| r.values.contains(v)),
                    SelectorOperator::Exists => value.is_some(),
                    SelectorOperator::DoesNotExist => value.is_none(),
                }
            })
    }
}

// ---------------------------------------------------------------------------------------------
// ImageRepository

/// Registry credentials provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[default]
    Generic,
    Aws,
    Azure,
    Gcp,
}

fn default_exclusion_list() -> Vec<String> {
    vec![tagpilot_policy::DEFAULT_EXCLUSION.to_owned()]
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessFrom {
    #[serde(default)]
    pub namespace_selectors: Vec<LabelSelector>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRepositorySpec {
    pub image: String,
    pub interval: GoDuration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Timeout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_secret_ref: Option<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default)]
    pub provider: Provider,
    #[serde(default = "default_exclusion_list")]
    pub exclusion_list: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_from: Option<AccessFrom>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

impl ImageRepositorySpec {
    /// The effective scan timeout: `timeout`, else the interval, floored at one second.
    pub fn effective_timeout(&self) -> std::time::Duration {
        let t = self.timeout.map_or(self.interval.0, |t| t.0 .0);
        t.max(std::time::Duration::from_secs(1))
    }
}

// ---------------------------------------------------------------------------------------------
// ImagePolicy

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemVerPolicy {
    pub range: String,
}

fn default_order() -> String {
    "asc".to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPolicy {
    #[serde(default = "default_order")]
    pub order: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePolicyChoice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<SemVerPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alphabetical: Option<OrderPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerical: Option<OrderPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagFilterSpec {
    #[serde(default)]
    pub pattern: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub extract: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DigestReflectionPolicy {
    Always,
    IfNotPresent,
    #[default]
    Never,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagePolicySpec {
    pub image_repository_ref: NamespacedObjectReference,
    pub policy: ImagePolicyChoice,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_tags: Option<TagFilterSpec>,
    #[serde(default, skip_serializing_if = "is_never")]
    pub digest_reflection_policy: DigestReflectionPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// tagpilot's rollout gates (Flux ignores the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<PolicyGates>,
}

/// `spec.gates` of an ImagePolicy: what a candidate tag must pass besides the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyGates {
    /// A tag is a candidate only once tagpilot has known it this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_age: Option<GoDuration>,
    /// A tag whose digest changed is held this long after the change was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repush_hold: Option<GoDuration>,
    /// `os/architecture[/variant]`: the tag's image must be available for every one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// Lets the latest ref move to a lower tag without a policy change.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_downgrade: bool,
}

impl Manifest<ImagePolicySpec> {
    /// The (namespace, name) of the ImageRepository it reads: `imageRepositoryRef`, in the
    /// policy's namespace unless it names another.
    pub fn repository_key(&self) -> (&str, &str) {
        let r = &self.spec.image_repository_ref;
        (
            r.namespace.as_deref().unwrap_or(&self.metadata.namespace),
            &r.name,
        )
    }
}

impl ImagePolicySpec {
    /// A hash of what decides the ranking (repository, policy, filter): the latest ref moves to
    /// a lower tag only when this changed since the current tag was chosen (or with
    /// `gates.allowDowngrade`).
    pub fn selection_generation(&self) -> i64 {
        crate::status::generation_of(&(&self.image_repository_ref, &self.policy, &self.filter_tags))
    }

    pub fn allows_downgrade(&self) -> bool {
        self.gates.as_ref().is_some_and(|g| g.allow_downgrade)
    }
}

fn is_never(p: &DigestReflectionPolicy) -> bool {
    *p == DigestReflectionPolicy::Never
}

// ---------------------------------------------------------------------------------------------
// ImageUpdateAutomation

fn default_source_kind() -> String {
    "GitRepository".to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrossNamespaceSourceReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default = "default_source_kind")]
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// source-controller's `GitRepositoryRef`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitRepositoryRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitCheckoutSpec {
    #[serde(rename = "ref")]
    pub reference: GitRepositoryRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitUser {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SigningKeyType {
    #[default]
    Gpg,
    Ssh,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningKey {
    pub secret_ref: LocalObjectReference,
    #[serde(default, rename = "type")]
    pub key_type: SigningKeyType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitSpec {
    pub author: CommitUser,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<SigningKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub message_template_values: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refspec: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<GitCheckoutSpec>,
    pub commit: CommitSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushSpec>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateStrategyName {
    #[default]
    Setters,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStrategy {
    #[serde(default)]
    pub strategy: UpdateStrategyName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageUpdateAutomationSpec {
    pub source_ref: CrossNamespaceSourceReference,
    pub interval: GoDuration,
    pub git: GitSpec,
    #[serde(default)]
    pub update: UpdateStrategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// What to do after a person changed a marked value (tagpilot; Flux ignores the field).
    #[serde(default, skip_serializing_if = "ManualChanges::is_overwrite")]
    pub manual_changes: ManualChanges,
    /// Pushes happen only inside one of these; outside, changes wait (tagpilot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<ChangeWindow>,
}

impl ImageUpdateAutomationSpec {
    /// The change windows, parsed (validated at load: one that does not parse is skipped).
    pub fn parsed_windows(&self) -> Vec<crate::gates::Window> {
        self.windows
            .iter()
            .filter_map(|w| crate::gates::Window::parse(w).ok())
            .collect()
    }
}

/// `spec.manualChanges` of an ImageUpdateAutomation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ManualChanges {
    /// Flux's behaviour: the policy's value is written again.
    #[default]
    Overwrite,
    /// A value a person chose is kept until the policy ranks a tag above the one they left.
    Hold,
}

impl ManualChanges {
    fn is_overwrite(&self) -> bool {
        *self == ManualChanges::Overwrite
    }
}

/// One change window: opens at each time `cron` (5 fields) names, in `timeZone` (IANA,
/// default UTC), for `duration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeWindow {
    pub cron: String,
    pub duration: GoDuration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// GitRepository (source.toolkit.fluxcd.io)

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositorySpec {
    pub url: String,
    pub interval: GoDuration,
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<GitRepositoryRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_secret_ref: Option<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Timeout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

// ---------------------------------------------------------------------------------------------
// Receiver (notification.toolkit.fluxcd.io)

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReceiverType {
    Generic,
    GenericHmac,
    GenericOidc,
    Github,
    Gitlab,
    Bitbucket,
    Harbor,
    Dockerhub,
    Quay,
    Gcr,
    Nexus,
    Acr,
    Cdevents,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

fn default_receiver_interval() -> GoDuration {
    GoDuration::from_secs(600)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverSpec {
    #[serde(rename = "type")]
    pub receiver_type: ReceiverType,
    #[serde(default = "default_receiver_interval")]
    pub interval: GoDuration,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    #[serde(default)]
    pub resources: Vec<ReceiverResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// `generic-oidc` only: the issuers whose ID tokens are accepted.
    #[serde(
        default,
        rename = "oidcProviders",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub oidc_providers: Vec<OidcProvider>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

/// The audience a `generic-oidc` token must name when the provider sets none (Flux's).
pub const DEFAULT_OIDC_AUDIENCE: &str = "notification-controller";

/// An OIDC issuer of a `generic-oidc` Receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OidcProvider {
    #[serde(rename = "issuerURL")]
    pub issuer_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Named CEL expressions over `claims` (and earlier variables), as `vars.<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<OidcVariable>,
    /// CEL booleans that must all hold; the message of a failing one is the answer.
    #[serde(default)]
    pub validations: Vec<OidcValidation>,
}

impl OidcProvider {
    pub fn audience(&self) -> &str {
        self.audience.as_deref().unwrap_or(DEFAULT_OIDC_AUDIENCE)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcVariable {
    pub name: String,
    pub expression: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcValidation {
    pub expression: String,
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// Provider and Alert (notification.toolkit.fluxcd.io): where tagpilot's events go after a push

/// The Provider types tagpilot can deliver to. Flux knows more (msteams, github, …); a Provider
/// of another type is refused at load time (serde names the accepted ones), so that nobody waits
/// for alerts that never come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertProviderType {
    Generic,
    GenericHmac,
    Slack,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertProviderSpec {
    #[serde(rename = "type")]
    pub provider_type: AlertProviderType,
    /// The endpoint; the Secret's `address` key wins when present (Flux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Timeout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Keys: `address`, `token` (the HMAC key for generic-hmac, a bearer token for Slack's API),
    /// `headers` (YAML map), `proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Key `ca.crt`: extra trust for the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSeverity {
    /// Every event (info and error).
    #[default]
    Info,
    /// Errors only.
    Error,
}

/// An Alert's `eventSources[]` entry (Flux's CrossNamespaceObjectReference).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertSpec {
    pub provider_ref: LocalObjectReference,
    #[serde(default)]
    pub event_severity: EventSeverity,
    #[serde(default)]
    pub event_sources: Vec<EventSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inclusion_list: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusion_list: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub event_metadata: BTreeMap<String, String>,
    /// Deprecated in Flux for `eventMetadata.summary`; still honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

// ---------------------------------------------------------------------------------------------
// Secret (v1)

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretBody {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
    /// Base64 values, as in Kubernetes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Plain values; they win over `data` for the same key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub string_data: BTreeMap<String, String>,
}

// ---------------------------------------------------------------------------------------------
// The objects

/// An object with its apiVersion, metadata and spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: S,
}

pub type ImageRepository = Manifest<ImageRepositorySpec>;
pub type ImagePolicy = Manifest<ImagePolicySpec>;
pub type ImageUpdateAutomation = Manifest<ImageUpdateAutomationSpec>;
pub type GitRepository = Manifest<GitRepositorySpec>;
pub type Receiver = Manifest<ReceiverSpec>;
pub type AlertProvider = Manifest<AlertProviderSpec>;
pub type Alert = Manifest<AlertSpec>;

/// A Secret: no `spec`, its fields sit at the top level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(flatten)]
    pub body: SecretBody,
}

impl Secret {
    /// The decoded value of `key` (`stringData` first, then base64 `data`).
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        use base64::Engine as _;
        if let Some(v) = self.body.string_data.get(key) {
            return Some(v.as_bytes().to_vec());
        }
        let v = self.body.data.get(key)?;
        base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .ok()
    }
}
