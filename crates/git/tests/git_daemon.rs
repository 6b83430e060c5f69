//! Rounds against a real `git daemon --enable=receive-pack` on 127.0.0.1, with the command-line
//! git as the referee. The server repository has `receive.denyNonFastForwards`, so any force
//! push would be refused and fail the test.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tagpilot_git::{
    source_revision, Change, CheckoutRef, GitError, RoundSpec, WarmRepo, NO_PUSH_BRANCH,
};
use tagpilot_setters::{scan_tree, write_changes, LatestRef};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
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
    let port = free_port();
    // Run git-daemon itself (not the `git daemon` wrapper) so that killing it stops the server.
    let exec_path = git(dir.path(), &["--exec-path"]);
    let child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
        .args([
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            "--listen=127.0.0.1",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", srv.display()))
        .arg(&srv)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("git daemon: {e}"));
    wait_port(port);
    Daemon {
        child,
        url: format!("git://127.0.0.1:{port}/repo.git"),
        bare,
        work,
        _dir: dir,
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server on {port} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The same repository behind lighttpd + git http-backend with basic auth (gituser:gitpass).
fn http_server() -> Daemon {
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
    std::fs::write(d.join("lighttpd.conf"), conf).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new("lighttpd")
        .arg("-D")
        .arg("-f")
        .arg(d.join("lighttpd.conf"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("lighttpd (apt-get install lighttpd): {e}"));
    wait_port(port);
    Daemon {
        child,
        url: format!("http://127.0.0.1:{port}/git/repo.git"),
        bare,
        work,
        _dir: dir,
    }
}

/// A bare repository (receive.denyNonFastForwards, push options recorded by a pre-receive
/// hook) with one commit on `main` and tag v1.0.0, and a human's clone of it.
fn seeded_repo() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let srv = dir.path().join("srv");
    let bare = srv.join("repo.git");
    std::fs::create_dir_all(&bare).unwrap_or_else(|e| panic!("{e}"));
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    git(&bare, &["config", "receive.denyNonFastForwards", "true"]);
    git(&bare, &["config", "receive.advertisePushOptions", "true"]);
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\ni=0\nwhile [ \"$i\" -lt \"${GIT_PUSH_OPTION_COUNT:-0}\" ]; do eval \"echo \\$GIT_PUSH_OPTION_$i\" >> \"$GIT_DIR/push-options.log\"; i=$((i+1)); done\ncat > /dev/null\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
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
    std::fs::create_dir_all(work.join("clusters/my-cluster")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(work.join("clusters/my-cluster/podinfo.yaml"), DEPLOY)
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(work.join("README.md"), "fleet\n").unwrap_or_else(|e| panic!("{e}"));
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
        Ok(Some(format!("ghcr.io/stefanprodan/podinfo:{tag}\n")))
    })
}

/// 100..400 ms, varying with `i` (no RNG dependency needed).
fn fastrand_ms(i: u64) -> u64 {
    100 + (i.wrapping_mul(2_654_435_761) >> 7) % 300
}

fn cache() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn round_commits_pushes_and_never_commits_nothing() {
    let d = daemon();
    let state = cache();
    let repo =
        WarmRepo::open(state.path(), &d.url, Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut changes = vec![setter_change("5.0.3", "clusters/my-cluster")];
    let out = repo
        .round(&spec("main"), &mut changes)
        .unwrap_or_else(|e| panic!("{e}"));
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
    let again = repo
        .round(&spec("main"), &mut changes)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.pushed_commit, None);
    assert_eq!(git(&d.bare, &["rev-parse", "main"]).trim(), pushed);
    assert_eq!(
        source_revision("main", &pushed),
        format!("main@sha1:{pushed}")
    );
    // A change that writes identical bytes makes no empty commit either.
    let mut same: Vec<Change<'_>> = vec![Box::new(|root: &Path| {
        std::fs::write(root.join("README.md"), "fleet\n").map_err(|e| e.to_string())?;
        Ok(Some("touch".to_owned()))
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
    let repo =
        WarmRepo::open(state.path(), &d.url, Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let out = repo
        .round(
            &spec("flux-image-updates"),
            &mut [setter_change("5.0.1", "clusters")],
        )
        .unwrap_or_else(|e| panic!("{e}"));
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
        .unwrap_or_else(|e| panic!("{e}"));
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
    let state = cache();
    let repo =
        WarmRepo::open(state.path(), &d.url, Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut s = spec("main");
    s.push_refspec = Some("refs/heads/main:refs/heads/mirror".into());
    s.push_options = vec!["merge_request.create".into(), "ci.skip=true".into()];
    // Two automations on the same branch: one fetch, one push, two commits with their own messages.
    let mut changes: Vec<Change<'_>> = vec![
        setter_change("5.0.3", "clusters"),
        Box::new(|root: &Path| {
            std::fs::write(root.join("README.md"), "fleet, updated\n")
                .map_err(|e| e.to_string())?;
            Ok(Some("docs: second automation".to_owned()))
        }),
    ];
    let out = repo
        .round(&s, &mut changes)
        .unwrap_or_else(|e| panic!("{e}"));
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
fn checkout_by_tag_semver_commit_and_push_branch_rules() {
    let d = daemon();
    let state = cache();
    let repo =
        WarmRepo::open(state.path(), &d.url, Default::default()).unwrap_or_else(|e| panic!("{e}"));
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
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.pushed_commit.is_some());
    assert_eq!(git(&d.bare, &["rev-parse", "from-tag~1"]), tagged);
}

#[test]
fn corrupt_or_foreign_clones_are_recloned() {
    let d = daemon();
    let state = cache();
    let repo =
        WarmRepo::open(state.path(), &d.url, Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let dir = repo.dir().to_path_buf();
    drop(repo);
    // Foreign: origin points elsewhere.
    git(
        &dir,
        &["remote", "set-url", "origin", "git://127.0.0.1:1/other.git"],
    );
    let repo =
        WarmRepo::open(state.path(), &d.url, Default::default()).unwrap_or_else(|e| panic!("{e}"));
    drop(repo);
    // Corrupt: the objects are gone.
    std::fs::remove_dir_all(dir.join(".git/objects")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(dir.join(".git/objects")).unwrap_or_else(|e| panic!("{e}"));
    let repo =
        WarmRepo::open(state.path(), &d.url, Default::default()).unwrap_or_else(|e| panic!("{e}"));
    // A stale lock from a killed process does not wedge the next round.
    std::fs::write(dir.join(".git/index.lock"), "").unwrap_or_else(|e| panic!("{e}"));
    drop(repo);
    let repo =
        WarmRepo::open(state.path(), &d.url, Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let out = repo
        .round(&spec("main"), &mut [setter_change("5.0.4", "clusters")])
        .unwrap_or_else(|e| panic!("{e}"));
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
    let state = cache();
    let repo =
        WarmRepo::open(state.path(), &d.url, Default::default()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(d.work.join("human.txt"), "hi").unwrap_or_else(|e| panic!("{e}"));
    git(&d.work, &["add", "-A"]);
    git(&d.work, &["commit", "-q", "-m", "human"]);
    git(&d.work, &["push", "-q", "origin", "main"]);
    let out = repo
        .round(&spec("main"), &mut [setter_change("7.0.0", "clusters")])
        .unwrap_or_else(|e| panic!("{e}"));
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
            std::fs::write(human.join(format!("{name}.txt")), &name)
                .unwrap_or_else(|e| panic!("{e}"));
            git(&human, &["add", "-A"]);
            git(&human, &["commit", "-q", "-m", &name]);
            loop {
                let out = Command::new("git")
                    .current_dir(&human)
                    .args(["push", "-q", "origin", "main"])
                    .output()
                    .unwrap_or_else(|e| panic!("{e}"));
                if out.status.success() {
                    break;
                }
                git(&human, &["pull", "-q", "--rebase", "origin", "main"]);
            }
            pushed.push(name);
        }
        pushed
    });
    let repo =
        WarmRepo::open(state.path(), &d.url, Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let tags: Vec<String> = (1..=rounds).map(|i| format!("6.{i}.0")).collect();
    let mut retried = 0;
    for tag in &tags {
        let out = repo
            .round(&spec("main"), &mut [setter_change(tag, "clusters")])
            .unwrap_or_else(|e| panic!("{e}"));
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
    let repo = WarmRepo::open(state.path(), &d.url, good).unwrap_or_else(|e| panic!("{e}"));
    let out = repo
        .round(&spec("main"), &mut [setter_change("5.0.3", "clusters")])
        .unwrap_or_else(|e| panic!("{e}"));
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
}
