//! Registry credentials: docker config JSON (`.dockerconfigjson`, legacy `.dockercfg`),
//! credential helpers, and `WWW-Authenticate` challenges.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::Deserialize;

use crate::error::RegistryError;

/// Credentials for one registry. `Debug` never prints secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token realm.
    IdentityToken {
        username: String,
        token: String,
    },
    /// A ready bearer token (registry token given directly).
    Bearer(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::IdentityToken { username, .. } => {
                write!(f, "IdentityToken({username}, ***)")
            }
            Credentials::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

/// A parsed docker config: `auths`, `credHelpers`, `credsStore`.
#[derive(Default)]
pub struct DockerConfig {
    auths: BTreeMap<String, AuthEntry>,
    cred_helpers: BTreeMap<String, String>,
    creds_store: Option<String>,
}

// By hand: only the hosts and helper names, never a credential.
impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfig")
            .field("auths", &self.auths.keys().collect::<Vec<_>>())
            .field("cred_helpers", &self.cred_helpers)
            .field("creds_store", &self.creds_store)
            .finish()
    }
}

/// A JSON error about credentials, without the content: serde's own message quotes the
/// offending value (`invalid type: string "dXNlcjpwYXNz…"`), which is the secret itself. Only
/// the position and what was expected (a type description from the code) are kept.
fn shape_error(what: &str, e: &serde_json::Error) -> RegistryError {
    use serde_json::error::Category;
    let at = format!("line {} column {}", e.line(), e.column());
    let message = match e.classify() {
        Category::Syntax | Category::Eof => format!("{what} is not valid JSON ({at})"),
        Category::Io => format!("{what} cannot be read"),
        Category::Data => {
            let text = e.to_string();
            match text.rsplit_once(", expected ") {
                Some((_, expected)) => {
                    let expected = expected.split(" at line ").next().unwrap_or(expected);
                    format!("invalid {what} at {at}: expected {expected}")
                }
                None => format!("invalid {what} at {at}: unexpected value"),
            }
        }
    };
    RegistryError::Config(message)
}

/// The registry host a config key names: `https://index.docker.io/v1/` → `index.docker.io`.
fn normalize_host(key: &str) -> String {
    let host = key.split_once("://").map_or(key, |(_, rest)| rest);
    let host = host.split('/').next().unwrap_or(host);
    match host {
        // Old docker logins keyed Docker Hub by this name too; image names never use it.
        "registry.hub.docker.com" => crate::name::DOCKER_HUB.to_owned(),
        h => tagpilot_reference::canonical_host(Some(h)).to_owned(),
    }
}

impl DockerConfig {
    /// Parses `config.json` / `.dockerconfigjson` (`{"auths": …}`) or a legacy `.dockercfg`
    /// (the auths map at the top level).
    pub fn parse(json: &[u8]) -> Result<Self, RegistryError> {
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| shape_error("docker config", &e))?;
        let modern = value.get("auths").is_some()
            || value.get("credHelpers").is_some()
            || value.get("credsStore").is_some();
        // From the bytes, not the value: its errors have a line and a column to point at.
        let file: ConfigFile = if modern {
            serde_json::from_slice(json).map_err(|e| shape_error("docker config", &e))?
        } else {
            let auths: BTreeMap<String, AuthEntry> =
                serde_json::from_slice(json).map_err(|e| shape_error("legacy .dockercfg", &e))?;
            ConfigFile {
                auths,
                ..Default::default()
            }
        };
        Ok(DockerConfig {
            auths: file
                .auths
                .into_iter()
                .map(|(k, v)| (normalize_host(&k), v))
                .collect(),
            cred_helpers: file
                .cred_helpers
                .into_iter()
                .map(|(k, v)| (normalize_host(&k), v))
                .collect(),
            creds_store: file.creds_store.filter(|s| !s.is_empty()),
        })
    }

    /// Credentials for `host`: a per-host helper first, then `auths`, then the default store.
    pub async fn credentials_for(&self, host: &str) -> Result<Option<Credentials>, RegistryError> {
        let host = normalize_host(host);
        if let Some(helper) = self.cred_helpers.get(&host) {
            return run_helper(helper, &host).await;
        }
        if let Some(entry) = self.auths.get(&host) {
            return entry_credentials(entry, &host).map(Some);
        }
        if let Some(store) = &self.creds_store {
            return run_helper(store, &host).await;
        }
        Ok(None)
    }
}

fn entry_credentials(e: &AuthEntry, host: &str) -> Result<Credentials, RegistryError> {
    if let Some(t) = e.registrytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Credentials::Bearer(t.clone()));
    }
    let (mut username, mut password) = (
        e.username.clone().unwrap_or_default(),
        e.password.clone().unwrap_or_default(),
    );
    if let Some(auth) = e.auth.as_ref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| RegistryError::Config(format!("auth for {host} is not valid base64")))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| RegistryError::Config(format!("auth for {host} is not UTF-8")))?;
        let (u, p) = decoded.split_once(':').ok_or_else(|| {
            RegistryError::Config(format!("auth for {host} is not 'user:password'"))
        })?;
        username = u.to_owned();
        password = p.to_owned();
    }
    if let Some(t) = e.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Credentials::IdentityToken {
            username,
            token: t.clone(),
        });
    }
    Ok(Credentials::Basic { username, password })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperReply {
    username: String,
    secret: String,
}

/// `docker-credential-<name> get` with the host on stdin.
async fn run_helper(name: &str, host: &str) -> Result<Option<Credentials>, RegistryError> {
    use tokio::io::AsyncWriteExt as _;
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(RegistryError::Config(format!(
            "invalid credential helper name '{name}'"
        )));
    }
    let program = format!("docker-credential-{name}");
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| RegistryError::Config(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(host.as_bytes())
            .await
            .map_err(|e| RegistryError::Config(format!("{program}: {e}")))?;
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| RegistryError::Config(format!("{program} timed out")))?
        .map_err(|e| RegistryError::Config(format!("{program}: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout);
        if msg.contains("credentials not found") {
            return Ok(None);
        }
        return Err(RegistryError::Config(format!(
            "{program} failed for {host} (exit {})",
            out.status.code().unwrap_or(-1)
        )));
    }
    let reply: HelperReply = serde_json::from_slice(&out.stdout)
        .map_err(|e| RegistryError::Config(format!("{program} returned invalid JSON: {e}")))?;
    Ok(Some(if reply.username == "<token>" {
        Credentials::IdentityToken {
            username: String::new(),
            token: reply.secret,
        }
    } else {
        Credentials::Basic {
            username: reply.username,
            password: reply.secret,
        }
    }))
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `key="value", key=value` pairs; quoted values may contain commas.
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        let key = s[key_start..i].trim().to_ascii_lowercase();
        i += 1;
        let mut value = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                value.push(b[i] as char);
                i += 1;
            }
            i += 1;
        } else {
            let start = i.min(b.len());
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            value = s[start..i.min(b.len())].trim().to_owned();
        }
        if !key.is_empty() {
            out.insert(key, value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_configs_never_quote_credentials() {
        let planted = "dXNlcjpQbGFudGVkU2VjcmV0OTE3";
        for (json, want) in [
            (
                format!(r#"{{"auths": "{planted}"}}"#),
                "invalid docker config at line 1 column 40: expected a map",
            ),
            (
                format!(r#"{{"auths": {{"h": {{"auth": ["{planted}"]}}}}}}"#),
                "invalid docker config at line 1 column 25: expected a string",
            ),
            (
                format!(r#"{{"h": "{planted}"}}"#),
                "invalid legacy .dockercfg at line 1 column 36: expected struct AuthEntry",
            ),
            (
                format!(r#"{{"auths": {{"h": "{planted}"#),
                "docker config is not valid JSON (line 1 column 45)",
            ),
        ] {
            let e = DockerConfig::parse(json.as_bytes())
                .err()
                .map(|e| e.to_string());
            let e = e.unwrap_or_default();
            assert!(!e.contains(planted) && !e.contains("PlantedSecret"), "{e}");
            assert!(e.ends_with(want), "{e}");
        }
    }

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="http://127.0.0.1:5004/token",service="test-registry",scope="repository:app:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:5004/token".into(),
                service: Some("test-registry".into()),
                scope: Some("repository:app:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[tokio::test]
    async fn docker_config_forms() {
        let cfg = DockerConfig::parse(br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"ghcr.io":{"username":"u","password":"p"},"quay.io":{"identitytoken":"tok"}}}"#)
            .unwrap();
        assert_eq!(
            cfg.credentials_for("index.docker.io").await.ok().flatten(),
            Some(Credentials::Basic {
                username: "user".into(),
                password: "pass".into()
            })
        );
        assert_eq!(
            cfg.credentials_for("ghcr.io").await.ok().flatten(),
            Some(Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert!(matches!(
            cfg.credentials_for("quay.io").await,
            Ok(Some(Credentials::IdentityToken { .. }))
        ));
        assert_eq!(cfg.credentials_for("other.io").await.ok().flatten(), None);
        let legacy = DockerConfig::parse(
            br#"{"127.0.0.1:5443":{"auth":"dGVzdHVzZXI6dGVzdHBhc3M=","email":"x@y"}}"#,
        )
        .unwrap();
        assert_eq!(
            legacy
                .credentials_for("127.0.0.1:5443")
                .await
                .ok()
                .flatten(),
            Some(Credentials::Basic {
                username: "testuser".into(),
                password: "testpass".into()
            })
        );
        assert!(DockerConfig::parse(b"not json").is_err());
        let bad = DockerConfig::parse(br#"{"auths":{"x.io":{"auth":"!!"}}}"#).unwrap();
        assert!(bad.credentials_for("x.io").await.is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: "s3cr3t".into(),
        };
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
