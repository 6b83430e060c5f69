//! The setters on every case of reference §3 and the guide, compared byte for byte.
#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion: a panic with the error

use std::collections::BTreeMap;

use tagpilot_setters::{scan_tree, update_str, write_changes, LatestRef, Policies};

fn policies() -> Policies {
    let mut p = BTreeMap::new();
    p.insert(
        ("flux-system".to_owned(), "podinfo".to_owned()),
        LatestRef {
            name: "ghcr.io/stefanprodan/podinfo".into(),
            tag: "5.0.3".into(),
            digest: None,
        },
    );
    p.insert(
        ("flux-system".to_owned(), "golang".to_owned()),
        LatestRef {
            name: "docker.io/golang".into(),
            tag: "1.16.0".into(),
            digest: None,
        },
    );
    p.insert(
        ("flux-system".to_owned(), "pinned".to_owned()),
        LatestRef {
            name: "ghcr.io/org/app".into(),
            tag: "1.10".into(),
            digest: Some("sha256:0123456789abcdef".into()),
        },
    );
    p
}

/// Applies the setters and returns the new text, asserting it parses.
fn apply(input: &str) -> String {
    update_str(input, &policies()).unwrap().content
}

#[test]
fn guide_deployment() {
    let input = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  namespace: default
spec:
  template:
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:5.0.0 # {"$imagepolicy": "flux-system:podinfo"}
        ports:
        - containerPort: 9898
"#;
    let u = update_str(input, &policies()).unwrap();
    assert_eq!(
        u.content,
        input.replace("podinfo:5.0.0 #", "podinfo:5.0.3 #")
    );
    assert_eq!(u.objects.len(), 1);
    let o = &u.objects[0];
    assert_eq!(
        (
            o.object.api_version.as_str(),
            o.object.kind.as_str(),
            o.object.namespace.as_str(),
            o.object.name.as_str()
        ),
        ("apps/v1", "Deployment", "default", "podinfo")
    );
    assert_eq!(o.changes[0].old_value, "ghcr.io/stefanprodan/podinfo:5.0.0");
    assert_eq!(o.changes[0].new_value, "ghcr.io/stefanprodan/podinfo:5.0.3");
    assert_eq!(o.changes[0].setter, "flux-system:podinfo");
}

#[test]
fn cronjob_compact_lists() {
    let input = r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: job
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: a
            image: ghcr.io/stefanprodan/podinfo:4.0.0 # {"$imagepolicy": "flux-system:podinfo"}
            args:
            - --port=9898
"#;
    assert_eq!(apply(input), input.replace(":4.0.0 #", ":5.0.3 #"));
}

#[test]
fn helmrelease_name_and_tag() {
    let input = r#"apiVersion: helm.toolkit.fluxcd.io/v2beta1
kind: HelmRelease
metadata:
  name: podinfo
  namespace: default
spec:
  values:
    image:
      repository: ghcr.io/stefanprodan/podinfo # {"$imagepolicy": "flux-system:podinfo:name"}
      tag: 5.0.0  # {"$imagepolicy": "flux-system:podinfo:tag"}
"#;
    let u = update_str(input, &policies()).unwrap();
    assert_eq!(u.content, input.replace("tag: 5.0.0  #", "tag: 5.0.3  #"));
    // The name was already right: one change only.
    assert_eq!(u.objects[0].changes.len(), 1);
    assert_eq!(u.objects[0].changes[0].setter, "flux-system:podinfo:tag");
}

#[test]
fn tekton_task_and_kustomizations() {
    let tekton = r#"apiVersion: tekton.dev/v1beta1
kind: Task
metadata:
  name: golang
  namespace: default
spec:
  steps:
    - name: golang
      image: docker.io/golang:1.15.6 # {"$imagepolicy": "flux-system:golang"}
"#;
    assert_eq!(apply(tekton), tekton.replace("1.15.6", "1.16.0"));

    let flux_ks = r#"apiVersion: kustomize.toolkit.fluxcd.io/v1beta2
kind: Kustomization
metadata:
  name: podinfo
  namespace: default
spec:
  images:
    - name: ghcr.io/stefanprodan/podinfo
      newName: ghcr.io/stefanprodan/other # {"$imagepolicy": "flux-system:podinfo:name"}
      newTag: 5.0.0 # {"$imagepolicy": "flux-system:podinfo:tag"}
"#;
    assert_eq!(
        apply(flux_ks),
        flux_ks
            .replace("stefanprodan/other", "stefanprodan/podinfo")
            .replace("newTag: 5.0.0", "newTag: 5.0.3")
    );

    let kustomize = r#"apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- deployment.yaml
images:
- name: ghcr.io/org/app
  newName: ghcr.io/org/app # {"$imagepolicy": "flux-system:pinned:name"}
  newTag: "1.0" # {"$imagepolicy": "flux-system:pinned:tag"}
  newDigest: sha256:old # {"$imagepolicy": "flux-system:pinned:digest"}
"#;
    let u = update_str(kustomize, &policies()).unwrap();
    assert_eq!(
        u.content,
        kustomize
            .replace("\"1.0\"", "\"1.10\"")
            .replace("sha256:old", "sha256:0123456789abcdef")
    );
    // Kustomize config has no name: the identifier is empty apart from kind and version.
    assert_eq!(u.objects[0].object.name, "");
    assert_eq!(u.objects[0].object.kind, "Kustomization");
}

#[test]
fn full_marker_with_digest_and_yaml11_quoting() {
    let input = "image: ghcr.io/org/app:1.0 # {\"$imagepolicy\": \"flux-system:pinned\"}\ntag: 1.0 # {\"$imagepolicy\": \"flux-system:pinned:tag\"}\n";
    assert_eq!(
        apply(input),
        "image: ghcr.io/org/app:1.10@sha256:0123456789abcdef # {\"$imagepolicy\": \"flux-system:pinned\"}\ntag: \"1.10\" # {\"$imagepolicy\": \"flux-system:pinned:tag\"}\n"
    );
}

#[test]
fn untouched_markers() {
    let input = r#"# A comment on its own line is not a marker:
# {"$imagepolicy": "flux-system:podinfo"}
a: ghcr.io/stefanprodan/podinfo:1.0.0
b: ghcr.io/stefanprodan/podinfo:1.0.0 # {"$imagepolicy": "other-ns:podinfo"}
c: ghcr.io/stefanprodan/podinfo:1.0.0 # {'$imagepolicy': 'flux-system:podinfo'}
d: ghcr.io/stefanprodan/podinfo:1.0.0 # {"$imagepolicy": "flux-system:podinfo"} and more
e: ghcr.io/stefanprodan/podinfo:1.0.0 # {"$imagepolicy": "flux-system:podinfo:version"}
f: ghcr.io/stefanprodan/podinfo:1.0.0 # {"$imagepolicy": "flux-system:missing"}
g: |
  image: podinfo:1.0.0 # {"$imagepolicy": "flux-system:podinfo"}
h: >
  image: podinfo:1.0.0 # {"$imagepolicy": "flux-system:podinfo"}
? k # {"$imagepolicy": "flux-system:podinfo"}
: v
"#;
    let u = update_str(input, &policies()).unwrap();
    assert_eq!(u.content, input);
    assert!(u.objects.is_empty());
}

#[test]
fn digest_marker_without_digest_is_not_blanked() {
    let input = "d: sha256:keep # {\"$imagepolicy\": \"flux-system:podinfo:digest\"}\n";
    let u = update_str(input, &policies()).unwrap();
    assert_eq!(u.content, input);
    assert_eq!(u.warnings.len(), 1, "{:?}", u.warnings);
}

#[test]
fn formatting_is_preserved() {
    let input = "---\n# leading comment\n\napiVersion: v1   # trailing\nkind: Pod\nmetadata:\n    name: p   \n\n\nspec:\n    containers:\n        -   name: c\n            image: 'ghcr.io/stefanprodan/podinfo:1' # {\"$imagepolicy\": \"flux-system:podinfo\"}\n\n            env: {A: b, C: \"d\"}   # flow\n        - {name: s, image: \"ghcr.io/stefanprodan/podinfo:2\"} # {\"$imagepolicy\": \"flux-system:podinfo\"}\n...\n---\n# second doc\nplain: x\nlist: [docker.io/golang:1.0, \"z\"] # {\"$imagepolicy\": \"flux-system:golang\"}\n";
    let want = input
        .replace(
            "'ghcr.io/stefanprodan/podinfo:1'",
            "'ghcr.io/stefanprodan/podinfo:5.0.3'",
        )
        .replace(
            "\"ghcr.io/stefanprodan/podinfo:2\"",
            "\"ghcr.io/stefanprodan/podinfo:5.0.3\"",
        );
    // In `[a, "z"] # marker` the comment belongs to the last scalar on the line ("z").
    let want = want.replace("\"z\"] #", "\"docker.io/golang:1.16.0\"] #");
    let u = update_str(input, &policies()).unwrap();
    assert_eq!(u.content, want);
    assert_eq!(u.objects.len(), 2);
    assert_eq!(u.objects[0].object.name, "p");
    assert_eq!(u.objects[0].changes.len(), 2);
}

#[test]
fn crlf_and_unicode_survive() {
    let input = "# Überschrift — ünïcødé\r\nmetadata:\r\n  name: café\r\nspec:\r\n  image: ghcr.io/stefanprodan/podinfo:1 # {\"$imagepolicy\": \"flux-system:podinfo\"}\r\n  note: \"日本語\"\r\n";
    let want = input.replace("podinfo:1 #", "podinfo:5.0.3 #");
    assert_eq!(apply(input), want);
}

#[test]
fn second_run_changes_nothing() {
    let input =
        "image: ghcr.io/stefanprodan/podinfo:1 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n";
    let once = apply(input);
    let u = update_str(&once, &policies()).unwrap();
    assert_eq!(u.content, once);
    assert!(u.objects.is_empty());
}

#[test]
fn invalid_yaml_is_a_parse_error() {
    let helm =
        "image: {{ .Values.image }} # {\"$imagepolicy\": \"flux-system:podinfo\"}\n  bad: [\n";
    assert!(matches!(
        update_str(helm, &policies()),
        Err(tagpilot_setters::FileError::Parse(_))
    ));
}

#[test]
fn tree_walk_selection_and_atomic_write() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let write = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap_or(&root)).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let marked =
        "image: ghcr.io/stefanprodan/podinfo:1 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n";
    write("apps/deploy.yaml", marked);
    write("apps/deploy.yml", marked);
    write("apps/Kustomization", marked);
    write("apps/notes.txt", marked);
    write(
        "apps/unmarked.yaml",
        "image: ghcr.io/stefanprodan/podinfo:1\n",
    );
    write(".git/config.yaml", marked);
    write(
        "charts/templates/dep.yaml",
        "image: {{ .Values.x }} # {\"$imagepolicy\": \"flux-system:podinfo\"}\n  - [\n",
    );
    write("../outside.yaml", marked);
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.path().join("outside.yaml"), root.join("apps/link.yaml"))
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            root.join("apps/deploy.yaml"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
    }
    let set = scan_tree(&root, &policies()).unwrap();
    let paths: Vec<&str> = set.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        vec!["apps/Kustomization", "apps/deploy.yaml", "apps/deploy.yml"]
    );
    assert!(
        set.warnings
            .iter()
            .any(|w| w.starts_with("charts/templates/dep.yaml: not valid YAML")),
        "{:?}",
        set.warnings
    );
    #[cfg(unix)]
    assert!(
        set.warnings
            .iter()
            .any(|w| w.contains("apps/link.yaml: symlink leads outside")),
        "{:?}",
        set.warnings
    );
    // Nothing is written by scanning.
    assert_eq!(
        std::fs::read_to_string(root.join("apps/deploy.yaml")).unwrap_or_default(),
        marked
    );
    write_changes(&root, &set).unwrap();
    let after = std::fs::read_to_string(root.join("apps/deploy.yaml")).unwrap_or_default();
    assert_eq!(after, marked.replace("podinfo:1 #", "podinfo:5.0.3 #"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("outside.yaml")).unwrap_or_default(),
        marked
    );
    assert_eq!(
        std::fs::read_to_string(root.join(".git/config.yaml")).unwrap_or_default(),
        marked
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("apps/deploy.yaml"))
            .map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o640));
    }
    let leftovers: Vec<_> = std::fs::read_dir(root.join("apps"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().contains("tagpilot"))
                .count()
        })
        .unwrap_or(0)
        .to_string()
        .into_bytes();
    assert_eq!(leftovers, b"0");
    // Idempotent.
    let again = scan_tree(&root, &policies()).unwrap();
    assert!(again.is_empty());
}

#[test]
fn anchors_and_tags_stay_in_place() {
    let input = "a: &anc ghcr.io/stefanprodan/podinfo:1 # {\"$imagepolicy\": \"flux-system:podinfo\"}\nb: *anc\nc: !!str 1.0 # {\"$imagepolicy\": \"flux-system:pinned:tag\"}\nd: &x !custom 'ghcr.io/stefanprodan/podinfo:1' # {\"$imagepolicy\": \"flux-system:podinfo\"}\n";
    assert_eq!(
        apply(input),
        "a: &anc ghcr.io/stefanprodan/podinfo:5.0.3 # {\"$imagepolicy\": \"flux-system:podinfo\"}\nb: *anc\nc: !!str \"1.10\" # {\"$imagepolicy\": \"flux-system:pinned:tag\"}\nd: &x !custom 'ghcr.io/stefanprodan/podinfo:5.0.3' # {\"$imagepolicy\": \"flux-system:podinfo\"}\n"
    );
}
