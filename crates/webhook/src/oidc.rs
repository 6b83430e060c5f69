//! Google-signed OIDC ID tokens, as Pub/Sub push subscriptions send them (the `gcr` receiver):
//! an RS256 JWT checked against a JSON Web Key Set, with issuer, audience, email, email_verified
//! and expiry checked as notification-controller does. The key set is fetched by the caller
//! (its location is configurable); this module only verifies.

use base64::Engine as _;
use serde::Deserialize;

use crate::Rejected;

/// Google's issuers (both spellings appear in ID tokens).
pub const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
/// Clock skew tolerated on `exp`/`iat`/`nbf`.
const LEEWAY: u64 = 60;

/// One RSA key of a JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: String,
    n: Vec<u8>,
    e: Vec<u8>,
}

/// The RSA keys of a JWKS document (other key types are ignored: Google signs with RS256).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet(pub Vec<Jwk>);

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<RawJwk>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: String,
    #[serde(default)]
    n: String,
    #[serde(default)]
    e: String,
    #[serde(default)]
    alg: Option<String>,
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

impl KeySet {
    /// Parses a JWKS document.
    pub fn parse(json: &[u8]) -> Result<KeySet, String> {
        let raw: RawJwks =
            serde_json::from_slice(json).map_err(|e| format!("invalid key set: {e}"))?;
        let keys = raw
            .keys
            .into_iter()
            .filter(|k| k.kty == "RSA" && k.alg.as_deref().is_none_or(|a| a == "RS256"))
            .filter_map(|k| {
                Some(Jwk {
                    kid: k.kid,
                    n: b64url(&k.n)?,
                    e: b64url(&k.e)?,
                })
            })
            .collect::<Vec<_>>();
        if keys.is_empty() {
            return Err("the key set holds no RS256 key".to_owned());
        }
        Ok(KeySet(keys))
    }

    pub fn has(&self, kid: &str) -> bool {
        self.0.iter().any(|k| k.kid == kid)
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: String,
}

/// `aud` is a string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    aud: Audience,
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    email_verified: bool,
}

/// What the token must say.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub issuers: &'a [&'a str],
    pub audience: &'a str,
    /// gcr: the service account the token must be for (with `email_verified`).
    pub email: Option<&'a str>,
}

const fn bad(why: &'static str) -> Rejected {
    Rejected::BadIdToken(why)
}

/// The `kid` in a token's header, to decide whether the key set needs a refresh.
pub fn key_id(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let h: Header = serde_json::from_slice(&b64url(header)?).ok()?;
    Some(h.kid)
}

/// The issuer a token claims, before anything is verified (to pick the provider whose keys
/// must verify it).
pub fn unverified_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss {
        #[serde(default)]
        iss: String,
    }
    let claims = token.split('.').nth(1)?;
    let c: Iss = serde_json::from_slice(&b64url(claims)?).ok()?;
    Some(c.iss).filter(|i| !i.is_empty())
}

/// Verifies `token` against `keys` and `expected` at time `now` (Unix seconds); the token's
/// claims. Errors say what failed, never what the token holds.
pub fn verify(
    token: &str,
    keys: &KeySet,
    expected: &Expected<'_>,
    now: u64,
) -> Result<serde_json::Value, Rejected> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not a JWT"));
    };
    let header: Header = b64url(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(bad("unreadable header"))?;
    if header.alg != "RS256" {
        return Err(bad("algorithm is not RS256"));
    }
    let signature = b64url(s).ok_or(bad("unreadable signature"))?;
    let signed = &token.as_bytes()[..h.len() + 1 + c.len()];
    // A token without kid is tried against every key.
    let verified = keys
        .0
        .iter()
        .filter(|k| header.kid.is_empty() || k.kid == header.kid)
        .any(|k| {
            ring::signature::RsaPublicKeyComponents { n: &k.n, e: &k.e }
                .verify(
                    &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                    signed,
                    &signature,
                )
                .is_ok()
        });
    if !verified {
        return Err(bad("signature does not verify with the key set"));
    }
    let claims: Claims = b64url(c)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(bad("unreadable claims"))?;
    if !expected.issuers.contains(&claims.iss.as_str()) {
        return Err(bad("unexpected issuer"));
    }
    let audience_ok = match &claims.aud {
        Audience::One(a) => a == expected.audience,
        Audience::Many(list) => list.iter().any(|a| a == expected.audience),
    };
    if !audience_ok {
        return Err(bad("unexpected audience"));
    }
    if claims.exp + LEEWAY < now {
        return Err(bad("expired"));
    }
    if claims.iat.or(claims.nbf).is_some_and(|t| t > now + LEEWAY) {
        return Err(bad("issued in the future"));
    }
    if let Some(email) = expected.email {
        if !crate::constant_time_eq(claims.email.as_bytes(), email.as_bytes()) {
            return Err(bad("unexpected email"));
        }
        if !claims.email_verified {
            return Err(bad("email not verified"));
        }
    }
    b64url(c)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(bad("unreadable claims"))
}
