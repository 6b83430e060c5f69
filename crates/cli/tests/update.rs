//! `tagpilot update` as scripts use it: files, stdout, stderr and exit codes.
#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion: a panic with the error

use std::path::Path;
use std::process::{Command, Output};

fn tagpilot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagpilot"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tagpilot: {e}"))
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap_or(root)).unwrap();
    std::fs::write(p, text).unwrap();
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\n  namespace: apps\nspec:\n  template:\n    spec:\n      containers:\n      - name: podinfod\n        image: ghcr.io/stefanprodan/podinfo:5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n";
const HELM: &str = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: podinfo\n  namespace: apps\nspec:\n  values:\n    image:\n      repository: ghcr.io/stefanprodan/podinfo # {\"$imagepolicy\": \"flux-system:podinfo:name\"}\n      tag: 5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo:tag\"}\n";

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "apps/deploy.yaml", DEPLOY);
    write(dir.path(), "apps/helm.yaml", HELM);
    dir
}

#[test]
fn dry_run_touches_nothing_and_reports_on_stderr() {
    let dir = tree();
    let root = dir.path().to_string_lossy().into_owned();
    let o = tagpilot(&[
        "update",
        &root,
        "--latest",
        "flux-system/podinfo=ghcr.io/stefanprodan/podinfo:5.0.3",
        "--dry-run",
    ]);
    assert!(o.status.success());
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("apps/deploy.yaml: Deployment apps/podinfo: ghcr.io/stefanprodan/podinfo:5.0.0 -> ghcr.io/stefanprodan/podinfo:5.0.3 (flux-system:podinfo)"), "{err}");
    assert!(
        err.contains(
            "apps/helm.yaml: HelmRelease apps/podinfo: 5.0.0 -> 5.0.3 (flux-system:podinfo:tag)"
        ),
        "{err}"
    );
    assert!(err.contains("would change 2 files"), "{err}");
    assert_eq!(read(dir.path(), "apps/deploy.yaml"), DEPLOY);
    assert_eq!(read(dir.path(), "apps/helm.yaml"), HELM);
}

#[test]
fn writes_files_and_json_change_set() {
    let dir = tree();
    let root = dir.path().to_string_lossy().into_owned();
    let o = tagpilot(&[
        "update",
        &root,
        "--latest",
        "flux-system/podinfo=ghcr.io/stefanprodan/podinfo:5.0.3",
        "--output",
        "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["files"][0]["path"], "apps/deploy.yaml");
    assert_eq!(v["files"][0]["objects"][0]["object"]["kind"], "Deployment");
    assert_eq!(
        v["files"][0]["objects"][0]["changes"][0]["newValue"],
        "ghcr.io/stefanprodan/podinfo:5.0.3"
    );
    assert_eq!(
        v["files"][1]["objects"][0]["changes"][0]["setter"],
        "flux-system:podinfo:tag"
    );
    assert_eq!(
        read(dir.path(), "apps/deploy.yaml"),
        DEPLOY.replace(":5.0.0 #", ":5.0.3 #")
    );
    assert_eq!(
        read(dir.path(), "apps/helm.yaml"),
        HELM.replace("tag: 5.0.0", "tag: 5.0.3")
    );
    // A second run finds nothing to do.
    let o = tagpilot(&[
        "update",
        &root,
        "--latest",
        "flux-system/podinfo=ghcr.io/stefanprodan/podinfo:5.0.3",
        "--output",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["files"].as_array().map(Vec::len), Some(0));
}

#[test]
fn message_template_is_stdout_byte_for_byte() {
    let dir = tree();
    let root = dir.path().to_string_lossy().into_owned();
    let tpl = dir.path().join("msg.tmpl");
    std::fs::write(&tpl, "{{range .Updated.Images}}{{println .}}{{end}}").unwrap();
    let o = tagpilot(&[
        "update",
        &root,
        "--latest",
        "flux-system/podinfo=ghcr.io/stefanprodan/podinfo:5.0.3",
        "--message-template",
        &tpl.to_string_lossy(),
    ]);
    assert!(o.status.success());
    assert_eq!(o.stdout, b"ghcr.io/stefanprodan/podinfo:5.0.3\n");

    let dir = tree();
    let root = dir.path().to_string_lossy().into_owned();
    std::fs::write(&tpl, "{{ .AutomationObject }} {{ .Values.env }}: {{ range .Changed.Changes }}{{ .NewValue }} {{ end -}}").unwrap();
    let o = tagpilot(&[
        "update",
        &root,
        "--latest",
        "flux-system/podinfo=ghcr.io/stefanprodan/podinfo:5.0.3",
        "--message-template",
        &tpl.to_string_lossy(),
        "--automation",
        "flux-system/apps",
        "--value",
        "env=prod",
        "--dry-run",
    ]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "flux-system/apps prod: ghcr.io/stefanprodan/podinfo:5.0.3 5.0.3 "
    );
}

#[test]
fn bad_template_or_arguments_exit_1_and_write_nothing() {
    let dir = tree();
    let root = dir.path().to_string_lossy().into_owned();
    let tpl = dir.path().join("bad.tmpl");
    std::fs::write(&tpl, "line\n{{ if .X }}").unwrap();
    let o = tagpilot(&[
        "update",
        &root,
        "--latest",
        "flux-system/podinfo=ghcr.io/stefanprodan/podinfo:5.0.3",
        "--message-template",
        &tpl.to_string_lossy(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.tmpl:2:1"), "{err}");
    assert_eq!(read(dir.path(), "apps/deploy.yaml"), DEPLOY);
    for bad in [
        vec!["--latest", "podinfo=ghcr.io/x:1"],
        vec!["--latest", "flux-system/podinfo"],
        vec!["--latest", "flux-system/podinfo=ghcr.io/x"],
        vec!["--latest", "a/b=x:1", "--automation", "nonamespace"],
        vec!["--latest", "a/b=x:1", "--value", "novalue"],
        vec![],
    ] {
        let mut args = vec!["update", root.as_str()];
        args.extend(bad.iter().copied());
        let o = tagpilot(&args);
        assert_eq!(o.status.code(), Some(1), "{bad:?}");
        assert!(o.stdout.is_empty(), "{bad:?}");
    }
    assert_eq!(read(dir.path(), "apps/deploy.yaml"), DEPLOY);
}

#[test]
fn unparsable_files_are_skipped_with_a_warning() {
    let dir = tree();
    write(
        dir.path(),
        "charts/templates/d.yaml",
        "image: {{ .Values.image }} # {\"$imagepolicy\": \"flux-system:podinfo\"}\n  x: [\n",
    );
    let root = dir.path().to_string_lossy().into_owned();
    let o = tagpilot(&[
        "update",
        &root,
        "--latest",
        "flux-system/podinfo=ghcr.io/stefanprodan/podinfo:5.0.3",
    ]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: charts/templates/d.yaml: not valid YAML, skipped"),
        "{err}"
    );
    assert!(err.contains("changed 2 files"), "{err}");
}
