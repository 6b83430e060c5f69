//! Resolving `secretRef`s: a Secret manifest in the configuration, or a secrets directory laid
//! out like a mounted Kubernetes Secret volume (`<dir>/<secret-name>/<key>`). The same directory
//! may be systemd's flat `$CREDENTIALS_DIRECTORY`: there a key is the file
//! `<secret-name>.<key>` (`LoadCredential=flux-system.identity:/path`) or `<secret-name>_<key>`
//! (what `LoadCredential=flux-system:/dir` makes of every file in `/dir`).

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

    fn dir_of(&self, name: &str) -> Option<PathBuf> {
        self.dir.map(|d| d.join(name)).filter(|p| p.is_dir())
    }

    /// The flat credential file of `name`'s `key`, if there is one.
    fn flat(&self, name: &str, key: &str) -> Option<PathBuf> {
        let dir = self.dir?;
        ['.', '_']
            .into_iter()
            .map(|sep| dir.join(format!("{name}{sep}{key}")))
            .find(|p| p.is_file())
    }

    /// Whether any flat credential belongs to `name` (then a missing key is just missing).
    fn has_flat(&self, name: &str) -> bool {
        let Some(Ok(entries)) = self.dir.map(std::fs::read_dir) else {
            return false;
        };
        entries.flatten().any(|e| {
            let f = e.file_name();
            let f = f.to_string_lossy();
            f.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('_'))
        })
    }

    /// The value of `key` in Secret `namespace/name`, or None when the Secret exists without it.
    pub fn get(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, SecretError> {
        if !safe_component(name) || !safe_component(key) {
            return Err(SecretError::InvalidPath {
                name: name.to_owned(),
                key: key.to_owned(),
            });
        }
        if let Some(s) = self.manifest(namespace, name) {
            return Ok(s.get(key));
        }
        let file = match self.dir_of(name) {
            Some(dir) => dir.join(key),
            None => match self.flat(name, key) {
                Some(file) => file,
                None if self.has_flat(name) => return Ok(None),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_then_directory() {
        let cfg = crate::load_str(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: regcred, namespace: apps}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{\"auths\":{}}'\n",
            Path::new("s.yaml"),
        );
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("webhook-token")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("webhook-token/token"), "s3cr3t")
            .unwrap_or_else(|e| panic!("{e}"));
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
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("flux-system.identity"), "key")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("regcred_.dockerconfigjson"), "{}")
            .unwrap_or_else(|e| panic!("{e}"));
        let s = Secrets {
            config: &cfg,
            dir: Some(dir.path()),
        };
        assert_eq!(
            s.get("apps", "flux-system", "identity"),
            Ok(Some(b"key".to_vec()))
        );
        assert_eq!(s.get("apps", "flux-system", "known_hosts"), Ok(None));
        assert_eq!(s.docker_config("apps", "regcred"), Ok(b"{}".to_vec()));
        assert!(matches!(
            s.get("apps", "absent", "token"),
            Err(SecretError::NotFound { .. })
        ));
        // A name that is only a prefix of another does not count as present.
        assert!(matches!(
            s.get("apps", "flux", "identity"),
            Err(SecretError::NotFound { .. })
        ));
    }
}
