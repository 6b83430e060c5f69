//! Daemon settings from `tagpilot.toml`: each key can be overridden by its flag or `TAGPILOT_*`
//! variable (flag > variable > file > default). The file is `--settings FILE` /
//! `$TAGPILOT_SETTINGS` when given (then it must exist), else `./tagpilot.toml` or
//! `/etc/tagpilot/tagpilot.toml` when present. Unknown keys are errors, so a typo never passes
//! silently. `config/tagpilot.toml` documents every key.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Per registry host politeness.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    pub max_concurrent: Option<usize>,
    pub requests_per_second: Option<f64>,
    pub max_attempts: Option<u32>,
}

/// `source`: a GitRepository of the local manifests (`"namespace/name"`), or a table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SourceFile {
    Repository(String),
    Table(SourceTable),
}

/// `[source]`: where the manifests come from in Git.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTable {
    pub url: Option<String>,
    /// Instead of `url`: a GitRepository of the local manifests, `namespace/name`.
    pub repository: Option<String>,
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub semver: Option<String>,
    pub commit: Option<String>,
    pub path: Option<String>,
    pub interval: Option<String>,
    /// Git credentials: a Secret `[namespace/]name` (namespace default flux-system).
    pub secret: Option<String>,
}

/// The file's keys, all optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub config_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub secrets_dir: Option<PathBuf>,
    pub api_address: Option<String>,
    pub api_token_file: Option<PathBuf>,
    pub webhook_address: Option<String>,
    pub webhook_tls_cert: Option<PathBuf>,
    pub webhook_tls_key: Option<PathBuf>,
    pub google_jwks_url: Option<String>,
    pub reload_seconds: Option<u64>,
    pub concurrency: Option<usize>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    #[serde(default)]
    pub registry: RegistryFile,
    pub source: Option<SourceFile>,
}

const DEFAULT_PLACES: [&str; 2] = ["tagpilot.toml", "/etc/tagpilot/tagpilot.toml"];

/// Reads the settings file: `explicit` (must exist), else the first default place present.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<(File, Option<PathBuf>)> {
    let path = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => DEFAULT_PLACES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file()),
    };
    let Some(path) = path else {
        return Ok((File::default(), None));
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading settings {}", path.display()))?;
    let file: File =
        toml::from_str(&text).with_context(|| format!("settings {}", path.display()))?;
    Ok((file, Some(path)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_source_is_a_repository_name_or_a_table() {
        let f: File = toml::from_str("source = \"flux-system/flux-system\"\n").unwrap();
        assert_eq!(
            f.source,
            Some(SourceFile::Repository("flux-system/flux-system".into()))
        );
        let f: File = toml::from_str("[source]\nurl = \"git://h/r\"\nbranch = \"main\"\npath = \"./clusters/my-cluster\"\ninterval = \"1m\"\nsecret = \"flux-system\"\n").unwrap();
        let Some(SourceFile::Table(t)) = f.source else {
            panic!("a table")
        };
        assert_eq!(
            (t.url.as_deref(), t.path.as_deref()),
            (Some("git://h/r"), Some("./clusters/my-cluster"))
        );
        assert!(toml::from_str::<File>("[source]\nurl = \"x\"\nbrnach = \"main\"\n").is_err());
    }

    use super::*;

    #[test]
    fn every_key_parses_and_typos_are_refused() {
        let f: File = toml::from_str(
            r#"
config_dir = "/etc/tagpilot/manifests"
state_dir = "/var/lib/tagpilot"
api_address = "127.0.0.1:9480"
webhook_address = ""
reload_seconds = 5
concurrency = 4
log_format = "json"
log_level = "debug"
[registry]
max_concurrent = 2
requests_per_second = 5.5
max_attempts = 3
"#,
        )
        .unwrap();
        assert_eq!(f.log_format, Some(LogFormat::Json));
        assert_eq!(f.registry.max_concurrent, Some(2));
        assert_eq!(f.webhook_address.as_deref(), Some(""));
        let e = toml::from_str::<File>("api_adress = \"x\"\n").expect_err("typo");
        assert!(e.to_string().contains("api_adress"), "{e}");
        let e = toml::from_str::<File>("log_format = \"xml\"\n").expect_err("bad value");
        assert!(e.to_string().contains("xml"), "{e}");
    }
}
