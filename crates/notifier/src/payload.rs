//! The HTTP request each Provider type sends for an event (Flux notification-controller's
//! `generic`, `generic-hmac` and `slack` notifiers):
//!
//! - generic: the event as JSON, `Content-Type: application/json`, `gotk-component: <controller>`
//!   and the headers of the Secret's `headers` key.
//! - generic-hmac: the same plus `X-Signature: sha256=<hex HMAC-SHA256(token, body)>` — what a Flux
//!   Receiver of type generic-hmac verifies, so a push can make Flux fetch the commit at once.
//! - slack: an incoming-webhook message with one attachment (green for info, red for errors),
//!   author `kind/name.namespace`, the message, and the metadata as fields; with a token, it is
//!   sent as a bearer token (Slack's chat.postMessage API).

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use serde::Serialize;
use tagpilot_api::AlertProviderType;

use crate::event::{Event, Severity};

/// Where and how to send, resolved from a Provider and its Secret. Holds secrets: its `Debug`
/// shows only the type and the address's origin.
#[derive(Clone)]
pub struct Target {
    pub provider_type: AlertProviderType,
    pub address: String,
    pub token: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub channel: Option<String>,
    pub username: Option<String>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("provider_type", &self.provider_type)
            .field("address", &origin(&self.address))
            .finish_non_exhaustive()
    }
}

/// A request ready to send. Its `Debug` hides the URL's path and every header value.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("url", &origin(&self.url))
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// `scheme://host[:port]` of an address, the only part of it that may be shown: Slack-style
/// webhook URLs carry their secret in the path.
pub fn origin(address: &str) -> String {
    match reqwest::Url::parse(address) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "<invalid address>".to_owned(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("generic-hmac needs the HMAC key in the Secret's 'token' key")]
    MissingHmacKey,
    #[error("the Secret's 'headers' key is not a YAML map of strings")]
    BadHeaders,
    #[error("invalid header name '{0}' in the Secret's 'headers' key")]
    BadHeaderName(String),
    #[error("the address is not an http(s) URL")]
    BadAddress,
}

/// Parses a Secret's `headers` value (a YAML map). Never quotes the value in an error.
pub fn parse_headers(yaml: &str) -> Result<BTreeMap<String, String>, PayloadError> {
    if yaml.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let map: BTreeMap<String, String> =
        tagpilot_yaml::from_str(yaml).map_err(|_| PayloadError::BadHeaders)?;
    for name in map.keys() {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(PayloadError::BadHeaderName(name.clone()));
        }
    }
    Ok(map)
}

#[derive(Serialize)]
struct SlackPayload<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    username: &'a str,
    attachments: [SlackAttachment<'a>; 1],
}

#[derive(Serialize)]
struct SlackAttachment<'a> {
    color: &'a str,
    author_name: String,
    text: &'a str,
    mrkdwn_in: [&'a str; 1],
    fields: Vec<SlackField<'a>>,
}

#[derive(Serialize)]
struct SlackField<'a> {
    title: &'a str,
    value: &'a str,
    short: bool,
}

/// Hex HMAC-SHA256 of `body` keyed by `key`.
pub fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The request `target` sends for `event`.
pub fn build_request(target: &Target, event: &Event) -> Result<Request, PayloadError> {
    if reqwest::Url::parse(&target.address)
        .map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
    {
        return Err(PayloadError::BadAddress);
    }
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    let body = match target.provider_type {
        AlertProviderType::Generic | AlertProviderType::GenericHmac => {
            headers.push((
                "gotk-component".to_owned(),
                event.reporting_controller.clone(),
            ));
            // Serialising a struct of strings and maps cannot fail.
            serde_json::to_vec(event).unwrap_or_default()
        }
        AlertProviderType::Slack => {
            if let Some(token) = &target.token {
                headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
            }
            let o = &event.involved_object;
            let payload = SlackPayload {
                channel: target.channel.as_deref(),
                username: target
                    .username
                    .as_deref()
                    .unwrap_or(&event.reporting_controller),
                attachments: [SlackAttachment {
                    color: match event.severity {
                        Severity::Info => "good",
                        Severity::Error => "danger",
                    },
                    author_name: format!("{}/{}.{}", o.kind.to_lowercase(), o.name, o.namespace),
                    text: &event.message,
                    mrkdwn_in: ["text"],
                    fields: event
                        .metadata
                        .iter()
                        .map(|(k, v)| SlackField {
                            title: k,
                            value: v,
                            short: false,
                        })
                        .collect(),
                }],
            };
            serde_json::to_vec(&payload).unwrap_or_default()
        }
    };
    if target.provider_type == AlertProviderType::GenericHmac {
        let key = target
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or(PayloadError::MissingHmacKey)?;
        headers.push((
            "X-Signature".to_owned(),
            format!("sha256={}", hmac_sha256_hex(key.as_bytes(), &body)),
        ));
    }
    // The user's headers last, as Flux applies them after its own.
    for (k, v) in &target.headers {
        headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
        headers.push((k.clone(), v.clone()));
    }
    Ok(Request {
        url: target.address.clone(),
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::InvolvedObject;

    fn event(severity: Severity) -> Event {
        Event {
            involved_object: InvolvedObject {
                kind: "ImageUpdateAutomation".into(),
                namespace: "flux-system".into(),
                name: "flux-system".into(),
                api_version: "image.toolkit.fluxcd.io/v1".into(),
            },
            severity,
            timestamp: "2026-11-26T15:00:00Z".into(),
            message: "pushed commit 'abc' to branch 'main'".into(),
            reason: "Succeeded".into(),
            metadata: BTreeMap::from([("revision".into(), "main@sha1:abc".into())]),
            reporting_controller: "image-automation-controller".into(),
            reporting_instance: "tagpilot".into(),
        }
    }

    fn target(t: AlertProviderType, token: Option<&str>) -> Target {
        Target {
            provider_type: t,
            address: "http://127.0.0.1:9/hook/secret-path".into(),
            token: token.map(str::to_owned),
            headers: BTreeMap::new(),
            channel: None,
            username: None,
        }
    }

    fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn generic_posts_flux_event_json() {
        let r = build_request(
            &target(AlertProviderType::Generic, None),
            &event(Severity::Info),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["involvedObject"]["kind"], "ImageUpdateAutomation");
        assert_eq!(v["involvedObject"]["namespace"], "flux-system");
        assert_eq!(v["severity"], "info");
        assert_eq!(v["reason"], "Succeeded");
        assert_eq!(v["metadata"]["revision"], "main@sha1:abc");
        assert_eq!(v["reportingController"], "image-automation-controller");
        assert_eq!(
            header(&r, "gotk-component"),
            Some("image-automation-controller")
        );
        assert_eq!(header(&r, "content-type"), Some("application/json"));
        assert_eq!(header(&r, "x-signature"), None);
    }

    #[test]
    fn generic_hmac_signs_the_exact_body() {
        let r = build_request(
            &target(AlertProviderType::GenericHmac, Some("token")),
            &event(Severity::Info),
        )
        .unwrap();
        let sig = header(&r, "X-Signature").unwrap_or_default();
        assert_eq!(
            sig,
            format!("sha256={}", hmac_sha256_hex(b"token", &r.body))
        );
        // RFC 4231 test case 2 pins the HMAC itself.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            build_request(
                &target(AlertProviderType::GenericHmac, None),
                &event(Severity::Info)
            ),
            Err(PayloadError::MissingHmacKey)
        );
    }

    #[test]
    fn slack_message_shape() {
        let mut t = target(AlertProviderType::Slack, None);
        t.channel = Some("#deploys".into());
        let r = build_request(&t, &event(Severity::Error)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["channel"], "#deploys");
        assert_eq!(v["username"], "image-automation-controller");
        let a = &v["attachments"][0];
        assert_eq!(a["color"], "danger");
        assert_eq!(
            a["author_name"],
            "imageupdateautomation/flux-system.flux-system"
        );
        assert_eq!(a["text"], "pushed commit 'abc' to branch 'main'");
        assert_eq!(a["fields"][0]["title"], "revision");
        assert_eq!(a["fields"][0]["value"], "main@sha1:abc");
        assert_eq!(header(&r, "authorization"), None);
        t.token = Some("xoxb-1".into());
        let r = build_request(&t, &event(Severity::Info)).unwrap();
        assert_eq!(header(&r, "authorization"), Some("Bearer xoxb-1"));
    }

    #[test]
    fn secret_headers_apply_last_and_errors_hide_values() {
        let h = parse_headers("Authorization: Bearer s3cr3t\nX-Team: a\n").unwrap();
        let mut t = target(AlertProviderType::Generic, None);
        t.headers = h;
        let r = build_request(&t, &event(Severity::Info)).unwrap();
        assert_eq!(header(&r, "authorization"), Some("Bearer s3cr3t"));
        assert_eq!(header(&r, "x-team"), Some("a"));
        let shown = format!("{r:?} {t:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("secret-path"),
            "{shown}"
        );

        let e = parse_headers("- s3cr3t\n").expect_err("a list is not a map");
        assert!(!e.to_string().contains("s3cr3t"));
        assert_eq!(
            parse_headers("bad name: x\n"),
            Err(PayloadError::BadHeaderName("bad name".into()))
        );
        assert_eq!(
            origin("https://hooks.slack.com/services/T0/B0/XXXX"),
            "https://hooks.slack.com"
        );
    }
}
