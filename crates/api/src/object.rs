//! Kinds, accepted apiVersions, and the validation rules of each kind (reference §1).

use std::fmt;

use serde::Serialize;
use tagpilot_policy::{Choice, Exclusions, Policy, PolicyError, TagFilter};

use crate::types::*;

/// The kinds tagpilot reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Kind {
    ImageRepository,
    ImagePolicy,
    ImageUpdateAutomation,
    GitRepository,
    Receiver,
    Provider,
    Alert,
    Secret,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::ImageRepository,
        Kind::ImagePolicy,
        Kind::ImageUpdateAutomation,
        Kind::GitRepository,
        Kind::Receiver,
        Kind::Provider,
        Kind::Alert,
        Kind::Secret,
    ];

    pub fn from_name(kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ImageRepository => "ImageRepository",
            Kind::ImagePolicy => "ImagePolicy",
            Kind::ImageUpdateAutomation => "ImageUpdateAutomation",
            Kind::GitRepository => "GitRepository",
            Kind::Receiver => "Receiver",
            Kind::Provider => "Provider",
            Kind::Alert => "Alert",
            Kind::Secret => "Secret",
        }
    }

    /// The apiVersions accepted for this kind.
    pub fn api_versions(self) -> &'static [&'static str] {
        match self {
            Kind::ImageRepository | Kind::ImagePolicy | Kind::ImageUpdateAutomation => &[
                "image.toolkit.fluxcd.io/v1",
                "image.toolkit.fluxcd.io/v1beta2",
                "image.toolkit.fluxcd.io/v1beta1",
            ],
            Kind::GitRepository => &[
                "source.toolkit.fluxcd.io/v1",
                "source.toolkit.fluxcd.io/v1beta2",
            ],
            Kind::Receiver => &[
                "notification.toolkit.fluxcd.io/v1",
                "notification.toolkit.fluxcd.io/v1beta2",
            ],
            Kind::Provider | Kind::Alert => &[
                "notification.toolkit.fluxcd.io/v1beta3",
                "notification.toolkit.fluxcd.io/v1beta2",
            ],
            Kind::Secret => &["v1"],
        }
    }

    /// The API group, used to tell "a known kind in another group" (skipped) from "a known
    /// kind with an unsupported version" (an error).
    pub fn group(self) -> &'static str {
        match self {
            Kind::ImageRepository | Kind::ImagePolicy | Kind::ImageUpdateAutomation => {
                "image.toolkit.fluxcd.io"
            }
            Kind::GitRepository => "source.toolkit.fluxcd.io",
            Kind::Receiver | Kind::Provider | Kind::Alert => "notification.toolkit.fluxcd.io",
            Kind::Secret => "",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One loaded object. Every object takes the size of the largest inline variant, so the
/// automation (680 bytes; a repository is 352, a policy 400) is boxed: configurations of
/// 10,000 repositories and policies hold few automations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    ImageRepository(ImageRepository),
    ImagePolicy(ImagePolicy),
    ImageUpdateAutomation(Box<ImageUpdateAutomation>),
    GitRepository(GitRepository),
    Receiver(Receiver),
    Provider(AlertProvider),
    Alert(Alert),
    Secret(Secret),
}

/// The Rust type of a kind, to look objects up by type ([`crate::Config::find`],
/// [`crate::Config::all`]).
pub trait Typed: Sized {
    const KIND: Kind;
    fn of(object: &Object) -> Option<&Self>;
}

macro_rules! typed {
    ($($t:ty => $variant:ident),*) => {$(
        impl Typed for $t {
            const KIND: Kind = Kind::$variant;
            fn of(object: &Object) -> Option<&Self> {
                match object {
                    Object::$variant(o) => Some(std::borrow::Borrow::borrow(o)),
                    _ => None,
                }
            }
        }
    )*};
}
typed!(
    ImageRepository => ImageRepository,
    ImagePolicy => ImagePolicy,
    ImageUpdateAutomation => ImageUpdateAutomation,
    GitRepository => GitRepository,
    Receiver => Receiver,
    AlertProvider => Provider,
    Alert => Alert,
    Secret => Secret
);

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::ImageRepository(_) => Kind::ImageRepository,
            Object::ImagePolicy(_) => Kind::ImagePolicy,
            Object::ImageUpdateAutomation(_) => Kind::ImageUpdateAutomation,
            Object::GitRepository(_) => Kind::GitRepository,
            Object::Receiver(_) => Kind::Receiver,
            Object::Provider(_) => Kind::Provider,
            Object::Alert(_) => Kind::Alert,
            Object::Secret(_) => Kind::Secret,
        }
    }

    /// The apiVersion as written in the manifest.
    pub fn api_version(&self) -> &str {
        match self {
            Object::ImageRepository(o) => &o.api_version,
            Object::ImagePolicy(o) => &o.api_version,
            Object::ImageUpdateAutomation(o) => &o.api_version,
            Object::GitRepository(o) => &o.api_version,
            Object::Receiver(o) => &o.api_version,
            Object::Provider(o) => &o.api_version,
            Object::Alert(o) => &o.api_version,
            Object::Secret(o) => &o.api_version,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::ImageRepository(o) => &o.metadata,
            Object::ImagePolicy(o) => &o.metadata,
            Object::ImageUpdateAutomation(o) => &o.metadata,
            Object::GitRepository(o) => &o.metadata,
            Object::Receiver(o) => &o.metadata,
            Object::Provider(o) => &o.metadata,
            Object::Alert(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
        }
    }

    /// Every rule violation, as (field path, message).
    pub fn validate(&self) -> Vec<FieldError> {
        let mut v = Validator::default();
        let meta = self.metadata();
        validate_name(&mut v, "metadata.name", &meta.name);
        validate_name(&mut v, "metadata.namespace", &meta.namespace);
        match self {
            Object::ImageRepository(o) => validate_image_repository(&mut v, &o.spec),
            Object::ImagePolicy(o) => validate_image_policy(&mut v, &o.spec),
            Object::ImageUpdateAutomation(o) => validate_automation(&mut v, &o.spec),
            Object::GitRepository(o) => validate_git_repository(&mut v, &o.spec),
            Object::Receiver(o) => validate_receiver(&mut v, &o.spec),
            Object::Provider(o) => validate_provider(&mut v, &o.spec),
            Object::Alert(o) => validate_alert(&mut v, &o.spec),
            Object::Secret(o) => validate_secret(&mut v, o),
        }
        v.errors
    }
}

/// A rule violation on one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn err(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }
}

/// RFC 1123 subdomain: what Kubernetes requires of names and namespaces.
fn validate_name(v: &mut Validator, field: &str, name: &str) {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if !ok {
        v.err(
            field,
            format!("'{name}' is not a valid name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"),
        );
    }
}

/// The image checks Flux applies when it reconciles (reference §2.1), by the one parser of
/// image names.
pub fn validate_image(image: &str) -> Result<(), String> {
    tagpilot_reference::ImageName::parse(image)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The shortest interval tagpilot accepts: below it a loop of scans or rounds would only
/// hammer the registry or the Git server (`0s` used to mean "twice a second forever").
pub const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

fn validate_interval(v: &mut Validator, field: &str, d: crate::duration::GoDuration) {
    if d.0 < MIN_INTERVAL {
        v.err(field, format!("must be at least 1s, is {d}"));
    }
}

/// An `update.path` must name a directory inside the repository: relative, without `..`.
/// (Symlinks are checked when the clone exists: the resolved path must stay inside it.)
pub fn check_update_path(path: &str) -> Result<(), String> {
    for c in std::path::Path::new(path).components() {
        match c {
            std::path::Component::Normal(_) | std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                return Err(format!(
                    "'{path}' leaves the repository: '..' is not allowed"
                ))
            }
            std::path::Component::RootDir | std::path::Component::Prefix(_) => {
                return Err(format!(
                    "'{path}' is absolute: give a path relative to the repository root"
                ))
            }
        }
    }
    Ok(())
}

fn validate_image_repository(v: &mut Validator, s: &ImageRepositorySpec) {
    if let Err(e) = validate_image(&s.image) {
        v.err("spec.image", e);
    }
    validate_interval(v, "spec.interval", s.interval);
    if s.exclusion_list.len() > 25 {
        v.err(
            "spec.exclusionList",
            format!("must have at most 25 items, has {}", s.exclusion_list.len()),
        );
    }
    for (i, rule) in s.exclusion_list.iter().enumerate() {
        if let Err(e) = Exclusions::new(&[rule]) {
            v.err(&format!("spec.exclusionList[{i}]"), e.to_string());
        }
    }
    if s.service_account_name
        .as_ref()
        .is_some_and(|n| n.len() > 253)
    {
        v.err("spec.serviceAccountName", "must be at most 253 characters");
    }
}

/// Builds the policy engine's view of an ImagePolicy spec.
pub fn build_policy(s: &ImagePolicySpec) -> Result<Policy, FieldError> {
    let p = &s.policy;
    let field_err = |field: &str, e: PolicyError| FieldError {
        field: field.to_owned(),
        message: e.to_string(),
    };
    let choice = match (&p.semver, &p.alphabetical, &p.numerical) {
        (Some(sv), None, None) => {
            Choice::semver(&sv.range).map_err(|e| field_err("spec.policy.semver.range", e))?
        }
        (None, Some(a), None) => Choice::alphabetical(&a.order)
            .map_err(|e| field_err("spec.policy.alphabetical.order", e))?,
        (None, None, Some(n)) => Choice::numerical(&n.order)
            .map_err(|e| field_err("spec.policy.numerical.order", e))?,
        (None, None, None) => return Err(FieldError {
            field: "spec.policy".to_owned(),
            message: "invalid policy: given ImagePolicyChoice object is invalid: set exactly one of semver, alphabetical, numerical".to_owned(),
        }),
        _ => return Err(FieldError {
            field: "spec.policy".to_owned(),
            message: "invalid policy: exactly one of semver, alphabetical, numerical may be set".to_owned(),
        }),
    };
    let filter = match &s.filter_tags {
        Some(f) if !f.pattern.is_empty() || !f.extract.is_empty() => Some(
            TagFilter::new_strict(&f.pattern, &f.extract)
                .map_err(|e| field_err("spec.filterTags", e))?,
        ),
        _ => None,
    };
    Ok(Policy::new(choice, filter))
}

fn validate_image_policy(v: &mut Validator, s: &ImagePolicySpec) {
    if s.image_repository_ref.name.is_empty() {
        v.err("spec.imageRepositoryRef.name", "is required");
    }
    if let Err(e) = build_policy(s) {
        v.errors.push(e);
    }
    if let Some(i) = s.interval {
        validate_interval(v, "spec.interval", i);
    }
    match (s.digest_reflection_policy, s.interval) {
        (DigestReflectionPolicy::Always, None) => v.err(
            "spec.interval",
            "spec.interval must be set when spec.digestReflectionPolicy is set to 'Always'",
        ),
        (DigestReflectionPolicy::Always, Some(_)) | (_, None) => {}
        (_, Some(_)) => v.err(
            "spec.interval",
            "spec.interval is only accepted when spec.digestReflectionPolicy is set to 'Always'",
        ),
    }
    if let Some(g) = &s.gates {
        for (field, d) in [("minAge", g.min_age), ("repushHold", g.repush_hold)] {
            if d.is_some_and(|d| d.0.is_zero()) {
                v.err(
                    &format!("spec.gates.{field}"),
                    "must be more than 0s (leave it out for no gate)",
                );
            }
        }
        for (i, p) in g.platforms.iter().enumerate() {
            if let Err(e) = crate::gates::Platform::parse(p) {
                v.err(&format!("spec.gates.platforms[{i}]"), e);
            }
        }
    }
}

fn validate_automation(v: &mut Validator, s: &ImageUpdateAutomationSpec) {
    if s.source_ref.kind != "GitRepository" {
        v.err(
            "spec.sourceRef.kind",
            format!(
                "unsupported value '{}': supported values: \"GitRepository\"",
                s.source_ref.kind
            ),
        );
    }
    if s.source_ref.name.is_empty() {
        v.err("spec.sourceRef.name", "is required");
    }
    validate_interval(v, "spec.interval", s.interval);
    if let Some(path) = &s.update.path {
        if let Err(e) = check_update_path(path) {
            v.err("spec.update.path", e);
        }
    }
    if s.git.commit.author.email.is_empty() {
        v.err("spec.git.commit.author.email", "is required");
    }
    if let Some(push) = &s.git.push {
        if push.branch.as_deref() == Some("") {
            v.err("spec.git.push.branch", "must not be empty");
        }
    }
    if let Some(sel) = &s.policy_selector {
        validate_selector(v, "spec.policySelector", sel);
    }
    for (i, w) in s.windows.iter().enumerate() {
        if let Err((field, e)) = crate::gates::Window::parse(w) {
            v.err(&format!("spec.windows[{i}].{field}"), e);
        }
    }
}

fn validate_selector(v: &mut Validator, field: &str, sel: &LabelSelector) {
    for (i, r) in sel.match_expressions.iter().enumerate() {
        let needs_values = matches!(r.operator, SelectorOperator::In | SelectorOperator::NotIn);
        if needs_values == r.values.is_empty() {
            let msg = if needs_values {
                "values must be non-empty for In and NotIn"
            } else {
                "values must be empty for Exists and DoesNotExist"
            };
            v.err(&format!("{field}.matchExpressions[{i}].values"), msg);
        }
    }
}

fn validate_git_repository(v: &mut Validator, s: &GitRepositorySpec) {
    validate_interval(v, "spec.interval", s.interval);
    const SCHEMES: [&str; 5] = ["http://", "https://", "ssh://", "git://", "file://"];
    if !SCHEMES.iter().any(|p| s.url.starts_with(p)) {
        v.err(
            "spec.url",
            format!(
                "'{}' must start with one of http://, https://, ssh://, git://, file://",
                s.url
            ),
        );
    }
}

fn validate_receiver(v: &mut Validator, s: &ReceiverSpec) {
    validate_interval(v, "spec.interval", s.interval);
    if s.resources.is_empty() {
        v.err("spec.resources", "at least one resource is required");
    }
    for (i, r) in s.resources.iter().enumerate() {
        if r.name == "*" && r.match_labels.is_empty() {
            v.err(
                &format!("spec.resources[{i}].matchLabels"),
                "name '*' requires matchLabels",
            );
        }
        let defaulted = matches!(
            r.kind.as_str(),
            "Bucket"
                | "HelmChart"
                | "HelmRepository"
                | "GitRepository"
                | "OCIRepository"
                | "ImageRepository"
        );
        if r.api_version.is_none() && !defaulted {
            v.err(
                &format!("spec.resources[{i}].apiVersion"),
                format!("apiVersion must be set for kind '{}'", r.kind),
            );
        }
    }
    // The CRD's rules for generic-oidc (notification-controller v1).
    let oidc = s.receiver_type == ReceiverType::GenericOidc;
    if s.secret_ref.is_none() && !oidc {
        v.err(
            "spec.secretRef",
            "secretRef is required when type is not generic-oidc",
        );
    }
    if s.secret_ref.is_some() && oidc {
        v.err(
            "spec.secretRef",
            "secretRef cannot be set when type is generic-oidc",
        );
    }
    if oidc && s.oidc_providers.is_empty() {
        v.err(
            "spec.oidcProviders",
            "generic-oidc receivers must define at least one oidcProvider",
        );
    }
    if !oidc && !s.oidc_providers.is_empty() {
        v.err(
            "spec.oidcProviders",
            "oidcProviders can only be set when type is generic-oidc",
        );
    }
    for (i, p) in s.oidc_providers.iter().enumerate() {
        if !(p.issuer_url.starts_with("https://") || p.issuer_url.starts_with("http://")) {
            v.err(
                &format!("spec.oidcProviders[{i}].issuerURL"),
                format!("'{}' must match '^https?://'", p.issuer_url),
            );
        }
        if p.validations.is_empty() {
            v.err(
                &format!("spec.oidcProviders[{i}].validations"),
                "at least one validation is required",
            );
        }
        if s.oidc_providers[..i]
            .iter()
            .any(|q| q.issuer_url == p.issuer_url)
        {
            v.err(
                &format!("spec.oidcProviders[{i}].issuerURL"),
                "duplicate issuerURL",
            );
        }
    }
}

fn validate_provider(v: &mut Validator, s: &AlertProviderSpec) {
    if s.address.is_none() && s.secret_ref.is_none() {
        v.err(
            "spec.address",
            "an address is required (in spec.address or the secretRef's 'address' key)",
        );
    }
    if let Some(a) = &s.address {
        if a.len() > 2048 {
            v.err("spec.address", "must be at most 2048 characters");
        } else if url::Url::parse(a).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
            v.err("spec.address", format!("'{a}' is not an http(s) URL"));
        }
    }
    if s.provider_type == AlertProviderType::GenericHmac && s.secret_ref.is_none() {
        v.err(
            "spec.secretRef",
            "generic-hmac needs a Secret whose 'token' key is the HMAC key",
        );
    }
}

/// Event kinds an Alert may name; tagpilot itself only emits ImageUpdateAutomation events, but a
/// cluster folder's Alerts name every Flux kind.
const EVENT_SOURCE_KINDS: &[&str] = &[
    "Bucket",
    "GitRepository",
    "Kustomization",
    "HelmRelease",
    "HelmChart",
    "HelmRepository",
    "ImageRepository",
    "ImagePolicy",
    "ImageUpdateAutomation",
    "OCIRepository",
    "ArtifactGenerator",
    "ExternalArtifact",
    "FluxInstance",
    "ResourceSet",
    "ResourceSetInputProvider",
];

fn validate_alert(v: &mut Validator, s: &AlertSpec) {
    if s.provider_ref.name.is_empty() {
        v.err("spec.providerRef.name", "is required");
    }
    if s.event_sources.is_empty() {
        v.err("spec.eventSources", "at least one event source is required");
    }
    for (i, src) in s.event_sources.iter().enumerate() {
        if !EVENT_SOURCE_KINDS.contains(&src.kind.as_str()) {
            v.err(
                &format!("spec.eventSources[{i}].kind"),
                format!("unsupported kind '{}'", src.kind),
            );
        }
        if src.name.is_empty() {
            v.err(&format!("spec.eventSources[{i}].name"), "is required");
        }
    }
    for (field, list) in [
        ("spec.inclusionList", &s.inclusion_list),
        ("spec.exclusionList", &s.exclusion_list),
    ] {
        for (i, re) in list.iter().enumerate() {
            if let Err(e) = tagpilot_policy::compile(re) {
                v.err(
                    &format!("{field}[{i}]"),
                    format!("invalid regular expression: {e}"),
                );
            }
        }
    }
}

fn validate_secret(v: &mut Validator, s: &Secret) {
    use base64::Engine as _;
    for (k, val) in &s.body.data {
        if base64::engine::general_purpose::STANDARD
            .decode(val.trim())
            .is_err()
        {
            v.err(&format!("data.{k}"), "is not valid base64");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_rules() {
        assert!(validate_image("ghcr.io/stefanprodan/podinfo").is_ok());
        assert!(validate_image("alpine").is_ok());
        assert!(validate_image("localhost:5000/app").is_ok());
        assert!(validate_image("127.0.0.1:5000/team/app").is_ok());
        let e = validate_image("https://ghcr.io/app")
            .err()
            .unwrap_or_default();
        assert_eq!(
            e,
            "image 'https://ghcr.io/app' should not include URL scheme; remove 'https://'"
        );
        let e = validate_image("ghcr.io/app:1.0").err().unwrap_or_default();
        assert_eq!(
            e,
            "image 'ghcr.io/app:1.0' should not include a tag; remove ':1.0'"
        );
        assert!(validate_image("alpine:3").is_err());
        assert!(validate_image("").is_err());
        assert!(validate_image("Alpine").is_err());
    }

    #[test]
    fn selector_matching() {
        let sel = LabelSelector {
            match_labels: [("app".to_owned(), "web".to_owned())].into(),
            match_expressions: vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: SelectorOperator::NotIn,
                values: vec!["db".into()],
            }],
        };
        let l = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(sel.matches(&l(&[("app", "web")])));
        assert!(!sel.matches(&l(&[("app", "web"), ("tier", "db")])));
        assert!(!sel.matches(&l(&[("app", "api")])));
        assert!(LabelSelector::default().matches(&l(&[])));
    }
}
