//! A warm clone per remote URL, and image-update rounds on it: fetch, reset to the checkout,
//! apply each automation's changes as its own commit, push without force, and on a rejected
//! push fetch, reset and re-apply (bounded retries with back-off). Blocking (libgit2): callers
//! run it on a blocking thread.

use std::path::{Path, PathBuf};
use std::time::Duration;

use git2::{
    build::CheckoutBuilder, CertificateCheckStatus, Cred, FetchOptions, FetchPrune, Oid,
    PushOptions, RemoteCallbacks, Repository, ResetType, Signature,
};
use sha2::Digest as _;

use crate::known_hosts;
use crate::refs::{valid_branch, CheckoutRef};

/// How to authenticate to the remote. `Debug` never prints secrets.
#[derive(Clone, Default)]
pub enum GitAuth {
    #[default]
    None,
    Basic {
        username: String,
        password: String,
    },
    Bearer(String),
    Ssh {
        username: Option<String>,
        identity: String,
        password: Option<String>,
        known_hosts: String,
    },
}

impl GitAuth {
    /// Builds the auth for `url` from a GitRepository Secret's keys, with Flux's rules: SSH URLs
    /// need `identity` and `known_hosts`; HTTP(S) takes `username`+`password` or `bearerToken`,
    /// never both, and never a password without a username.
    pub fn from_secret(url: &str, get: impl Fn(&str) -> Option<String>) -> Result<Self, GitError> {
        if url.starts_with("ssh://") {
            let identity = get("identity").ok_or_else(|| {
                GitError::Config("invalid 'ssh' auth option: 'identity' is required".into())
            })?;
            let known_hosts = get("known_hosts")
                .filter(|k| !k.trim().is_empty())
                .ok_or_else(|| {
                    GitError::Config("invalid 'ssh' auth option: 'known_hosts' is required".into())
                })?;
            return Ok(GitAuth::Ssh {
                username: None,
                identity,
                password: get("password"),
                known_hosts,
            });
        }
        match (get("username"), get("password"), get("bearerToken")) {
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => Err(GitError::Config(
                "basic auth and bearer token cannot be set at the same time".into(),
            )),
            (None, Some(_), None) => Err(GitError::Config(
                "invalid basic auth: password is set but username is missing".into(),
            )),
            (Some(username), password, None) => Ok(GitAuth::Basic {
                username,
                password: password.unwrap_or_default(),
            }),
            (None, None, Some(token)) => Ok(GitAuth::Bearer(token)),
            (None, None, None) => Ok(GitAuth::None),
        }
    }
}

impl std::fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitAuth::None => f.write_str("None"),
            GitAuth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            GitAuth::Bearer(_) => f.write_str("Bearer(***)"),
            GitAuth::Ssh { username, .. } => write!(f, "Ssh({username:?}, ***)"),
        }
    }
}

/// A failed Git operation; the remote is named without credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    #[error("invalid git configuration: {0}")]
    Config(String),
    #[error("failed to open or clone {url}: {message}")]
    Clone { url: String, message: String },
    #[error("failed to fetch from {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("failed to checkout source: {0}")]
    Checkout(String),
    #[error("failed to update source: {0}")]
    Commit(String),
    #[error("failed to apply policies: {0}")]
    Apply(String),
    #[error("failed to push to remote {url}: {message}")]
    Push { url: String, message: String },
    #[error("failed to push to remote {url}: still rejected after {attempts} attempts (the branch keeps moving): {last}")]
    Raced {
        url: String,
        attempts: u32,
        last: String,
    },
}

/// The URL without user information (for messages and logs).
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host))
                if !rest.split('/').next().unwrap_or("").is_empty()
                    && rest.find('@') < rest.find('/') =>
            {
                format!("{scheme}://{host}")
            }
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// An HTTP(S) URL's `user:password@` taken out: the remote is stored without it (so no token
/// sits in `.git/config`) and the credentials go through the callbacks, unless the Secret gave
/// some (then the Secret's win, as in Flux). SSH URLs keep their user name, which is no secret.
fn take_userinfo(url: &str, auth: GitAuth) -> (String, GitAuth) {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return (url.to_owned(), auth);
    };
    if !matches!(parsed.scheme(), "http" | "https") || parsed.username().is_empty() {
        return (url.to_owned(), auth);
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let username = decode(parsed.username());
    let password = parsed.password().map(decode).unwrap_or_default();
    // Cannot fail for http(s) URLs, which have a host.
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    let auth = match auth {
        GitAuth::None => GitAuth::Basic { username, password },
        given => given,
    };
    (parsed.to_string(), auth)
}

/// Makes `dir` (and its parents) and restricts it to the owner: a clone holds the remote's
/// content, and its `.git` what libgit2 writes.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    set_mode(dir, 0o700)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// The tracking ref of a round's push branch.
fn remote_push_ref(spec: &RoundSpec) -> String {
    format!("refs/remotes/origin/{}", spec.push_branch)
}

fn msg(e: &git2::Error) -> String {
    let m = e.message();
    if m.contains("ssh hostkey") {
        // libgit2 reports our refusal in its own words; say what it means.
        format!("{m}: the server's host key is not in known_hosts")
    } else {
        m.to_owned()
    }
}

/// The host and port of an ssh:// URL (for known_hosts).
fn ssh_host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("ssh://")?;
    let authority = rest.split('/').next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            Some((h.trim_matches(['[', ']']).to_owned(), p.parse().ok()?))
        }
        _ => Some((hostport.trim_matches(['[', ']']).to_owned(), 22)),
    }
}

/// Written into `.git` once a clone's first fetch completed.
const READY_MARKER: &str = "tagpilot-clone-complete";

/// A file read from a tree: its path, and its content or why it was not read.
pub type TreeFile = (String, Result<Vec<u8>, String>);

/// A persistent clone of one remote.
pub struct WarmRepo {
    repo: Repository,
    dir: PathBuf,
    url: String,
    auth: GitAuth,
    /// Extra CAs for HTTPS remotes (`ca.crt`).
    roots: Option<crate::tls::ExtraRoots>,
    /// Cloned by this open and not fetched since: the first round needs no fetch of its own.
    fresh: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for WarmRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WarmRepo({}, {})", redact(&self.url), self.dir.display())
    }
}

/// One automation's change in a round: writes files under the work tree and returns the
/// commit message (and what it wrote), or None when nothing needed changing. It may be called
/// more than once (after a rejected push) and must be idempotent.
pub type Change<'a> = Box<dyn FnMut(&Path) -> Result<Option<Applied>, String> + 'a>;

/// What a [`Change`] did.
#[derive(Debug, Clone)]
pub struct Applied {
    pub message: String,
    /// The files it wrote or removed (absolute, or relative to the work tree), so that only
    /// those are staged; None stages every change in the work tree. Staging everything
    /// compares the whole work tree with the index (a stat per file, every round) and hashes
    /// each changed file twice, each time with an attributes lookup.
    pub paths: Option<Vec<PathBuf>>,
}

impl From<String> for Applied {
    fn from(message: String) -> Self {
        Applied {
            message,
            paths: None,
        }
    }
}

/// What a round asks for.
#[derive(Debug, Clone)]
pub struct RoundSpec {
    pub checkout: CheckoutRef,
    pub push_branch: String,
    /// An extra push with this refspec after the branch push (`spec.git.push.refspec`).
    pub push_refspec: Option<String>,
    /// `git push -o` options, as `key=value` or `key`.
    pub push_options: Vec<String>,
    pub author_name: String,
    pub author_email: String,
    /// Attempts at pushing (the first included) when the branch moved meanwhile.
    pub max_attempts: u32,
    /// Signs every commit when set.
    pub signer: Option<std::sync::Arc<crate::signing::Signer>>,
}

/// What a round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundOutcome {
    /// The checked-out commit (full hash).
    pub checkout_commit: String,
    /// The pushed head, if anything was pushed.
    pub pushed_commit: Option<String>,
    /// One message per commit pushed, in order.
    pub messages: Vec<String>,
    /// Push attempts made (1 when the first push went through).
    pub attempts: u32,
}

impl WarmRepo {
    /// Opens the warm clone of `url` under `cache_dir`, or makes one. A clone that does not
    /// open, points elsewhere or has broken references is removed and made again.
    pub fn open(cache_dir: &Path, url: &str, auth: GitAuth) -> Result<Self, GitError> {
        Self::open_with_roots(cache_dir, url, auth, None)
    }

    /// Like [`open`](Self::open), also trusting the CAs in `roots` for an HTTPS remote.
    pub fn open_with_roots(
        cache_dir: &Path,
        url: &str,
        auth: GitAuth,
        roots: Option<crate::tls::ExtraRoots>,
    ) -> Result<Self, GitError> {
        if url.is_empty() {
            return Err(GitError::Config("empty repository URL".into()));
        }
        if let GitAuth::Ssh { known_hosts, .. } = &auth {
            if known_hosts.trim().is_empty() {
                return Err(GitError::Config(
                    "invalid 'ssh' auth option: 'known_hosts' is required".into(),
                ));
            }
        }
        // The directory stays keyed by the URL as given, so that a clone made before
        // credentials were taken out of the URL is found, fails its origin check and is
        // replaced (with the token it kept in .git/config).
        let key = format!("{:x}", sha2::Sha256::digest(url.as_bytes()));
        let dir = cache_dir.join(&key[..16]);
        let (url, auth) = take_userinfo(url, auth);
        let url = url.as_str();
        let clone_err = |m: String| GitError::Clone {
            url: redact(url),
            message: m,
        };
        if dir.exists() {
            match Self::check(&dir, url) {
                Ok(repo) => {
                    // Clones made by older versions may be world-readable.
                    let _ = set_mode(&dir, 0o700);
                    let _ = set_mode(&dir.join(".git").join("config"), 0o600);
                    let warm = WarmRepo {
                        repo,
                        dir,
                        url: url.to_owned(),
                        auth,
                        roots,
                        fresh: false.into(),
                    };
                    return Ok(warm);
                }
                Err(why) => {
                    tracing::warn!(url = %redact(url), dir = %dir.display(), %why, "warm clone unusable, cloning again");
                    std::fs::remove_dir_all(&dir)
                        .map_err(|e| clone_err(format!("removing {}: {e}", dir.display())))?;
                }
            }
        }
        private_dir(cache_dir).map_err(|e| clone_err(format!("{}: {e}", cache_dir.display())))?;
        private_dir(&dir).map_err(|e| clone_err(format!("{}: {e}", dir.display())))?;
        let repo = Repository::init(&dir).map_err(|e| clone_err(msg(&e)))?;
        repo.remote_with_fetch("origin", url, "+refs/heads/*:refs/remotes/origin/*")
            .map_err(|e| clone_err(msg(&e)))?;
        set_mode(&dir.join(".git").join("config"), 0o600)
            .map_err(|e| clone_err(format!(".git/config: {e}")))?;
        let warm = WarmRepo {
            repo,
            dir,
            url: url.to_owned(),
            auth,
            roots,
            fresh: true.into(),
        };
        if let Err(e) = warm.fetch() {
            // Leave nothing half-made behind.
            let _ = std::fs::remove_dir_all(&warm.dir);
            return Err(e);
        }
        // Only a clone whose first fetch completed is trusted later (a process killed while
        // cloning leaves a repository without this marker, which is then made again).
        std::fs::write(warm.dir.join(".git").join(READY_MARKER), url)
            .map_err(|e| clone_err(e.to_string()))?;
        Ok(warm)
    }

    /// Verifies an existing clone: it opens, its origin is `url`, and every remote-tracking
    /// reference resolves to a commit. Stale lock files from a killed process are removed.
    fn check(dir: &Path, url: &str) -> Result<Repository, String> {
        let git_dir = dir.join(".git");
        for stale in ["index.lock", "HEAD.lock", "config.lock", "packed-refs.lock"] {
            let _ = std::fs::remove_file(git_dir.join(stale));
        }
        remove_ref_locks(&git_dir.join("refs"));
        if !git_dir.join(READY_MARKER).is_file() {
            return Err("the first clone never completed".into());
        }
        let repo = Repository::open(dir).map_err(|e| msg(&e))?;
        let origin = repo.find_remote("origin").map_err(|e| msg(&e))?;
        if origin.url().ok() != Some(url) {
            return Err("origin points at another URL".into());
        }
        drop(origin);
        let refs = repo
            .references_glob("refs/remotes/origin/*")
            .map_err(|e| msg(&e))?;
        for r in refs {
            let r = r.map_err(|e| msg(&e))?;
            r.peel_to_commit()
                .map_err(|e| format!("{}: {}", r.name().unwrap_or("?"), msg(&e)))?;
        }
        Ok(repo)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A directory for temp files on the clone's file system that no commit can include
    /// (inside `.git`); made on demand.
    pub fn scratch_dir(&self) -> Result<PathBuf, GitError> {
        let dir = self.dir.join(".git").join("tagpilot-scratch");
        std::fs::create_dir_all(&dir)
            .map_err(|e| GitError::Apply(format!("{}: {e}", dir.display())))?;
        Ok(dir)
    }

    fn callbacks(&self) -> RemoteCallbacks<'_> {
        let mut cb = RemoteCallbacks::new();
        let mut tried = false;
        let auth = self.auth.clone();
        cb.credentials(move |_url, user_from_url, _allowed| {
            if tried {
                return Err(git2::Error::from_str(
                    "authentication failed (credentials rejected)",
                ));
            }
            tried = true;
            match &auth {
                GitAuth::Basic { username, password } => {
                    Cred::userpass_plaintext(username, password)
                }
                GitAuth::Ssh {
                    username,
                    identity,
                    password,
                    ..
                } => {
                    let user = username.as_deref().or(user_from_url).unwrap_or("git");
                    Cred::ssh_key_from_memory(user, None, identity, password.as_deref())
                }
                _ => Err(git2::Error::from_str(
                    "the remote requires credentials; none configured",
                )),
            }
        });
        if let Some(roots) = self.roots.clone() {
            // libgit2 checks the system roots; a certificate it rejects is still accepted when
            // it chains to the configured ca.crt and names the host.
            cb.certificate_check(move |cert, host| match cert.as_x509() {
                Some(x509) => match roots.verifies(x509.data(), host) {
                    Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
                    Err(why) => {
                        tracing::debug!(%host, %why, "certificate not issued by ca.crt; using the system roots' verdict");
                        Ok(CertificateCheckStatus::CertificatePassthrough)
                    }
                },
                None => Ok(CertificateCheckStatus::CertificatePassthrough),
            });
        }
        if let GitAuth::Ssh { known_hosts, .. } = &self.auth {
            let known = known_hosts.clone();
            let target = ssh_host_port(&self.url);
            cb.certificate_check(move |cert, _host| {
                let Some(hostkey) = cert.as_hostkey() else {
                    return Ok(CertificateCheckStatus::CertificatePassthrough);
                };
                let Some((host, port)) = &target else {
                    return Err(git2::Error::from_str(
                        "cannot tell the SSH host from the URL",
                    ));
                };
                match hostkey.hostkey() {
                    Some(blob) if known_hosts::is_known(&known, host, *port, blob) => {
                        Ok(CertificateCheckStatus::CertificateOk)
                    }
                    _ => Err(git2::Error::from_str(&format!(
                        "host key of {host}:{port} is not in known_hosts"
                    ))),
                }
            });
        }
        cb
    }

    fn bearer_header(&self) -> Option<String> {
        match &self.auth {
            GitAuth::Bearer(t) => Some(format!("Authorization: Bearer {t}")),
            _ => None,
        }
    }

    /// Fetches every branch head and tag (incremental on a warm clone).
    pub fn fetch(&self) -> Result<(), GitError> {
        let mut remote = self
            .repo
            .find_remote("origin")
            .map_err(|e| GitError::Fetch {
                url: redact(&self.url),
                message: msg(&e),
            })?;
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(self.callbacks())
            .prune(FetchPrune::On)
            .download_tags(git2::AutotagOption::All);
        let header = self.bearer_header();
        let headers: Vec<&str> = header.iter().map(String::as_str).collect();
        opts.custom_headers(&headers);
        remote
            .fetch(
                &[
                    "+refs/heads/*:refs/remotes/origin/*",
                    "+refs/tags/*:refs/tags/*",
                ],
                Some(&mut opts),
                None,
            )
            .map_err(|e| GitError::Fetch {
                url: redact(&self.url),
                message: msg(&e),
            })
    }

    /// Fetches now unless this open just cloned, and checks out the base `spec`'s round
    /// would start from, so that the next round starts from this fetch instead of one of its
    /// own and finds its work tree written (for a caller that prepares ahead while it does
    /// other work; on a fresh clone, writing the tree is most of a round's file-system time).
    pub fn prefetch(&self, spec: &RoundSpec) -> Result<(), GitError> {
        if !self.fresh.load(std::sync::atomic::Ordering::SeqCst) {
            self.fetch()?;
            self.fresh.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let (_, base) = self.base(spec)?;
        self.reset_to(base)
    }

    /// After a fetch: the commit `spec`'s checkout names, and the one its round builds on
    /// (the remote's push branch if it exists, else the checkout).
    fn base(&self, spec: &RoundSpec) -> Result<(Oid, Oid), GitError> {
        let checkout = self.resolve(&spec.checkout)?;
        let base = match self.repo.find_reference(&remote_push_ref(spec)) {
            Ok(r) => r
                .peel_to_commit()
                .map_err(|e| GitError::Checkout(msg(&e)))?
                .id(),
            Err(_) => checkout,
        };
        Ok((checkout, base))
    }

    /// The commit a checkout reference names, after a fetch.
    pub fn resolve(&self, checkout: &CheckoutRef) -> Result<Oid, GitError> {
        let peel = |name: &str| -> Result<Oid, GitError> {
            let r = self
                .repo
                .find_reference(name)
                .map_err(|_| GitError::Checkout(format!("{checkout} not found on the remote")))?;
            r.peel_to_commit()
                .map(|c| c.id())
                .map_err(|e| GitError::Checkout(msg(&e)))
        };
        match checkout {
            CheckoutRef::Branch(b) => peel(&format!("refs/remotes/origin/{b}")),
            CheckoutRef::Tag(t) => peel(&format!("refs/tags/{t}")),
            CheckoutRef::Name(n) => match n.strip_prefix("refs/heads/") {
                Some(b) => peel(&format!("refs/remotes/origin/{b}")),
                None => peel(n),
            },
            CheckoutRef::Commit(c) => {
                let oid = Oid::from_str(c)
                    .map_err(|e| GitError::Checkout(format!("commit '{c}': {}", msg(&e))))?;
                self.repo
                    .find_commit(oid)
                    .map(|c| c.id())
                    .map_err(|_| GitError::Checkout(format!("commit '{c}' not found")))
            }
            CheckoutRef::Semver(range) => {
                let constraints = tagpilot_policy::Constraints::parse(range)
                    .map_err(|e| GitError::Checkout(format!("semver '{range}': {e}")))?;
                let names = self
                    .repo
                    .tag_names(None)
                    .map_err(|e| GitError::Checkout(msg(&e)))?;
                let mut best: Option<(tagpilot_policy::semver::Version<'_>, &str)> = None;
                for name in names.iter().flatten().flatten() {
                    let Ok(v) = tagpilot_policy::semver::Version::parse_tag(name) else {
                        continue;
                    };
                    if constraints.check(&v)
                        && best.as_ref().is_none_or(|(b, _)| v.precedence(b).is_gt())
                    {
                        best = Some((v, name));
                    }
                }
                let (_, tag) = best.ok_or_else(|| {
                    GitError::Checkout(format!("no tag matches semver '{range}'"))
                })?;
                peel(&format!("refs/tags/{tag}"))
            }
        }
    }

    /// The regular files under `path` (relative, `/`-separated; `""` or `.` for the root) in
    /// `commit`'s tree, whose names `wanted` accepts, read from the object database: the
    /// work tree is not touched, symlinks and submodules are skipped, a blob larger than
    /// `max_bytes` is reported instead of read. Returns (path relative to the repository
    /// root, content or why it was not read).
    pub fn read_tree(
        &self,
        commit: Oid,
        path: &str,
        max_bytes: usize,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Vec<TreeFile>, GitError> {
        let tree = self
            .repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(|e| GitError::Checkout(msg(&e)))?;
        let prefix = path.trim_start_matches("./").trim_matches('/');
        let root = if prefix.is_empty() || prefix == "." {
            tree
        } else {
            let entry = tree
                .get_path(Path::new(prefix))
                .map_err(|_| GitError::Checkout(format!("path '{path}' not found")))?;
            entry
                .to_object(&self.repo)
                .and_then(|o| o.peel_to_tree())
                .map_err(|_| GitError::Checkout(format!("path '{path}' is not a directory")))?
        };
        let mut out = Vec::new();
        let mut failure = None;
        root.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            let Ok(name) = entry.name() else {
                return git2::TreeWalkResult::Skip;
            };
            // Hidden entries (`.git`-like, `..data`) are skipped like in a directory.
            if name.starts_with('.') {
                return git2::TreeWalkResult::Skip;
            }
            if entry.kind() != Some(git2::ObjectType::Blob)
                || entry.filemode() == 0o120000
                || !wanted(name)
            {
                return git2::TreeWalkResult::Ok;
            }
            let rel = if prefix.is_empty() || prefix == "." {
                format!("{dir}{name}")
            } else {
                format!("{prefix}/{dir}{name}")
            };
            match self.repo.find_blob(entry.id()) {
                Ok(b) if b.size() > max_bytes => out.push((
                    rel,
                    Err(format!(
                        "file is larger than {} MiB, refused",
                        max_bytes >> 20
                    )),
                )),
                Ok(b) => out.push((rel, Ok(b.content().to_vec()))),
                Err(e) => {
                    failure = Some(msg(&e));
                    return git2::TreeWalkResult::Abort;
                }
            }
            git2::TreeWalkResult::Ok
        })
        .map_err(|e| GitError::Checkout(failure.take().unwrap_or_else(|| msg(&e))))?;
        if let Some(f) = failure {
            return Err(GitError::Checkout(f));
        }
        out.sort();
        Ok(out)
    }

    /// Runs one round. See the module documentation.
    pub fn round(
        &self,
        spec: &RoundSpec,
        changes: &mut [Change<'_>],
    ) -> Result<RoundOutcome, GitError> {
        if !valid_branch(&spec.push_branch) {
            return Err(GitError::Config(format!(
                "invalid push branch '{}'",
                spec.push_branch
            )));
        }
        let max = spec.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Every attempt starts from what the remote has now (incremental on a warm clone;
            // a clone made just now already has it).
            if !self.fresh.swap(false, std::sync::atomic::Ordering::SeqCst) {
                self.fetch()?;
            }
            let (checkout, base) = self.base(spec)?;
            // Cheap when a prefetch already wrote this tree: only the index's stat data is
            // compared.
            self.reset_to(base)?;
            let mut messages = Vec::new();
            let mut head = base;
            for change in changes.iter_mut() {
                let Some(applied) = change(&self.dir).map_err(GitError::Apply)? else {
                    continue;
                };
                if let Some(commit) = self.commit(head, &applied, spec)? {
                    head = commit;
                    messages.push(applied.message);
                }
            }
            if head == base {
                return Ok(RoundOutcome {
                    checkout_commit: checkout.to_string(),
                    pushed_commit: None,
                    messages,
                    attempts: attempt,
                });
            }
            let local = format!("refs/heads/{}", spec.push_branch);
            self.repo
                .reference(&local, head, true, "tagpilot: image update round")
                .map_err(|e| GitError::Commit(msg(&e)))?;
            match self.push(&format!("{local}:{local}"), &spec.push_options)? {
                PushResult::Ok => {
                    // Keep the tracking ref in step without another fetch.
                    let _ =
                        self.repo
                            .reference(&remote_push_ref(spec), head, true, "tagpilot: pushed");
                    if let Some(refspec) = spec.push_refspec.as_deref().filter(|r| !r.is_empty()) {
                        if let PushResult::Rejected(why) = self.push(refspec, &spec.push_options)? {
                            return Err(GitError::Push {
                                url: redact(&self.url),
                                message: format!("refspec '{refspec}' rejected: {why}"),
                            });
                        }
                    }
                    return Ok(RoundOutcome {
                        checkout_commit: checkout.to_string(),
                        pushed_commit: Some(head.to_string()),
                        messages,
                        attempts: attempt,
                    });
                }
                PushResult::Rejected(why) => {
                    tracing::info!(url = %redact(&self.url), branch = %spec.push_branch, attempt, %why, "push rejected, fetching and re-applying");
                    if attempt >= max {
                        return Err(GitError::Raced {
                            url: redact(&self.url),
                            attempts: attempt,
                            last: why,
                        });
                    }
                    // Retry at once first (a human push just landed; the sooner we fetch, the
                    // better our odds), then back off with jitter (other writers like us).
                    if attempt > 2 {
                        let backoff = 25u64 << attempt.min(7);
                        std::thread::sleep(Duration::from_millis(
                            backoff / 2 + fastrand::u64(0..=backoff),
                        ));
                    }
                }
            }
        }
    }

    /// Points HEAD (detached) at `commit` and makes the work tree match it exactly.
    fn reset_to(&self, commit: Oid) -> Result<(), GitError> {
        let obj = self
            .repo
            .find_object(commit, None)
            .map_err(|e| GitError::Checkout(msg(&e)))?;
        self.repo
            .set_head_detached(commit)
            .map_err(|e| GitError::Checkout(msg(&e)))?;
        let mut co = CheckoutBuilder::new();
        co.force().remove_untracked(true).remove_ignored(true);
        self.repo
            .reset(&obj, ResetType::Hard, Some(&mut co))
            .map_err(|e| GitError::Checkout(msg(&e)))
    }

    /// The work-tree-relative forms of `paths`; None when one is not inside the work tree
    /// (or names `.git`): then everything is staged, as without paths.
    fn in_work_tree(&self, paths: &[PathBuf]) -> Option<Vec<PathBuf>> {
        let real = self.dir.canonicalize().ok();
        paths
            .iter()
            .map(|p| {
                let rel = if p.is_relative() {
                    p.as_path()
                } else {
                    real.as_deref()
                        .and_then(|r| p.strip_prefix(r).ok())
                        .or_else(|| p.strip_prefix(&self.dir).ok())?
                };
                let normal = rel
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
                let git = rel
                    .components()
                    .next()
                    .is_some_and(|c| c.as_os_str() == ".git");
                (normal && !git && !rel.as_os_str().is_empty()).then(|| rel.to_path_buf())
            })
            .collect()
    }

    /// Stages what `applied` changed (every change in the work tree if it does not say) and
    /// commits on `parent`; None when the tree is unchanged (never an empty commit).
    fn commit(
        &self,
        parent: Oid,
        applied: &Applied,
        spec: &RoundSpec,
    ) -> Result<Option<Oid>, GitError> {
        let message = applied.message.as_str();
        let err = |e: git2::Error| GitError::Commit(msg(&e));
        let mut index = self.repo.index().map_err(err)?;
        match applied.paths.as_deref().and_then(|p| self.in_work_tree(p)) {
            Some(paths) => {
                for path in paths {
                    if self.dir.join(&path).symlink_metadata().is_ok() {
                        index.add_path(&path).map_err(err)?;
                    } else {
                        index.remove_path(&path).map_err(err)?;
                    }
                }
            }
            None => {
                index
                    .add_all(["*"].iter(), git2::IndexAddOption::DEFAULT, None)
                    .map_err(err)?;
                index.update_all(["*"].iter(), None).map_err(err)?;
            }
        }
        index.write().map_err(err)?;
        let tree_id = index.write_tree().map_err(err)?;
        let parent = self.repo.find_commit(parent).map_err(err)?;
        if parent.tree_id() == tree_id {
            return Ok(None);
        }
        let tree = self.repo.find_tree(tree_id).map_err(err)?;
        let sig = Signature::now(&spec.author_name, &spec.author_email).map_err(err)?;
        let oid = match &spec.signer {
            None => self
                .repo
                .commit(None, &sig, &sig, message, &tree, &[&parent])
                .map_err(err)?,
            Some(signer) => {
                let buf = self
                    .repo
                    .commit_create_buffer(&sig, &sig, message, &tree, &[&parent])
                    .map_err(err)?;
                let content = std::str::from_utf8(&buf)
                    .map_err(|_| GitError::Commit("commit is not UTF-8".into()))?;
                let signature = signer.sign(content.as_bytes()).map_err(GitError::Commit)?;
                self.repo
                    .commit_signed(content, &signature, Some("gpgsig"))
                    .map_err(err)?
            }
        };
        self.repo.set_head_detached(oid).map_err(err)?;
        Ok(Some(oid))
    }

    fn push(&self, refspec: &str, options: &[String]) -> Result<PushResult, GitError> {
        let url = redact(&self.url);
        let mut remote = self
            .repo
            .find_remote("origin")
            .map_err(|e| GitError::Push {
                url: url.clone(),
                message: msg(&e),
            })?;
        let mut rejected: Option<String> = None;
        let result = {
            let mut cb = self.callbacks();
            cb.push_update_reference(|_refname, status| {
                if let Some(s) = status {
                    rejected = Some(s.to_owned());
                }
                Ok(())
            });
            let mut opts = PushOptions::new();
            opts.remote_callbacks(cb);
            let header = self.bearer_header();
            let headers: Vec<&str> = header.iter().map(String::as_str).collect();
            opts.custom_headers(&headers);
            let opt_refs: Vec<&str> = options.iter().map(String::as_str).collect();
            if !opt_refs.is_empty() {
                opts.remote_push_options(&opt_refs);
            }
            remote.push(&[refspec], Some(&mut opts))
        };
        match (result, rejected) {
            (Ok(()), None) => Ok(PushResult::Ok),
            (Ok(()), Some(why)) => Ok(PushResult::Rejected(why)),
            (Err(e), _) => {
                let m = msg(&e);
                let lower = m.to_lowercase();
                if [
                    "non-fast-forward",
                    "non-fastforwardable",
                    "fetch first",
                    "rejected",
                    "not present locally",
                    "cannot lock ref",
                    "failed to update ref",
                ]
                .iter()
                .any(|p| lower.contains(p))
                {
                    Ok(PushResult::Rejected(m))
                } else {
                    Err(GitError::Push { url, message: m })
                }
            }
        }
    }
}

enum PushResult {
    Ok,
    Rejected(String),
}

fn remove_ref_locks(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            remove_ref_locks(&p);
        } else if p.extension().is_some_and(|x| x == "lock") {
            let _ = std::fs::remove_file(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redact("https://user:s3cr3t@git.example.com/org/repo"),
            "https://git.example.com/org/repo"
        );
        assert_eq!(
            redact("ssh://git@127.0.0.1:2222/srv/repo.git"),
            "ssh://127.0.0.1:2222/srv/repo.git"
        );
        assert_eq!(redact("git://127.0.0.1/repo"), "git://127.0.0.1/repo");
        assert_eq!(redact("https://host/path@x"), "https://host/path@x");
    }

    #[test]
    fn auth_from_secret_keys() {
        let secret = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let e = |r: Result<GitAuth, GitError>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(matches!(
            GitAuth::from_secret(
                "https://h/r",
                secret(&[("username", "u"), ("password", "p")])
            ),
            Ok(GitAuth::Basic { .. })
        ));
        assert!(matches!(
            GitAuth::from_secret("https://h/r", secret(&[("bearerToken", "t")])),
            Ok(GitAuth::Bearer(_))
        ));
        assert!(e(GitAuth::from_secret(
            "https://h/r",
            secret(&[("username", "u"), ("bearerToken", "t")])
        ))
        .contains("cannot be set at the same time"));
        assert!(e(GitAuth::from_secret(
            "https://h/r",
            secret(&[("password", "p")])
        ))
        .contains("username is missing"));
        assert!(e(GitAuth::from_secret(
            "ssh://git@h/r",
            secret(&[("identity", "k")])
        ))
        .contains("'known_hosts' is required"));
        assert!(matches!(
            GitAuth::from_secret(
                "ssh://git@h/r",
                secret(&[("identity", "k"), ("known_hosts", "h ssh-ed25519 AAAA")])
            ),
            Ok(GitAuth::Ssh { .. })
        ));
        assert!(matches!(
            GitAuth::from_secret("git://h/r", secret(&[])),
            Ok(GitAuth::None)
        ));
    }

    #[test]
    fn ssh_targets() {
        assert_eq!(
            ssh_host_port("ssh://git@127.0.0.1:2222/srv/r.git"),
            Some(("127.0.0.1".into(), 2222))
        );
        assert_eq!(
            ssh_host_port("ssh://git@github.com/org/r"),
            Some(("github.com".into(), 22))
        );
        assert_eq!(ssh_host_port("https://x/y"), None);
    }
}
