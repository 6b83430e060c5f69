//! Runs the built `tagpilot` binary the way scripts do and checks stdout, stderr and exit codes.
#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion: a panic with the error

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tags(name: &str) -> String {
    repo_root()
        .join("tests/data/tags")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn tagpilot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagpilot"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tagpilot: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Resolves and returns the first stdout line, asserting success.
fn resolve(args: &[&str]) -> String {
    let mut full = vec!["resolve"];
    full.extend_from_slice(args);
    let o = tagpilot(&full);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o).lines().next().unwrap_or_default().to_owned()
}

/// Resolves expecting failure; returns stderr, asserting exit 1 and an empty stdout.
fn resolve_fails(args: &[&str]) -> String {
    let mut full = vec!["resolve"];
    full.extend_from_slice(args);
    let o = tagpilot(&full);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stdout(&o));
    assert!(
        o.stdout.is_empty(),
        "{args:?}: stdout must be empty: {}",
        stdout(&o)
    );
    stderr(&o)
}

#[test]
fn resolves_real_tag_lists() {
    let node = tags("node.txt");
    assert_eq!(
        resolve(&["--tags-file", &node, "--semver", ">=20.0.0 <21.0.0"]),
        "20.11.1"
    );
    assert_eq!(resolve(&["--tags-file", &node, "--semver", "*"]), "21.6.1");
    assert_eq!(
        resolve(&[
            "--tags-file",
            &node,
            "--semver",
            "^20",
            "--filter-pattern",
            r"^(?P<v>\d+\.\d+\.\d+)-alpine3\.19$",
            "--filter-extract",
            "$v",
        ]),
        "20.11.0-alpine3.19"
    );

    let nginx = tags("nginx.txt");
    assert_eq!(
        resolve(&["--tags-file", &nginx, "--semver", "~1.26"]),
        "1.26.0"
    );
    assert_eq!(resolve(&["--tags-file", &nginx, "--semver", "*"]), "1.27.0");
    assert_eq!(
        resolve(&["--tags-file", &nginx, "--alphabetical", "asc"]),
        "stable-alpine"
    );
    assert_eq!(
        resolve(&["--tags-file", &nginx, "--alphabetical", "desc"]),
        "1.25"
    );
    assert_eq!(
        resolve(&[
            "--tags-file",
            &nginx,
            "--semver",
            "*",
            "--filter-pattern",
            r"^(?P<v>\d+\.\d+\.\d+)-alpine$",
            "--filter-extract",
            "$v",
        ]),
        "1.27.0-alpine"
    );

    let flux = tags("flux.txt");
    assert_eq!(
        resolve(&["--tags-file", &flux, "--semver", ">=2.0.0"]),
        "v2.2.2"
    );
    // Pre-releases: rc.11 > rc.10 > rc.9 numerically.
    assert_eq!(
        resolve(&["--tags-file", &flux, "--semver", "^2.x-0"]),
        "2.3.0-rc.11"
    );

    let calver = tags("calver.txt");
    assert_eq!(
        resolve(&["--tags-file", &calver, "--semver", "*"]),
        "2025.10.1"
    );
    assert_eq!(
        resolve(&["--tags-file", &calver, "--semver", "2025.7.x"]),
        "v2025.07.03"
    );

    let minio = tags("minio.txt");
    assert_eq!(
        resolve(&[
            "--tags-file",
            &minio,
            "--alphabetical",
            "asc",
            "--filter-pattern",
            r"^RELEASE\.(?P<timestamp>.*)Z$",
            "--filter-extract",
            "$timestamp",
        ]),
        "RELEASE.2024-01-01T16-36-33Z"
    );

    let ids = tags("buildids.txt");
    assert_eq!(
        resolve(&[
            "--tags-file",
            &ids,
            "--numerical",
            "asc",
            "--filter-pattern",
            r"^main-[a-f0-9]+-(?P<ts>\d+)$",
            "--filter-extract",
            "$ts",
        ]),
        "main-5d6e7f8-1700003600"
    );
    assert_eq!(
        resolve(&[
            "--tags-file",
            &ids,
            "--numerical",
            "desc",
            "--filter-pattern",
            r"^main-[a-f0-9]+-(?P<ts>\d+)$",
            "--filter-extract",
            "$ts",
        ]),
        "main-9abcdef-1699990000"
    );
}

#[test]
fn failures_exit_1_with_one_line_and_empty_stdout() {
    let ids = tags("buildids.txt");
    let e = resolve_fails(&[
        "--tags-file",
        &ids,
        "--numerical",
        "asc",
        "--filter-pattern",
        r"^main-[a-fA-F0-9]+-(?P<ts>.*)",
        "--filter-extract",
        "$ts",
    ]);
    assert_eq!(
        e,
        "error: failed to parse invalid numeric value 'not-a-number'\n"
    );
    let node = tags("node.txt");
    let e = resolve_fails(&["--tags-file", &node, "--semver", ">=99"]);
    assert_eq!(
        e,
        "error: unable to determine latest version from provided list\n"
    );
    let e = resolve_fails(&["--tags-file", &node, "--semver", "1.0.0p"]);
    assert_eq!(
        e,
        "error: semver parse error: improper constraint: 1.0.0p\n"
    );
    let e = resolve_fails(&["--tags-file", &node, "--alphabetical", "sideways"]);
    assert!(
        e.starts_with("error: invalid order argument provided: 'sideways'"),
        "{e}"
    );
    let e = resolve_fails(&[
        "--tags-file",
        &node,
        "--semver",
        "*",
        "--filter-pattern",
        "(",
    ]);
    assert!(
        e.starts_with("error: invalid regular expression pattern '(': "),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    let e = resolve_fails(&[
        "--tags-file",
        &node,
        "--semver",
        "*",
        "--filter-pattern",
        "^nothing$",
    ]);
    assert_eq!(e, "error: version list argument cannot be empty\n");
    let e = resolve_fails(&["--tags-file", "/nonexistent/tags.txt", "--semver", "*"]);
    assert!(e.contains("/nonexistent/tags.txt"), "{e}");
    // No policy at all is a usage error.
    let o = tagpilot(&["resolve", "--tags-file", &node]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
}

#[test]
fn exclusions_default_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("tags.txt");
    std::fs::write(&f, "a\nz.sig\n\n  m  \r\n").unwrap();
    let f = f.to_string_lossy().into_owned();
    assert_eq!(resolve(&["--tags-file", &f, "--alphabetical", "asc"]), "m");
    assert_eq!(
        resolve(&[
            "--tags-file",
            &f,
            "--alphabetical",
            "asc",
            "--exclude",
            "^m$"
        ]),
        "z.sig"
    );
    assert_eq!(
        resolve(&[
            "--tags-file",
            &f,
            "--alphabetical",
            "asc",
            "--exclude",
            "^m$",
            "--exclude",
            "sig"
        ]),
        "a"
    );
}

#[test]
fn reads_stdin_and_explains() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagpilot"))
        .args([
            "resolve",
            "--tags-file",
            "-",
            "--semver",
            "5.0.x",
            "--explain",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .map(|mut s| s.write_all(b"5.0.0\n5.0.3\nv5.0.3\n5.1.0\nlatest\nx.sig\n"))
        .transpose()
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "v5.0.3");
    assert!(
        out.contains("5.0.3   ranked equal to the winner; tie broken"),
        "{out}"
    );
    assert!(out.contains("5.1.0   outside the range"), "{out}");
    assert!(out.contains("latest  not a version"), "{out}");
    assert!(
        out.contains(r"x.sig   excluded by rule '^.*\.sig$'"),
        "{out}"
    );
}

#[test]
fn json_output() {
    let node = tags("node.txt");
    let o = tagpilot(&[
        "resolve",
        "--tags-file",
        &node,
        "--semver",
        "^20",
        "--output",
        "json",
        "--explain",
    ]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["tag"], "20.11.1");
    let report = v["explain"]["tags"].as_array().cloned().unwrap_or_default();
    assert_eq!(report.len(), 29);
    let selected: Vec<_> = report
        .iter()
        .filter(|t| t["verdict"] == "selected")
        .collect();
    assert_eq!(selected.len(), 1);
    assert_eq!(selected[0]["tag"], "20.11.1");
}

#[test]
fn policy_manifest_and_bundled_example() {
    let root = repo_root();
    let policy = root.join("config/clusters/my-cluster/podinfo-policy.yaml");
    let podinfo = root.join("config/podinfo-tags.txt");
    assert_eq!(
        resolve(&[
            "--policy",
            &policy.to_string_lossy(),
            "--tags-file",
            &podinfo.to_string_lossy(),
        ]),
        "5.0.3"
    );
    // An ImageRepository in the same file supplies its exclusion list.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(
        &file,
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: app}\nspec: {image: app, interval: 1m, exclusionList: ['^z']}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: app}\nspec:\n  imageRepositoryRef: {name: app}\n  policy: {alphabetical: {order: asc}}\n",
    )
    .unwrap();
    let tagfile = dir.path().join("tags");
    std::fs::write(&tagfile, "a\nb.sig\nzz\n").unwrap();
    assert_eq!(
        resolve(&[
            "--policy",
            &file.to_string_lossy(),
            "--tags-file",
            &tagfile.to_string_lossy()
        ]),
        "b.sig"
    );
    // A bad manifest names the file, document and field.
    std::fs::write(
        &file,
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: app}\nspec:\n  imageRepositoryRef: {name: app}\n  policy: {semver: {range: 'nope'}}\n",
    )
    .unwrap();
    let e = resolve_fails(&[
        "--policy",
        &file.to_string_lossy(),
        "--tags-file",
        &tagfile.to_string_lossy(),
    ]);
    assert!(e.contains("policy.yaml (document 1): ImagePolicy default/app: spec.policy.semver.range: semver parse error"), "{e}");
}

#[test]
fn validate_reports_objects_and_errors() {
    let root = repo_root();
    let o = tagpilot(&["validate", &root.join("config").to_string_lossy()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(out.contains("ok     ImagePolicy flux-system/podinfo in clusters/my-cluster/podinfo-policy.yaml (document 1)"), "{out}");

    // A ConfigMap-style volume (files are links into ..data) plus one bad object.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("..2026_11_26_12_00_00.000000001");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        data.join("repos.yaml"),
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: ok}\nspec: {image: alpine, interval: 1m}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: bad}\nspec: {image: 'https://x.io/a', interval: 1m}\n",
    )
    .unwrap();
    symlink(&data, &dir.path().join("..data"));
    symlink(
        Path::new("..data/repos.yaml"),
        &dir.path().join("repos.yaml"),
    );
    let o = tagpilot(&["validate", &dir.path().to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert_eq!(
        out.lines().count(),
        2,
        "each object once, not once per link: {out}"
    );
    assert!(
        out.contains("ok     ImageRepository default/ok in repos.yaml (document 1)"),
        "{out}"
    );
    assert!(out.contains("error  repos.yaml (document 2): ImageRepository default/bad: spec.image: image 'https://x.io/a' should not include URL scheme; remove 'https://'"), "{out}");
}

#[test]
fn validate_warns_of_unknown_fields_and_strict_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: p, namespace: apps}\nspec:\n  imageRepositoryRef: {name: r}\n  suspnd: true\n  policy: {semver: {range: '1.x'}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: r, namespace: apps}\nspec: {image: alpine, interval: 0s}\n",
    )
    .unwrap();
    let d = dir.path().to_string_lossy().into_owned();
    let o = tagpilot(&["validate", &d]);
    assert_eq!(o.status.code(), Some(1), "interval 0s is an error");
    let out = stdout(&o);
    assert!(
        out.contains("error  a.yaml (document 2): ImageRepository apps/r: spec.interval: must be at least 1s, is 0s"),
        "{out}"
    );
    assert!(
        out.contains("warning a.yaml (document 1): ImagePolicy apps/p: spec.suspnd: unknown field, ignored (misspelled?)"),
        "{out}"
    );
    assert!(
        stderr(&o).contains("1 object(s) valid, 1 error(s), 1 warning(s)"),
        "{}",
        stderr(&o)
    );
    // Without the error, warnings alone pass; --strict makes them fail.
    let text = std::fs::read_to_string(dir.path().join("a.yaml")).unwrap_or_default();
    std::fs::write(
        dir.path().join("a.yaml"),
        text.replace("interval: 0s", "interval: 1m"),
    )
    .unwrap();
    assert_eq!(tagpilot(&["validate", &d]).status.code(), Some(0));
    let o = tagpilot(&["validate", "--strict", &d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("error  a.yaml (document 1): ImagePolicy apps/p: spec.suspnd"),
        "{}",
        stdout(&o)
    );
}

fn symlink(target: &Path, link: &Path) {
    #[cfg(unix)]
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn create_source_secret_and_receiver_load_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("id"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    std::fs::write(d.join("id.pub"), "ssh-ed25519 AAAA test\n").unwrap();
    std::fs::write(d.join("kh"), "github.com ssh-ed25519 AAAA\n").unwrap();
    let key = d.join("id").to_string_lossy().into_owned();
    let kh = d.join("kh").to_string_lossy().into_owned();
    let out = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<&str>, &str); 6] = [
        (
            "source",
            vec!["create", "source", "git", "podinfo", "--url=https://github.com/stefanprodan/podinfo", "--branch=master", "--interval=1m", "--export"],
            "---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: podinfo\n  namespace: flux-system\nspec:\n  interval: 1m0s\n  ref:\n    branch: master\n  url: https://github.com/stefanprodan/podinfo\n",
        ),
        (
            "https",
            vec!["create", "secret", "git", "podinfo-auth", "--url=https://github.com/stefanprodan/podinfo", "--username=git", "--password=t0ken", "--export"],
            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: podinfo-auth\n  namespace: flux-system\nstringData:\n  password: t0ken\n  username: git\n",
        ),
        (
            "ssh",
            vec!["create", "secret", "git", "ssh-auth", "--url=ssh://git@github.com/org/fleet", "--private-key-file", &key, "--known-hosts-file", &kh, "--export"],
            "  identity.pub: |\n    ssh-ed25519 AAAA test\n  known_hosts: |\n    github.com ssh-ed25519 AAAA\n",
        ),
        (
            "oci",
            vec!["create", "secret", "oci", "ghcr-auth", "--url=ghcr.io", "--username=user", "--password=pass", "--export"],
            // serde-saphyr double-quotes a flow-like string (flux's Go YAML single-quotes it): same value.
            "stringData:\n  .dockerconfigjson: \"{\\\"auths\\\":{\\\"ghcr.io\\\":{\\\"username\\\":\\\"user\\\",\\\"password\\\":\\\"pass\\\",\\\"auth\\\":\\\"dXNlcjpwYXNz\\\"}}}\"\ntype: kubernetes.io/dockerconfigjson\n",
        ),
        (
            "receiver",
            vec!["create", "receiver", "github-receiver", "--type", "github", "--event", "ping,push", "--secret-ref", "webhook-token", "--resource", "GitRepository/webapp", "--export"],
            "---\napiVersion: notification.toolkit.fluxcd.io/v1\nkind: Receiver\nmetadata:\n  name: github-receiver\n  namespace: flux-system\nspec:\n  events:\n  - ping\n  - push\n  resources:\n  - kind: GitRepository\n    name: webapp\n  secretRef:\n    name: webhook-token\n  type: github\n",
        ),
        (
            "repository",
            vec!["create", "image", "repository", "app", "--image=127.0.0.1:5000/app", "--insecure", "--provider=generic", "--exclusion-list=^dev-", "--interval=5m", "--export"],
            "spec:\n  exclusionList:\n  - ^dev-\n  image: 127.0.0.1:5000/app\n  insecure: true\n  interval: 5m0s\n",
        ),
    ];
    for (file, args, want) in cases {
        let o = tagpilot(&args);
        assert!(o.status.success(), "{file}: {}", stderr(&o));
        let text = stdout(&o);
        assert!(text.ends_with(want), "{file}: {text}");
        std::fs::write(out.path().join(format!("{file}.yaml")), text).unwrap();
    }
    // Everything loads back, without a warning.
    let o = tagpilot(&["validate", "--strict", &out.path().to_string_lossy()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("6 object(s) valid, 0 error(s), 0 warning(s)"),
        "{}",
        stderr(&o)
    );
    // Refusals name what is missing.
    for (args, said) in [
        (
            vec![
                "create",
                "secret",
                "git",
                "x",
                "--url=ssh://h/r",
                "--export",
            ],
            "--private-key-file is required",
        ),
        (
            vec![
                "create",
                "secret",
                "git",
                "x",
                "--url=https://h/r",
                "--username=u",
                "--export",
            ],
            "the username and password, or a bearer token is required",
        ),
        (
            vec![
                "create",
                "source",
                "git",
                "x",
                "--url=https://h/r",
                "--export",
            ],
            "a Git ref is required",
        ),
        (
            vec![
                "create",
                "receiver",
                "x",
                "--type=nope",
                "--secret-ref=t",
                "--resource=GitRepository/w",
                "--export",
            ],
            "invalid --type 'nope'",
        ),
        (
            vec![
                "create",
                "image",
                "repository",
                "x",
                "--image=a/b",
                "--provider=ibm",
                "--export",
            ],
            "invalid --provider 'ibm'",
        ),
    ] {
        let o = tagpilot(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains(said), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn export_prints_what_loads_back_the_same() {
    let root = repo_root();
    let o = tagpilot(&[
        "export",
        &root.join("config/clusters/my-cluster").to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = stdout(&o);
    assert_eq!(first.matches("---\n").count(), 4, "{first}");
    assert!(
        first.starts_with(
            "---\napiVersion: image.toolkit.fluxcd.io/v1beta1\nkind: ImageRepository\n"
        ),
        "{first}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("all.yaml"), &first).unwrap();
    let o = tagpilot(&["validate", "--strict", &dir.path().to_string_lossy()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let again = tagpilot(&["export", &dir.path().to_string_lossy()]);
    assert_eq!(stdout(&again), first, "export is a fixed point");
    let only = tagpilot(&[
        "export",
        "--kind",
        "imagepolicy",
        &dir.path().to_string_lossy(),
    ]);
    assert_eq!(stdout(&only).matches("kind: ImagePolicy").count(), 1);
    assert_eq!(stdout(&only).matches("---").count(), 1);
    // Secrets are never printed.
    let o = tagpilot(&["export", &root.join("deploy").to_string_lossy()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("kind: Secret"), "{}", stdout(&o));
}

#[test]
fn create_export_prints_flux_yaml() {
    let o = tagpilot(&[
        "create",
        "image",
        "repository",
        "podinfo",
        "--image=ghcr.io/stefanprodan/podinfo",
        "--interval=1m",
        "--export",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata:\n  name: podinfo\n  namespace: flux-system\nspec:\n  image: ghcr.io/stefanprodan/podinfo\n  interval: 1m0s\n"
    );
    let o = tagpilot(&[
        "create",
        "image",
        "policy",
        "podinfo",
        "--image-ref=podinfo",
        "--select-semver=5.0.x",
        "--export",
    ]);
    assert_eq!(
        stdout(&o),
        "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata:\n  name: podinfo\n  namespace: flux-system\nspec:\n  imageRepositoryRef:\n    name: podinfo\n  policy:\n    semver:\n      range: 5.0.x\n"
    );
    let o = tagpilot(&[
        "create",
        "image",
        "update",
        "flux-system",
        "--git-repo-ref=flux-system",
        "--git-repo-path=./clusters/my-cluster",
        "--checkout-branch=main",
        "--push-branch=main",
        "--author-name=fluxcdbot",
        "--author-email=fluxcdbot@users.noreply.github.com",
        "--commit-template={{range .Updated.Images}}{{println .}}{{end}}",
        "--export",
    ]);
    let out = stdout(&o);
    assert!(
        out.contains("      messageTemplate: \"{{range .Updated.Images}}{{println .}}{{end}}\"\n"),
        "{out}"
    );
    assert!(
        out.contains("  update:\n    path: ./clusters/my-cluster\n    strategy: Setters\n"),
        "{out}"
    );
    // What create prints, validate accepts.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("auto.yaml"), &out).unwrap();
    assert!(tagpilot(&["validate", &dir.path().to_string_lossy()])
        .status
        .success());
    for (args, want) in [
        (
            vec!["create", "image", "repository", "x", "--export"],
            "an image repository (--image) is required",
        ),
        (
            vec![
                "create",
                "image",
                "repository",
                "x",
                "--image=a:1",
                "--export",
            ],
            "unable to parse image value",
        ),
        (
            vec![
                "create",
                "image",
                "policy",
                "p",
                "--image-ref=r",
                "--select-alpha=asc",
                "--interval=5m",
                "--export",
            ],
            "only be used with --reflect-digest=Always",
        ),
        (
            vec![
                "create",
                "image",
                "policy",
                "p",
                "--image-ref=r",
                "--select-alpha=asc",
                "--select-numeric=asc",
                "--export",
            ],
            "only one of",
        ),
        (
            vec![
                "create",
                "image",
                "policy",
                "p",
                "--image-ref=r",
                "--select-semver=*",
                "--filter-extract=$x",
                "--export",
            ],
            "without specifying --filter-regex",
        ),
        (
            vec!["create", "image", "repository", "x", "--image=a"],
            "use --export",
        ),
    ] {
        let o = tagpilot(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

/// `tagpilot run --once` with a settings file, environment and flags: which configuration
/// directory wins shows in the summary (each holds one policy with its own name).
#[test]
fn settings_file_then_environment_then_flag() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["from-file", "from-env", "from-flag"] {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("p.yaml"),
            format!("apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: {name}}}\nspec:\n  imageRepositoryRef: {{name: absent}}\n  policy: {{alphabetical: {{}}}}\n"),
        )
        .unwrap();
    }
    let settings = dir.path().join("tagpilot.toml");
    std::fs::write(
        &settings,
        format!(
            "config_dir = {:?}\nstate_dir = {:?}\n[registry]\nmax_concurrent = 2\n",
            dir.path().join("from-file"),
            dir.path().join("state")
        ),
    )
    .unwrap();
    let run = |env: Option<&str>, flag: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tagpilot"));
        c.args(["run", "--once", "--settings"]).arg(&settings);
        c.env_remove("TAGPILOT_CONFIG_DIR");
        if let Some(e) = env {
            c.env("TAGPILOT_CONFIG_DIR", dir.path().join(e));
        }
        if let Some(f) = flag {
            c.arg("--config").arg(dir.path().join(f));
        }
        c.output().unwrap()
    };
    let o = run(None, None);
    assert!(
        stdout(&o).contains("imagepolicy/default/from-file"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let o = run(Some("from-env"), None);
    assert!(
        stdout(&o).contains("imagepolicy/default/from-env"),
        "{}",
        stdout(&o)
    );
    let o = run(Some("from-env"), Some("from-flag"));
    assert!(
        stdout(&o).contains("imagepolicy/default/from-flag"),
        "{}",
        stdout(&o)
    );
    assert!(dir.path().join("state/tagpilot.redb").exists());

    // A typo is an error naming the key and the file; so is a missing explicit file.
    std::fs::write(&settings, "config_dir = \"x\"\nreload_secs = 3\n").unwrap();
    let o = run(None, None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("tagpilot.toml") && stderr(&o).contains("reload_secs"),
        "{}",
        stderr(&o)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_tagpilot"))
        .args(["run", "--once", "--settings", "/nonexistent/tagpilot.toml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/tagpilot.toml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_documented_settings_file_parses() {
    let o = Command::new(env!("CARGO_BIN_EXE_tagpilot"))
        .args(["run", "--once", "--settings"])
        .arg(repo_root().join("config/tagpilot.toml"))
        .args(["--config"])
        .arg(repo_root().join("tests/data"))
        .args(["--state-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    // tests/data holds no manifests: an empty, successful run.
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}
