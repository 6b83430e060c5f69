//! The daemon's core under real concurrency, with a real docker-registry and git daemon on
//! 127.0.0.1: one Git worker per remote (two automations writing two branches of one remote
//! never mix their edits), coalesced webhook bursts, and reloads that never drop objects
//! (a syntax error, a vanished directory, EMFILE).
#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion: a panic with the error

mod common;

use common::*;

const APP: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: REG/team/app:1.0.0 # {\"$imagepolicy\": \"flux-system:app\"}\n";

/// An ImageRepository and policy for `team/app`, one remote, and an automation per `branches`
/// entry writing `./<dir>` to `<branch>`; a generic Receiver for the repository and one for
/// the automations.
fn manifests(reg: &str, git_url: &str, interval: &str, branches: &[(&str, &str)]) -> String {
    let mut text = format!(
        r#"apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: app, namespace: flux-system}}
spec:
  image: {reg}/team/app
  interval: {interval}
  insecure: true
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: app, namespace: flux-system}}
spec:
  imageRepositoryRef: {{name: app}}
  policy: {{semver: {{range: ">=1.0.0"}}}}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: fleet, namespace: flux-system}}
spec:
  interval: 1h
  ref: {{branch: main}}
  url: {git_url}
---
apiVersion: v1
kind: Secret
metadata: {{name: hook-token, namespace: flux-system}}
stringData: {{token: s3cr3t}}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {{name: scan, namespace: flux-system}}
spec:
  type: generic
  secretRef: {{name: hook-token}}
  resources:
    - {{apiVersion: image.toolkit.fluxcd.io/v1, kind: ImageRepository, name: app}}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {{name: write, namespace: flux-system}}
spec:
  type: generic
  secretRef: {{name: hook-token}}
  resources:
"#
    );
    for (dir, _) in branches {
        text.push_str(&format!(
            "    - {{apiVersion: image.toolkit.fluxcd.io/v1, kind: ImageUpdateAutomation, name: to-{dir}}}\n"
        ));
    }
    for (dir, branch) in branches {
        text.push_str(&format!(
            r#"---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {{name: to-{dir}, namespace: flux-system}}
spec:
  interval: {interval}
  sourceRef: {{kind: GitRepository, name: fleet}}
  git:
    checkout: {{ref: {{branch: main}}}}
    commit:
      author: {{email: bot@example.com, name: bot}}
      messageTemplate: '{dir}: {{{{range .Changed.Changes}}}}{{{{.NewValue}}}}{{{{end}}}}'
    push: {{branch: {branch}}}
  update: {{path: ./{dir}, strategy: Setters}}
"#
        ));
    }
    text
}

struct Fleet {
    _reg: Server,
    reg: String,
    git: GitServer,
    config: tempfile::TempDir,
    state: tempfile::TempDir,
    api: String,
    hooks: String,
}

impl Fleet {
    fn new(interval: &str, branches: &[(&str, &str)]) -> Self {
        let reg = registry(Auth::None);
        let reg_host = format!("127.0.0.1:{}", reg.port);
        push(&format!("http://{reg_host}"), "team/app", &["1.0.0"], None);
        let app = APP.replace("REG", &reg_host);
        let files: Vec<(String, &str)> = branches
            .iter()
            .map(|(dir, _)| (format!("{dir}/app.yaml"), app.as_str()))
            .collect();
        let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), *t)).collect();
        let git = git_server(&files);
        let config = tempfile::tempdir().unwrap();
        std::fs::write(
            config.path().join("fleet.yaml"),
            manifests(&reg_host, &git.url, interval, branches),
        )
        .unwrap();
        Fleet {
            _reg: reg,
            reg: reg_host,
            git,
            config,
            state: tempfile::tempdir().unwrap(),
            api: format!("127.0.0.1:{}", free_port()),
            hooks: format!("127.0.0.1:{}", free_port()),
        }
    }

    /// Starts the daemon through `sh -c` so that a test can set limits first (`prefix`).
    fn daemon(&self, prefix: &str) -> Daemon {
        let log = self.state.path().join("daemon.log");
        let cmd = format!(
            "{prefix} exec '{}' run --reload-seconds 1 --config '{}' --state-dir '{}' --api-address {} --webhook-address {}",
            env!("CARGO_BIN_EXE_tagpilot"),
            self.config.path().display(),
            self.state.path().display(),
            self.api,
            self.hooks
        );
        let child = std::process::Command::new("sh")
            .args(["-c", &cmd])
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon(child);
        assert!(
            eventually(30, || http_get(&format!("http://{}/readyz", self.api))
                .is_some()),
            "daemon never ready: {}",
            self.logs()
        );
        d
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.state.path().join("daemon.log")).unwrap_or_default()
    }

    fn push_tag(&self, tag: &str) {
        push(&format!("http://{}", self.reg), "team/app", &[tag], None);
    }

    /// The webhook path of Receiver `name` (from its status).
    fn hook(&self, name: &str) -> String {
        let key = format!("Receiver/flux-system/{name}");
        let mut path = String::new();
        assert!(
            eventually(20, || {
                path = api_objects(&self.api)
                    .get(&key)
                    .and_then(|s| s["webhookPath"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                !path.is_empty()
            }),
            "no webhook path for {name}: {}",
            self.logs()
        );
        format!("http://{}{path}", self.hooks)
    }

    /// The app image on `branch` under `dir`, as the Git server has it.
    fn image_on(&self, branch: &str, dir: &str) -> String {
        let out = std::process::Command::new("git")
            .current_dir(&self.git.bare)
            .args(["show", &format!("{branch}:{dir}/app.yaml")])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("image: "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("")
            .to_owned()
    }

    fn wait_for(&self, branch: &str, dir: &str, tag: &str) {
        let want = format!("{}/team/app:{tag}", self.reg);
        assert!(
            eventually(60, || self.image_on(branch, dir) == want),
            "{branch} never got {tag} (has {}): {}",
            self.image_on(branch, dir),
            self.logs()
        );
    }

    /// A scan counter of the metrics endpoint.
    fn scans(&self) -> u64 {
        let metrics = http_get(&format!("http://{}/metrics", self.api)).unwrap_or_default();
        metrics
            .lines()
            .find(|l| {
                l.starts_with("tagpilot_scans_total{")
                    && l.contains("namespace=\"flux-system\"")
                    && l.contains("name=\"app\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// Every file each commit of `branch` (after main's initial commit) touched.
fn touched(bare: &std::path::Path, branch: &str) -> Vec<(String, Vec<String>)> {
    let log = git_cmd(
        bare,
        &[
            "log",
            "--format=@%H %s",
            "--name-only",
            &format!("main..{branch}"),
        ],
    );
    let mut commits: Vec<(String, Vec<String>)> = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        match line.strip_prefix('@') {
            Some(subject) => commits.push((subject.to_owned(), Vec::new())),
            None => {
                if let Some(c) = commits.last_mut() {
                    c.1.push(line.to_owned());
                }
            }
        }
    }
    commits
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn two_automations_on_one_remote_never_mix_their_branches() {
    let f = Fleet::new("1s", &[("a", "branch-a"), ("b", "branch-b")]);
    let daemon = f.daemon("");
    let write_hook = f.hook("write");
    // Tags arrive every ~0.3 s while interval rounds (1 s) and webhook rounds run at once. The
    // pause paces the workload (the arrival rate under test); it waits for nothing.
    let total = 40;
    for i in 1..=total {
        f.push_tag(&format!("1.0.{i}"));
        if i % 3 == 0 {
            assert_eq!(post(&write_hook, &[], b"{}"), 200, "{}", f.logs());
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let newest = format!("1.0.{total}");
    f.wait_for("branch-a", "a", &newest);
    f.wait_for("branch-b", "b", &newest);
    drop(daemon);

    for (branch, dir) in [("branch-a", "a/"), ("branch-b", "b/")] {
        let commits = touched(&f.git.bare, branch);
        assert!(commits.len() >= 2, "{branch}: {commits:?}");
        for (subject, files) in &commits {
            assert!(
                !files.is_empty()
                    && files
                        .iter()
                        .all(|p| p.starts_with(dir) && p.ends_with("/app.yaml")),
                "{branch}: commit {subject} touched {files:?}"
            );
        }
        // No temp file anywhere in the branch's tree.
        let tree = git_cmd(&f.git.bare, &["ls-tree", "-r", "--name-only", branch]);
        assert!(!tree.contains(".tmp"), "{branch}: {tree}");
    }
    // main is nobody's push branch here.
    assert_eq!(f.image_on("main", "a"), format!("{}/team/app:1.0.0", f.reg));
    let logs = f.logs();
    assert!(!logs.contains("locked"), "a round hit a lock: {logs}");
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("ImageUpdateAutomation") && l.contains("reconciliation failed")),
        "a round failed: {logs}"
    );
}

/// POSTs `{}` to `path` over a plain connection once every thread of `barrier` is connected;
/// the HTTP status (0 on failure).
fn raw_post(addr: &str, path: &str, barrier: &std::sync::Barrier) -> u16 {
    use std::io::{Read as _, Write as _};
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else {
        barrier.wait();
        return 0;
    };
    barrier.wait();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    let mut answer = String::new();
    if conn.write_all(request.as_bytes()).is_err() || conn.read_to_string(&mut answer).is_err() {
        return 0;
    }
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn a_webhook_burst_is_one_or_two_scans() {
    let f = Fleet::new("1h", &[("a", "main")]);
    let _daemon = f.daemon("");
    let scan_hook = f.hook("scan");
    assert!(
        eventually(30, || f.scans() >= 1),
        "first scan: {}",
        f.logs()
    );
    let before = f.scans();
    f.push_tag("1.1.0");
    // 30 connections opened first, then every request written at once (a barrier).
    let path = scan_hook
        .strip_prefix(&format!("http://{}", f.hooks))
        .unwrap_or_default()
        .to_owned();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(30));
    let burst: Vec<_> = (0..30)
        .map(|_| {
            let (addr, path, barrier) = (f.hooks.clone(), path.clone(), barrier.clone());
            std::thread::spawn(move || raw_post(&addr, &path, &barrier))
        })
        .collect();
    let codes: Vec<u16> = burst.into_iter().map(|h| h.join().unwrap_or(0)).collect();
    assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    f.wait_for("main", "a", "1.1.0");
    let scans = f.scans() - before;
    assert!(
        (1..=2).contains(&scans),
        "30 webhooks made {scans} scans: {}",
        f.logs()
    );
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn reloads_that_cannot_read_keep_every_object_running() {
    let f = Fleet::new("1s", &[("a", "main")]);
    // A small descriptor limit, so that idle connections can exhaust it (EMFILE).
    let _daemon = f.daemon("ulimit -n 96;");
    f.wait_for("main", "a", "1.0.0");
    let manifest = f.config.path().join("fleet.yaml");
    let good = std::fs::read_to_string(&manifest).unwrap();
    let reloaded = |n: usize| f.logs().matches("configuration loaded").count() >= n;

    // 1. A syntax error at the top of the file: nothing after it parses, so every object of
    // the file keeps running at its last good version, and a new tag still lands.
    replace_file(&manifest, format!("kind: [unclosed\n---\n{good}"));
    assert!(eventually(20, || reloaded(2)), "{}", f.logs());
    f.push_tag("1.1.0");
    f.wait_for("main", "a", "1.1.0");
    let objects = api_objects(&f.api);
    let policy = &objects["ImagePolicy/flux-system/app"];
    assert!(
        policy["configError"]
            .as_str()
            .is_some_and(|e| e.contains("could not be loaded")),
        "{policy}"
    );
    replace_file(&manifest, &good);
    assert!(eventually(20, || reloaded(3)), "{}", f.logs());

    // 2. The whole directory away for a few seconds.
    let away = f.state.path().join("away");
    std::fs::rename(f.config.path(), &away).unwrap();
    assert!(eventually(20, || reloaded(4)), "{}", f.logs());
    f.push_tag("1.2.0");
    f.wait_for("main", "a", "1.2.0");
    std::fs::rename(&away, f.config.path()).unwrap();
    assert!(eventually(20, || reloaded(5)), "{}", f.logs());

    // 3. EMFILE: idle connections hold every descriptor while the configuration changes.
    let port: u16 = f
        .hooks
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let idle: Vec<std::net::TcpStream> = (0..200)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    replace_file(&manifest, format!("{good}\n# touched\n"));
    assert!(eventually(20, || reloaded(6)), "{}", f.logs());
    drop(idle);
    f.push_tag("1.3.0");
    f.wait_for("main", "a", "1.3.0");
    let logs = f.logs();
    assert!(
        logs.contains("Too many open files") || logs.contains("os error 24"),
        "the test never reached EMFILE: {logs}"
    );

    // Flux's status model on a policy whose repository does not exist: Ready False with
    // DependencyNotReady, Reconciling True (retrying), the generation it saw.
    std::fs::write(
        f.config.path().join("orphan.yaml"),
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: orphan, namespace: flux-system}\nspec: {imageRepositoryRef: {name: nowhere}, policy: {semver: {range: '>=1.0.0'}}}\n",
    )
    .unwrap();
    let mut orphan = serde_json::Value::Null;
    assert!(
        eventually(20, || {
            orphan = api_objects(&f.api)
                .remove("ImagePolicy/flux-system/orphan")
                .unwrap_or_default();
            orphan["conditions"]
                .as_array()
                .is_some_and(|c| !c.is_empty())
        }),
        "{}",
        f.logs()
    );
    let cond = |t: &str| {
        orphan["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t).cloned())
            .unwrap_or_default()
    };
    assert_eq!(cond("Ready")["status"], "False", "{orphan}");
    assert_eq!(cond("Ready")["reason"], "DependencyNotReady", "{orphan}");
    assert_eq!(
        cond("Reconciling")["reason"],
        "ProgressingWithRetry",
        "{orphan}"
    );
    assert!(cond("Stalled").is_null(), "{orphan}");
    assert!(orphan["observedGeneration"].as_i64().is_some(), "{orphan}");
    assert!(
        cond("Ready")["lastTransitionTime"]
            .as_str()
            .and_then(tagpilot_api::parse_rfc3339)
            .is_some(),
        "{orphan}"
    );
    // The healthy policy carries Ready alone (Reconciling and Stalled only while True).
    let app = &api_objects(&f.api)["ImagePolicy/flux-system/app"];
    assert_eq!(app["conditions"][0]["type"], "Ready", "{app}");
    assert_eq!(app["conditions"][0]["reason"], "Succeeded", "{app}");
    assert_eq!(app["conditions"].as_array().map(Vec::len), Some(1), "{app}");
}

/// `tagpilot run` without a webhook server, its log in `state/daemon.log`.
fn scan_only_daemon(
    config: &std::path::Path,
    state: &std::path::Path,
    api: &str,
) -> (Daemon, std::path::PathBuf) {
    let log = state.join("daemon.log");
    let daemon = Daemon(
        std::process::Command::new(env!("CARGO_BIN_EXE_tagpilot"))
            .args([
                "run",
                "--webhook-address",
                "",
                "--api-address",
                api,
                "--config",
            ])
            .arg(config)
            .arg("--state-dir")
            .arg(state)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    (daemon, log)
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn a_hung_registry_cannot_starve_a_healthy_one() {
    let reg = registry(Auth::None);
    push(
        &format!("http://127.0.0.1:{}", reg.port),
        "team/app",
        &["1.0.0"],
        None,
    );
    // A fixture front that answers every tag list one byte every half second.
    let drip = front(reg.port, "drip", 100);
    let mut text = format!(
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: healthy, namespace: apps}}\nspec: {{image: 127.0.0.1:{}/team/app, interval: 10s, insecure: true}}\n",
        reg.port
    );
    for i in 0..20 {
        text.push_str(&format!(
            "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: slow-{i}, namespace: apps}}\nspec: {{image: 127.0.0.1:{}/slow/app-{i}, interval: 1m, timeout: 60s, insecure: true}}\n",
            drip.port
        ));
    }
    let config = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("repos.yaml"), text).unwrap();
    let state = tempfile::tempdir().unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let (_daemon, log) = scan_only_daemon(config.path(), state.path(), &api);
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    // The healthy repository's scan times, until it has been scanned four times (~30 s).
    let mut times: Vec<u64> = Vec::new();
    let four = eventually(45, || {
        let t = api_objects(&api)
            .get("ImageRepository/apps/healthy")
            .and_then(|s| s["lastScanResult"]["scanTime"].as_u64());
        if let Some(t) = t.filter(|t| times.last() != Some(t)) {
            times.push(t);
        }
        times.len() >= 4
    });
    assert!(four, "healthy scans at {times:?}: {}", logs());
    assert!(times.len() >= 3, "healthy scans at {times:?}: {}", logs());
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (8..=12).contains(&gap),
            "healthy scans at {times:?}: {}",
            logs()
        );
    }
    // The slow host really held its share: its tag lists were still dripping.
    let stats = front_stats(drip.port);
    assert!(stats["requests"].as_u64() >= Some(2), "{stats}");
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn repositories_of_one_image_share_one_listing() {
    let reg = registry(Auth::None);
    push(
        &format!("http://127.0.0.1:{}", reg.port),
        "team/app",
        &["1.0.0", "1.1.0", "2.0.0-rc.1"],
        None,
    );
    // A fixture front that takes 0.3 s per tag list, so the scans overlap.
    let slow = front(reg.port, "slow", 100);
    let repo = |name: &str, exclude: &str| {
        format!(
            "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: {name}, namespace: apps}}\nspec: {{image: 127.0.0.1:{}/team/app, interval: 1h, insecure: true, exclusionList: ['{exclude}']}}\n",
            slow.port
        )
    };
    let config = tempfile::tempdir().unwrap();
    std::fs::write(
        config.path().join("repos.yaml"),
        repo("stable", "-rc")
            + &repo("all", "^none$")
            + &repo("third", "^1\\.")
            + &repo("all-too", "^none$")
            + "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: too, namespace: apps}\nspec: {imageRepositoryRef: {name: all-too}, policy: {semver: {range: '>=1.0.0'}}}\n",
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let (_daemon, log) = scan_only_daemon(config.path(), state.path(), &api);
    let count = |name: &str| {
        api_objects(&api)
            .get(&format!("ImageRepository/apps/{name}"))
            .and_then(|s| s["lastScanResult"]["tagCount"].as_u64())
    };
    assert!(
        eventually(30, || ["stable", "all", "third"]
            .iter()
            .all(|n| count(n).is_some())),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // Each kept its own exclusion list…
    assert_eq!(count("stable"), Some(2));
    assert_eq!(count("all"), Some(3));
    assert_eq!(count("third"), Some(1));
    // …from one listing of the registry.
    let stats = front_stats(slow.port);
    assert_eq!(
        stats["requests"],
        1,
        "{stats}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // They also share the stored list: a new tag seen by a scan of `all` reaches the policy of
    // `all-too` (whose own scan waits an hour), and `reconcile` waits for its own request.
    push(
        &format!("http://127.0.0.1:{}", reg.port),
        "team/app",
        &["1.2.0"],
        None,
    );
    let o = tagpilot(&[
        "reconcile",
        "image",
        "repository",
        "all",
        "-n",
        "apps",
        "--api-address",
        &api,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("scan fetched 4 tags"), "{}", stderr(&o));
    let latest = || {
        api_objects(&api)
            .get("ImagePolicy/apps/too")
            .and_then(|s| s["latestRef"]["tag"].as_str().map(str::to_owned))
    };
    assert!(
        eventually(20, || latest().as_deref() == Some("1.2.0")),
        "{:?}: {}",
        latest(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// Writes `path` the way an editor or a ConfigMap update should: a new file renamed over the
/// old, so the daemon never reads it half written (a truncated file is a valid, empty one).
fn replace_file(path: &std::path::Path, text: impl AsRef<[u8]>) {
    let tmp = path.with_extension("yaml.tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
