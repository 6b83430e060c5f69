//! The guide ("Automate image updates to Git") with its own manifests, end to end: a real
//! docker-registry and git daemon on 127.0.0.1, `tagpilot run --once`, the command-line git as
//! the referee.
#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion: a panic with the error

mod common;

use common::*;

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\n  namespace: default\nspec:\n  template:\n    spec:\n      containers:\n      - name: podinfod\n        image: REG/stefanprodan/podinfo:5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n";
const HELM: &str = "apiVersion: helm.toolkit.fluxcd.io/v2beta1\nkind: HelmRelease\nmetadata:\n  name: podinfo\n  namespace: default\nspec:\n  values:\n    image:\n      repository: REG/stefanprodan/podinfo # {\"$imagepolicy\": \"flux-system:podinfo:name\"}\n      tag: 5.0.0  # {\"$imagepolicy\": \"flux-system:podinfo:tag\"}\n";
const KUSTOMIZATION: &str = "apiVersion: kustomize.toolkit.fluxcd.io/v1beta2\nkind: Kustomization\nmetadata:\n  name: podinfo\n  namespace: default\nspec:\n  images:\n    - name: REG/stefanprodan/podinfo\n      newName: REG/stefanprodan/podinfo # {\"$imagepolicy\": \"flux-system:podinfo:name\"}\n      newTag: 5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo:tag\"}\n";
const TEKTON: &str = "apiVersion: tekton.dev/v1beta1\nkind: Task\nmetadata:\n  name: golang\n  namespace: default\nspec:\n  steps:\n    - name: podinfo\n      image: REG/stefanprodan/podinfo:5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n";

fn manifests(reg: &str, git_url: &str, range: &str, extra_automation: &str) -> String {
    format!(
        r#"apiVersion: image.toolkit.fluxcd.io/v1beta1
kind: ImageRepository
metadata:
  name: podinfo
  namespace: flux-system
spec:
  image: {reg}/stefanprodan/podinfo
  interval: 1m0s
  insecure: true
---
apiVersion: image.toolkit.fluxcd.io/v1beta1
kind: ImagePolicy
metadata:
  name: podinfo
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: podinfo
  policy:
    semver:
      range: {range}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  ref:
    branch: main
  url: {git_url}
---
apiVersion: image.toolkit.fluxcd.io/v1beta1
kind: ImageUpdateAutomation
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  sourceRef:
    kind: GitRepository
    name: flux-system
  git:
    checkout:
      ref:
        branch: main
    commit:
      author:
        email: fluxcdbot@users.noreply.github.com
        name: fluxcdbot
      messageTemplate: '{{{{range .Updated.Images}}}}{{{{println .}}}}{{{{end}}}}'
    push:
      branch: main
  update:
    path: ./clusters/my-cluster
    strategy: Setters
{extra_automation}"#
    )
}

struct Guide {
    _reg: Server,
    git: GitServer,
    reg: String,
    config: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Guide {
    fn new() -> Self {
        let reg = registry(Auth::None);
        let reg_host = format!("127.0.0.1:{}", reg.port);
        push(
            &format!("http://{reg_host}"),
            "stefanprodan/podinfo",
            &[
                "5.0.0", "5.0.1", "5.0.2", "5.0.3", "5.1.0", "6.0.0", "latest",
            ],
            None,
        );
        let sub = |s: &str| s.replace("REG", &reg_host);
        let git = git_server(&[
            ("clusters/my-cluster/podinfo-deployment.yaml", &sub(DEPLOY)),
            ("clusters/my-cluster/podinfo-helmrelease.yaml", &sub(HELM)),
            (
                "clusters/my-cluster/podinfo-kustomization.yaml",
                &sub(KUSTOMIZATION),
            ),
            ("clusters/my-cluster/tekton-task.yaml", &sub(TEKTON)),
        ]);
        let config = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let g = Guide {
            _reg: reg,
            git,
            reg: reg_host,
            config,
            state,
        };
        g.configure("5.0.x", "");
        g
    }

    fn configure(&self, range: &str, extra: &str) {
        std::fs::write(
            self.config.path().join("flux.yaml"),
            manifests(&self.reg, &self.git.url, range, extra),
        )
        .unwrap();
    }

    /// Starts `tagpilot run` (the daemon) on this configuration, logging to `daemon.log`.
    fn daemon(&self, extra: &[&str]) -> Daemon {
        self.daemon_on(self.config.path(), extra)
    }

    /// [`Guide::daemon`] with another configuration directory.
    fn daemon_on(&self, config: &std::path::Path, extra: &[&str]) -> Daemon {
        let log = self.state.path().join("daemon.log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_tagpilot"))
            .args(["run", "--reload-seconds", "1"])
            .args(extra)
            .arg("--config")
            .arg(config)
            .arg("--state-dir")
            .arg(self.state.path())
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon(child)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.state.path().join("daemon.log")).unwrap_or_default()
    }

    /// SIGTERM, and the daemon must exit 0 within 15 s.
    fn stop(&self, daemon: &mut Daemon) {
        let daemon = &mut daemon.0;
        let pid = daemon.id().to_string();
        run(std::process::Command::new("kill").args(["-TERM", &pid]));
        let stopped = eventually(15, || matches!(daemon.try_wait(), Ok(Some(_))));
        if !stopped {
            let _ = daemon.kill();
        }
        assert!(
            stopped,
            "the daemon did not stop on SIGTERM: {}",
            self.logs()
        );
        let status = daemon.wait().unwrap();
        assert!(status.success(), "{status:?}: {}", self.logs());
    }

    fn run_once(&self) -> std::process::Output {
        tagpilot(&[
            "run",
            "--once",
            "--config",
            &self.config.path().to_string_lossy(),
            "--state-dir",
            &self.state.path().to_string_lossy(),
        ])
    }

    /// The guide's manifests (plus `extra`) with every interval an hour: in a test, only
    /// webhooks, reconcile requests and (re)starts move anything.
    fn configure_hourly(&self, range: &str, extra: &str) {
        let text = manifests(&self.reg, &self.git.url, range, extra).replace("1m0s", "1h0m0s");
        std::fs::write(self.config.path().join("flux.yaml"), text).unwrap();
    }

    /// Pushes a new podinfo tag to the guide's registry.
    fn push_tag(&self, tag: &str) {
        push(
            &format!("http://{}", self.reg),
            "stefanprodan/podinfo",
            &[tag],
            None,
        );
    }

    /// `tagpilot reconcile image repository podinfo` against the daemon at `api`, waiting at
    /// most `timeout` seconds.
    fn reconcile_repository(&self, api: &str, timeout: u32) -> std::process::Output {
        tagpilot(&[
            "reconcile",
            "image",
            "repository",
            "podinfo",
            "-n",
            "flux-system",
            "--api-address",
            api,
            "--timeout",
            &timeout.to_string(),
        ])
    }

    /// `tagpilot reconcile image update flux-system`, which must succeed; its stderr.
    fn reconcile_update(&self, api: &str) -> String {
        let o = tagpilot(&[
            "reconcile",
            "image",
            "update",
            "flux-system",
            "-n",
            "flux-system",
            "--api-address",
            api,
            "--timeout",
            "30",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        stderr(&o)
    }

    /// The Deployment on the Git server's main branch.
    fn deployment(&self) -> String {
        self.show("main", "podinfo-deployment.yaml")
    }

    /// Waits up to 30 s for the Deployment on main to carry `tag`.
    fn wait_for_tag(&self, tag: &str) {
        let wanted = format!("podinfo:{tag} #");
        assert!(
            eventually(30, || self.deployment().contains(&wanted)),
            "{tag} never landed: {}",
            self.logs()
        );
    }

    fn show(&self, rev: &str, file: &str) -> String {
        git_cmd(
            &self.git.bare,
            &["show", &format!("{rev}:clusters/my-cluster/{file}")],
        )
    }
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn the_guide_end_to_end() {
    let g = Guide::new();
    let o = g.run_once();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(
        out.contains(
            "imagerepository/flux-system/podinfo            True   successful scan: found 7 tags"
        ),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Latest image tag for {}/stefanprodan/podinfo resolved to 5.0.3",
            g.reg
        )),
        "{out}"
    );
    assert!(out.contains("pushed commit '"), "{out}");
    // The commit message is the image reference and a newline, as the guide's template renders it.
    assert_eq!(
        git_cmd(&g.git.bare, &["log", "-1", "--format=%B%an <%ae>", "main"]),
        format!(
            "{}/stefanprodan/podinfo:5.0.3\nfluxcdbot <fluxcdbot@users.noreply.github.com>\n",
            g.reg
        )
    );
    // Deployment, HelmRelease, Kustomization and Tekton Task, all in that one commit.
    assert_eq!(
        git_cmd(&g.git.bare, &["diff", "--name-only", "main~1", "main"])
            .lines()
            .count(),
        4
    );
    assert!(g
        .show("main", "podinfo-deployment.yaml")
        .contains("podinfo:5.0.3 # {"));
    assert!(g
        .show("main", "podinfo-helmrelease.yaml")
        .contains("tag: 5.0.3  # {"));
    assert!(g
        .show("main", "podinfo-kustomization.yaml")
        .contains("newTag: 5.0.3 # {"));
    assert!(g
        .show("main", "tekton-task.yaml")
        .contains("podinfo:5.0.3 # {"));

    // Status, with Flux's field names, in the state store.
    let head = git_cmd(&g.git.bare, &["rev-parse", "main"])
        .trim()
        .to_owned();
    {
        let store = tagpilot_store::Store::open(&g.state.path().join("tagpilot.redb")).unwrap();
        let status = |key: &str| store.status(key).ok().flatten().unwrap_or_default();
        let repo = status("ImageRepository/flux-system/podinfo");
        assert_eq!(repo["lastScanResult"]["tagCount"], 7);
        assert_eq!(repo["lastScanResult"]["latestTags"][0], "latest");
        assert_eq!(repo["conditions"][0]["type"], "Ready");
        assert_eq!(
            status("ImagePolicy/flux-system/podinfo")["latestRef"]["tag"],
            "5.0.3"
        );
        let auto = status("ImageUpdateAutomation/flux-system/flux-system");
        assert_eq!(auto["lastPushCommit"], head.as_str());
        assert_eq!(auto["observedSourceRevision"], format!("main@sha1:{head}"));
        assert_eq!(auto["observedPolicies"]["podinfo"]["tag"], "5.0.3");
    }

    // Run again: nothing to do, no new commit.
    let head = git_cmd(&g.git.bare, &["rev-parse", "main"]);
    let o = g.run_once();
    assert!(
        stdout(&o).contains("repository up-to-date"),
        "{}",
        stdout(&o)
    );
    assert_eq!(git_cmd(&g.git.bare, &["rev-parse", "main"]), head);

    // "Revert image updates": pin the range to 5.0.0.
    g.configure("5.0.0", "");
    let o = g.run_once();
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(g
        .show("main", "podinfo-deployment.yaml")
        .contains("podinfo:5.0.0 # {"));

    // "Suspend automation": no push while suspended.
    g.configure("5.0.x", "  suspend: true\n");
    let head = git_cmd(&g.git.bare, &["rev-parse", "main"]);
    let o = g.run_once();
    assert!(
        stdout(&o).contains("imageupdateautomation/flux-system/flux-system  True   suspended"),
        "{}",
        stdout(&o)
    );
    assert_eq!(git_cmd(&g.git.bare, &["rev-parse", "main"]), head);
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn push_to_a_different_branch_leaves_main_alone() {
    let g = Guide::new();
    let text = std::fs::read_to_string(g.config.path().join("flux.yaml")).unwrap_or_default();
    std::fs::write(
        g.config.path().join("flux.yaml"),
        text.replace(
            "    push:\n      branch: main",
            "    push:\n      branch: flux-image-updates",
        ),
    )
    .unwrap();
    let main = git_cmd(&g.git.bare, &["rev-parse", "main"]);
    let o = g.run_once();
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("to branch 'flux-image-updates'"),
        "{}",
        stdout(&o)
    );
    assert_eq!(git_cmd(&g.git.bare, &["rev-parse", "main"]), main);
    assert_eq!(
        git_cmd(&g.git.bare, &["rev-parse", "flux-image-updates~1"]),
        main
    );
    assert!(g
        .show("flux-image-updates", "podinfo-deployment.yaml")
        .contains("podinfo:5.0.3 # {"));
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn broken_objects_are_reported_and_the_rest_still_runs() {
    let g = Guide::new();
    // A second, broken policy in another file: it fails alone.
    std::fs::write(
        g.config.path().join("broken.yaml"),
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: broken, namespace: flux-system}\nspec:\n  imageRepositoryRef: {name: podinfo}\n  policy: {semver: {range: 'not a range'}}\n",
    )
    .unwrap();
    let o = g.run_once();
    assert_eq!(o.status.code(), Some(1), "one object is not Ready");
    let out = stdout(&o);
    assert!(
        out.contains(
            "broken.yaml (document 1): ImagePolicy flux-system/broken: spec.policy.semver.range"
        ),
        "{out}"
    );
    assert!(
        out.contains("pushed commit '"),
        "the valid objects still ran: {out}"
    );
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn daemon_follows_new_tags_and_config_edits() {
    let g = Guide::new();
    let fast = |range: &str| {
        let text =
            manifests(&g.reg, &g.git.url, range, "").replace("interval: 1m0s", "interval: 1s");
        std::fs::write(g.config.path().join("flux.yaml"), text).unwrap();
    };
    fast("5.0.x");
    let api = format!("127.0.0.1:{}", free_port());
    let mut daemon = g.daemon(&["--api-address", &api, "--webhook-address", ""]);
    let deployment = || g.deployment();
    let logs = || g.logs();
    assert!(
        eventually(30, || deployment().contains("podinfo:5.0.3 #")),
        "first update: {}",
        logs()
    );

    // A new tag in the registry lands in Git within a few intervals.
    g.push_tag("5.0.4");
    assert!(
        eventually(30, || deployment().contains("podinfo:5.0.4 #")),
        "new tag: {}",
        logs()
    );

    // A configuration edit applies without a restart.
    fast("5.0.0");
    assert!(
        eventually(30, || deployment().contains("podinfo:5.0.0 #")),
        "config edit: {}",
        logs()
    );

    // The API: health, readiness, status JSON, metrics.
    let get = |path: &str| http_get(&format!("http://{api}{path}")).unwrap_or_default();
    assert_eq!(get("/healthz"), "ok\n");
    assert_eq!(get("/readyz"), "ready\n");
    let objects: serde_json::Value =
        serde_json::from_str(&get("/api/v1/objects")).unwrap_or_default();
    let items = objects["items"].as_array().cloned().unwrap_or_default();
    let policy = items
        .iter()
        .find(|i| i["kind"] == "ImagePolicy")
        .cloned()
        .unwrap_or_default();
    assert_eq!(policy["status"]["latestRef"]["tag"], "5.0.0", "{objects}");
    let metrics = get("/metrics");
    assert!(metrics.contains("tagpilot_object_ready{kind=\"ImageRepository\",namespace=\"flux-system\",name=\"podinfo\"} 1"), "{metrics}");
    assert!(
        metrics.contains("tagpilot_repository_tags{namespace=\"flux-system\",name=\"podinfo\"} 8"),
        "{metrics}"
    );

    // flux's tables over the API.
    let o = tagpilot(&["get", "images", "all", "--api-address", &api]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("imagerepository/podinfo"), "{out}");
    assert!(out.contains("successful scan: found 8 tags"), "{out}");
    let policy_line = out
        .lines()
        .find(|l| l.starts_with("imagepolicy/podinfo"))
        .unwrap_or_default();
    let cells: Vec<&str> = policy_line.split('\t').map(str::trim).collect();
    assert_eq!(
        cells.get(1..4),
        Some(
            &[
                format!("{}/stefanprodan/podinfo", g.reg).as_str(),
                "5.0.0",
                "True"
            ][..]
        ),
        "{out}"
    );
    assert!(out.contains("imageupdateautomation/flux-system"), "{out}");
    let o = tagpilot(&[
        "get",
        "image",
        "policy",
        "podinfo",
        "-A",
        "--api-address",
        &api,
    ]);
    assert!(stdout(&o).starts_with("NAMESPACE"), "{}", stdout(&o));
    assert!(stdout(&o).contains("flux-system"), "{}", stdout(&o));

    // Each update is one commit, never repeated.
    let subjects = git_cmd(&g.git.bare, &["log", "--format=%s", "main"]);
    assert_eq!(
        subjects.lines().filter(|s| s.ends_with(":5.0.4")).count(),
        1,
        "{subjects}"
    );

    // SIGTERM: a clean stop.
    g.stop(&mut daemon);
    let l = logs();
    assert!(l.contains("configuration changed, reloading"), "{l}");
    assert!(l.contains("shutting down"), "{l}");
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn webhook_triggers_scan_resolve_commit_and_push() {
    let g = Guide::new();
    // Intervals of an hour: only the webhook can bring the new tag in during this test.
    // The receiver is reference §5's worked example: token `token`, name `receiver`,
    // namespace `default`.
    let receivers = r#"---
apiVersion: v1
kind: Secret
metadata:
  name: webhook-token
  namespace: default
stringData:
  token: token
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata:
  name: receiver
  namespace: default
spec:
  type: dockerhub
  secretRef:
    name: webhook-token
  resources:
    - apiVersion: image.toolkit.fluxcd.io/v1beta2
      kind: ImageRepository
      name: podinfo
      namespace: flux-system
---
apiVersion: v1
kind: Secret
metadata:
  name: other-token
  namespace: flux-system
stringData:
  token: other
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata:
  name: dangling
  namespace: flux-system
spec:
  type: generic
  secretRef:
    name: other-token
  resources:
    - apiVersion: image.toolkit.fluxcd.io/v1beta2
      kind: ImagePolicy
      name: does-not-exist
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata:
  name: paused
  namespace: flux-system
spec:
  type: generic
  suspend: true
  secretRef:
    name: other-token
  resources:
    - kind: ImageRepository
      apiVersion: image.toolkit.fluxcd.io/v1beta2
      name: podinfo
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: locked, namespace: team-b}
spec:
  interval: 1m0s
  url: ssh://git@127.0.0.1:1/nothing.git
  ref: {branch: main}
  secretRef: {name: absent}
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageUpdateAutomation
metadata: {name: locked, namespace: team-b}
spec:
  interval: 1m0s
  sourceRef: {kind: GitRepository, name: locked}
  git:
    commit:
      author: {name: bot, email: bot@example.com}
  update: {path: ./, strategy: Setters}
"#;
    // After each push, a generic-hmac notification (what a Flux Receiver for the GitRepository
    // accepts), verified by the recorder.
    let recorder = hook_recorder(&["--key", "k3y-for-hmac", "--hmac", "/flux"]);
    let receivers = format!("{receivers}{}", alerts(recorder.port, "k3y-for-hmac"));
    g.configure_hourly("5.0.x", &receivers);
    let api = format!("127.0.0.1:{}", free_port());
    let hooks = format!("127.0.0.1:{}", free_port());
    let mut daemon = g.daemon(&["--api-address", &api, "--webhook-address", &hooks]);
    let deployment = || g.deployment();
    g.wait_for_tag("5.0.3");

    // The Receiver's status names its path, as Flux computes it.
    let path = "/hook/8cc3207cffc97dc881eed557d9eb9348edf632357f3132b4f4d30188c54fc63d";
    let objects = http_get(&format!("http://{api}/api/v1/objects")).unwrap_or_default();
    assert!(objects.contains(path), "{objects}");
    let o = tagpilot(&["get", "receivers", "-A", "--api-address", &api]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        row("receiver"),
        format!("default receiver False True Receiver initialized for path: {path}"),
        "{table}"
    );
    assert!(
        row("paused").starts_with("flux-system paused True True suspended"),
        "{table}"
    );
    // An automation no writer can run (its Git secret is missing) is reported, not dropped.
    let o = tagpilot(&[
        "get",
        "image",
        "update",
        "locked",
        "-n",
        "team-b",
        "--api-address",
        &api,
    ]);
    assert!(
        stdout(&o).contains("False") && stdout(&o).contains("secret 'team-b/absent' not found"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let url = format!("http://{hooks}{path}");

    // A new tag; nothing scans for an hour.
    g.push_tag("5.0.4");
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(deployment().contains("podinfo:5.0.3 #"), "{}", deployment());

    // Refused requests trigger nothing.
    let json = ["Content-Type: application/json"];
    assert_eq!(
        post(&format!("http://{hooks}/hook/0000"), &json, b"{}"),
        404
    );
    assert_eq!(post(&url, &json, b"{not json"), 400);
    assert_eq!(post(&url, &json, &vec![b' '; (3 << 20) + 1]), 413);
    let other = |name: &str, ns: &str| {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(format!("other{name}{ns}").as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("http://{hooks}/hook/{hex}")
    };
    assert_eq!(post(&other("paused", "flux-system"), &json, b"{}"), 503);
    assert_eq!(post(&other("dangling", "flux-system"), &json, b"{}"), 500);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(deployment().contains("podinfo:5.0.3 #"), "{}", deployment());

    // A Docker Hub-shaped push event: scan, resolve, commit and push now.
    let hub = format!(
        r#"{{"push_data":{{"tag":"5.0.4","pusher":"ci"}},"repository":{{"repo_url":"https://{}/stefanprodan/podinfo","repo_name":"stefanprodan/podinfo"}}}}"#,
        g.reg
    );
    assert_eq!(post(&url, &json, hub.as_bytes()), 200, "{}", g.logs());
    assert!(
        eventually(20, || deployment().contains("podinfo:5.0.4 #")),
        "webhook update: {}",
        g.logs()
    );
    // …and the post-push trigger reaches the Flux receiver stand-in, signed, naming the commit.
    let head = git_cmd(&g.git.bare, &["rev-parse", "main"])
        .trim()
        .to_owned();
    let notified = || {
        hooks_to(&recorder, "/flux").iter().any(|r| {
            r["signature"] == true
                && body(r)["metadata"]["revision"] == format!("main@sha1:{head}")
                && body(r)["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("podinfo:5.0.4"))
        })
    };
    assert!(
        eventually(10, notified),
        "{:?}\n{}",
        recorded(&recorder),
        g.logs()
    );
    let objects = http_get(&format!("http://{api}/api/v1/objects")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&objects).unwrap_or_default();
    let flux_provider = v["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|i| i["kind"] == "Provider" && i["name"] == "flux")
                .cloned()
        })
        .unwrap_or_default();
    assert!(
        flux_provider["status"]["deliveries"]["succeeded"].as_u64() >= Some(2),
        "{flux_provider}"
    );
    let o = tagpilot(&["get", "alert-providers", "-A", "--api-address", &api]);
    let providers = stdout(&o);
    assert!(
        providers.lines().any(|l| {
            l.split_whitespace().take(3).collect::<Vec<_>>() == ["flux-system", "flux", "True"]
                && l.contains("delivered event for ImageUpdateAutomation flux-system/flux-system")
        }),
        "{providers}{}",
        stderr(&o)
    );
    let o = tagpilot(&["get", "alerts", "-n", "flux-system", "--api-address", &api]);
    assert!(
        stdout(&o).contains("errors") && stdout(&o).contains("Initialized"),
        "{}",
        stdout(&o)
    );
    let metrics = http_get(&format!("http://{api}/metrics")).unwrap_or_default();
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    assert!(
        value(
            r#"tagpilot_notifications_total{namespace="flux-system",name="flux",outcome="delivered"}"#
        ) >= 2.0,
        "{metrics}"
    );
    // Scans, pushes, their durations, registry requests and 429s, last success per object.
    assert!(
        value(r#"tagpilot_scans_total{namespace="flux-system",name="podinfo"}"#) >= 2.0,
        "{metrics}"
    );
    assert_eq!(
        value(r#"tagpilot_scan_failures_total{namespace="flux-system",name="podinfo"}"#),
        -1.0,
        "{metrics}"
    );
    assert!(
        value(r#"tagpilot_scan_duration_seconds_count{namespace="flux-system",name="podinfo"}"#)
            >= 2.0,
        "{metrics}"
    );
    assert!(
        value(r#"tagpilot_pushes_total{namespace="flux-system",name="flux-system"}"#) >= 2.0,
        "{metrics}"
    );
    assert!(
        value(r#"tagpilot_push_duration_seconds_sum{namespace="flux-system",name="flux-system"}"#)
            > 0.0,
        "{metrics}"
    );
    assert!(
        value(r#"tagpilot_push_failures_total{namespace="team-b",name="locked"}"#) >= 1.0,
        "{metrics}"
    );
    assert!(
        value(&format!(
            r#"tagpilot_registry_requests_total{{host="{}"}}"#,
            g.reg
        )) >= 2.0,
        "{metrics}"
    );
    assert_eq!(
        value(&format!(
            r#"tagpilot_registry_throttled_total{{host="{}"}}"#,
            g.reg
        )),
        0.0,
        "{metrics}"
    );
    assert!(
        value(
            r#"tagpilot_last_success_timestamp_seconds{kind="ImageUpdateAutomation",namespace="flux-system",name="flux-system"}"#
        ) > 1.7e9,
        "{metrics}"
    );

    // A flood from one client is cut off with 429, and the daemon keeps serving.
    let codes: Vec<u16> = (0..60)
        .map(|_| post(&format!("http://{hooks}/hook/0000"), &json, b"{}"))
        .collect();
    assert!(codes.contains(&429), "{codes:?}");
    assert!(codes.iter().all(|c| *c == 404 || *c == 429), "{codes:?}");
    let api_up = http_get(&format!("http://{api}/healthz")).is_some();
    assert!(api_up, "{}", g.logs());

    g.stop(&mut daemon);
    let l = g.logs();
    assert!(l.contains("webhook accepted"), "{l}");
    assert!(l.contains("notification delivered"), "{l}");
    for secret in ["token: token", "k3y-for-hmac", "XXXXSECRET"] {
        assert!(!l.contains(secret), "{secret}: {l}");
    }
}

/// The Alerts of the post-push tests: `flux` is a generic-hmac Provider (what a Flux Receiver of
/// type generic-hmac accepts) whose address and key live in a Secret; `slack` a Slack incoming
/// webhook; `errors` gets errors only.
fn alerts(recorder: u16, key: &str) -> String {
    format!(
        r#"---
apiVersion: v1
kind: Secret
metadata: {{name: flux-receiver, namespace: flux-system}}
stringData:
  address: http://127.0.0.1:{recorder}/flux
  token: {key}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: flux, namespace: flux-system}}
spec:
  type: generic-hmac
  secretRef: {{name: flux-receiver}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {{name: flux, namespace: flux-system}}
spec:
  providerRef: {{name: flux}}
  eventSources:
    - kind: ImageUpdateAutomation
      name: flux-system
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: slack, namespace: flux-system}}
spec:
  type: slack
  channel: '#deploys'
  address: http://127.0.0.1:{recorder}/services/T000/B000/XXXXSECRET
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {{name: slack, namespace: flux-system}}
spec:
  providerRef: {{name: slack}}
  summary: podinfo staging
  eventSources:
    - kind: ImageUpdateAutomation
      name: '*'
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: errors, namespace: flux-system}}
spec:
  type: generic
  address: http://127.0.0.1:{recorder}/errors
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {{name: errors, namespace: flux-system}}
spec:
  providerRef: {{name: errors}}
  eventSeverity: error
  eventSources:
    - kind: ImageUpdateAutomation
      name: '*'
"#
    )
}

/// The recorded requests to `path`.
fn hooks_to(recorder: &Server, path: &str) -> Vec<serde_json::Value> {
    recorded(recorder)
        .into_iter()
        .filter(|r| r["path"] == path)
        .collect()
}

fn body(r: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(r["body"].as_str().unwrap_or_default()).unwrap_or_default()
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn run_once_notifies_alerts_after_the_push() {
    let g = Guide::new();
    let recorder = hook_recorder(&[
        "--key",
        "k3y-for-hmac",
        "--hmac",
        "/flux",
        "--hmac",
        "/forged",
        "--fail",
        "/flux=1",
    ]);
    let p = recorder.port;
    // Beside the three Alerts: a Provider with the wrong HMAC key (the receiver answers 400), an
    // Alert naming a Provider that does not exist, and an automation that fails (its Git server
    // does not exist) so that the errors-only Alert has something to say.
    let extra = format!(
        r#"{}---
apiVersion: v1
kind: Secret
metadata: {{name: forged, namespace: flux-system}}
stringData: {{token: not-the-key}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: forged, namespace: flux-system}}
spec:
  type: generic-hmac
  address: http://127.0.0.1:{p}/forged
  secretRef: {{name: forged}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {{name: forged, namespace: flux-system}}
spec:
  providerRef: {{name: forged}}
  exclusionList: ['^failed']
  eventSources: [{{kind: ImageUpdateAutomation, name: '*'}}]
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {{name: orphan, namespace: flux-system}}
spec:
  providerRef: {{name: nope}}
  eventSources: [{{kind: ImageUpdateAutomation, name: '*'}}]
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: gone, namespace: flux-system}}
spec:
  interval: 1m0s
  url: git://127.0.0.1:{gone}/gone.git
  ref: {{branch: main}}
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageUpdateAutomation
metadata: {{name: gone, namespace: flux-system}}
spec:
  interval: 1m0s
  sourceRef: {{kind: GitRepository, name: gone}}
  git:
    commit:
      author: {{name: bot, email: bot@example.com}}
  update: {{path: ./, strategy: Setters}}
"#,
        alerts(p, "k3y-for-hmac"),
        gone = free_port()
    );
    g.configure("5.0.x", &extra);
    let o = g.run_once();
    let (out, err) = (stdout(&o), stderr(&o));
    // The push happened; a failing Provider, a failing automation and an orphan Alert make
    // the run exit 1.
    assert!(g
        .show("main", "podinfo-deployment.yaml")
        .contains("podinfo:5.0.3 #"));
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    let head = git_cmd(&g.git.bare, &["rev-parse", "main"])
        .trim()
        .to_owned();

    // The Flux receiver stand-in: first attempt answered 500, the retry verified and accepted.
    let flux = hooks_to(&recorder, "/flux");
    assert_eq!(flux.len(), 2, "{flux:?}");
    assert_eq!(flux[0]["answer"], 500);
    assert_eq!(flux[1]["answer"], 200);
    assert_eq!(flux[1]["signature"], true);
    assert_eq!(
        flux[0]["body"], flux[1]["body"],
        "a retry sends the same body"
    );
    let event = body(&flux[1]);
    assert_eq!(event["involvedObject"]["kind"], "ImageUpdateAutomation");
    assert_eq!(event["involvedObject"]["name"], "flux-system");
    assert_eq!(event["severity"], "info");
    assert_eq!(event["metadata"]["revision"], format!("main@sha1:{head}"));
    let message = event["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "pushed commit '{}' to branch 'main'\n",
            &head[..7]
        )) && message.contains("/stefanprodan/podinfo:5.0.3"),
        "{message}"
    );
    assert_eq!(
        flux[1]["headers"]["gotk-component"],
        "image-automation-controller"
    );

    // Slack (every automation): the push in green, the failure of `gone` in red, one
    // attachment each with the Alert's summary as a field.
    let slack: Vec<_> = hooks_to(&recorder, "/services/T000/B000/XXXXSECRET")
        .iter()
        .map(body)
        .collect();
    assert_eq!(slack.len(), 2, "{slack:?}");
    let by_color = |c: &str| {
        slack
            .iter()
            .find(|s| s["attachments"][0]["color"] == c)
            .map(|s| s["attachments"][0].clone())
            .unwrap_or_default()
    };
    assert!(
        slack.iter().all(|s| s["channel"] == "#deploys"),
        "{slack:?}"
    );
    let good = by_color("good");
    assert_eq!(
        good["author_name"],
        "imageupdateautomation/flux-system.flux-system"
    );
    let fields = good["fields"].to_string();
    assert!(
        fields.contains("podinfo staging") && fields.contains(&head),
        "{fields}"
    );
    assert_eq!(
        by_color("danger")["author_name"],
        "imageupdateautomation/gone.flux-system"
    );

    // The wrong key is refused by the receiver (400, final), and the exclusion list kept the
    // failure of `gone` away from it.
    let forged = hooks_to(&recorder, "/forged");
    assert_eq!(forged.len(), 1, "{forged:?}");
    assert_eq!(forged[0]["signature"], false);
    // Errors only: the failure of `gone`, not the push.
    let errors = hooks_to(&recorder, "/errors");
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = body(&errors[0]);
    assert_eq!(e["severity"], "error");
    assert_eq!(e["involvedObject"]["name"], "gone");

    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(row("provider/flux-system/flux ").contains("True"), "{out}");
    assert!(
        row("provider/flux-system/forged ").contains("False")
            && row("provider/flux-system/forged ").contains("HTTP 400 (after 1 attempt(s))"),
        "{out}"
    );
    assert!(
        row("alert/flux-system/orphan ").contains("Provider flux-system/nope not found"),
        "{out}"
    );
    // Secrets stay secret: the HMAC keys and the Slack path appear nowhere.
    for secret in ["k3y-for-hmac", "not-the-key", "XXXXSECRET"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret}: {out}{err}"
        );
    }
}

/// An ID token from the Google stand-in.
fn mint(oidc: &Server, claims: &serde_json::Value, kid: Option<&str>) -> String {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sf", "-X", "POST", "--data", &claims.to_string()]);
    if let Some(k) = kid {
        cmd.args(["-H", &format!("X-Kid: {k}")]);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{}/mint", oidc.port))
        .output()
        .unwrap();
    assert!(out.status.success(), "mint failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `generic-oidc` Receiver (notification-controller v1): an ID token from a configured
/// issuer (the fixture, through OIDC discovery), the provider's CEL validations over its claims,
/// and `resourceFilter` over the request and the resource.
#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn generic_oidc_receiver_with_claim_checks_and_a_resource_filter() {
    let g = Guide::new();
    let oidc = google_oidc();
    let issuer = format!("http://127.0.0.1:{}", oidc.port);
    let hooks = format!("127.0.0.1:{}", free_port());
    let receiver = format!(
        r#"---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {{name: ci, namespace: flux-system}}
spec:
  type: generic-oidc
  resourceFilter: 'req.image == res.metadata.annotations["images"]'
  oidcProviders:
    - issuerURL: {issuer}
      variables:
        - {{name: owner, expression: claims.repository_owner}}
      validations:
        - {{expression: 'vars.owner == "acme"', message: only acme's workflows}}
  resources:
    - {{apiVersion: image.toolkit.fluxcd.io/v1, kind: ImageRepository, name: podinfo}}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {{name: broken, namespace: flux-system}}
spec:
  type: generic-oidc
  resourceFilter: 'req.image =='
  oidcProviders:
    - issuerURL: {issuer}
      validations: [{{expression: 'true', message: x}}]
  resources:
    - {{kind: ImageRepository, name: podinfo}}
"#
    );
    g.configure_hourly("5.0.x", &receiver);
    // The filter reads an annotation of the repository.
    let text = std::fs::read_to_string(g.config.path().join("flux.yaml")).unwrap_or_default();
    let text = text.replacen(
        "  name: podinfo\n  namespace: flux-system\nspec:\n  image:",
        "  name: podinfo\n  namespace: flux-system\n  annotations: {images: podinfo}\nspec:\n  image:",
        1,
    );
    std::fs::write(g.config.path().join("flux.yaml"), text).unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let mut daemon = g.daemon(&["--api-address", &api, "--webhook-address", &hooks]);
    g.wait_for_tag("5.0.3");
    // Flux's path for a Receiver without a token: sha256("" + name + namespace).
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(b"ciflux-system");
    let url = format!(
        "http://{hooks}/hook/{}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let objects = api_objects(&api);
    assert!(
        objects["Receiver/flux-system/ci"]
            .to_string()
            .contains(&url[url.find("/hook/").unwrap_or(0)..]),
        "{:?}",
        objects.get("Receiver/flux-system/ci")
    );
    let broken = objects["Receiver/flux-system/broken"].to_string();
    assert!(
        broken.contains("InvalidCELExpression")
            && broken.contains("invalid resourceFilter expression"),
        "{broken}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let token = |owner: &str, aud: &str, exp: u64| {
        mint(
            &oidc,
            &serde_json::json!({"iss": issuer, "aud": aud, "sub": "repo:acme/app", "repository_owner": owner, "exp": exp}),
            None,
        )
    };
    let send = |token: &str, image: &str| {
        post(
            &url,
            &[
                "Content-Type: application/json",
                &format!("Authorization: Bearer {token}"),
            ],
            format!(r#"{{"image":"{image}"}}"#).as_bytes(),
        )
    };
    let aud = "notification-controller";
    g.push_tag("5.0.4");
    // Refused: wrong audience, expired, a validation that says no, no token at all.
    assert_eq!(
        send(&token("acme", "someone-else", now + 600), "podinfo"),
        400
    );
    assert_eq!(send(&token("acme", aud, now - 600), "podinfo"), 400);
    assert_eq!(send(&token("eve", aud, now + 600), "podinfo"), 400);
    assert_eq!(post(&url, &["Content-Type: application/json"], b"{}"), 400);
    // Accepted, but the filter says false: nothing is reconciled.
    assert_eq!(send(&token("acme", aud, now + 600), "other-image"), 200);
    // Accepted and the filter says true: the repository is scanned and 5.0.4 lands.
    assert_eq!(send(&token("acme", aud, now + 600), "podinfo"), 200);
    g.wait_for_tag("5.0.4");
    let logs = g.logs();
    assert!(logs.contains("only acme's workflows"), "{logs}");
    assert!(logs.contains("the CEL filter returned false"), "{logs}");
    g.stop(&mut daemon);
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn gcr_pubsub_push_with_a_google_id_token_triggers_an_update() {
    let g = Guide::new();
    let oidc = google_oidc();
    let hooks = format!("127.0.0.1:{}", free_port());
    let audience = format!("http://{hooks}/hook/gcr");
    let email = "pubsub-push@project.iam.gserviceaccount.com";
    let receiver = format!(
        r#"---
apiVersion: v1
kind: Secret
metadata: {{name: gcr-webhook, namespace: flux-system}}
stringData:
  token: gcr-token
  audience: {audience}
  email: {email}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {{name: gcr, namespace: flux-system}}
spec:
  type: gcr
  secretRef: {{name: gcr-webhook}}
  resources:
    - {{apiVersion: image.toolkit.fluxcd.io/v1, kind: ImageRepository, name: podinfo}}
"#
    );
    g.configure_hourly("5.0.x", &receiver);
    let jwks = format!("http://127.0.0.1:{}/oauth2/v3/certs", oidc.port);
    let mut daemon = g.daemon(&[
        "--api-address",
        "",
        "--webhook-address",
        &hooks,
        "--google-jwks-url",
        &jwks,
    ]);
    let deployment = || g.deployment();
    g.wait_for_tag("5.0.3");
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(b"gcr-tokengcrflux-system");
    let url = format!(
        "http://{hooks}/hook/{}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    g.push_tag("5.0.4");
    let data = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!(
            r#"{{"action":"INSERT","digest":"{0}/stefanprodan/podinfo@sha256:00","tag":"{0}/stefanprodan/podinfo:5.0.4"}}"#,
            g.reg
        ))
    };
    let envelope = format!(
        r#"{{"message":{{"data":"{data}","messageId":"7","publishTime":"2026-11-26T15:00:00Z"}},"subscription":"projects/p/subscriptions/tagpilot"}}"#
    );
    let claims = |email: &str, aud: &str| serde_json::json!({"aud": aud, "email": email, "email_verified": true, "sub": "1"});
    let send = |token: &str| {
        post(
            &url,
            &[
                "Content-Type: application/json",
                &format!("Authorization: Bearer {token}"),
            ],
            envelope.as_bytes(),
        )
    };
    // Wrong email, wrong audience, a key nobody published, a tampered token: 400, no update.
    assert_eq!(
        send(&mint(&oidc, &claims("eve@example.com", &audience), None)),
        400
    );
    assert_eq!(
        send(&mint(&oidc, &claims(email, "https://elsewhere"), None)),
        400
    );
    assert_eq!(
        send(&mint(
            &oidc,
            &claims(email, &audience),
            Some("rotated-away")
        )),
        400
    );
    let good = mint(&oidc, &claims(email, &audience), None);
    // Claims of one token under the signature of another.
    let tampered = {
        let other = mint(&oidc, &claims("eve@example.com", &audience), None);
        let (g_parts, o_parts): (Vec<&str>, Vec<&str>) =
            (good.split('.').collect(), other.split('.').collect());
        format!("{}.{}.{}", g_parts[0], o_parts[1], g_parts[2])
    };
    assert_eq!(send(&tampered), 400);
    assert_eq!(
        post(
            &url,
            &["Content-Type: application/json"],
            envelope.as_bytes()
        ),
        400
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(deployment().contains("podinfo:5.0.3 #"), "{}", deployment());

    // Google's token: scan, resolve, commit, push.
    assert_eq!(send(&good), 200, "{}", g.logs());
    assert!(
        eventually(20, || deployment().contains("podinfo:5.0.4 #")),
        "gcr update: {}",
        g.logs()
    );
    // The key set was fetched once, then again at most once for the unknown kid.
    let stats = http_get(&format!("http://127.0.0.1:{}/stats", oidc.port)).unwrap_or_default();
    let fetches = serde_json::from_str::<serde_json::Value>(&stats).unwrap_or_default()
        ["jwks_fetches"]
        .as_u64()
        .unwrap_or(0);
    assert!((1..=2).contains(&fetches), "{stats}");
    g.stop(&mut daemon);
    let l = g.logs();
    assert!(l.contains("invalid ID token: unexpected email"), "{l}");
    assert!(!l.contains(&good), "a token reached the log");
}

/// HMAC-SHA256 of `body` by the openssl CLI (independent of tagpilot's code), as hex.
fn openssl_hmac(key: &str, body: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key, "-r"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(body).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn webhooks_over_tls_survive_abuse() {
    let g = Guide::new();
    let tls = tempfile::tempdir().unwrap();
    tls_files(tls.path(), None);
    let receiver = r#"---
apiVersion: v1
kind: Secret
metadata: {name: hmac, namespace: flux-system}
stringData: {token: hmac-token}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: ci, namespace: flux-system}
spec:
  type: generic-hmac
  secretRef: {name: hmac}
  resources:
    - {apiVersion: image.toolkit.fluxcd.io/v1, kind: ImageRepository, name: podinfo}
"#;
    g.configure_hourly("5.0.x", receiver);
    let port = free_port();
    let hooks = format!("127.0.0.1:{port}");
    let cert = tls.path().join("cert.pem");
    let key = tls.path().join("key.pem");
    let mut daemon = g.daemon(&[
        "--api-address",
        "",
        "--webhook-address",
        &hooks,
        "--webhook-tls-cert",
        &cert.to_string_lossy(),
        "--webhook-tls-key",
        &key.to_string_lossy(),
    ]);
    let deployment = || g.deployment();
    g.wait_for_tag("5.0.3");
    use sha2::Digest as _;
    let path = {
        let d = sha2::Sha256::digest(b"hmac-tokenciflux-system");
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        format!("/hook/{hex}")
    };

    // Slow senders: headers and a promise of 1000 bytes, then silence. They must neither block
    // the others nor trigger anything, and are cut off (408) after the body deadline.
    let slow: Vec<std::process::Child> = (0..5)
        .map(|_| {
            use std::io::Write as _;
            let mut c = std::process::Command::new("openssl")
                .args(["s_client", "-quiet", "-connect", &hooks])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            if let Some(stdin) = c.stdin.as_mut() {
                let _ = write!(
                    stdin,
                    "POST {path} HTTP/1.1\r\nHost: {hooks}\r\nContent-Type: application/json\r\nX-Signature: sha256=00\r\nContent-Length: 1000\r\n\r\n{{\"partial\":"
                );
                let _ = stdin.flush();
            }
            c
        })
        .collect();
    let started = std::time::Instant::now();

    g.push_tag("5.0.4");
    let url = format!("https://{hooks}{path}");
    let ca = tls.path().join("ca.pem");
    let tls_post = |headers: &[&str], body: &[u8]| -> u16 {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), body).unwrap();
        let mut cmd = std::process::Command::new("curl");
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "--cacert",
        ])
        .arg(&ca);
        for h in headers {
            cmd.args(["-H", h]);
        }
        let out = cmd
            .arg("--data-binary")
            .arg(format!("@{}", file.path().display()))
            .arg(&url)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let body = br#"{"image":"podinfo","tag":"5.0.4"}"#;
    let sig = format!("X-Signature: sha256={}", openssl_hmac("hmac-token", body));
    // Replays: the valid signature on another body, a signature with the wrong key, none at all,
    // a truncated one, an unknown algorithm.
    let tampered = br#"{"image":"podinfo","tag":"9.9.9"}"#;
    assert_eq!(tls_post(&[&sig], tampered), 400);
    let wrong = format!("X-Signature: sha256={}", openssl_hmac("guess", body));
    assert_eq!(tls_post(&[&wrong], body), 400);
    assert_eq!(tls_post(&[], body), 400);
    assert_eq!(tls_post(&[&sig[..sig.len() - 2]], body), 400);
    assert_eq!(tls_post(&[&sig.replace("sha256=", "md5=")], body), 400);
    // Oversized, unknown path; plain HTTP on the TLS port gets no answer at all.
    assert_eq!(tls_post(&[&sig], &vec![b'x'; (3 << 20) + 10]), 413);
    let unknown = url.replace(&path, "/hook/0123");
    let code = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "--cacert",
        ])
        .arg(&ca)
        .arg(&unknown)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    assert_eq!(code, "404");
    assert_eq!(post(&format!("http://{hooks}{path}"), &[&sig], body), 0);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        deployment().contains("podinfo:5.0.3 #"),
        "nothing was triggered: {}",
        deployment()
    );

    // The real one, while the slow senders still hang.
    assert_eq!(
        tls_post(&[&sig, "Content-Type: application/json"], body),
        200,
        "{}",
        g.logs()
    );
    assert!(
        eventually(20, || deployment().contains("podinfo:5.0.4 #")),
        "TLS webhook update: {}",
        g.logs()
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "too slow to prove anything"
    );
    for mut c in slow {
        // The body deadline is 30 s: by 45 s every slow sender has its answer.
        let answered = eventually(45, || matches!(c.try_wait(), Ok(Some(_))));
        let _ = c.kill();
        let out = c.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(answered && text.contains(" 408 "), "slow sender: {text:?}");
    }
    g.stop(&mut daemon);
}

/// What a browser could send: a page on another origin, or a DNS-rebinding page whose name
/// resolves to 127.0.0.1. Without a token (the default), neither may drive or read the daemon.
#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn the_api_cannot_be_driven_from_a_browser() {
    let g = Guide::new();
    g.configure_hourly("5.0.x", "");
    let port = free_port();
    let api = format!("127.0.0.1:{port}");
    let mut daemon = g.daemon(&["--api-address", &api, "--webhook-address", ""]);
    g.wait_for_tag("5.0.3");
    let code = http_status;
    let suspend =
        format!("http://{api}/api/v1/suspend/ImageUpdateAutomation/flux-system/flux-system");
    // A cross-origin HTML form: urlencoded (or text/plain) body, no custom header.
    for ctype in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
    ] {
        let c = code(
            &[
                "-X",
                "POST",
                "-H",
                "Origin: http://evil.example",
                "-H",
                &format!("Content-Type: {ctype}"),
                "--data",
                "a=b",
            ],
            &suspend,
        );
        assert_eq!(c, "415", "{ctype}");
    }
    // A rebinding page: the request reaches 127.0.0.1 with the page's own Host.
    let objects = format!("http://{api}/api/v1/objects");
    assert_eq!(
        code(&["-H", &format!("Host: evil.example:{port}")], &objects),
        "403"
    );
    assert_eq!(
        code(
            &[
                "-X",
                "POST",
                "-H",
                "Host: evil.example",
                "-H",
                "Content-Type: application/json",
                "--data",
                "{}"
            ],
            &suspend
        ),
        "403"
    );
    assert_eq!(
        code(&["-H", &format!("Host: localhost:{port}")], &objects),
        "200"
    );
    assert_eq!(code(&[], &objects), "200");
    // Nothing was suspended by the refused requests; the CLI's own request is accepted.
    let row = || {
        let o = tagpilot(&[
            "get",
            "image",
            "update",
            "--api-address",
            &api,
            "--no-header",
        ]);
        stdout(&o).split_whitespace().nth(2).map(str::to_owned)
    };
    assert_eq!(row().as_deref(), Some("False"));
    let o = tagpilot(&[
        "suspend",
        "image",
        "update",
        "flux-system",
        "-n",
        "flux-system",
        "--api-address",
        &api,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        eventually(10, || row().as_deref() == Some("True")),
        "{:?}",
        row()
    );
    // Metrics stay open and never carry a receiver path.
    let metrics = http_get(&format!("http://{api}/metrics")).unwrap_or_default();
    assert!(metrics.contains("tagpilot_object_ready") && !metrics.contains("/hook/"));
    g.stop(&mut daemon);
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn suspend_resume_and_reconcile_through_the_daemon() {
    let g = Guide::new();
    g.configure_hourly("5.0.x", "");
    let api = format!("127.0.0.1:{}", free_port());
    // Every /api/v1 route needs the token (reading too: it lists Receiver paths).
    let token = g.state.path().join("api-token");
    std::fs::write(&token, "t0ken-for-controls\n").unwrap();
    let token = token.to_string_lossy().into_owned();
    let start = || {
        g.daemon(&[
            "--api-address",
            &api,
            "--webhook-address",
            "",
            "--api-token-file",
            &token,
        ])
    };
    let mut daemon = start();
    let deployment = || g.deployment();
    g.wait_for_tag("5.0.3");
    let cli = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "-n",
            "flux-system",
            "--api-address",
            &api,
            "--api-token-file",
            &token,
        ]);
        let o = tagpilot(&all);
        (o.status.code(), stderr(&o))
    };
    let o = tagpilot(&[
        "suspend",
        "image",
        "update",
        "flux-system",
        "-n",
        "flux-system",
        "--api-address",
        &api,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("a valid API token is required"),
        "{}",
        stderr(&o)
    );

    // `get --watch` prints the table, then the row again when the object changes.
    let mut watcher = std::process::Command::new(env!("CARGO_BIN_EXE_tagpilot"))
        .args([
            "get",
            "image",
            "update",
            "--watch",
            "--api-address",
            &api,
            "--api-token-file",
            &token,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let watched = {
        use std::io::BufRead as _;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let out = watcher.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let next_row = |want_suspended: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match watched.recv_timeout(left) {
                Ok(l) if l.split('\t').nth(2).map(str::trim) == Some(want_suspended) => return l,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no watched row with SUSPENDED {want_suspended}")
    };
    assert!(next_row("False").starts_with("flux-system"));
    let (code, err) = cli(&["suspend", "image", "update", "flux-system"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("► suspending image update automation flux-system in flux-system namespace")
            && err.contains("✔ image update automation suspended"),
        "{err}"
    );
    let suspended_row = || {
        let o = tagpilot(&[
            "get",
            "image",
            "update",
            "--api-address",
            &api,
            "--api-token-file",
            &token,
            "--no-header",
        ]);
        stdout(&o).split_whitespace().nth(2).map(str::to_owned)
    };
    let status_of = http_status;
    let objects = format!("http://{api}/api/v1/objects");
    assert_eq!(status_of(&[], &objects), "401");
    assert_eq!(
        status_of(
            &["-H", "Authorization: Bearer t0ken-for-controls"],
            &objects
        ),
        "200"
    );
    let o = tagpilot(&["get", "image", "update", "--api-address", &api]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("a valid API token is required"),
        "{}",
        stderr(&o)
    );
    for open in ["healthz", "readyz", "metrics"] {
        assert_eq!(
            status_of(&[], &format!("http://{api}/{open}")),
            "200",
            "{open}"
        );
    }
    assert!(
        eventually(10, || suspended_row().as_deref() == Some("True")),
        "{:?}",
        suspended_row()
    );
    assert!(next_row("True").starts_with("flux-system"));
    let _ = watcher.kill();
    let _ = watcher.wait();
    // --status-selector, as flux's.
    let (code, err) = cli(&["get", "image", "update", "--status-selector", "ready=false"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no ImageUpdateAutomation objects found in flux-system namespace"),
        "{err}"
    );
    let o = tagpilot(&[
        "get",
        "image",
        "update",
        "--status-selector",
        "ready!=false",
        "--api-address",
        &api,
        "--api-token-file",
        &token,
    ]);
    assert!(
        stdout(&o).contains("flux-system"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );

    // A new tag is scanned and resolved on request, but the suspended automation does not push.
    g.push_tag("5.0.4");
    let (code, err) = cli(&["reconcile", "image", "repository", "podinfo"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("✔ ImageRepository reconciliation completed")
            && err.contains("✔ scan fetched 8 tags"),
        "{err}"
    );
    let (code, err) = cli(&["reconcile", "image", "policy", "podinfo"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("resolved to 5.0.4"), "{err}");
    let (code, err) = cli(&["reconcile", "image", "update", "flux-system"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("✗ resource is suspended"), "{err}");
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(deployment().contains("podinfo:5.0.3 #"), "{}", deployment());

    // The suspension survives a restart.
    g.stop(&mut daemon);
    let mut daemon = start();
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert!(deployment().contains("podinfo:5.0.3 #"), "{}", deployment());
    assert!(
        eventually(10, || suspended_row().as_deref() == Some("True")),
        "{:?}",
        suspended_row()
    );

    // Resume: the round runs at once and pushes 5.0.4.
    let (code, err) = cli(&["resume", "image", "update", "flux-system"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("✔ image update automation resumed")
            && err.contains("✔ ImageUpdateAutomation reconciliation completed")
            && err.contains("pushed commit"),
        "{err}"
    );
    assert!(deployment().contains("podinfo:5.0.4 #"), "{}", deployment());
    assert_eq!(suspended_row().as_deref(), Some("False"));

    let (code, err) = cli(&["reconcile", "image", "repository", "nope"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("ImageRepository flux-system/nope not found"),
        "{err}"
    );
    g.stop(&mut daemon);
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn restart_resumes_from_the_store_and_survives_kill_9() {
    let g = Guide::new();
    g.configure_hourly("5.0.x", "");
    let api = format!("127.0.0.1:{}", free_port());
    let start = || g.daemon(&["--api-address", &api, "--webhook-address", ""]);
    let mut daemon = start();
    let deployment = || g.deployment();
    g.wait_for_tag("5.0.3");
    let commits = || {
        git_cmd(&g.git.bare, &["log", "--format=%s", "main"])
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let before = commits();
    g.stop(&mut daemon);

    // A clean restart within the interval: no rescan, the policy is resolved from the store,
    // nothing is committed again.
    let daemon = start();
    let policy_tag = || {
        let o = tagpilot(&[
            "get",
            "image",
            "policy",
            "podinfo",
            "--api-address",
            &api,
            "--no-header",
        ]);
        stdout(&o).split_whitespace().nth(2).map(str::to_owned)
    };
    assert!(
        eventually(15, || policy_tag().as_deref() == Some("5.0.3")),
        "{:?}\n{}",
        policy_tag(),
        g.logs()
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    let logs = g.logs();
    assert!(logs.contains("resuming from the stored scan"), "{logs}");
    let scans = logs.matches("successful scan").count();
    assert_eq!(scans, 0, "a restart rescanned: {logs}");
    assert_eq!(commits(), before, "a restart committed again");

    // kill -9 at different moments of the scan → resolve → commit → push chain for a new tag,
    // then restart: each tag lands exactly once, nothing is lost or duplicated.
    let mut daemon = daemon;
    for (i, delay_ms) in [0u64, 60, 120, 200, 300, 450].into_iter().enumerate() {
        let tag = format!("5.0.{}", 4 + i);
        g.push_tag(&tag);
        let o = g.reconcile_repository(&api, 1);
        let _ = o; // the outcome does not matter: the kill may come first
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = daemon.0.kill(); // SIGKILL
        let _ = daemon.0.wait();
        daemon = start();
        // Up before anything is asked of it (and before the next SIGTERM or kill).
        assert!(
            eventually(15, || http_get(&format!("http://{api}/readyz")).is_some()),
            "{}",
            g.logs()
        );
        let wanted = format!("podinfo:{tag} #");
        let landed = eventually(30, || {
            if !deployment().contains(&wanted) {
                // After a kill before the scan was stored, ask again (intervals are 1 h).
                let _ = g.reconcile_repository(&api, 5);
            }
            deployment().contains(&wanted)
        });
        assert!(landed, "{tag} after a kill at {delay_ms} ms: {}", g.logs());
        let after = commits();
        let count = after
            .iter()
            .filter(|m| m.contains(&format!("podinfo:{tag}")))
            .count();
        assert_eq!(count, 1, "{tag}: {after:?}");
        assert_eq!(after.len(), before.len() + i + 1, "{after:?}");
    }
    // The store and the warm clone are still usable: the daemon reports everything Ready.
    let o = tagpilot(&[
        "get",
        "images",
        "all",
        "-A",
        "--api-address",
        &api,
        "--no-header",
    ]);
    // READY is the fifth column of every image table with -A.
    let rows: Vec<String> = stdout(&o)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(
            r.split('\t').nth(4).map(str::trim),
            Some("True"),
            "{}",
            stdout(&o)
        );
    }
    g.stop(&mut daemon);
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn configmap_swap_is_seen_at_once_and_reloads_only_what_changed() {
    use std::os::unix::fs::symlink;
    let g = Guide::new();
    // The configuration as kubelet lays out a ConfigMap volume: a timestamped directory, a
    // `..data` link to it, and visible names that link through `..data`.
    let dir = g.config.path();
    let _ = std::fs::remove_file(dir.join("flux.yaml"));
    let version = |name: &str, range: &str| {
        let v = dir.join(name);
        std::fs::create_dir_all(&v).unwrap();
        let text = manifests(&g.reg, &g.git.url, range, "").replace("1m0s", "1h0m0s");
        std::fs::write(v.join("flux.yaml"), text).unwrap();
    };
    version("..2026_11_26_10_00_00.1", "5.0.x");
    symlink("..2026_11_26_10_00_00.1", dir.join("..data")).unwrap();
    symlink("..data/flux.yaml", dir.join("flux.yaml")).unwrap();
    // Polling every hour: only inotify can notice the swap within this test.
    let log_path = g.state.path().join("daemon.log");
    let mut daemon = Daemon(
        std::process::Command::new(env!("CARGO_BIN_EXE_tagpilot"))
            .args([
                "run",
                "--reload-seconds",
                "3600",
                "--api-address",
                "",
                "--webhook-address",
                "",
            ])
            .arg("--config")
            .arg(dir)
            .arg("--state-dir")
            .arg(g.state.path())
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let deployment = || g.deployment();
    g.wait_for_tag("5.0.3");
    let scans_before = g.logs().matches("successful scan").count();
    assert_eq!(scans_before, 1, "{}", g.logs());

    // kubelet's atomic update: new directory, new link, renamed over `..data`.
    version("..2026_11_26_10_05_00.2", "5.0.0");
    symlink("..2026_11_26_10_05_00.2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    assert!(
        eventually(15, || deployment().contains("podinfo:5.0.0 #")),
        "the swap was not applied: {}",
        g.logs()
    );
    let logs = g.logs();
    assert!(logs.contains("configuration changed, reloading"), "{logs}");
    // Only the policy changed: the repository's scanner kept running, nothing was rescanned.
    assert_eq!(
        logs.matches("successful scan").count(),
        scans_before,
        "{logs}"
    );
    g.stop(&mut daemon);
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn a_broken_edit_keeps_the_last_good_version_running() {
    let g = Guide::new();
    let write = |range: &str| g.configure_hourly(range, "");
    write("5.0.x");
    let api = format!("127.0.0.1:{}", free_port());
    let mut daemon = g.daemon(&["--api-address", &api, "--webhook-address", ""]);
    let deployment = || g.deployment();
    g.wait_for_tag("5.0.3");
    // An edit that does not validate: the policy keeps running as it was.
    write("'5.0.x || nonsense'");
    let policy = || {
        http_get(&format!("http://{api}/api/v1/objects"))
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .and_then(|v| {
                v["items"].as_array().and_then(|items| {
                    items
                        .iter()
                        .find(|i| i["kind"] == "ImagePolicy" && i["name"] == "podinfo")
                        .cloned()
                })
            })
            .unwrap_or_default()
    };
    assert!(
        eventually(15, || policy()["status"]["configError"]
            .as_str()
            .is_some_and(|e| e.contains("spec.policy.semver.range"))),
        "{}\n{}",
        policy(),
        g.logs()
    );
    assert!(g
        .logs()
        .contains("invalid edit: the last good version keeps running"));
    // It still works: a new tag is picked up with the old range.
    g.push_tag("5.0.4");
    let o = g.reconcile_repository(&api, 60);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        eventually(20, || deployment().contains("podinfo:5.0.4 #")),
        "{}",
        g.logs()
    );
    assert_eq!(
        policy()["status"]["conditions"][0]["status"],
        "True",
        "{}",
        policy()
    );
    // Reverting the edit clears the error.
    write("5.0.x");
    assert!(
        eventually(15, || policy()["status"].get("configError").is_none()),
        "{}",
        policy()
    );
    g.stop(&mut daemon);
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn sigterm_during_a_round_lets_it_finish() {
    let g = Guide::new();
    g.configure_hourly("5.0.x", "");
    let api = format!("127.0.0.1:{}", free_port());
    let deployment = || g.deployment();
    let count = || {
        git_cmd(&g.git.bare, &["rev-list", "--count", "main"])
            .trim()
            .to_owned()
    };
    let mut daemon = g.daemon(&["--api-address", &api, "--webhook-address", ""]);
    g.wait_for_tag("5.0.3");
    let before: u32 = count().parse().unwrap_or(0);
    // Wake the chain, and stop the daemon while its Git round is most likely running.
    g.push_tag("5.0.4");
    let o = g.reconcile_repository(&api, 60);
    assert!(o.status.success(), "{}", stderr(&o));
    std::thread::sleep(std::time::Duration::from_millis(80));
    g.stop(&mut daemon);
    // Either the round ran to its push, or it never started: never anything in between.
    let after: u32 = count().parse().unwrap_or(0);
    let logs = g.logs();
    if logs.contains("waiting for git rounds to finish") {
        assert_eq!(after, before + 1, "{logs}");
    }
    assert!(
        after == before || after == before + 1,
        "{after} vs {before}"
    );
    let pushed = deployment().contains("podinfo:5.0.4 #");
    assert_eq!(pushed, after == before + 1, "{}", deployment());
    let fsck = std::process::Command::new("git")
        .args(["fsck", "--no-progress"])
        .current_dir(&g.git.bare)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile input (issue 13): symlinks out of the clone, files the setters skip, planted secrets.

/// Commits what `edit` does to a working copy of the fleet repository, as a human would.
fn commit_to_fleet(g: &Guide, message: &str, edit: impl FnOnce(&std::path::Path)) {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", g.git.bare.display());
    git_cmd(tmp.path(), &["clone", "-q", &url, "w"]);
    let w = tmp.path().join("w");
    edit(&w);
    git_cmd(&w, &["add", "-A"]);
    git_cmd(&w, &["commit", "-q", "-m", message]);
    git_cmd(&w, &["push", "-q", "origin", "main"]);
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn symlinks_out_of_the_clone_are_refused_and_skipped_files_reported() {
    let g = Guide::new();
    let outside = tempfile::tempdir().unwrap();
    let marked = format!(
        "image: {}/stefanprodan/podinfo:5.0.0 # {{\"$imagepolicy\": \"flux-system:podinfo\"}}\n",
        g.reg
    );
    std::fs::create_dir_all(outside.path().join("sub")).unwrap();
    for f in ["inner.yaml", "sub/inner.yaml"] {
        std::fs::write(outside.path().join(f), &marked).unwrap();
    }
    let untouched = || {
        ["inner.yaml", "sub/inner.yaml"].iter().all(|f| {
            std::fs::read_to_string(outside.path().join(f))
                .ok()
                .as_deref()
                == Some(&marked)
        })
    };
    let out = outside.path().to_path_buf();
    commit_to_fleet(&g, "links and odd files", |w| {
        std::os::unix::fs::symlink(&out, w.join("clusters/linked")).unwrap();
        let c = w.join("clusters/my-cluster");
        std::os::unix::fs::symlink(out.join("inner.yaml"), c.join("out.yaml")).unwrap();
        // Latin-1 (é as 0xE9) and a Helm-style template: neither can be edited safely.
        let mut latin = marked.clone().into_bytes();
        latin.extend(b"# caf\xe9\n");
        std::fs::write(c.join("latin1.yaml"), latin).unwrap();
        std::fs::write(
            c.join("broken.yaml"),
            format!("{marked}{{{{ if .x }}}}: [\n"),
        )
        .unwrap();
    });
    let head = || git_cmd(&g.git.bare, &["rev-parse", "main"]);
    let before = head();
    let with_path = |path: &str| {
        let text = manifests(&g.reg, &g.git.url, "5.0.x", "")
            .replace("path: ./clusters/my-cluster", &format!("path: {path}"));
        std::fs::write(g.config.path().join("flux.yaml"), text).unwrap();
    };
    for path in ["./clusters/linked", "./clusters/linked/sub"] {
        with_path(path);
        let o = g.run_once();
        assert_eq!(o.status.code(), Some(1), "{path}");
        let text = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            text.contains(&format!(
                "update path '{path}' leads outside the repository through a symlink, refused"
            )),
            "{path}: {text}"
        );
        assert!(untouched(), "{path}: a file outside the clone was written");
        assert_eq!(head(), before, "{path}: nothing is pushed");
    }
    // `validate` refuses what leaves the repository without a clone to look at.
    with_path("../../");
    let o = tagpilot(&["validate", &g.config.path().to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("spec.update.path: '../../' leaves the repository"),
        "{}",
        stdout(&o)
    );

    // The guide's path: the good files are updated, the skipped ones named with the reason.
    with_path("./clusters/my-cluster");
    let o = g.run_once();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let line = stdout(&o)
        .lines()
        .find(|l| l.starts_with("imageupdateautomation/"))
        .unwrap_or_default()
        .to_owned();
    assert!(line.contains("pushed commit"), "{line}");
    for reason in [
        "latin1.yaml: not UTF-8, skipped",
        "out.yaml: symlink leads outside the update path, refused",
        "broken.yaml: ",
    ] {
        assert!(line.contains(reason), "{reason}: {line}");
    }
    assert!(g.deployment().contains("podinfo:5.0.3 #"));
    assert!(untouched());

    // The daemon refuses the symlinked path too, in the automation's status; a misspelled
    // field is a warning in the policy's status and the log.
    with_path("./clusters/linked");
    let text = std::fs::read_to_string(g.config.path().join("flux.yaml")).unwrap_or_default();
    std::fs::write(
        g.config.path().join("flux.yaml"),
        text.replacen(
            "  imageRepositoryRef:\n",
            "  suspnd: false\n  imageRepositoryRef:\n",
            1,
        ),
    )
    .unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let mut daemon = g.daemon(&["--api-address", &api, "--webhook-address", ""]);
    let message = || {
        api_objects(&api)
            .get("ImageUpdateAutomation/flux-system/flux-system")
            .and_then(|o| {
                o["conditions"]
                    .as_array()
                    .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                    .and_then(|c| c["message"].as_str().map(str::to_owned))
            })
            .unwrap_or_default()
    };
    assert!(
        eventually(30, || message()
            .contains("leads outside the repository through a symlink")),
        "{}: {}",
        message(),
        g.logs()
    );
    assert!(untouched());
    let warnings = api_objects(&api)
        .get("ImagePolicy/flux-system/podinfo")
        .map(|o| o["configWarnings"].to_string())
        .unwrap_or_default();
    assert_eq!(
        warnings, r#"["spec.suspnd: unknown field, ignored (misspelled?)"]"#,
        "{warnings}"
    );
    assert!(g.logs().contains("unknown field, ignored"), "{}", g.logs());
    g.stop(&mut daemon);
}

/// Distinctive secrets, planted in every kind of Secret tagpilot reads, each one made to fail
/// in a way that used to quote it; then every channel is searched for them.
#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn planted_secrets_appear_in_no_channel() {
    const PLANTED: [&str; 11] = [
        "PlantedArmorZq7Xw3",
        "PlantedSshSignKeyV5",
        "PlantedGitSecretPw",
        // "Planted" as the byte list the OpenPGP parser's Debug output printed.
        "80, 108, 97, 110, 116, 101, 100",
        "PlantedDockerAuthQ9v",
        "PlantedB64Bad",
        "918273645501",
        "PlantedUrlPassM2",
        "PlantedReceiverTokK5",
        "PlantedAddrPathH3",
        "PlantedHmacKeyJ8",
    ];
    let g = Guide::new();
    let recorder = hook_recorder(&[]);
    let closed = free_port();
    let reg = &g.reg;
    let url = &g.git.url;
    let extra = format!(
        r#"---
apiVersion: v1
kind: Secret
metadata: {{name: signing, namespace: flux-system}}
stringData:
  git.asc: |
    -----BEGIN PGP PRIVATE KEY BLOCK-----
    PlantedArmorZq7Xw3LineOfKeyMaterialAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
    =abcd
    -----END PGP PRIVATE KEY BLOCK-----
---
apiVersion: v1
kind: Secret
metadata: {{name: regcred, namespace: flux-system}}
type: kubernetes.io/dockerconfigjson
stringData: {{.dockerconfigjson: '{{"auths": "PlantedDockerAuthQ9v"}}'}}
---
apiVersion: v1
kind: Secret
metadata: {{name: badb64, namespace: flux-system}}
data: {{.dockerconfigjson: 'PlantedB64Bad!!'}}
---
apiVersion: v1
kind: Secret
metadata: {{name: intval, namespace: flux-system}}
stringData: {{token: 918273645501}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: private, namespace: flux-system}}
spec: {{image: {reg}/stefanprodan/podinfo, interval: 1h, insecure: true, secretRef: {{name: regcred}}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: b64, namespace: flux-system}}
spec: {{image: {reg}/stefanprodan/podinfo, interval: 1h, insecure: true, secretRef: {{name: badb64}}}}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: leaky, namespace: flux-system}}
spec:
  interval: 1h
  url: http://bob:PlantedUrlPassM2@127.0.0.1:{closed}/fleet.git
  ref: {{branch: main}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {{name: leaky, namespace: flux-system}}
spec:
  interval: 1h
  sourceRef: {{kind: GitRepository, name: leaky}}
  git: {{commit: {{author: {{name: bot, email: bot@example.com}}}}}}
  update: {{path: ./, strategy: Setters}}
---
apiVersion: v1
kind: Secret
metadata: {{name: gitcreds, namespace: flux-system}}
stringData: {{username: bob, password: PlantedGitSecretPw}}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: leaky2, namespace: flux-system}}
spec:
  interval: 1h
  url: http://127.0.0.1:{closed}/other.git
  ref: {{branch: main}}
  secretRef: {{name: gitcreds}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {{name: leaky2, namespace: flux-system}}
spec:
  interval: 1h
  sourceRef: {{kind: GitRepository, name: leaky2}}
  git: {{commit: {{author: {{name: bot, email: bot@example.com}}}}}}
  update: {{path: ./, strategy: Setters}}
---
apiVersion: v1
kind: Secret
metadata: {{name: sshsign, namespace: flux-system}}
stringData:
  identity: |
    -----BEGIN OPENSSH PRIVATE KEY-----
    PlantedSshSignKeyV5AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
    -----END OPENSSH PRIVATE KEY-----
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {{name: sshsigned, namespace: flux-system}}
spec:
  interval: 1h
  sourceRef: {{kind: GitRepository, name: flux-system}}
  git:
    commit:
      author: {{name: bot, email: bot@example.com}}
      signingKey: {{type: ssh, secretRef: {{name: sshsign}}}}
  update: {{path: ./, strategy: Setters}}
---
apiVersion: v1
kind: Secret
metadata: {{name: hooktoken, namespace: flux-system}}
stringData: {{token: PlantedReceiverTokK5}}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {{name: generic, namespace: flux-system}}
spec:
  type: generic
  secretRef: {{name: hooktoken}}
  resources: [{{kind: ImageRepository, name: podinfo}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: emptytoken, namespace: flux-system}}
stringData: {{token: ''}}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {{name: empty, namespace: flux-system}}
spec:
  type: generic
  secretRef: {{name: emptytoken}}
  resources: [{{kind: ImageRepository, name: podinfo}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: hmac, namespace: flux-system}}
stringData:
  address: http://127.0.0.1:{closed}/PlantedAddrPathH3
  token: PlantedHmacKeyJ8
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: leakhook, namespace: flux-system}}
spec: {{type: generic-hmac, secretRef: {{name: hmac}}}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: recorder, namespace: flux-system}}
spec: {{type: generic, address: 'http://127.0.0.1:{rec}/events'}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {{name: all, namespace: flux-system}}
spec:
  providerRef: {{name: recorder}}
  eventSources: [{{kind: ImageUpdateAutomation, name: '*'}}]
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {{name: leak, namespace: flux-system}}
spec:
  providerRef: {{name: leakhook}}
  eventSources: [{{kind: ImageUpdateAutomation, name: '*'}}]
"#,
        rec = recorder.port
    );
    let text = manifests(reg, url, "5.0.x", &extra)
        .replace("1m0s", "1h0m0s")
        .replace(
            "        name: fluxcdbot\n",
            "        name: fluxcdbot\n      signingKey:\n        secretRef:\n          name: signing\n",
        );
    std::fs::write(g.config.path().join("flux.yaml"), text).unwrap();
    let clean = |channel: &str, text: &str| {
        for p in PLANTED {
            assert!(!text.contains(p), "{channel} leaks {p}: {text}");
        }
    };

    let o = g.run_once();
    let once = format!("{}{}", stdout(&o), stderr(&o));
    // Each planted failure is reported (so the search below covers real messages).
    for said in [
        "git.asc is not a valid OpenPGP private key",
        "invalid docker config at line 1",
        "secret 'flux-system/badb64' is invalid: data..dockerconfigjson: is not valid base64",
        "failed to fetch from http://127.0.0.1:",
        "invalid SSH signing key",
        "invalid type",
    ] {
        assert!(
            once.contains(said),
            "run --once does not say {said:?}: {once}"
        );
    }
    clean("run --once", &once);

    let api = format!("127.0.0.1:{}", free_port());
    let hooks = format!("127.0.0.1:{}", free_port());
    let mut daemon = g.daemon(&[
        "--api-address",
        &api,
        "--webhook-address",
        &hooks,
        "--log-format",
        "json",
    ]);
    let failed_delivery = || {
        api_objects(&api)
            .get("Provider/flux-system/leakhook")
            .and_then(|o| o["deliveries"]["failed"].as_u64())
            .unwrap_or(0)
            > 0
    };
    assert!(
        eventually(60, || failed_delivery() && !recorded(&recorder).is_empty()),
        "{}",
        g.logs()
    );
    let objects = http_get(&format!("http://{api}/api/v1/objects")).unwrap_or_default();
    assert!(
        objects.contains("git.asc is not a valid OpenPGP private key"),
        "{objects}"
    );
    clean("GET /api/v1/objects", &objects);
    clean(
        "/metrics",
        &http_get(&format!("http://{api}/metrics")).unwrap_or_default(),
    );
    for args in [
        &["images", "all", "-A"][..],
        &["receivers", "-A"],
        &["alerts", "-A"],
        &["alert-providers", "-A"],
    ] {
        let mut all = vec!["get"];
        all.extend(args);
        all.extend(["--api-address", api.as_str()]);
        let o = tagpilot(&all);
        clean(
            &format!("get {args:?}"),
            &format!("{}{}", stdout(&o), stderr(&o)),
        );
    }
    let events: String = recorded(&recorder)
        .iter()
        .map(|r| r["body"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(events.contains("OpenPGP"), "{events}");
    clean("events", &events);
    g.stop(&mut daemon);
    let logs = g.logs();
    clean("daemon log", &logs);
    // JSON logs: one object per line, one `message` key in it.
    for line in logs.lines().filter(|l| l.starts_with('{')) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "{line}"
        );
        assert_eq!(line.matches("\"message\":").count(), 1, "{line}");
    }
    assert!(logs.contains("\"message\":\"reconciled\""), "{logs}");
}

impl Guide {
    fn push_with(&self, tags: &[&str], env: &[(&str, &str)]) {
        push_with(
            &format!("http://{}", self.reg),
            "stefanprodan/podinfo",
            tags,
            env,
        );
    }

    /// `run --once`, which must succeed; its summary.
    fn run_once_ok(&self) -> String {
        let o = self.run_once();
        let out = stdout(&o);
        assert!(o.status.success(), "{out}\n{}", stderr(&o));
        out
    }

    fn commits(&self) -> usize {
        git_cmd(&self.git.bare, &["rev-list", "--count", "main"])
            .trim()
            .parse()
            .unwrap()
    }
}

const BOTH: &str = "linux/amd64 linux/arm64/v8";

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn rollout_gates_hold_tags_and_the_latest_ref_never_moves_down_by_itself() {
    let g = Guide::new();
    let policy = |gates: &str| format!("5.0.x\n  gates: {gates}");
    // 5.0.4 is a two-platform index; 5.0.5 a single amd64 manifest.
    g.push_with(&["5.0.4"], &[("PLATFORMS", BOTH)]);
    g.push_with(&["5.0.5"], &[("UNIQUE", "1")]);
    g.configure(&policy("{platforms: [linux/amd64, linux/arm64]}"), "");
    let out = g.run_once_ok();
    assert!(
        out.contains(
            "resolved to 5.0.4 (5.0.5 held by platforms: no image for linux/arm64; using 5.0.4)"
        ),
        "{out}"
    );
    g.wait_for_tag("5.0.4");

    // 5.0.5 is pushed again, now for both platforms: another digest under the same tag.
    g.push_with(&["5.0.5"], &[("PLATFORMS", BOTH), ("SALT", "again")]);
    g.configure(
        &policy("{platforms: [linux/amd64, linux/arm64], repushHold: 1h}"),
        "",
    );
    let before = g.commits();
    let out = g.run_once_ok();
    assert!(
        out.contains("resolved to 5.0.4 (5.0.5 held by repushHold until "),
        "{out}"
    );
    assert!(out.contains("(re-pushed: digest changed at "), "{out}");
    assert_eq!(g.commits(), before, "a held tag is not pushed");
    // The hold ends: with a 2 s hold, a later run takes it.
    g.configure(
        &policy("{platforms: [linux/amd64, linux/arm64], repushHold: 2s}"),
        "",
    );
    assert!(
        eventually(20, || g.run_once_ok().contains("resolved to 5.0.5")),
        "the re-push hold never ended"
    );
    g.wait_for_tag("5.0.5");

    // A registry clean-up removes 5.0.5: tagpilot keeps it and says why, twice in a row
    // (the second scan confirms the shorter list).
    let tags = g
        ._reg
        .dir
        .path()
        .join("data/docker/registry/v2/repositories/stefanprodan/podinfo/_manifests/tags");
    std::fs::remove_dir_all(tags.join("5.0.5")).unwrap();
    let before = g.commits();
    for _ in 0..2 {
        let out = g.run_once_ok();
        assert!(
            out.contains("resolved to 5.0.5 (5.0.5 is no longer listed; not moving back to 5.0.4 without a policy change)"),
            "{out}"
        );
    }
    assert_eq!(g.commits(), before, "no downgrade was pushed");
    assert!(g.deployment().contains("podinfo:5.0.5 #"));
    // The guide's way back is a policy change: then the lower tag is written.
    g.configure("<5.0.5", "");
    let out = g.run_once_ok();
    assert!(out.contains("resolved to 5.0.4"), "{out}");
    g.wait_for_tag("5.0.4");

    // minAge: a tag pushed after tagpilot first scanned the repository waits its age out.
    g.push_with(&["5.0.6"], &[("UNIQUE", "1")]);
    g.configure(&policy("{minAge: 1h}"), "");
    let out = g.run_once_ok();
    assert!(
        out.contains("resolved to 5.0.4 (5.0.6 held by minAge until "),
        "{out}"
    );
    assert!(g.deployment().contains("podinfo:5.0.4 #"));
    g.configure(&policy("{minAge: 2s}"), "");
    assert!(
        eventually(20, || g.run_once_ok().contains("resolved to 5.0.6")),
        "the minimum age never passed"
    );
    g.wait_for_tag("5.0.6");
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn change_windows_hold_pushes_and_explain_shows_every_verdict() {
    let g = Guide::new();
    g.push_with(&["5.0.4"], &[("PLATFORMS", BOTH)]);
    g.push_with(&["5.0.5"], &[("UNIQUE", "1")]);
    // A window that opens once a year, New Year's midnight in Berlin: closed now.
    g.configure_hourly(
        "5.0.x\n  gates: {platforms: [linux/amd64, linux/arm64]}",
        "  windows:\n  - {cron: '0 0 1 1 *', duration: 1m, timeZone: Europe/Berlin}\n",
    );
    let api = format!("127.0.0.1:{}", free_port());
    let mut daemon = g.daemon(&["--api-address", &api, "--webhook-address", ""]);
    let objects = || http_get(&format!("http://{api}/api/v1/objects")).unwrap_or_default();
    assert!(
        eventually(30, || objects()
            .contains("outside the change windows: changes wait until")),
        "the automation never reported the closed window: {}\n{}",
        objects(),
        g.logs()
    );
    assert!(
        g.deployment().contains("podinfo:5.0.0 #"),
        "nothing is pushed outside a window"
    );

    // explain: every tag with its verdict.
    let o = tagpilot(&[
        "explain",
        "image",
        "policy",
        "podinfo",
        "-n",
        "flux-system",
        "--api-address",
        &api,
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(out.starts_with("policy: semver range '5.0.x'\ngates: platforms linux/amd64, linux/arm64\nlatest: 5.0.4\n"), "{out}");
    let line = |tag: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(tag))
            .unwrap_or_else(|| panic!("no line for {tag}: {out}"))
            .to_owned()
    };
    assert!(
        line("5.0.5").contains("missing-platforms  held by platforms: no image for linux/arm64"),
        "{out}"
    );
    assert!(line("5.0.4").contains("chosen"), "{out}");
    assert!(line("5.0.3").contains("ranked-lower"), "{out}");
    assert!(line("5.1.0").contains("outside-range"), "{out}");
    assert!(line("latest").contains("not-a-version"), "{out}");
    // Tags of the first scan have no known age; 5.0.4 and 5.0.5 were there too.
    assert!(!out.contains("first seen"), "{out}");
    let o = tagpilot(&[
        "explain",
        "image",
        "policy",
        "podinfo",
        "-n",
        "flux-system",
        "--api-address",
        &api,
        "-o",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["latestRef"]["tag"], "5.0.4");
    assert_eq!(json["gates"]["platforms"][1], "linux/arm64");
    let o = tagpilot(&[
        "explain",
        "image",
        "policy",
        "nope",
        "-n",
        "flux-system",
        "--api-address",
        &api,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("ImagePolicy flux-system/nope not found"),
        "{}",
        stderr(&o)
    );
    let metrics = http_get(&format!("http://{api}/metrics")).unwrap_or_default();
    assert!(
        metrics.contains("tagpilot_policy_held_tags{namespace=\"flux-system\",name=\"podinfo\",verdict=\"missing-platforms\"} 1"),
        "{metrics}"
    );

    // A reconcile request forces a round outside the window.
    g.reconcile_update(&api);
    g.wait_for_tag("5.0.4");
    g.stop(&mut daemon);
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn manual_changes_hold_a_revert_until_a_newer_tag_or_a_release() {
    let g = Guide::new();
    g.configure_hourly("5.0.x", "  manualChanges: hold\n");
    let api = format!("127.0.0.1:{}", free_port());
    let mut daemon = g.daemon(&["--api-address", &api, "--webhook-address", ""]);
    g.wait_for_tag("5.0.3");
    let reconcile_update = || g.reconcile_update(&api);

    // A person reverts the automated commit with the git CLI.
    let tmp = tempfile::tempdir().unwrap();
    git_cmd(
        tmp.path(),
        &[
            "clone",
            "-q",
            &format!("file://{}", g.git.bare.display()),
            "w",
        ],
    );
    let w = tmp.path().join("w");
    git_cmd(&w, &["revert", "--no-edit", "HEAD"]);
    git_cmd(&w, &["push", "-q", "origin", "main"]);
    let reverted = g.commits();
    let out = reconcile_update();
    assert!(
        out.contains("flux-system/podinfo kept at ")
            && out.contains("by a manual change until a tag above 5.0.3"),
        "{out}"
    );
    assert_eq!(g.commits(), reverted, "the revert stays");
    assert!(g.deployment().contains("podinfo:5.0.0 #"));
    let metrics = http_get(&format!("http://{api}/metrics")).unwrap_or_default();
    assert!(
        metrics.contains("tagpilot_manual_holds{namespace=\"flux-system\",name=\"flux-system\"} 1"),
        "{metrics}"
    );
    // Still held at the next round.
    reconcile_update();
    assert_eq!(g.commits(), reverted);

    // A tag above the one they left ends the hold.
    g.push_tag("5.0.4");
    let o = g.reconcile_repository(&api, 30);
    assert!(o.status.success(), "{}", stderr(&o));
    g.wait_for_tag("5.0.4");

    // A hand edit back to 5.0.2: held again, then released by the command.
    git_cmd(&w, &["pull", "-q", "--rebase", "origin", "main"]);
    let file = w.join("clusters/my-cluster/podinfo-deployment.yaml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("podinfo:5.0.4 #", "podinfo:5.0.2 #");
    std::fs::write(&file, text).unwrap();
    git_cmd(&w, &["commit", "-qam", "pin 5.0.2 by hand"]);
    git_cmd(&w, &["push", "-q", "origin", "main"]);
    let out = reconcile_update();
    assert!(out.contains("kept at 127.0.0.1:"), "{out}");
    assert!(g.deployment().contains("podinfo:5.0.2 #"));
    let o = tagpilot(&[
        "release",
        "image",
        "policy",
        "podinfo",
        "-n",
        "flux-system",
        "--api-address",
        &api,
        "--timeout",
        "30",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("✔ released for flux-system/flux-system"),
        "{}",
        stderr(&o)
    );
    g.wait_for_tag("5.0.4");
    let metrics = http_get(&format!("http://{api}/metrics")).unwrap_or_default();
    assert!(
        metrics.contains("tagpilot_manual_holds{namespace=\"flux-system\",name=\"flux-system\"} 0"),
        "{metrics}"
    );
    g.stop(&mut daemon);
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn the_daemon_takes_a_held_tag_when_its_hold_ends_and_sees_re_pushes() {
    let g = Guide::new();
    g.configure_hourly("5.0.x\n  gates: {minAge: 3s, repushHold: 1h}", "");
    let api = format!("127.0.0.1:{}", free_port());
    let mut daemon = g.daemon(&["--api-address", &api, "--webhook-address", ""]);
    g.wait_for_tag("5.0.3");
    let policy = || {
        let o = tagpilot(&[
            "get",
            "image",
            "policy",
            "podinfo",
            "-n",
            "flux-system",
            "--api-address",
            &api,
        ]);
        stdout(&o)
    };
    // A new tag: held for 3 s after the scan that found it, then taken with no other trigger
    // (every interval here is an hour).
    g.push_with(&["5.0.4"], &[("UNIQUE", "1")]);
    let o = g.reconcile_repository(&api, 30);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        eventually(10, || policy().contains("5.0.4 held by minAge until")),
        "{}",
        policy()
    );
    g.wait_for_tag("5.0.4");
    // 5.0.4 pushed again with other content: the next scan's list is the same, yet the
    // policy looks at the digests again and holds it (it stays, being current).
    g.push_with(&["5.0.4"], &[("UNIQUE", "1"), ("SALT", "again")]);
    let o = g.reconcile_repository(&api, 30);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        eventually(10, || policy().contains("5.0.4 held by repushHold until")),
        "{}",
        policy()
    );
    g.stop(&mut daemon);
}

/// The guide's manifests as they live in the fleet repository (without the GitRepository,
/// which the local bootstrap directory holds), a generic Receiver for pushes to the fleet
/// repository and its token Secret.
fn fleet_manifests(g: &Guide, range: &str, extra: &str) -> String {
    let all = manifests(&g.reg, &g.git.url, range, extra).replace("1m0s", "1h0m0s");
    let mut docs: Vec<&str> = all
        .split("\n---\n")
        .filter(|d| !d.contains("\nkind: GitRepository\n"))
        .collect();
    let receiver = "apiVersion: notification.toolkit.fluxcd.io/v1\nkind: Receiver\nmetadata: {name: fleet, namespace: flux-system}\nspec:\n  type: generic\n  secretRef: {name: fleet-token}\n  resources:\n  - {kind: GitRepository, name: flux-system}\n";
    docs.push(receiver);
    docs.join("\n---\n")
}

#[test]
#[ignore = "needs docker-registry, sops and age; run by tests/run.sh"]
fn the_guide_driven_by_pushes_to_the_configuration_repository() {
    let g = Guide::new();
    let boot = g.state.path().join("boot");
    let secrets = g.state.path().join("secrets");
    std::fs::create_dir_all(&boot).unwrap();
    // The bootstrap: one GitRepository on disk; everything else comes from Git.
    std::fs::write(
        boot.join("flux-system.yaml"),
        format!("apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {{name: flux-system, namespace: flux-system}}\nspec:\n  interval: 1h0m0s\n  ref: {{branch: main}}\n  url: {}\n", g.git.url),
    )
    .unwrap();
    // The receiver's token lives in Git, encrypted with SOPS for tagpilot's age key.
    let recipient = age_key(&secrets.join("sops-age/age.agekey"));
    let plain = g.state.path().join("token.yaml");
    std::fs::write(&plain, "apiVersion: v1\nkind: Secret\nmetadata: {name: fleet-token, namespace: flux-system}\nstringData: {token: s3cret-push-token}\n").unwrap();
    let sealed = run(std::process::Command::new(sops())
        .args([
            "encrypt",
            "--age",
            &recipient,
            "--encrypted-regex",
            "^(data|stringData)$",
        ])
        .arg(&plain));
    let sealed = String::from_utf8(sealed.stdout).unwrap();
    let write = |range: &str, extra: &str, message: &str| {
        let text = fleet_manifests(&g, range, extra);
        let sealed = sealed.clone();
        commit_to_fleet(&g, message, move |w| {
            let dir = w.join("clusters/my-cluster/flux-system");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("image-automation.yaml"), text).unwrap();
            std::fs::write(dir.join("fleet-token.sops.yaml"), sealed).unwrap();
        });
    };
    write("5.0.x", "", "add image automation");

    let api = format!("127.0.0.1:{}", free_port());
    let hooks = format!("127.0.0.1:{}", free_port());
    let secrets_arg = secrets.to_string_lossy().into_owned();
    let mut daemon = g.daemon_on(
        &boot,
        &[
            "--api-address",
            &api,
            "--webhook-address",
            &hooks,
            "--secrets-dir",
            &secrets_arg,
            "--source-repository",
            "flux-system/flux-system",
            "--source-path",
            "./clusters/my-cluster",
        ],
    );
    // 1. The policy committed to Git is picked up and applied: commit to 5.0.3.
    g.wait_for_tag("5.0.3");
    let objects = || http_get(&format!("http://{api}/api/v1/objects")).unwrap_or_default();
    let head = || {
        git_cmd(&g.git.bare, &["rev-parse", "main"])
            .trim()
            .to_owned()
    };
    let status_of = |kind: &str| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&objects()).unwrap_or_default();
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["kind"] == kind)
            .map(|i| i["status"].clone())
            .unwrap_or_default()
    };
    let rev = status_of("ImagePolicy")["observedSourceRevision"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(rev.starts_with("main@sha1:"), "{}", objects());
    // The push webhook of the fleet repository; its path is in the Receiver's status.
    let path = status_of("Receiver")["webhookPath"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(path.starts_with("/hook/"), "{}", objects());
    let push = || {
        let o = run(std::process::Command::new("curl").args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "-d",
            "{}",
            &format!("http://{hooks}{path}"),
        ]));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "200");
    };
    let loads = || g.logs().matches("configuration changed, reloading").count();

    // tagpilot's own commit is no news: a fetch sees no manifest change, nothing reloads.
    let before = loads();
    push();
    assert!(
        eventually(10, || g
            .logs()
            .contains("config source: no manifest changed")),
        "{}",
        g.logs()
    );
    assert_eq!(loads(), before + 1, "one look, no loop: {}", g.logs());

    // 2. The guide's rollback: change the range in Git; the push webhook brings it in.
    write("'>=5.0.0 <5.0.3'", "", "roll back below 5.0.3");
    let pushed_at = std::time::Instant::now();
    push();
    assert!(eventually(10, || status_of("ImagePolicy")
        ["observedSourceRevision"]
        .as_str()
        != Some(&rev)));
    assert!(pushed_at.elapsed() < std::time::Duration::from_secs(5));
    g.wait_for_tag("5.0.2");

    // 3. Incident: `suspend: true` in Git; a new tag is then resolved but not pushed.
    write("5.0.x", "  suspend: true\n", "suspend image updates");
    push();
    assert!(
        eventually(10, || status_of("ImageUpdateAutomation")["suspended"]
            == true),
        "{}",
        objects()
    );
    let at = head();
    g.push_tag("5.0.4");
    let o = g.reconcile_repository(&api, 30);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(eventually(10, || status_of("ImagePolicy")["latestRef"]
        ["tag"]
        == "5.0.4"));
    assert!(
        g.deployment().contains("podinfo:5.0.2 #"),
        "suspended: nothing pushed"
    );
    assert_eq!(head(), at);
    // The decrypted token never shows.
    assert!(!g.logs().contains("s3cret-push-token") && !objects().contains("s3cret-push-token"));

    // The source goes away: the last good configuration keeps running and the log says why.
    let away = g.git.bare.with_extension("away");
    std::fs::rename(&g.git.bare, &away).unwrap();
    push();
    assert!(
        eventually(10, || g.logs().contains("config source cannot be fetched")),
        "{}",
        g.logs()
    );
    assert!(
        g.logs().contains(&format!(
            "running {}",
            status_of("ImagePolicy")["observedSourceRevision"]
                .as_str()
                .unwrap_or("?")
        )),
        "{}",
        g.logs()
    );
    assert_eq!(http_status(&[], &format!("http://{api}/readyz")), "200");
    assert_eq!(
        status_of("ImageUpdateAutomation")["suspended"],
        true,
        "still configured"
    );
    std::fs::rename(&away, &g.git.bare).unwrap();
    g.stop(&mut daemon);
}

#[test]
#[ignore = "needs docker-registry; run by tests/run.sh"]
fn run_once_reads_its_configuration_from_git() {
    let g = Guide::new();
    let text = fleet_manifests(&g, "5.0.x", "");
    let git_repo = format!(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {{name: flux-system, namespace: flux-system}}\nspec:\n  interval: 1h0m0s\n  ref: {{branch: main}}\n  url: {}\n---\n",
        g.git.url
    );
    commit_to_fleet(&g, "add image automation", move |w| {
        let dir = w.join("clusters/my-cluster/flux-system");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("image-automation.yaml"),
            format!("{git_repo}{text}"),
        )
        .unwrap();
    });
    // No --config: with a source the overlay is <state>/local (absent here).
    let o = tagpilot(&[
        "run",
        "--once",
        "--state-dir",
        &g.state.path().to_string_lossy(),
        "--source-url",
        &g.git.url,
        "--source-branch",
        "main",
        "--source-path",
        "./clusters/my-cluster",
    ]);
    let out = stdout(&o);
    // The Receiver's token Secret is not in this repository: that one object fails.
    assert!(
        stderr(&o).contains("configuration from main@sha1:"),
        "{}",
        stderr(&o)
    );
    assert!(out.contains("resolved to 5.0.3"), "{out}\n{}", stderr(&o));
    g.wait_for_tag("5.0.3");
    // A source path that leaves the repository is refused before anything runs.
    let o = tagpilot(&[
        "run",
        "--once",
        "--source-url",
        &g.git.url,
        "--source-path",
        "../x",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("source path: '../x' leaves the repository"),
        "{}",
        stderr(&o)
    );
}
