//! The daemon's settings, one layered struct: [`Settings`] is at once the flags (with their
//! `TAGPILOT_*` variables, clap's layer) and the keys of `tagpilot.toml` (serde's), so a setting
//! is declared once. The layers merge generically (flag > variable > file), then
//! [`Settings::resolve`] applies the defaults and checks. The file is `--settings FILE` /
//! `$TAGPILOT_SETTINGS` when given (then it must exist), else `./tagpilot.toml` or
//! `/etc/tagpilot/tagpilot.toml` when present. Unknown keys are errors, so a typo never passes
//! silently. `config/tagpilot.toml` documents every key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tagpilot_actors::source::{SourceRef, SourceSetting, SourceSpec};
use tagpilot_registry::Limits;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[registry]`: per registry host politeness.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// Requests in flight per registry host. [default: 8]
    #[arg(
        id = "registry_max_concurrent",
        long = "registry-max-concurrent",
        env = "TAGPILOT_REGISTRY_MAX_CONCURRENT"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<usize>,
    /// A hard cap on requests started per second per registry host. [default: 0: none; the
    /// rate adapts to 429/503 and rate-limit headers, public registries keep 10-20/s]
    #[arg(
        id = "registry_requests_per_second",
        long = "registry-requests-per-second",
        env = "TAGPILOT_REGISTRY_REQUESTS_PER_SECOND"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
    /// Attempts per registry request on 429, 5xx and network errors. [default: 5]
    #[arg(
        id = "registry_max_attempts",
        long = "registry-max-attempts",
        env = "TAGPILOT_REGISTRY_MAX_ATTEMPTS"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

/// `[source]` (or `source = "namespace/name"`): where the manifests come from in Git.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    /// Read the manifests from this Git remote (ssh, https, git, file) instead of only --config.
    #[arg(id = "source_url", long = "source-url", env = "TAGPILOT_SOURCE_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Read the manifests from the remote of this GitRepository (`namespace/name`) of --config.
    #[arg(
        id = "source_repository",
        long = "source-repository",
        env = "TAGPILOT_SOURCE_REPOSITORY",
        conflicts_with = "source_url"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The source's branch. [default: master, as Flux]
    #[arg(
        id = "source_branch",
        long = "source-branch",
        env = "TAGPILOT_SOURCE_BRANCH"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The source's tag.
    #[arg(id = "source_tag", long = "source-tag", env = "TAGPILOT_SOURCE_TAG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The source's semver range over tags.
    #[arg(
        id = "source_semver",
        long = "source-semver",
        env = "TAGPILOT_SOURCE_SEMVER"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    /// The source's commit.
    #[arg(
        id = "source_commit",
        long = "source-commit",
        env = "TAGPILOT_SOURCE_COMMIT"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Where the manifests are in the source (recursive). [default: the root]
    #[arg(id = "source_path", long = "source-path", env = "TAGPILOT_SOURCE_PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How often the daemon fetches the source (Go duration). [default: 1m]
    #[arg(
        id = "source_interval",
        long = "source-interval",
        env = "TAGPILOT_SOURCE_INTERVAL"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// The Secret with the source's Git credentials, `[namespace/]name` (namespace
    /// flux-system by default), from --secrets-dir or --config.
    #[arg(
        id = "source_secret",
        long = "source-secret",
        env = "TAGPILOT_SOURCE_SECRET"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `source = "namespace/name"` is short for `[source] repository = "namespace/name"`. A
/// visitor rather than an untagged enum, so that a typo in the table keeps its own message.
fn source_or_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SourceSettings, D::Error> {
    struct Form;
    impl<'de> serde::de::Visitor<'de> for Form {
        type Value = SourceSettings;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a GitRepository `namespace/name` or a [source] table")
        }
        fn visit_str<E: serde::de::Error>(self, r: &str) -> Result<SourceSettings, E> {
            Ok(SourceSettings {
                repository: Some(r.to_owned()),
                ..SourceSettings::default()
            })
        }
        fn visit_map<M: serde::de::MapAccess<'de>>(self, m: M) -> Result<SourceSettings, M::Error> {
            SourceSettings::deserialize(serde::de::value::MapAccessDeserializer::new(m))
        }
    }
    d.deserialize_any(Form)
}

/// Every setting, all optional: a layer. Flags and variables fill one, the file another.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Daemon: where the HTTP API listens (health, readiness, metrics, status JSON).
    /// [default: 127.0.0.1:9480]
    #[arg(long, env = "TAGPILOT_API_ADDRESS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_address: Option<String>,
    /// Daemon: a file holding a token the API's controls (suspend, resume, reconcile) require
    /// as `Authorization: Bearer <token>`.
    #[arg(long, env = "TAGPILOT_API_TOKEN_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_token_file: Option<PathBuf>,
    /// Daemon: where the webhook receiver server listens (`host:port`; empty: no server).
    /// [default: 127.0.0.1:9292]
    #[arg(long, env = "TAGPILOT_WEBHOOK_ADDRESS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_address: Option<String>,
    /// Daemon: serve webhooks over HTTPS with this PEM certificate chain (with
    /// --webhook-tls-key).
    #[arg(long, env = "TAGPILOT_WEBHOOK_TLS_CERT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_tls_cert: Option<PathBuf>,
    /// Daemon: the PEM private key of --webhook-tls-cert.
    #[arg(long, env = "TAGPILOT_WEBHOOK_TLS_KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_tls_key: Option<PathBuf>,
    /// Daemon: where `gcr` receivers fetch the keys that sign Google's OIDC tokens (a JWKS
    /// document). Default: Google's own.
    #[arg(long, env = "TAGPILOT_GOOGLE_JWKS_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub google_jwks_url: Option<String>,
    /// Daemon: how often the configuration directory is checked for changes, in seconds.
    /// [default: 2]
    #[arg(long, env = "TAGPILOT_RELOAD_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reload_seconds: Option<u64>,
    /// Scans running at once across all registries. [default: 16]
    #[arg(long, env = "TAGPILOT_CONCURRENCY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Directory of Flux manifests (with a Git source: the local overlay). [default: config;
    /// with a source: <state-dir>/local]
    #[arg(id = "config", long = "config", env = "TAGPILOT_CONFIG_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_dir: Option<PathBuf>,
    /// State directory: the store and the warm Git clones. [default: .tagpilot]
    #[arg(long, env = "TAGPILOT_STATE_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Secrets laid out as `<dir>/<secret-name>/<key>` (also `$CREDENTIALS_DIRECTORY`).
    #[arg(long, env = "TAGPILOT_SECRETS_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets_dir: Option<PathBuf>,
    /// Daemon log format. [default: text]
    #[arg(long, env = "TAGPILOT_LOG_FORMAT", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Daemon log level or filter (`RUST_LOG` wins). [default: info]
    #[arg(long, env = "TAGPILOT_LOG_LEVEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    #[command(flatten)]
    #[serde(default)]
    pub registry: RegistrySettings,
    #[command(flatten)]
    #[serde(default, deserialize_with = "source_or_name")]
    pub source: SourceSettings,
}

/// Where the daemon's logs go and how much.
#[derive(Debug, Clone, PartialEq)]
pub struct Logging {
    pub format: LogFormat,
    pub level: String,
}

const DEFAULT_PLACES: [&str; 2] = ["tagpilot.toml", "/etc/tagpilot/tagpilot.toml"];

/// Reads the settings file: `explicit` (must exist), else the first default place present.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<(Settings, Option<PathBuf>)> {
    let path = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => DEFAULT_PLACES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file()),
    };
    let Some(path) = path else {
        return Ok((Settings::default(), None));
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading settings {}", path.display()))?;
    let file: Settings =
        toml::from_str(&text).with_context(|| format!("settings {}", path.display()))?;
    Ok((file, Some(path)))
}

/// Lays `over` on `under`: a key `over` sets wins, tables merge key by key.
fn overlay(under: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (under.get_mut(&key), value) {
            (Some(toml::Value::Table(u)), toml::Value::Table(o)) => overlay(u, o),
            (_, value) => {
                under.insert(key, value);
            }
        }
    }
}

/// `[namespace/]name` → (namespace, name).
fn ns_name(s: &str, default_ns: &str) -> (String, String) {
    match s.split_once('/') {
        Some((ns, n)) => (ns.to_owned(), n.to_owned()),
        None => (default_ns.to_owned(), s.to_owned()),
    }
}

impl Settings {
    /// These settings (flags and variables) over `file`'s.
    pub fn over(self, mut file: Settings) -> anyhow::Result<Settings> {
        // A flag naming the remote replaces the file's remote altogether.
        if self.source.url.is_some() || self.source.repository.is_some() {
            file.source.url = None;
            file.source.repository = None;
        }
        let mut merged = toml::Table::try_from(&file).context("settings file")?;
        overlay(
            &mut merged,
            toml::Table::try_from(&self).context("flags and variables")?,
        );
        merged
            .try_into()
            .context("merging flags and variables over the settings file")
    }

    /// The settings in force: each value set, else its default; checked.
    pub fn resolve(self) -> anyhow::Result<(tagpilot_actors::daemon::Settings, Logging)> {
        let source = self.source.resolve()?;
        let webhook_tls = match (self.webhook_tls_cert, self.webhook_tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => anyhow::bail!("--webhook-tls-cert and --webhook-tls-key go together"),
        };
        let state_dir = self.state_dir.unwrap_or_else(|| ".tagpilot".into());
        let d = Limits::default();
        let address = |a: Option<String>, default: &str| {
            let a = a.unwrap_or_else(|| default.to_owned());
            (!a.is_empty()).then_some(a)
        };
        let daemon = tagpilot_actors::daemon::Settings {
            // With a Git source and no directory named, the local overlay is `<state>/local`
            // (used when it exists), never a `config` directory that happens to be in the way.
            config_dir: self.config_dir.unwrap_or_else(|| {
                if source.is_some() {
                    state_dir.join("local")
                } else {
                    "config".into()
                }
            }),
            state_dir,
            secrets_dir: self
                .secrets_dir
                .or_else(|| std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from)),
            reload_every: Duration::from_secs(self.reload_seconds.unwrap_or(2).max(1)),
            api_address: address(self.api_address, "127.0.0.1:9480"),
            webhook_address: address(self.webhook_address, "127.0.0.1:9292"),
            google_jwks_url: self.google_jwks_url,
            webhook_tls,
            limits: Limits {
                max_concurrent: self
                    .registry
                    .max_concurrent
                    .unwrap_or(d.max_concurrent)
                    .max(1),
                requests_per_second: self
                    .registry
                    .requests_per_second
                    .unwrap_or(d.requests_per_second)
                    .max(0.0),
                max_attempts: self.registry.max_attempts.unwrap_or(d.max_attempts).max(1),
                ..d
            },
            concurrency: self
                .concurrency
                .unwrap_or(tagpilot_actors::DEFAULT_CONCURRENCY)
                .max(1),
            api_token: self.api_token_file.as_deref().map(read_token).transpose()?,
            source,
        };
        let logging = Logging {
            format: self.log_format.unwrap_or(LogFormat::Text),
            level: self.log_level.unwrap_or_else(|| "info".into()),
        };
        Ok((daemon, logging))
    }
}

fn read_token(path: &Path) -> anyhow::Result<Vec<u8>> {
    let t =
        std::fs::read(path).with_context(|| format!("reading the API token {}", path.display()))?;
    let t = String::from_utf8_lossy(&t).trim().as_bytes().to_vec();
    anyhow::ensure!(
        !t.is_empty(),
        "the API token file {} is empty",
        path.display()
    );
    Ok(t)
}

impl SourceSettings {
    /// The Git source in force, if any.
    fn resolve(self) -> anyhow::Result<Option<SourceSetting>> {
        let path = self.path.unwrap_or_else(|| ".".into());
        tagpilot_api::check_update_path(&path).map_err(|e| anyhow::anyhow!("source path: {e}"))?;
        match (self.url, self.repository) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) => {
                anyhow::bail!("source: give either url or repository, not both")
            }
            (None, Some(r)) => {
                anyhow::ensure!(
                    self.branch.is_none() && self.tag.is_none() && self.semver.is_none() && self.commit.is_none() && self.interval.is_none() && self.secret.is_none(),
                    "source: with a repository, its GitRepository gives the ref, interval and secret; only path may be set"
                );
                let (namespace, name) = ns_name(&r, "flux-system");
                Ok(Some(SourceSetting::Repository(SourceRef {
                    namespace,
                    name,
                    path,
                })))
            }
            (Some(url), None) => {
                let interval = match self.interval {
                    Some(i) => tagpilot_api::GoDuration::parse(&i)
                        .map_err(|e| anyhow::anyhow!("source interval: {e}"))?
                        .as_duration(),
                    None => Duration::from_secs(60),
                };
                anyhow::ensure!(
                    interval >= tagpilot_api::MIN_INTERVAL,
                    "source interval: must be at least 1s"
                );
                Ok(Some(SourceSetting::Spec(SourceSpec {
                    url,
                    checkout: tagpilot_git::CheckoutRef::from_fields(
                        self.branch.as_deref(),
                        self.tag.as_deref(),
                        self.semver.as_deref(),
                        None,
                        self.commit.as_deref(),
                    ),
                    path,
                    interval,
                    secret: self.secret.map(|s| ns_name(&s, "flux-system")),
                    repository: None,
                })))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_source_is_a_repository_name_or_a_table() {
        let f: Settings = toml::from_str("source = \"flux-system/flux-system\"\n").unwrap();
        assert_eq!(
            f.source.repository.as_deref(),
            Some("flux-system/flux-system")
        );
        let f: Settings = toml::from_str("[source]\nurl = \"git://h/r\"\nbranch = \"main\"\npath = \"./clusters/my-cluster\"\ninterval = \"1m\"\nsecret = \"flux-system\"\n").unwrap();
        assert_eq!(
            (f.source.url.as_deref(), f.source.path.as_deref()),
            (Some("git://h/r"), Some("./clusters/my-cluster"))
        );
        let e = toml::from_str::<Settings>("[source]\nurl = \"x\"\nbrnach = \"main\"\n")
            .expect_err("typo in [source]");
        assert!(e.to_string().contains("brnach"), "{e}");
        let e = toml::from_str::<Settings>("source = 3\n").expect_err("a number");
        assert!(e.to_string().contains("[source] table"), "{e}");
    }

    #[test]
    fn every_key_parses_and_typos_are_refused() {
        let f: Settings = toml::from_str(
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
        let e = toml::from_str::<Settings>("api_adress = \"x\"\n").expect_err("typo");
        assert!(e.to_string().contains("api_adress"), "{e}");
        let e = toml::from_str::<Settings>("log_format = \"xml\"\n").expect_err("bad value");
        assert!(e.to_string().contains("xml"), "{e}");
        let e = toml::from_str::<Settings>("[registry]\nmax_concurent = 2\n").expect_err("typo");
        assert!(e.to_string().contains("max_concurent"), "{e}");
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    fn flags(args: &[&str]) -> Settings {
        Cli::try_parse_from(std::iter::once("tagpilot").chain(args.iter().copied()))
            .unwrap()
            .settings
    }

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let file: Settings = toml::from_str(
            "config_dir = \"from-file\"\nconcurrency = 4\nwebhook_address = \"\"\n[registry]\nmax_concurrent = 2\nmax_attempts = 9\n",
        )
        .unwrap();
        let cli = flags(&[
            "--config",
            "from-flag",
            "--registry-max-concurrent",
            "3",
            "--log-format",
            "json",
        ]);
        let (d, logging) = cli.over(file).unwrap().resolve().unwrap();
        assert_eq!(d.config_dir, PathBuf::from("from-flag"));
        assert_eq!(d.concurrency, 4, "the file's, no flag given");
        assert_eq!(d.limits.max_concurrent, 3, "the flag's");
        assert_eq!(
            d.limits.max_attempts, 9,
            "the file's, beside a flag of the same table"
        );
        assert_eq!(d.webhook_address, None, "empty: no server");
        assert_eq!(
            d.api_address.as_deref(),
            Some("127.0.0.1:9480"),
            "the default"
        );
        assert_eq!(d.state_dir, PathBuf::from(".tagpilot"));
        assert_eq!(d.reload_every, Duration::from_secs(2));
        assert_eq!(
            logging,
            Logging {
                format: LogFormat::Json,
                level: "info".into()
            }
        );
    }

    #[test]
    fn a_flag_naming_the_source_replaces_the_files_remote() {
        let file: Settings =
            toml::from_str("[source]\nurl = \"git://h/r\"\npath = \"clusters/a\"\n").unwrap();
        let cli = flags(&["--source-repository", "flux-system/fleet"]);
        let (d, _) = cli.over(file.clone()).unwrap().resolve().unwrap();
        match d.source {
            Some(SourceSetting::Repository(r)) => {
                assert_eq!((r.name.as_str(), r.path.as_str()), ("fleet", "clusters/a"));
            }
            other => panic!("a repository source, got {other:?}"),
        }
        assert_eq!(d.config_dir, PathBuf::from(".tagpilot/local"));
        // Without a flag the file's remote stands; both in one layer is an error.
        let (d, _) = Settings::default().over(file).unwrap().resolve().unwrap();
        assert!(matches!(d.source, Some(SourceSetting::Spec(s)) if s.url == "git://h/r"));
        let both: Settings =
            toml::from_str("[source]\nurl = \"git://h/r\"\nrepository = \"a/b\"\n").unwrap();
        let e = both.resolve().expect_err("both");
        assert!(e.to_string().contains("either url or repository"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_with_their_setting() {
        let e = flags(&["--webhook-tls-cert", "c.pem"])
            .resolve()
            .expect_err("no key");
        assert!(e.to_string().contains("--webhook-tls-key"), "{e}");
        let e = flags(&["--source-url", "git://h/r", "--source-interval", "10ms"])
            .resolve()
            .expect_err("interval");
        assert!(e.to_string().contains("at least 1s"), "{e}");
        let e = flags(&["--source-url", "git://h/r", "--source-path", "../up"])
            .resolve()
            .expect_err("path");
        assert!(e.to_string().contains("source path"), "{e}");
        let e = flags(&["--source-repository", "a/b", "--source-branch", "main"])
            .resolve()
            .expect_err("a branch beside a repository");
        assert!(e.to_string().contains("only path may be set"), "{e}");
        assert!(Cli::try_parse_from([
            "tagpilot",
            "--source-url",
            "git://h/r",
            "--source-repository",
            "a/b"
        ])
        .is_err());
    }
}
