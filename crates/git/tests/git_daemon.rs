//! Rounds against a real `git daemon --enable=receive-pack` on 127.0.0.1, with the command-line
//! git as the referee. The server repository has `receive.denyNonFastForwards`, so any force
//! push would be refused and fail the test.
#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion: a panic with the error

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tagpilot_git::{
    source_revision, Applied, Change, CheckoutRef, GitError, RoundSpec, WarmRepo, NO_PUSH_BRANCH,
};
use tagpilot_setters::{scan_tree, write_changes, LatestRef};
use tagpilot_testkit::{free_port, tls_files, wait_for_port};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        // The SSH test's bare repository belongs to its test user.
        .args(["-c", "safe.directory=*"])
        .args(args)
        .env("GIT_AUTHOR_NAME", "Human")
        .env("GIT_AUTHOR_EMAIL", "human@example.com")
        .env("GIT_COMMITTER_NAME", "Human")
        .env("GIT_COMMITTER_EMAIL", "human@example.com")
        .output()
        .unwrap_or_else(|e| panic!("git {args:?}: {e}"));
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Daemon {
    child: Child,
    url: String,
    bare: PathBuf,
    work: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\n  namespace: default\nspec:\n  template:\n    spec:\n      containers:\n      - name: podinfod\n        image: ghcr.io/stefanprodan/podinfo:5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n";

/// A bare repository with one commit on `main` (and tag v1.0.0), served by git daemon.
fn daemon() -> Daemon {
    let (dir, srv, bare, work) = seeded_repo();
    let (child, port) = tagpilot_testkit::git_daemon(&srv, STARTUP);
    Daemon {
        child,
        url: format!("git://127.0.0.1:{port}/repo.git"),
        bare,
        work,
        _dir: dir,
    }
}

/// How long servers get to start listening.
const STARTUP: Duration = Duration::from_secs(10);

/// The same repository behind lighttpd + git http-backend with basic auth (gituser:gitpass).
fn http_server() -> Daemon {
    lighttpd_server(false)
}

fn lighttpd_server(tls: bool) -> Daemon {
    let (dir, srv, bare, work) = seeded_repo();
    git(&bare, &["config", "http.receivepack", "true"]);
    let port = free_port();
    let d = dir.path();
    let ok = Command::new("htpasswd")
        .arg("-bc")
        .arg(d.join("htpasswd"))
        .args(["gituser", "gitpass"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "htpasswd failed (apt-get install apache2-utils)");
    let exec_path = git(d, &["--exec-path"]);
    let conf = format!(
        r#"server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{root}/error.log"
server.modules = ("mod_auth", "mod_authn_file", "mod_alias", "mod_setenv", "mod_cgi")
auth.backend = "htpasswd"
auth.backend.htpasswd.userfile = "{root}/htpasswd"
$HTTP["url"] =~ "^/git/" {{
  alias.url = ( "/git/" => "{exec}/git-http-backend/" )
  cgi.assign = ( "" => "" )
  setenv.set-environment = ( "GIT_PROJECT_ROOT" => "{srv}", "GIT_HTTP_EXPORT_ALL" => "1" )
  auth.require = ( "" => ( "method" => "basic", "realm" => "git", "require" => "valid-user" ) )
}}
"#,
        root = d.display(),
        exec = exec_path.trim(),
        srv = srv.display(),
    );
    let conf = if tls {
        tls_files(d, None);
        format!(
            "{conf}server.modules += (\"mod_openssl\")\nssl.engine = \"enable\"\nssl.pemfile = \"{root}/cert.pem\"\nssl.privkey = \"{root}/key.pem\"\n",
            root = d.display()
        )
    } else {
        conf
    };
    std::fs::write(d.join("lighttpd.conf"), conf).unwrap();
    let mut child = Command::new("lighttpd")
        .arg("-D")
        .arg("-f")
        .arg(d.join("lighttpd.conf"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("lighttpd (apt-get install lighttpd): {e}"));
    wait_for_port(port, &mut child, STARTUP);
    Daemon {
        child,
        url: format!(
            "{}://127.0.0.1:{port}/git/repo.git",
            if tls { "https" } else { "http" }
        ),
        bare,
        work,
        _dir: dir,
    }
}

/// A bare repository (receive.denyNonFastForwards, push options recorded by a pre-receive
/// hook) with one commit on `main` and tag v1.0.0, and a human's clone of it.
fn seeded_repo() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let srv = dir.path().join("srv");
    let bare = srv.join("repo.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    git(&bare, &["config", "receive.denyNonFastForwards", "true"]);
    git(&bare, &["config", "receive.advertisePushOptions", "true"]);
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\ni=0\nwhile [ \"$i\" -lt \"${GIT_PUSH_OPTION_COUNT:-0}\" ]; do eval \"echo \\$GIT_PUSH_OPTION_$i\" >> \"$GIT_DIR/push-options.log\"; i=$((i+1)); done\ncat > /dev/null\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let work = dir.path().join("human");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            &format!("file://{}", bare.display()),
            "human",
        ],
    );
    git(&work, &["checkout", "-q", "-b", "main"]);
    std::fs::create_dir_all(work.join("clusters/my-cluster")).unwrap();
    std::fs::write(work.join("clusters/my-cluster/podinfo.yaml"), DEPLOY).unwrap();
    std::fs::write(work.join("README.md"), "fleet\n").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "initial"]);
    git(&work, &["tag", "v1.0.0"]);
    git(&work, &["push", "-q", "origin", "main", "--tags"]);
    (dir, srv, bare, work)
}

fn spec(push: &str) -> RoundSpec {
    RoundSpec {
        checkout: CheckoutRef::Branch("main".into()),
        push_branch: push.into(),
        push_refspec: None,
        push_options: vec![],
        author_name: "fluxcdbot".into(),
        author_email: "fluxcdbot@users.noreply.github.com".into(),
        max_attempts: 10,
        signer: None,
    }
}

/// An automation that sets podinfo to `tag` with the real setters.
fn setter_change<'a>(tag: &'a str, path: &'a str) -> Change<'a> {
    Box::new(move |root: &Path| {
        let mut policies = BTreeMap::new();
        policies.insert(
            ("flux-system".to_owned(), "podinfo".to_owned()),
            LatestRef {
                name: "ghcr.io/stefanprodan/podinfo".into(),
                tag: tag.to_owned(),
                digest: None,
            },
        );
        let dir = root.join(path);
        let set = scan_tree(&dir, &policies).map_err(|e| e.to_string())?;
        if set.is_empty() {
            return Ok(None);
        }
        write_changes(&dir, &set).map_err(|e| e.to_string())?;
        Ok(Some(format!("ghcr.io/stefanprodan/podinfo:{tag}\n").into()))
    })
}

/// 100..400 ms, varying with `i` (no RNG dependency needed).
fn fastrand_ms(i: u64) -> u64 {
    100 + (i.wrapping_mul(2_654_435_761) >> 7) % 300
}

fn cache() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A warm clone of the daemon's repository (no credentials) in a fresh cache.
fn warm(d: &Daemon) -> (tempfile::TempDir, WarmRepo) {
    let state = cache();
    let repo = WarmRepo::open(state.path(), &d.url, Default::default()).unwrap();
    (state, repo)
}

#[test]
fn round_commits_pushes_and_never_commits_nothing() {
    let d = daemon();
    let (_state, repo) = warm(&d);
    let mut changes = vec![setter_change("5.0.3", "clusters/my-cluster")];
    let out = repo.round(&spec("main"), &mut changes).unwrap();
    let pushed = out
        .pushed_commit
        .clone()
        .unwrap_or_else(|| panic!("nothing pushed"));
    assert_eq!(out.attempts, 1);
    let head = git(&d.bare, &["rev-parse", "main"]);
    assert_eq!(head.trim(), pushed);
    assert_eq!(git(&d.bare, &["log", "-1", "--format=%an <%ae>|%cn <%ce>|%B", "main"]), "fluxcdbot <fluxcdbot@users.noreply.github.com>|fluxcdbot <fluxcdbot@users.noreply.github.com>|ghcr.io/stefanprodan/podinfo:5.0.3\n\n");
    let file = git(&d.bare, &["show", "main:clusters/my-cluster/podinfo.yaml"]);
    assert_eq!(file, DEPLOY.replace(":5.0.0 #", ":5.0.3 #"));
    // The same round again: nothing to change, no commit, nothing pushed.
    let again = repo.round(&spec("main"), &mut changes).unwrap();
    assert_eq!(again.pushed_commit, None);
    assert_eq!(git(&d.bare, &["rev-parse", "main"]).trim(), pushed);
    assert_eq!(
        source_revision("main", &pushed),
        format!("main@sha1:{pushed}")
    );
    // A change that writes identical bytes makes no empty commit either.
    let mut same: Vec<Change<'_>> = vec![Box::new(|root: &Path| {
        std::fs::write(root.join("README.md"), "fleet\n").map_err(|e| e.to_string())?;
        Ok(Some("touch".to_owned().into()))
    })];
    assert_eq!(
        repo.round(&spec("main"), &mut same)
            .map(|o| o.pushed_commit)
            .ok(),
        Some(None)
    );
}

#[test]
fn push_branch_is_created_then_reused_and_main_is_left_alone() {
    let d = daemon();
    let state = cache();
    let main_before = git(&d.bare, &["rev-parse", "main"]);
    let repo = WarmRepo::open(state.path(), &d.url, Default::default()).unwrap();
    let out = repo
        .round(
            &spec("flux-image-updates"),
            &mut [setter_change("5.0.1", "clusters")],
        )
        .unwrap();
    let first = out.pushed_commit.unwrap_or_default();
    assert_eq!(
        git(&d.bare, &["rev-parse", "flux-image-updates"]).trim(),
        first
    );
    assert_eq!(git(&d.bare, &["rev-parse", "main"]), main_before);
    assert_eq!(
        git(&d.bare, &["rev-parse", "flux-image-updates~1"]),
        main_before
    );
    // Reused: the next update goes on top of the existing push branch.
    let out = repo
        .round(
            &spec("flux-image-updates"),
            &mut [setter_change("5.0.2", "clusters")],
        )
        .unwrap();
    let second = out.pushed_commit.unwrap_or_default();
    assert_eq!(
        git(&d.bare, &["rev-parse", "flux-image-updates~1"]).trim(),
        first
    );
    assert_eq!(
        git(&d.bare, &["rev-parse", "flux-image-updates"]).trim(),
        second
    );
    assert_eq!(git(&d.bare, &["rev-parse", "main"]), main_before);
}

#[test]
fn batching_refspec_and_push_options() {
    let d = daemon();
    let (_state, repo) = warm(&d);
    let mut s = spec("main");
    s.push_refspec = Some("refs/heads/main:refs/heads/mirror".into());
    s.push_options = vec!["merge_request.create".into(), "ci.skip=true".into()];
    // Two automations on the same branch: one fetch, one push, two commits with their own messages.
    let mut changes: Vec<Change<'_>> = vec![
        setter_change("5.0.3", "clusters"),
        Box::new(|root: &Path| {
            std::fs::write(root.join("README.md"), "fleet, updated\n")
                .map_err(|e| e.to_string())?;
            Ok(Some(Applied {
                message: "docs: second automation".to_owned(),
                paths: Some(vec!["README.md".into()]),
            }))
        }),
    ];
    let out = repo.round(&s, &mut changes).unwrap();
    assert_eq!(out.messages.len(), 2);
    assert_eq!(
        git(&d.bare, &["log", "-2", "--format=%s", "main"]),
        "docs: second automation\nghcr.io/stefanprodan/podinfo:5.0.3\n"
    );
    assert_eq!(
        git(&d.bare, &["rev-parse", "mirror"]),
        git(&d.bare, &["rev-parse", "main"])
    );
    let opts = std::fs::read_to_string(d.bare.join("push-options.log")).unwrap_or_default();
    assert!(
        opts.contains("merge_request.create\nci.skip=true\n"),
        "{opts:?}"
    );
}

#[test]
fn a_change_that_names_its_files_stages_only_those() {
    let d = daemon();
    let (_state, repo) = warm(&d);
    let w = |p: PathBuf, text: &str| std::fs::write(p, text).map_err(|e| e.to_string());
    // README.md (named absolute) is committed, the named Deployment it removed is removed,
    // the stray file it also wrote without naming it is not committed.
    let mut named: Vec<Change<'_>> = vec![Box::new(|root: &Path| {
        w(root.join("README.md"), "fleet, named\n")?;
        w(root.join("stray.txt"), "not named\n")?;
        std::fs::remove_file(root.join("clusters/my-cluster/podinfo.yaml"))
            .map_err(|e| e.to_string())?;
        Ok(Some(Applied {
            message: "named".into(),
            paths: Some(vec![
                root.join("README.md"),
                "clusters/my-cluster/podinfo.yaml".into(),
            ]),
        }))
    })];
    repo.round(&spec("main"), &mut named).unwrap();
    assert_eq!(
        git(&d.bare, &["ls-tree", "-r", "--name-only", "main"]),
        "README.md\n"
    );
    assert_eq!(git(&d.bare, &["show", "main:README.md"]), "fleet, named\n");
    // A named path outside the work tree (or in .git) is not trusted: every change is staged,
    // as for a change that names nothing.
    let outside = tempfile::tempdir().unwrap();
    for (i, odd) in [outside.path().join("x"), ".git/config".into()]
        .into_iter()
        .enumerate()
    {
        let mut change: Vec<Change<'_>> = vec![Box::new(|root: &Path| {
            w(root.join(format!("stray-{i}.txt")), "staged\n")?;
            Ok(Some(Applied {
                message: format!("odd path {i}"),
                paths: Some(vec![odd.clone()]),
            }))
        })];
        repo.round(&spec("main"), &mut change).unwrap();
        let files = git(&d.bare, &["ls-tree", "-r", "--name-only", "main"]);
        assert!(files.contains(&format!("stray-{i}.txt\n")), "{files}");
    }
}

#[test]
fn checkout_by_tag_semver_commit_and_push_branch_rules() {
    let d = daemon();
    let (_state, repo) = warm(&d);
    let tagged = git(&d.bare, &["rev-parse", "v1.0.0^{commit}"]);
    assert_eq!(
        repo.resolve(&CheckoutRef::Tag("v1.0.0".into()))
            .map(|o| o.to_string())
            .ok(),
        Some(tagged.trim().to_owned())
    );
    assert_eq!(
        repo.resolve(&CheckoutRef::Semver(">=1.0.0".into()))
            .map(|o| o.to_string())
            .ok(),
        Some(tagged.trim().to_owned())
    );
    assert_eq!(
        repo.resolve(&CheckoutRef::Commit(tagged.trim().into()))
            .map(|o| o.to_string())
            .ok(),
        Some(tagged.trim().to_owned())
    );
    assert!(matches!(
        repo.resolve(&CheckoutRef::Branch("nope".into())),
        Err(GitError::Checkout(_))
    ));
    assert!(matches!(
        repo.resolve(&CheckoutRef::Semver(">=9.0.0".into())),
        Err(GitError::Checkout(_))
    ));
    assert_eq!(
        tagpilot_git::push_branch(&CheckoutRef::Tag("v1.0.0".into()), None),
        Err(NO_PUSH_BRANCH)
    );
    // A tag checkout pushing to a branch: the branch starts at the tag.
    let mut s = spec("from-tag");
    s.checkout = CheckoutRef::Tag("v1.0.0".into());
    let out = repo
        .round(&s, &mut [setter_change("5.0.9", "clusters")])
        .unwrap();
    assert!(out.pushed_commit.is_some());
    assert_eq!(git(&d.bare, &["rev-parse", "from-tag~1"]), tagged);
}

#[test]
fn corrupt_or_foreign_clones_are_recloned() {
    let d = daemon();
    let (state, repo) = warm(&d);
    let dir = repo.dir().to_path_buf();
    drop(repo);
    // Foreign: origin points elsewhere.
    git(
        &dir,
        &["remote", "set-url", "origin", "git://127.0.0.1:1/other.git"],
    );
    let repo = WarmRepo::open(state.path(), &d.url, Default::default()).unwrap();
    drop(repo);
    // Corrupt: the objects are gone.
    std::fs::remove_dir_all(dir.join(".git/objects")).unwrap();
    std::fs::create_dir_all(dir.join(".git/objects")).unwrap();
    let repo = WarmRepo::open(state.path(), &d.url, Default::default()).unwrap();
    // A stale lock from a killed process does not wedge the next round.
    std::fs::write(dir.join(".git/index.lock"), "").unwrap();
    drop(repo);
    let repo = WarmRepo::open(state.path(), &d.url, Default::default()).unwrap();
    let out = repo
        .round(&spec("main"), &mut [setter_change("5.0.4", "clusters")])
        .unwrap();
    assert!(out.pushed_commit.is_some());
    // Unreachable remote: a clear error naming it.
    let e = WarmRepo::open(
        state.path(),
        "git://127.0.0.1:1/none.git",
        Default::default(),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        e.starts_with("failed to fetch from git://127.0.0.1:1/none.git"),
        "{e}"
    );
}

#[test]
fn a_single_concurrent_push_costs_one_retry() {
    let d = daemon();
    let (_state, repo) = warm(&d);
    std::fs::write(d.work.join("human.txt"), "hi").unwrap();
    git(&d.work, &["add", "-A"]);
    git(&d.work, &["commit", "-q", "-m", "human"]);
    git(&d.work, &["push", "-q", "origin", "main"]);
    let out = repo
        .round(&spec("main"), &mut [setter_change("7.0.0", "clusters")])
        .unwrap();
    assert!(out.pushed_commit.is_some());
    assert_eq!(
        git(&d.bare, &["log", "--format=%s", "-2", "main"]),
        "ghcr.io/stefanprodan/podinfo:7.0.0\nhuman\n"
    );
}

#[test]
fn races_with_a_human_pusher_lose_nothing() {
    let d = daemon();
    let state = cache();
    let human = d.work.clone();
    let rounds = 50;
    // The human pushes unrelated commits as fast as it can while tagpilot runs its rounds.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let pusher = std::thread::spawn(move || {
        let mut pushed = Vec::new();
        let mut i: u64 = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) || i < 10 {
            i += 1;
            // A very busy team: a push every 100-400 ms (each push itself takes ~50 ms here).
            std::thread::sleep(Duration::from_millis(fastrand_ms(i)));
            let name = format!("human-{i}");
            std::fs::write(human.join(format!("{name}.txt")), &name).unwrap();
            git(&human, &["add", "-A"]);
            git(&human, &["commit", "-q", "-m", &name]);
            loop {
                let out = Command::new("git")
                    .current_dir(&human)
                    .args(["push", "-q", "origin", "main"])
                    .output()
                    .unwrap();
                if out.status.success() {
                    break;
                }
                git(&human, &["pull", "-q", "--rebase", "origin", "main"]);
            }
            pushed.push(name);
        }
        pushed
    });
    let repo = WarmRepo::open(state.path(), &d.url, Default::default()).unwrap();
    let tags: Vec<String> = (1..=rounds).map(|i| format!("6.{i}.0")).collect();
    let mut retried = 0;
    // Generous retries: a loaded CI machine makes each attempt slower than the human's pace.
    let mut race_spec = spec("main");
    race_spec.max_attempts = 25;
    for tag in &tags {
        let out = repo
            .round(&race_spec, &mut [setter_change(tag, "clusters")])
            .unwrap();
        assert!(out.pushed_commit.is_some(), "{tag}");
        retried += out.attempts - 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let human_commits = pusher.join().unwrap_or_else(|_| panic!("pusher panicked"));
    let log = git(&d.bare, &["log", "--format=%s", "main"]);
    for h in &human_commits {
        assert!(log.lines().any(|l| l == h), "human commit {h} lost");
    }
    for tag in &tags {
        assert!(
            log.lines()
                .any(|l| l == format!("ghcr.io/stefanprodan/podinfo:{tag}")),
            "update {tag} missing"
        );
    }
    let file = git(&d.bare, &["show", "main:clusters/my-cluster/podinfo.yaml"]);
    assert!(file.contains(&format!("podinfo:{} #", tags[tags.len() - 1])));
    eprintln!(
        "{} human commits, {rounds} rounds, {retried} push retries",
        human_commits.len()
    );
}

#[test]
#[ignore = "needs lighttpd and apache2-utils; run by tests/run.sh"]
fn smart_http_with_basic_auth() {
    let d = http_server();
    let state = cache();
    let good = tagpilot_git::GitAuth::Basic {
        username: "gituser".into(),
        password: "gitpass".into(),
    };
    let repo = WarmRepo::open(state.path(), &d.url, good).unwrap();
    let out = repo
        .round(&spec("main"), &mut [setter_change("5.0.3", "clusters")])
        .unwrap();
    assert_eq!(
        git(&d.bare, &["rev-parse", "main"]).trim(),
        out.pushed_commit.unwrap_or_default()
    );

    let bad = tagpilot_git::GitAuth::Basic {
        username: "gituser".into(),
        password: "WRONG-s3cr3t".into(),
    };
    let other = cache();
    let e = WarmRepo::open(other.path(), &d.url, bad)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("failed to fetch from http://127.0.0.1:"), "{e}");
    assert!(e.contains("authentication failed"), "{e}");
    assert!(!e.contains("WRONG-s3cr3t"), "{e}");
    let none = cache();
    let e = WarmRepo::open(none.path(), &d.url, Default::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("requires credentials"), "{e}");
    // Credentials in the URL are never shown.
    let with_user = d
        .url
        .replace("http://", "http://gituser:gitpass@")
        .replace("repo.git", "missing.git");
    let e = WarmRepo::open(cache().path(), &with_user, Default::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(!e.is_empty() && !e.contains("gitpass"), "{e}");

    // Credentials in the URL authenticate (through the callbacks), but the warm clone keeps
    // the URL without them, in a directory only its owner can read.
    let in_url = d.url.replace("http://", "http://gituser:gitpass@");
    let state = cache();
    let root = state.path().join("git");
    let repo = WarmRepo::open(&root, &in_url, Default::default()).unwrap();
    let config = std::fs::read_to_string(repo.dir().join(".git/config")).unwrap();
    assert!(config.contains(&d.url), "{config}");
    assert!(!config.contains("gitpass"), "{config}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap()
    };
    assert_eq!(mode(repo.dir()), 0o700);
    assert_eq!(mode(&repo.dir().join(".git/config")), 0o600);
    assert_eq!(mode(&root), 0o700);
    let marker = std::fs::read_dir(repo.dir().join(".git"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("gitpass")));
    assert!(!marker, "no file in .git keeps the password");
}

/// Debian's sshd on a loopback port with a key-only user whose shell is git-shell. Adds a
/// system user for the test and removes it on drop.
struct SshServer {
    child: Child,
    user: String,
    url: String,
    identity: String,
    known_hosts: String,
    bare: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("userdel").arg(&self.user).output();
    }
}

fn ssh_server() -> SshServer {
    let (dir, srv, bare, _work) = seeded_repo();
    let d = dir.path().to_path_buf();
    let keygen = |path: &Path| {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path)
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "ssh-keygen failed");
    };
    keygen(&d.join("hostkey"));
    keygen(&d.join("clientkey"));
    let user = format!("tpgit{}", std::process::id() % 100_000);
    let _ = Command::new("userdel").arg(&user).output();
    let shell = Command::new("sh")
        .args(["-c", "command -v git-shell"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let home = d.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let ok = Command::new("useradd")
        .arg("-M")
        .arg("-d")
        .arg(&home)
        .arg("-s")
        .arg(&shell)
        .arg(&user)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "useradd failed (the SSH test needs root)");
    // useradd leaves the account locked ('!'); sshd without PAM refuses locked accounts.
    let _ = Command::new("usermod")
        .args(["-p", "*"])
        .arg(&user)
        .output();
    std::fs::copy(d.join("clientkey.pub"), d.join("authorized_keys")).unwrap();
    let _ = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:"))
        .arg(&srv)
        .arg(&home)
        .arg(d.join("authorized_keys"))
        .output();
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = free_port();
    let config = format!(
        "ListenAddress 127.0.0.1\nPort {port}\nHostKey {host}\nPidFile {dir}/sshd.pid\nAuthorizedKeysFile {dir}/authorized_keys\nAllowUsers {user}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin no\nUsePAM no\nStrictModes no\n",
        host = d.join("hostkey").display(),
        dir = d.display(),
    );
    std::fs::write(d.join("sshd_config"), config).unwrap();
    let mut child = Command::new("/usr/sbin/sshd")
        .arg("-D")
        .arg("-f")
        .arg(d.join("sshd_config"))
        .arg("-E")
        .arg(d.join("sshd.log"))
        .spawn()
        .unwrap_or_else(|e| panic!("sshd (apt-get install openssh-server): {e}"));
    wait_for_port(port, &mut child, STARTUP);
    let hostpub = std::fs::read_to_string(d.join("hostkey.pub")).unwrap_or_default();
    let key: Vec<&str> = hostpub.split_whitespace().take(2).collect();
    SshServer {
        child,
        url: format!("ssh://{user}@127.0.0.1:{port}{}", bare.display()),
        user,
        identity: std::fs::read_to_string(d.join("clientkey")).unwrap_or_default(),
        known_hosts: format!("[127.0.0.1]:{port} {}\n", key.join(" ")),
        bare,
        _dir: dir,
    }
}

#[test]
#[ignore = "needs openssh-server and root (adds a test user); run by tests/run.sh"]
fn ssh_with_identity_and_pinned_known_hosts() {
    let s = ssh_server();
    let auth = |known_hosts: &str| tagpilot_git::GitAuth::Ssh {
        username: None,
        identity: s.identity.clone(),
        password: None,
        known_hosts: known_hosts.to_owned(),
    };
    let state = cache();
    let repo = WarmRepo::open(state.path(), &s.url, auth(&s.known_hosts)).unwrap();
    let out = repo
        .round(&spec("main"), &mut [setter_change("5.0.3", "clusters")])
        .unwrap();
    assert_eq!(
        git(&s.bare, &["rev-parse", "main"]).trim(),
        out.pushed_commit.unwrap_or_default()
    );
    // An unknown host key is refused.
    let other = "[127.0.0.1]:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n";
    let e = WarmRepo::open(cache().path(), &s.url, auth(other))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("not in known_hosts"), "{e}");
    // A missing known_hosts is a configuration error before any connection.
    let e = WarmRepo::open(cache().path(), &s.url, auth(""))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("'known_hosts' is required"), "{e}");
}

fn signed_round(signer: tagpilot_git::Signer) -> (Daemon, String) {
    let d = daemon();
    let (_state, repo) = warm(&d);
    let mut s = spec("main");
    s.signer = Some(std::sync::Arc::new(signer));
    let out = repo
        .round(&s, &mut [setter_change("5.0.3", "clusters")])
        .unwrap();
    let commit = out.pushed_commit.unwrap_or_default();
    (d, commit)
}

#[test]
#[ignore = "needs gpg; run by tests/run.sh"]
fn openpgp_signed_commits_verify_with_git() {
    let home = tempfile::tempdir().unwrap();
    let gpg = |args: &[&str]| {
        let out = Command::new("gpg")
            .env("GNUPGHOME", home.path())
            .args([
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "s3cr3t-pass",
            ])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("gpg: {e}"));
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    gpg(&[
        "--quick-gen-key",
        "Flux Bot <fluxcdbot@users.noreply.github.com>",
        "ed25519",
        "sign",
        "never",
    ]);
    let armored = gpg(&["--armor", "--export-secret-keys"]);
    // Slightly wrong armor (no blank line after BEGIN): the error must not quote the key,
    // neither as text nor as the byte list the parser prints.
    let broken = armored.replacen("-----\n\n", "-----\n", 1);
    assert_ne!(broken, armored);
    let body: Vec<&str> = armored
        .lines()
        .filter(|l| l.len() > 40 && !l.starts_with("-----"))
        .collect();
    assert!(!body.is_empty());
    for key in [&broken, &armored.replace("PRIVATE KEY BLOCK", "KEY")] {
        let e = tagpilot_git::Signer::openpgp(key, Some("s3cr3t-pass"))
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("git.asc is not"), "{e}");
        for line in &body {
            let bytes: Vec<String> = line.bytes().take(4).map(|b| b.to_string()).collect();
            assert!(!e.contains(&line[..16]), "{e}");
            assert!(!e.contains(&bytes.join(", ")), "{e}");
        }
    }
    assert!(
        tagpilot_git::Signer::openpgp(&armored, Some("wrong")).is_err(),
        "a wrong passphrase is refused up front"
    );
    let signer = tagpilot_git::Signer::openpgp(&armored, Some("s3cr3t-pass")).unwrap();
    assert!(!format!("{signer:?}").contains("s3cr3t"));
    let (d, commit) = signed_round(signer);
    let out = Command::new("git")
        .current_dir(&d.bare)
        .env("GNUPGHOME", home.path())
        .args(["verify-commit", "--raw", &commit])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "git verify-commit failed: {status}");
    assert!(status.contains("GOODSIG"), "{status}");
}

#[test]
#[ignore = "needs ssh-keygen; run by tests/run.sh"]
fn ssh_signed_commits_verify_with_git() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing");
    let ok = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "key-pass",
            "-C",
            "fluxcdbot",
            "-f",
        ])
        .arg(&key)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "ssh-keygen failed");
    let identity = std::fs::read_to_string(&key).unwrap_or_default();
    assert!(
        tagpilot_git::Signer::ssh(&identity, None).is_err(),
        "an encrypted key needs its password"
    );
    assert!(tagpilot_git::Signer::ssh(&identity, Some("nope")).is_err());
    let signer = tagpilot_git::Signer::ssh(&identity, Some("key-pass")).unwrap();
    let (d, commit) = signed_round(signer);
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap_or_default();
    let allowed = dir.path().join("allowed_signers");
    let pubkey: Vec<&str> = public.split_whitespace().take(2).collect();
    std::fs::write(
        &allowed,
        format!("fluxcdbot@users.noreply.github.com {}\n", pubkey.join(" ")),
    )
    .unwrap();
    let out = Command::new("git")
        .current_dir(&d.bare)
        .args(["-c", "gpg.format=ssh", "-c"])
        .arg(format!("gpg.ssh.allowedSignersFile={}", allowed.display()))
        .args(["verify-commit", &commit])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "git verify-commit failed: {status}\n{}",
        git(&d.bare, &["cat-file", "-p", &commit])
    );
    assert!(
        status.contains("Good \"git\" signature for fluxcdbot@users.noreply.github.com"),
        "{status}"
    );
}

/// Kills rounds at random points, then checks that the next round works and that the server
/// holds only whole commits. The rounds run in child processes: this same test binary, re-run
/// with `TAGPILOT_CRASH_*` set, in which case the test only runs one round.
#[test]
fn killed_rounds_leave_nothing_half_done() {
    if let (Ok(cache_dir), Ok(url), Ok(tag)) = (
        std::env::var("TAGPILOT_CRASH_CACHE"),
        std::env::var("TAGPILOT_CRASH_URL"),
        std::env::var("TAGPILOT_CRASH_TAG"),
    ) {
        let repo = WarmRepo::open(Path::new(&cache_dir), &url, Default::default()).unwrap();
        let out = repo
            .round(&spec("main"), &mut [setter_change(&tag, "clusters")])
            .unwrap();
        assert!(out.pushed_commit.is_some());
        return;
    }
    let d = daemon();
    let state = cache();
    let exe = std::env::current_exe().unwrap();
    let run = |tag: &str| {
        Command::new(&exe)
            .args([
                "--exact",
                "killed_rounds_leave_nothing_half_done",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TAGPILOT_CRASH_CACHE", state.path())
            .env("TAGPILOT_CRASH_URL", &d.url)
            .env("TAGPILOT_CRASH_TAG", tag)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    for i in 0..15u64 {
        let mut child = run(&format!("8.{i}.0"));
        std::thread::sleep(Duration::from_millis((i * 37) % 150));
        let _ = child.kill();
        let _ = child.wait();
    }
    // The next round after all those kills works, and the server's history is whole.
    let out = run("9.0.0").wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    git(&d.bare, &["fsck", "--strict"]);
    let file = git(&d.bare, &["show", "main:clusters/my-cluster/podinfo.yaml"]);
    assert_eq!(file, DEPLOY.replace(":5.0.0 #", ":9.0.0 #"));
    for subject in git(&d.bare, &["log", "--format=%s", "main"]).lines() {
        assert!(
            subject == "initial" || subject.starts_with("ghcr.io/stefanprodan/podinfo:"),
            "unexpected commit {subject:?}"
        );
    }
}

#[test]
#[ignore = "needs lighttpd with mod_openssl; run by tests/run.sh"]
fn https_with_a_private_ca() {
    let d = lighttpd_server(true);
    let auth = || tagpilot_git::GitAuth::Basic {
        username: "gituser".into(),
        password: "gitpass".into(),
    };
    let ca = std::fs::read(d._dir.path().join("ca.pem")).unwrap();
    let roots = tagpilot_git::ExtraRoots::from_pem(&ca).unwrap();
    // Without ca.crt the private CA is not trusted.
    let e = WarmRepo::open(cache().path(), &d.url, auth())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("certificate"), "{e}");
    let state = cache();
    let repo = WarmRepo::open_with_roots(state.path(), &d.url, auth(), Some(roots)).unwrap();
    let out = repo
        .round(&spec("main"), &mut [setter_change("5.0.3", "clusters")])
        .unwrap();
    assert_eq!(
        git(&d.bare, &["rev-parse", "main"]).trim(),
        out.pushed_commit.unwrap_or_default()
    );
    assert!(tagpilot_git::ExtraRoots::from_pem(b"not a certificate").is_err());
}
