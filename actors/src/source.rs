//! A Git configuration source: the manifests under a path of a branch, tag, semver range or
//! commit of a remote, read from the object database of the same warm clone the remote's
//! automations write (and under the same per-URL lock), so one clone serves both.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tagpilot_api::{Config, GitRepository, Secrets};
use tagpilot_git::{CheckoutRef, WarmRepo};

use crate::Shared;

/// Where the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    pub url: String,
    pub checkout: CheckoutRef,
    /// Directory of the manifests in the repository (recursive).
    pub path: String,
    pub interval: Duration,
    /// Git credentials: a Secret (secrets directory or local manifests) with Flux's keys.
    pub secret: Option<(String, String)>,
    /// The GitRepository it was named by, if any: its webhooks fetch the source.
    pub repository: Option<(String, String)>,
}

/// A `source = "namespace/name"` setting, resolved against the local manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    pub namespace: String,
    pub name: String,
    pub path: String,
}

/// The source as the settings give it: in full, or by a GitRepository of the local manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSetting {
    Spec(SourceSpec),
    Repository(SourceRef),
}

impl SourceSetting {
    /// The source to fetch, given the local configuration (which may hold the GitRepository).
    pub fn spec(&self, local: &Config) -> anyhow::Result<SourceSpec> {
        match self {
            SourceSetting::Spec(s) => Ok(s.clone()),
            SourceSetting::Repository(r) => SourceSpec::from_repository(local, r),
        }
    }

    /// The GitRepository whose webhooks fetch the source.
    pub fn repository(&self) -> Option<(String, String)> {
        match self {
            SourceSetting::Spec(s) => s.repository.clone(),
            SourceSetting::Repository(r) => Some((r.namespace.clone(), r.name.clone())),
        }
    }
}

impl SourceSpec {
    /// The source a GitRepository of the local configuration describes.
    pub fn from_repository(local: &Config, r: &SourceRef) -> anyhow::Result<Self> {
        let g = local
            .find::<GitRepository>(&r.namespace, &r.name)
            .with_context(|| {
                format!(
                    "source: GitRepository {}/{} is not in the local configuration",
                    r.namespace, r.name
                )
            })?;
        let rf = g.spec.reference.clone().unwrap_or_default();
        Ok(SourceSpec {
            url: g.spec.url.clone(),
            checkout: CheckoutRef::from_fields(
                rf.branch.as_deref(),
                rf.tag.as_deref(),
                rf.semver.as_deref(),
                rf.name.as_deref(),
                rf.commit.as_deref(),
            ),
            path: r.path.clone(),
            interval: g.spec.interval.as_duration(),
            secret: g
                .spec
                .secret_ref
                .as_ref()
                .map(|s| (r.namespace.clone(), s.name.clone())),
            repository: Some((r.namespace.clone(), r.name.clone())),
        })
    }
}

/// What one fetch found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// `branch@sha1:…` (or `sha1:…` for a tag, range or commit), as Flux writes revisions.
    pub revision: String,
    pub files: Vec<(PathBuf, Result<Vec<u8>, String>)>,
}

impl Fetched {
    /// A short fingerprint of the manifests themselves: a commit that changes no manifest
    /// (tagpilot's own image updates outside the path) loads nothing new.
    pub fn content_key(&self) -> String {
        // FNV-1a over names and contents: stable, and enough to tell two trees apart.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (p, c) in &self.files {
            let bytes = p.to_string_lossy();
            let content: &[u8] = match c {
                Ok(b) => b,
                Err(e) => e.as_bytes(),
            };
            for b in bytes.as_bytes().iter().chain([0u8].iter()).chain(content) {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{h:016x}")
    }
}

/// Fetches the source and reads its manifests. Blocking (libgit2): call it from a blocking
/// thread. `secrets` finds the credentials (the local configuration and the secrets
/// directory).
pub fn fetch(
    spec: &SourceSpec,
    git_cache: &Path,
    secrets: &Secrets<'_>,
    shared: &Shared,
) -> anyhow::Result<Fetched> {
    let (auth, roots) = crate::engine::git_access(
        secrets,
        &spec.url,
        spec.secret
            .as_ref()
            .map(|(ns, n)| (ns.as_str(), n.as_str())),
    )?;
    // The remote's automations use this clone too: one at a time.
    let lock = shared.clone_lock(&spec.url);
    let _owner = lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let repo = WarmRepo::open_with_roots(git_cache, &spec.url, auth, roots)?;
    repo.fetch()?;
    let commit = repo.resolve(&spec.checkout)?;
    let files = repo
        .read_tree(
            commit,
            &spec.path,
            tagpilot_api::MAX_FILE_BYTES as usize,
            |name| name.ends_with(".yaml") || name.ends_with(".yml"),
        )?
        .into_iter()
        .map(|(p, c)| (PathBuf::from(p), c))
        .collect();
    let revision = match spec.checkout.branch() {
        Some(b) => tagpilot_git::source_revision(b, &commit.to_string()),
        None => format!("sha1:{commit}"),
    };
    Ok(Fetched { revision, files })
}

/// Fetches the source a setting names: a GitRepository is looked up in the local
/// configuration, whose Secrets (and the secrets directory) hold the credentials. Returns the
/// source's spec with what was fetched.
pub fn fetch_setting(
    setting: &SourceSetting,
    local_dir: &Path,
    secrets_dir: Option<&Path>,
    git_cache: &Path,
    shared: &Shared,
) -> anyhow::Result<(SourceSpec, Fetched)> {
    let (keys, _) = tagpilot_api::sops_keys(secrets_dir);
    let local = if local_dir.is_dir() {
        tagpilot_api::load_dir_with(local_dir, &keys)
    } else {
        Config::default()
    };
    drop(keys);
    let spec = setting.spec(&local)?;
    let secrets = Secrets {
        config: &local,
        dir: secrets_dir,
    };
    let fetched = fetch(&spec, git_cache, &secrets, shared).with_context(|| {
        format!(
            "config source {} ({})",
            tagpilot_git::redact(&spec.url),
            spec.checkout
        )
    })?;
    Ok((spec, fetched))
}

/// Loads the configuration: the local directory alone, or the source's manifests as fetched
/// with the local directory (when there is one) as an overlay. SOPS files are decrypted with
/// the age keys of the secrets directory and the environment.
pub fn load(local_dir: &Path, secrets_dir: Option<&Path>, fetched: Option<&Fetched>) -> Config {
    // Read again at every load: a rotated key is picked up with the files it opens.
    let (keys, problems) = tagpilot_api::sops_keys(secrets_dir);
    for p in problems {
        tracing::warn!(problem = %p, "SOPS age key not usable");
    }
    match fetched {
        None => tagpilot_api::load_dir_with(local_dir, &keys),
        Some(f) => {
            let overlay = local_dir.is_dir().then_some(local_dir);
            let mut config = tagpilot_api::load_files_with(&f.files, overlay, &keys);
            config.source_revision = Some(f.revision.clone());
            config
        }
    }
}
