//! Resolving `secretRef`s: a Secret manifest in the configuration, or a secrets directory. A
//! Secret is only ever looked up in its own namespace:
//!
//! - `<dir>/<namespace>/<secret-name>/<key>`: one mounted Kubernetes Secret volume per Secret,
//!   under its namespace;
//! - `<dir>/<namespace>.<secret-name>.<key>` or `<dir>/<namespace>_<secret-name>_<key>`: systemd's
//!   flat `$CREDENTIALS_DIRECTORY` (`LoadCredential=flux-system.flux-system.identity:/path`, or
//!   `LoadCredential=flux-system_flux-system:/dir` for every file in `/dir`);
//! - the `default` namespace may also drop the namespace: `<dir>/<secret-name>/<key>`,
//!   `<dir>/<secret-name>.<key>`, `<dir>/<secret-name>_<key>`.

use std::path::{Path, PathBuf};

use crate::load::Config;
use crate::object::{Kind, Object};

/// Where Secrets come from.
#[derive(Debug, Clone, Copy)]
pub struct Secrets<'a> {
    pub config: &'a Config,
    pub dir: Option<&'a Path>,
}

/// A secret that could not be read. Never carries a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret '{namespace}/{name}' not found")]
    NotFound { namespace: String, name: String },
    #[error("secret '{namespace}/{name}' has no key '{key}'")]
    MissingKey {
        namespace: String,
        name: String,
        key: String,
    },
    /// The Secret's manifest is there but did not load (e.g. `data.token: is not valid base64`).
    #[error("secret '{namespace}/{name}' is invalid: {message}")]
    Invalid {
        namespace: String,
        name: String,
        message: String,
    },
    #[error("secret '{name}': invalid name or key '{key}'")]
    InvalidPath { name: String, key: String },
    #[error("secret '{name}' key '{key}': {message}")]
    Read {
        name: String,
        key: String,
        message: String,
    },
}

fn safe_component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0')
}

impl Secrets<'_> {
    /// Whether the Secret exists at all (manifest or directory).
    fn manifest(&self, namespace: &str, name: &str) -> Option<&crate::types::Secret> {
        match self
            .config
            .get(Kind::Secret, namespace, name)
            .map(|l| &l.object)
        {
            Some(Object::Secret(s)) => Some(s),
            _ => None,
        }
    }

    /// The prefixes a Secret's files may have in the directory: namespaced always, bare for
    /// the default namespace.
    fn prefixes(namespace: &str, name: &str) -> Vec<(PathBuf, [String; 2])> {
        let mut out = vec![(
            PathBuf::from(namespace).join(name),
            [
                format!("{namespace}.{name}."),
                format!("{namespace}_{name}_"),
            ],
        )];
        if namespace == "default" {
            out.push((
                PathBuf::from(name),
                [format!("{name}."), format!("{name}_")],
            ));
        }
        out
    }

    fn dir_of(&self, namespace: &str, name: &str) -> Option<PathBuf> {
        let dir = self.dir?;
        Self::prefixes(namespace, name)
            .into_iter()
            .map(|(p, _)| dir.join(p))
            .find(|p| p.is_dir())
    }

    /// The flat credential file of the Secret's `key`, if there is one.
    fn flat(&self, namespace: &str, name: &str, key: &str) -> Option<PathBuf> {
        let dir = self.dir?;
        Self::prefixes(namespace, name)
            .into_iter()
            .flat_map(|(_, flat)| flat)
            .map(|prefix| dir.join(format!("{prefix}{key}")))
            .find(|p| p.is_file())
    }

    /// Whether any flat credential belongs to the Secret (then a missing key is just missing).
    fn has_flat(&self, namespace: &str, name: &str) -> bool {
        let Some(Ok(entries)) = self.dir.map(std::fs::read_dir) else {
            return false;
        };
        let prefixes: Vec<String> = Self::prefixes(namespace, name)
            .into_iter()
            .flat_map(|(_, flat)| flat)
            .collect();
        entries.flatten().any(|e| {
            let f = e.file_name();
            let f = f.to_string_lossy();
            prefixes.iter().any(|p| f.starts_with(p.as_str()))
        })
    }

    /// The value of `key` in Secret `namespace/name`, or None when the Secret exists without it.
    pub fn get(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, SecretError> {
        if !safe_component(namespace) || !safe_component(name) || !safe_component(key) {
            return Err(SecretError::InvalidPath {
                name: name.to_owned(),
                key: key.to_owned(),
            });
        }
        if let Some(s) = self.manifest(namespace, name) {
            return Ok(s.get(key));
        }
        if let Some(e) = self
            .config
            .errors
            .iter()
            .find(|e| e.object() == Some((Kind::Secret, namespace, name)))
        {
            // Load errors of Secrets never quote the content (see `load`).
            return Err(SecretError::Invalid {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                message: match &e.field {
                    Some(f) => format!("{f}: {}", e.message),
                    None => e.message.clone(),
                },
            });
        }
        let file = match self.dir_of(namespace, name) {
            Some(dir) => dir.join(key),
            None => match self.flat(namespace, name, key) {
                Some(file) => file,
                None if self.has_flat(namespace, name) => return Ok(None),
                None => {
                    return Err(SecretError::NotFound {
                        namespace: namespace.to_owned(),
                        name: name.to_owned(),
                    })
                }
            },
        };
        match std::fs::read(file) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SecretError::Read {
                name: name.to_owned(),
                key: key.to_owned(),
                message: e.to_string(),
            }),
        }
    }

    /// Like [`get`](Self::get), but a missing key is an error.
    pub fn require(&self, namespace: &str, name: &str, key: &str) -> Result<Vec<u8>, SecretError> {
        self.get(namespace, name, key)?
            .ok_or_else(|| SecretError::MissingKey {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                key: key.to_owned(),
            })
    }

    /// The docker config JSON of an image pull Secret: `.dockerconfigjson`, else the legacy
    /// `.dockercfg`.
    pub fn docker_config(&self, namespace: &str, name: &str) -> Result<Vec<u8>, SecretError> {
        if let Some(v) = self.get(namespace, name, ".dockerconfigjson")? {
            return Ok(v);
        }
        self.get(namespace, name, ".dockercfg")?
            .ok_or_else(|| SecretError::MissingKey {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                key: ".dockerconfigjson".to_owned(),
            })
    }
}

/// The age identities for SOPS-encrypted manifests: every `*.agekey` file of the secrets
/// directory (`<dir>/<secret>/<key>.agekey`, as Flux's `sops-age` Secret holds them, or flat),
/// the file `$SOPS_AGE_KEY_FILE` and the keys in `$SOPS_AGE_KEY`. Returns the keys and the
/// problems found (each names its source, never a key).
pub fn sops_keys(secrets_dir: Option<&Path>) -> (tagpilot_sops::Keys, Vec<String>) {
    let read = |f: &Path| std::fs::read_to_string(f).map_err(|e| format!("cannot read: {e}"));
    // (where from, its text)
    let mut sources: Vec<(String, Result<String, String>)> = Vec::new();
    if let Some(dir) = secrets_dir {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(
                    std::fs::read_dir(&path)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|e| e.path()),
                );
            } else {
                files.push(path);
            }
        }
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "agekey"))
        {
            sources.push((f.display().to_string(), read(f)));
        }
    }
    if let Some(f) = std::env::var_os("SOPS_AGE_KEY_FILE") {
        let f = Path::new(&f);
        sources.push((format!("SOPS_AGE_KEY_FILE {}", f.display()), read(f)));
    }
    if let Ok(text) = std::env::var("SOPS_AGE_KEY") {
        sources.push(("SOPS_AGE_KEY".to_owned(), Ok(text)));
    }
    let mut keys = tagpilot_sops::Keys::default();
    let problems = sources
        .into_iter()
        .filter_map(|(origin, text)| {
            text.and_then(|t| keys.add(&t).map(|_| ()))
                .err()
                .map(|e| format!("{origin}: {e}"))
        })
        .collect();
    (keys, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_manifest_is_not_reported_missing() {
        let cfg = crate::load_str(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: token, namespace: apps}\ndata: {token: 'c2VjcmV0*not-base64'}\n",
            Path::new("s.yaml"),
        );
        let s = Secrets {
            config: &cfg,
            dir: None,
        };
        let e = s.get("apps", "token", "token").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("secret 'apps/token' is invalid: data.token: is not valid base64")
        );
    }

    #[test]
    fn manifest_then_directory() {
        let cfg = crate::load_str(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: regcred, namespace: apps}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{\"auths\":{}}'\n",
            Path::new("s.yaml"),
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("webhook-token")).unwrap();
        std::fs::write(dir.path().join("webhook-token/token"), "s3cr3t").unwrap();
        let s = Secrets {
            config: &cfg,
            dir: Some(dir.path()),
        };
        assert_eq!(
            s.docker_config("apps", "regcred").ok(),
            Some(b"{\"auths\":{}}".to_vec())
        );
        assert_eq!(
            s.require("default", "webhook-token", "token").ok(),
            Some(b"s3cr3t".to_vec())
        );
        assert!(matches!(
            s.require("default", "webhook-token", "nope"),
            Err(SecretError::MissingKey { .. })
        ));
        assert!(matches!(
            s.get("default", "absent", "k"),
            Err(SecretError::NotFound { .. })
        ));
        assert!(matches!(
            s.get("default", "..", "token"),
            Err(SecretError::InvalidPath { .. })
        ));
        assert!(matches!(
            s.get("default", "webhook-token", "../x"),
            Err(SecretError::InvalidPath { .. })
        ));
        // Errors never carry the value.
        let e = s
            .require("default", "webhook-token", "nope")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!e.contains("s3cr3t"));
    }

    #[test]
    fn systemd_flat_credentials() {
        let cfg = crate::load_str("", Path::new("empty.yaml"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("flux-system.identity"), "key").unwrap();
        std::fs::write(dir.path().join("regcred_.dockerconfigjson"), "{}").unwrap();
        let s = Secrets {
            config: &cfg,
            dir: Some(dir.path()),
        };
        assert_eq!(
            s.get("default", "flux-system", "identity"),
            Ok(Some(b"key".to_vec()))
        );
        assert_eq!(s.get("default", "flux-system", "known_hosts"), Ok(None));
        assert_eq!(s.docker_config("default", "regcred"), Ok(b"{}".to_vec()));
        assert!(matches!(
            s.get("default", "absent", "token"),
            Err(SecretError::NotFound { .. })
        ));
        // A name that is only a prefix of another does not count as present.
        assert!(matches!(
            s.get("default", "flux", "identity"),
            Err(SecretError::NotFound { .. })
        ));
        // The bare layout is the default namespace's only.
        assert!(matches!(
            s.get("apps", "flux-system", "identity"),
            Err(SecretError::NotFound { .. })
        ));
    }

    #[test]
    fn a_secret_is_found_only_in_its_own_namespace() {
        let cfg = crate::load_str("", Path::new("empty.yaml"));
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap_or(dir.path())).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("team-a/regcred/.dockerconfigjson", "a");
        write("team-b.token.token", "b");
        write("flux-system_flux-system_identity", "fs");
        write("default/shared/token", "d");
        let s = Secrets {
            config: &cfg,
            dir: Some(dir.path()),
        };
        assert_eq!(s.docker_config("team-a", "regcred"), Ok(b"a".to_vec()));
        assert!(matches!(
            s.docker_config("team-b", "regcred"),
            Err(SecretError::NotFound { .. })
        ));
        assert_eq!(s.get("team-b", "token", "token"), Ok(Some(b"b".to_vec())));
        assert!(matches!(
            s.get("team-a", "token", "token"),
            Err(SecretError::NotFound { .. })
        ));
        assert_eq!(
            s.get("flux-system", "flux-system", "identity"),
            Ok(Some(b"fs".to_vec()))
        );
        assert_eq!(s.get("default", "shared", "token"), Ok(Some(b"d".to_vec())));
        assert!(matches!(
            s.get("team-a", "shared", "token"),
            Err(SecretError::NotFound { .. })
        ));
        assert!(matches!(
            s.get("..", "regcred", "token"),
            Err(SecretError::InvalidPath { .. })
        ));
    }
}
