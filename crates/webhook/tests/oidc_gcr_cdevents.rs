//! The `gcr` receiver's ID-token checks and the `cdevents` receiver, with tokens signed here by a
//! test-only RSA key (tests/data/oidc-test-key.der, PKCS#1 made with `openssl genpkey`; it signs nothing
//! else) and its public half served as a JWKS document.
#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion: a panic with the error

use base64::Engine as _;
use tagpilot_api::ReceiverType;
use tagpilot_webhook::oidc::{key_id, KeySet};
use tagpilot_webhook::{validate, validate_gcr, GcrExpect, Rejected};

const NOW: u64 = 1_800_000_000;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn key() -> ring::signature::RsaKeyPair {
    ring::signature::RsaKeyPair::from_der(include_bytes!("data/oidc-test-key.der")).unwrap()
}

fn jwks(kid: &str) -> Vec<u8> {
    let k = key();
    let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(k.public());
    let (n, e) = (&public.n, &public.e);
    format!(
        r#"{{"keys":[{{"kty":"EC","kid":"ec","crv":"P-256"}},{{"kty":"RSA","alg":"RS256","use":"sig","kid":"{kid}","n":"{}","e":"{}"}}]}}"#,
        b64(n),
        b64(e)
    )
    .into_bytes()
}

fn sign(header: &str, claims: &serde_json::Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let k = key();
    let mut sig = vec![0; k.public().modulus_len()];
    k.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", b64(&sig))
}

fn claims() -> serde_json::Value {
    serde_json::json!({
        "iss": "https://accounts.google.com",
        "aud": "https://hooks.example/hook/abc",
        "email": "pubsub@project.iam.gserviceaccount.com",
        "email_verified": true,
        "iat": NOW - 10,
        "exp": NOW + 3590,
    })
}

fn expect() -> GcrExpect {
    GcrExpect {
        audience: "https://hooks.example/hook/abc".into(),
        email: "pubsub@project.iam.gserviceaccount.com".into(),
    }
}

fn envelope(event: &str) -> Vec<u8> {
    let data = base64::engine::general_purpose::STANDARD.encode(event);
    format!(r#"{{"message":{{"data":"{data}","messageId":"1","publishTime":"2027-01-15T08:00:00Z"}},"subscription":"projects/p/subscriptions/s"}}"#)
        .into_bytes()
}

fn headers(token: &str) -> Vec<(String, String)> {
    vec![("Authorization".into(), format!("Bearer {token}"))]
}

const HEADER: &str = r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#;

#[test]
fn a_valid_pubsub_push_is_accepted() {
    let keys = KeySet::parse(&jwks("k1")).unwrap();
    let token = sign(HEADER, &claims());
    assert_eq!(key_id(&token).as_deref(), Some("k1"));
    let body = envelope(
        r#"{"action":"INSERT","digest":"europe-docker.pkg.dev/p/r/podinfo@sha256:abc","tag":"europe-docker.pkg.dev/p/r/podinfo:5.0.4"}"#,
    );
    let a = validate_gcr(&expect(), &keys, NOW, &headers(&token), &body).unwrap();
    assert_eq!(a.event.as_deref(), Some("INSERT"));
    assert_eq!(
        a.image.as_deref(),
        Some("europe-docker.pkg.dev/p/r/podinfo")
    );
    assert_eq!(a.tag.as_deref(), Some("5.0.4"));
    // The bare issuer spelling and a list audience are Google's too.
    let mut c = claims();
    c["iss"] = "accounts.google.com".into();
    c["aud"] = serde_json::json!(["other", "https://hooks.example/hook/abc"]);
    let token = sign(HEADER, &c);
    assert!(validate_gcr(&expect(), &keys, NOW, &headers(&token), &body).is_ok());
    // The generic entry point cannot check gcr without the key set: it refuses.
    assert_eq!(
        validate(ReceiverType::Gcr, b"token", &[], &headers(&token), &body),
        Err(Rejected::Unsupported("gcr without a key set"))
    );
}

#[test]
fn every_claim_is_checked() {
    let keys = KeySet::parse(&jwks("k1")).unwrap();
    let body = envelope(r#"{"action":"INSERT","tag":"gcr.io/p/podinfo:5.0.4"}"#);
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("iss", "https://evil.example".into(), "unexpected issuer"),
        ("aud", "https://other.example".into(), "unexpected audience"),
        ("email", "someone@else.example".into(), "unexpected email"),
        ("email_verified", false.into(), "email not verified"),
        ("exp", (NOW - 61).into(), "expired"),
        ("iat", (NOW + 3600).into(), "issued in the future"),
    ];
    for (claim, value, why) in cases {
        let mut c = claims();
        c[claim] = value;
        let token = sign(HEADER, &c);
        let e = validate_gcr(&expect(), &keys, NOW, &headers(&token), &body).expect_err(claim);
        assert_eq!(e, Rejected::BadIdToken(why), "{claim}");
        assert!(!e.to_string().contains("someone@else"), "{e}");
    }
}

#[test]
fn forged_and_malformed_tokens_are_refused() {
    let keys = KeySet::parse(&jwks("k1")).unwrap();
    let body = envelope(r#"{"action":"INSERT","tag":"gcr.io/p/podinfo:5.0.4"}"#);
    let check = |h: Vec<(String, String)>| validate_gcr(&expect(), &keys, NOW, &h, &body);
    let good = sign(HEADER, &claims());
    // Claims swapped after signing: the signature no longer matches.
    let mut parts: Vec<&str> = good.split('.').collect();
    let mut c = claims();
    c["email"] = "attacker@example.com".into();
    let forged_claims = b64(c.to_string().as_bytes());
    parts[1] = &forged_claims;
    let tampered = parts.join(".");
    assert_eq!(
        check(headers(&tampered)),
        Err(Rejected::BadIdToken(
            "signature does not verify with the key set"
        ))
    );
    // alg=none, HS256 and unknown kids are not accepted.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(claims().to_string().as_bytes())
    );
    assert_eq!(
        check(headers(&none)),
        Err(Rejected::BadIdToken("algorithm is not RS256"))
    );
    let other_kid = sign(r#"{"alg":"RS256","kid":"k2"}"#, &claims());
    assert!(matches!(
        check(headers(&other_kid)),
        Err(Rejected::BadIdToken(_))
    ));
    assert_eq!(check(vec![]), Err(Rejected::MissingHeader("Authorization")));
    assert_eq!(
        check(vec![("Authorization".into(), format!("Basic {good}"))]),
        Err(Rejected::BadIdToken("expected a Bearer token"))
    );
    assert_eq!(
        check(headers("a.b")),
        Err(Rejected::BadIdToken("not a JWT"))
    );
    // A valid token with a body that is not a Pub/Sub envelope.
    let e = validate_gcr(&expect(), &keys, NOW, &headers(&good), b"{}");
    assert!(matches!(e, Err(Rejected::BadPayload(_))), "{e:?}");
    let bad_data = br#"{"message":{"data":"%%%"}}"#;
    assert_eq!(
        validate_gcr(&expect(), &keys, NOW, &headers(&good), bad_data),
        Err(Rejected::BadPayload("message.data is not base64".into()))
    );
    assert!(KeySet::parse(br#"{"keys":[]}"#).is_err());
    assert!(KeySet::parse(b"not json").is_err());
}

#[test]
fn cdevents_envelopes() {
    let event = |t: &str| {
        format!(
            r#"{{"context":{{"version":"0.4.1","id":"271069a8","source":"/ci","type":"{t}","timestamp":"2026-11-26T15:00:00Z"}},"subject":{{"id":"podinfo","content":{{"artifactId":"pkg:oci/podinfo@sha256:abc"}}}}}}"#
        )
    };
    let t = "dev.cdevents.artifact.published.0.2.0";
    let ce = |v: &str| vec![("Ce-Type".to_owned(), v.to_owned())];
    let ok = validate(
        ReceiverType::Cdevents,
        b"",
        &[],
        &ce(t),
        event(t).as_bytes(),
    )
    .unwrap();
    assert_eq!(ok.event.as_deref(), Some(t));
    // Structured mode without the header; the events filter applies to the type.
    let events = vec![t.to_owned()];
    assert!(validate(
        ReceiverType::Cdevents,
        b"",
        &events,
        &vec![],
        event(t).as_bytes()
    )
    .is_ok());
    let other = "dev.cdevents.pipelinerun.started.0.2.0";
    assert_eq!(
        validate(
            ReceiverType::Cdevents,
            b"",
            &events,
            &ce(other),
            event(other).as_bytes()
        ),
        Err(Rejected::EventNotAccepted(other.into()))
    );
    // Header and body disagree; not a CDEvents type; missing fields.
    assert!(validate(
        ReceiverType::Cdevents,
        b"",
        &[],
        &ce(other),
        event(t).as_bytes()
    )
    .is_err());
    for bad in [
        "dev.cdevents.artifact.published",
        "com.example.push.0.1.0",
        "dev.cdevents.Artifact.published.0.2.0",
    ] {
        let e = validate(
            ReceiverType::Cdevents,
            b"",
            &[],
            &vec![],
            event(bad).as_bytes(),
        );
        assert!(matches!(e, Err(Rejected::BadPayload(_))), "{bad}: {e:?}");
    }
    let no_subject = br#"{"context":{"version":"0.4.1","id":"1","source":"/ci","type":"dev.cdevents.artifact.published.0.2.0","timestamp":"t"}}"#;
    assert!(validate(ReceiverType::Cdevents, b"", &[], &vec![], no_subject).is_err());
}
