//! Flux's Receiver semantics, pure: the webhook path of a Receiver and the validation of an
//! incoming request for each receiver type (reference §5). The HTTP server, limits and the
//! effect on objects live with the daemon; this crate decides only "accept or reject, and why".
//!
//! Secrets are compared in constant time and never appear in an error.

pub mod filter;
pub mod oidc;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Digest as _;
use tagpilot_api::ReceiverType;

/// `/hook/` + lowercase hex SHA-256 of `token + name + namespace` (plain concatenation).
pub fn webhook_path(token: &str, name: &str, namespace: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(token.as_bytes());
    h.update(name.as_bytes());
    h.update(namespace.as_bytes());
    format!("/hook/{:x}", h.finalize())
}

/// Why a request was refused (Flux answers 400 for all of these).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("invalid signature: {0}")]
    BadSignature(&'static str),
    #[error("invalid token")]
    BadToken,
    #[error("event '{0}' is not in the receiver's events")]
    EventNotAccepted(String),
    #[error("invalid payload: {0}")]
    BadPayload(String),
    #[error("invalid ID token: {0}")]
    BadIdToken(&'static str),
    #[error("receiver type {0} is not supported")]
    Unsupported(&'static str),
    /// generic-oidc: the token verified but a configured validation said no (its messages).
    #[error("{0}")]
    ClaimsRefused(String),
    #[error("no oidcProvider configured for issuer \"{0}\"")]
    UnknownIssuer(String),
}

/// The bearer token of a `generic-oidc` (or gcr) request, with Flux's messages when absent.
pub fn bearer_token(headers: &dyn Headers) -> Result<&str, Rejected> {
    let auth = headers
        .get("Authorization")
        .ok_or(Rejected::MissingHeader("Authorization"))?;
    let token = auth
        .strip_prefix("Bearer ")
        .ok_or(Rejected::BadIdToken(
            "the Authorization header is missing or malformed",
        ))?
        .trim();
    if token.is_empty() {
        return Err(Rejected::BadIdToken(
            "the Authorization header is missing a bearer token",
        ));
    }
    Ok(token)
}

/// A `generic-oidc` token, verified as notification-controller does: signed by the issuer's
/// keys, issued by it, for the provider's audience, not expired; then the provider's CEL
/// validations over its claims. The claims, for the resource filters.
pub fn verify_generic_oidc(
    token: &str,
    provider: &tagpilot_api::OidcProvider,
    checks: &filter::ClaimChecks,
    keys: &oidc::KeySet,
    now: u64,
) -> Result<serde_json::Value, Rejected> {
    let claims = oidc::verify(
        token,
        keys,
        &oidc::Expected {
            issuers: &[provider.issuer_url.as_str()],
            audience: provider.audience(),
            email: None,
        },
        now,
    )?;
    checks.evaluate(&claims).map_err(Rejected::ClaimsRefused)?;
    Ok(claims)
}

/// What a valid request says (for logs and filters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    pub event: Option<String>,
    /// The pushed image and tag, when the payload names them.
    pub image: Option<String>,
    pub tag: Option<String>,
}

/// Header lookup, case-insensitive by the caller's HTTP library.
pub trait Headers {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Headers for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Equality that takes the same time wherever the inputs differ (`subtle`; a length
/// difference is told at once, as lengths are not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Verifies `hex` as the HMAC of `body` keyed by `token` with `algo` (sha1, sha256, sha512).
fn verify_hmac(algo: &str, hex: &str, token: &[u8], body: &[u8]) -> Result<(), Rejected> {
    let sig = hex_decode(hex.trim()).ok_or(Rejected::BadSignature("not hex"))?;
    let ok = match algo {
        "sha1" => Hmac::<sha1::Sha1>::new_from_slice(token).map(|mut m| {
            m.update(body);
            m.verify_slice(&sig).is_ok()
        }),
        "sha256" => Hmac::<sha2::Sha256>::new_from_slice(token).map(|mut m| {
            m.update(body);
            m.verify_slice(&sig).is_ok()
        }),
        "sha512" => Hmac::<sha2::Sha512>::new_from_slice(token).map(|mut m| {
            m.update(body);
            m.verify_slice(&sig).is_ok()
        }),
        _ => return Err(Rejected::BadSignature("unsupported hash algorithm")),
    };
    match ok {
        Ok(true) => Ok(()),
        _ => Err(Rejected::BadSignature("HMAC does not match")),
    }
}

/// `algo=hex` as in `X-Signature` and `X-Hub-Signature(-256)`.
fn verify_prefixed(header: &str, token: &[u8], body: &[u8]) -> Result<(), Rejected> {
    let (algo, hex) = header
        .split_once('=')
        .ok_or(Rejected::BadSignature("expected algorithm=hex"))?;
    verify_hmac(&algo.trim().to_ascii_lowercase(), hex, token, body)
}

fn check_event(events: &[String], event: Option<&str>) -> Result<Option<String>, Rejected> {
    let event = event.map(str::to_owned);
    if events.is_empty() {
        return Ok(event);
    }
    match &event {
        Some(e) if events.iter().any(|x| x.eq_ignore_ascii_case(e)) => Ok(event),
        Some(e) => Err(Rejected::EventNotAccepted(e.clone())),
        None => Err(Rejected::EventNotAccepted(String::new())),
    }
}

#[derive(Deserialize)]
struct DockerHub {
    push_data: DockerHubPush,
    repository: DockerHubRepo,
}
#[derive(Deserialize)]
struct DockerHubPush {
    tag: String,
}
#[derive(Deserialize)]
struct DockerHubRepo {
    repo_url: String,
}
#[derive(Deserialize)]
struct Quay {
    docker_url: String,
    updated_tags: Vec<String>,
}
#[derive(Deserialize)]
struct Acr {
    #[serde(default)]
    action: String,
    target: AcrTarget,
}
#[derive(Deserialize)]
struct AcrTarget {
    repository: String,
    #[serde(default)]
    tag: String,
}

fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Rejected> {
    serde_json::from_slice(body).map_err(|e| Rejected::BadPayload(e.to_string()))
}

/// Validates a request for a receiver of type `kind` with secret `token` and event filter
/// `events` (github, gitlab, bitbucket only).
pub fn validate(
    kind: ReceiverType,
    token: &[u8],
    events: &[String],
    headers: &dyn Headers,
    body: &[u8],
) -> Result<Accepted, Rejected> {
    match kind {
        ReceiverType::Generic => Ok(Accepted::default()),
        ReceiverType::GenericHmac => {
            let sig = headers
                .get("X-Signature")
                .ok_or(Rejected::MissingHeader("X-Signature"))?;
            verify_prefixed(sig, token, body)?;
            Ok(Accepted::default())
        }
        ReceiverType::Github => {
            match (
                headers.get("X-Hub-Signature-256"),
                headers.get("X-Hub-Signature"),
            ) {
                (Some(s), _) => verify_prefixed(s, token, body)?,
                (None, Some(s)) => verify_prefixed(s, token, body)?,
                (None, None) => return Err(Rejected::MissingHeader("X-Hub-Signature-256")),
            }
            let event = check_event(events, headers.get("X-GitHub-Event"))?;
            Ok(Accepted {
                event,
                ..Accepted::default()
            })
        }
        ReceiverType::Gitlab => {
            let t = headers
                .get("X-Gitlab-Token")
                .ok_or(Rejected::MissingHeader("X-Gitlab-Token"))?;
            if !constant_time_eq(t.as_bytes(), token) {
                return Err(Rejected::BadToken);
            }
            let event = check_event(events, headers.get("X-Gitlab-Event"))?;
            Ok(Accepted {
                event,
                ..Accepted::default()
            })
        }
        ReceiverType::Bitbucket => {
            let s = headers
                .get("X-Hub-Signature")
                .ok_or(Rejected::MissingHeader("X-Hub-Signature"))?;
            verify_prefixed(s, token, body)?;
            let event = check_event(events, headers.get("X-Event-Key"))?;
            Ok(Accepted {
                event,
                ..Accepted::default()
            })
        }
        ReceiverType::Harbor => {
            let a = headers
                .get("Authorization")
                .ok_or(Rejected::MissingHeader("Authorization"))?;
            if !constant_time_eq(a.as_bytes(), token) {
                return Err(Rejected::BadToken);
            }
            Ok(Accepted::default())
        }
        ReceiverType::Dockerhub => {
            let p: DockerHub = json(body)?;
            Ok(Accepted {
                event: None,
                image: Some(p.repository.repo_url),
                tag: Some(p.push_data.tag),
            })
        }
        ReceiverType::Quay => {
            let p: Quay = json(body)?;
            Ok(Accepted {
                event: None,
                image: Some(p.docker_url),
                tag: p.updated_tags.into_iter().next(),
            })
        }
        ReceiverType::Nexus => {
            let s = headers
                .get("X-Nexus-Webhook-Signature")
                .ok_or(Rejected::MissingHeader("X-Nexus-Webhook-Signature"))?;
            verify_hmac("sha1", s, token, body)?;
            let _: serde_json::Value = json(body)?;
            Ok(Accepted::default())
        }
        ReceiverType::Acr => {
            let p: Acr = json(body)?;
            Ok(Accepted {
                event: Some(p.action).filter(|a| !a.is_empty()),
                image: Some(p.target.repository),
                tag: Some(p.target.tag).filter(|t| !t.is_empty()),
            })
        }
        // Needs Google's key set: see validate_gcr.
        ReceiverType::Gcr => Err(Rejected::Unsupported("gcr without a key set")),
        // Verified with the issuer's keys by `verify_generic_oidc`, which needs I/O first.
        ReceiverType::GenericOidc => Err(Rejected::Unsupported("generic-oidc without its keys")),
        ReceiverType::Cdevents => {
            let e = cdevent(body)?;
            // Flux filters on the `Ce-Type` header; a body-only (structured) event has none.
            let event = headers
                .get("Ce-Type")
                .map_or(e.context.event_type.clone(), str::to_owned);
            if headers
                .get("Ce-Type")
                .is_some_and(|t| t != e.context.event_type)
            {
                return Err(Rejected::BadPayload(
                    "Ce-Type differs from context.type".into(),
                ));
            }
            let event = check_event(events, Some(&event))?;
            Ok(Accepted {
                event,
                image: None,
                tag: None,
            })
        }
    }
}

#[derive(Deserialize)]
struct CdEvent {
    context: CdContext,
    subject: CdSubject,
}
#[derive(Deserialize)]
struct CdContext {
    #[serde(rename = "type")]
    event_type: String,
    id: String,
    source: String,
    version: String,
    timestamp: String,
}
#[derive(Deserialize)]
struct CdSubject {
    id: String,
    #[serde(default)]
    content: serde_json::Value,
}

/// A CDEvent's envelope (context and subject; spec v0.3/0.4): required fields present and a
/// type of the form `dev.cdevents.<subject>.<predicate>.<major>.<minor>.<patch>`.
fn cdevent(body: &[u8]) -> Result<CdEvent, Rejected> {
    let e: CdEvent = json(body)?;
    let c = &e.context;
    let parts: Vec<&str> = c.event_type.split('.').collect();
    let version_ok = parts.len() == 7
        && parts[..2] == ["dev", "cdevents"]
        && parts[2..4]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[4..6]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[6]
            .split('-')
            .next()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !version_ok {
        return Err(Rejected::BadPayload(format!(
            "'{}' is not a CDEvents type",
            c.event_type
        )));
    }
    for (field, value) in [
        ("context.id", &c.id),
        ("context.source", &c.source),
        ("context.version", &c.version),
        ("context.timestamp", &c.timestamp),
        ("subject.id", &e.subject.id),
    ] {
        if value.is_empty() {
            return Err(Rejected::BadPayload(format!("{field} is empty")));
        }
    }
    if !e.subject.content.is_object() {
        return Err(Rejected::BadPayload(
            "subject.content is not an object".into(),
        ));
    }
    Ok(e)
}

/// What a `gcr` receiver expects of the ID token: the Secret's `audience` and `email`.
#[derive(Debug, Clone)]
pub struct GcrExpect {
    pub audience: String,
    pub email: String,
}

#[derive(Deserialize)]
struct PubSubEnvelope {
    message: PubSubMessage,
}
#[derive(Deserialize)]
struct PubSubMessage {
    data: String,
}
#[derive(Deserialize)]
struct GcrEvent {
    #[serde(default)]
    action: String,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    tag: String,
}

/// Validates a Pub/Sub push for a `gcr` receiver: `Authorization: Bearer <Google ID token>`
/// verified against `keys` (issuer, audience, email, email_verified, expiry at `now`), then the
/// envelope's base64 `message.data` decoded to `{action, digest, tag}`.
pub fn validate_gcr(
    expect: &GcrExpect,
    keys: &oidc::KeySet,
    now: u64,
    headers: &dyn Headers,
    body: &[u8],
) -> Result<Accepted, Rejected> {
    let auth = headers
        .get("Authorization")
        .ok_or(Rejected::MissingHeader("Authorization"))?;
    let token = auth
        .strip_prefix("Bearer ")
        .ok_or(Rejected::BadIdToken("expected a Bearer token"))?;
    oidc::verify(
        token.trim(),
        keys,
        &oidc::Expected {
            issuers: &oidc::GOOGLE_ISSUERS,
            audience: &expect.audience,
            email: Some(&expect.email),
        },
        now,
    )?;
    let envelope: PubSubEnvelope = json(body)?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(envelope.message.data.trim())
        .map_err(|_| Rejected::BadPayload("message.data is not base64".into()))?;
    let event: GcrEvent = json(&data)?;
    // `tag` is the full reference (host/project/repo/image:tag); `digest` likewise with @sha256.
    let (image, tag) = match event.tag.rsplit_once(':') {
        Some((image, tag)) if !tag.contains('/') => (Some(image.to_owned()), Some(tag.to_owned())),
        _ => (
            event
                .digest
                .split('@')
                .next()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            None,
        ),
    };
    Ok(Accepted {
        event: Some(event.action).filter(|a| !a.is_empty()),
        image,
        tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn hmac_hex<M: Mac + hmac::digest::KeyInit>(key: &[u8], body: &[u8]) -> String {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).unwrap();
        m.update(body);
        m.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn path_worked_example() {
        // reference §5: token "token", name "receiver", namespace "default".
        assert_eq!(
            webhook_path("token", "receiver", "default"),
            "/hook/8cc3207cffc97dc881eed557d9eb9348edf632357f3132b4f4d30188c54fc63d"
        );
    }

    #[test]
    fn hmac_types() {
        let body = br#"{"hello":"world"}"#;
        let t = b"token";
        // Worked example: HMAC-SHA256("token", body), independently computed with
        // `printf '{"hello":"world"}' | openssl dgst -sha256 -hmac token`.
        let s256 = "21fa8389893491df57ab50edfbf15d0862c58189ac82ab0b4395c6c0b92e9d7b";
        assert_eq!(hmac_hex::<Hmac<sha2::Sha256>>(t, body), s256);
        let ok = h(&[("X-Signature", &format!("sha256={s256}"))]);
        assert!(validate(ReceiverType::GenericHmac, t, &[], &ok, body).is_ok());
        // `printf '{"hello":"world"}' | openssl dgst -sha1 -hmac token`
        let s1 = "38f5be6c30313411f402f7020903a9e7d956d921";
        assert_eq!(hmac_hex::<Hmac<sha1::Sha1>>(t, body), s1);
        let s512 = hmac_hex::<Hmac<sha2::Sha512>>(t, body);
        assert!(validate(
            ReceiverType::GenericHmac,
            t,
            &[],
            &h(&[("X-Signature", &format!("sha1={s1}"))]),
            body
        )
        .is_ok());
        assert!(validate(
            ReceiverType::GenericHmac,
            t,
            &[],
            &h(&[("X-Signature", &format!("sha512={s512}"))]),
            body
        )
        .is_ok());
        // Replayed signature on another body, wrong token, garbage, missing header.
        assert!(matches!(
            validate(ReceiverType::GenericHmac, t, &[], &ok, b"{}"),
            Err(Rejected::BadSignature(_))
        ));
        assert!(matches!(
            validate(ReceiverType::GenericHmac, b"other", &[], &ok, body),
            Err(Rejected::BadSignature(_))
        ));
        assert!(matches!(
            validate(
                ReceiverType::GenericHmac,
                t,
                &[],
                &h(&[("X-Signature", "sha256=zz")]),
                body
            ),
            Err(Rejected::BadSignature(_))
        ));
        assert!(matches!(
            validate(
                ReceiverType::GenericHmac,
                t,
                &[],
                &h(&[("X-Signature", "md5=00")]),
                body
            ),
            Err(Rejected::BadSignature(_))
        ));
        assert_eq!(
            validate(ReceiverType::GenericHmac, t, &[], &h(&[]), body),
            Err(Rejected::MissingHeader("X-Signature"))
        );
        // GitHub: sha256 header preferred, sha1 accepted; events filtered case-insensitively.
        let gh = h(&[
            ("X-Hub-Signature-256", &format!("sha256={s256}")),
            ("X-GitHub-Event", "Push"),
        ]);
        assert_eq!(
            validate(ReceiverType::Github, t, &["push".into()], &gh, body).map(|a| a.event),
            Ok(Some("Push".into()))
        );
        assert!(matches!(
            validate(ReceiverType::Github, t, &["release".into()], &gh, body),
            Err(Rejected::EventNotAccepted(_))
        ));
        let gh1 = h(&[
            ("X-Hub-Signature", &format!("sha1={s1}")),
            ("X-GitHub-Event", "push"),
        ]);
        assert!(validate(ReceiverType::Github, t, &[], &gh1, body).is_ok());
        // Bitbucket and Nexus.
        let bb = h(&[
            ("X-Hub-Signature", &format!("sha256={s256}")),
            ("X-Event-Key", "repo:push"),
        ]);
        assert!(validate(ReceiverType::Bitbucket, t, &["repo:push".into()], &bb, body).is_ok());
        let nx = h(&[("X-Nexus-Webhook-Signature", s1)]);
        assert!(validate(ReceiverType::Nexus, t, &[], &nx, body).is_ok());
        assert!(validate(ReceiverType::Nexus, t, &[], &nx, b"not json").is_err());
    }

    #[test]
    fn token_and_payload_types() {
        let t = b"s3cr3t";
        assert!(validate(
            ReceiverType::Gitlab,
            t,
            &[],
            &h(&[("X-Gitlab-Token", "s3cr3t")]),
            b""
        )
        .is_ok());
        assert_eq!(
            validate(
                ReceiverType::Gitlab,
                t,
                &[],
                &h(&[("X-Gitlab-Token", "s3cr3u")]),
                b""
            ),
            Err(Rejected::BadToken)
        );
        assert!(validate(
            ReceiverType::Harbor,
            t,
            &[],
            &h(&[("Authorization", "s3cr3t")]),
            b""
        )
        .is_ok());
        assert_eq!(
            validate(
                ReceiverType::Harbor,
                t,
                &[],
                &h(&[("Authorization", "Bearer s3cr3t")]),
                b""
            ),
            Err(Rejected::BadToken)
        );
        let hub = br#"{"push_data":{"tag":"5.0.3","pusher":"x"},"repository":{"repo_url":"https://hub.docker.com/r/stefanprodan/podinfo","name":"podinfo"}}"#;
        let a = validate(ReceiverType::Dockerhub, t, &[], &h(&[]), hub).unwrap_or_default();
        assert_eq!(a.tag.as_deref(), Some("5.0.3"));
        assert!(matches!(
            validate(ReceiverType::Dockerhub, t, &[], &h(&[]), b"{}"),
            Err(Rejected::BadPayload(_))
        ));
        let quay = br#"{"docker_url":"quay.io/org/app","updated_tags":["1.2.3"]}"#;
        assert_eq!(
            validate(ReceiverType::Quay, t, &[], &h(&[]), quay).map(|a| a.tag),
            Ok(Some("1.2.3".into()))
        );
        let acr = br#"{"action":"push","target":{"repository":"app","tag":"v1"}}"#;
        assert_eq!(
            validate(ReceiverType::Acr, t, &[], &h(&[]), acr).map(|a| (a.event, a.tag)),
            Ok((Some("push".into()), Some("v1".into())))
        );
        assert!(validate(ReceiverType::Generic, t, &[], &h(&[]), b"anything").is_ok());
        assert_eq!(
            validate(ReceiverType::GenericOidc, t, &[], &h(&[]), b""),
            Err(Rejected::Unsupported("generic-oidc without its keys"))
        );
        // Errors never carry the token.
        let e = validate(
            ReceiverType::Gitlab,
            t,
            &[],
            &h(&[("X-Gitlab-Token", "nope")]),
            b"",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(!e.contains("s3cr3t"));
    }

    #[test]
    fn constant_time_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
