//! Templates rendered as Go's text/template renders them. Expected strings follow Go's rules
//! (and were cross-checked with Go 1.x's text/template where noted in tests/data/gotemplate).
#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion: a panic with the error

use std::collections::BTreeMap;

use tagpilot_setters::{
    Change, ChangeSet, FileChange, LatestRef, ObjectChange, ObjectId, Policies,
};
use tagpilot_template::{
    commit_data, render_message, MessageInput, Template, TemplateError, Value,
};

fn data() -> Value {
    let mut policies: Policies = BTreeMap::new();
    policies.insert(
        ("flux-system".into(), "podinfo".into()),
        LatestRef {
            name: "ghcr.io/stefanprodan/podinfo".into(),
            tag: "5.0.3".into(),
            digest: None,
        },
    );
    policies.insert(
        ("flux-system".into(), "golang".into()),
        LatestRef {
            name: "golang".into(),
            tag: "1.16.0".into(),
            digest: None,
        },
    );
    let obj = |kind: &str, name: &str| ObjectId {
        api_version: "apps/v1".into(),
        kind: kind.into(),
        namespace: "default".into(),
        name: name.into(),
    };
    let ch = |old: &str, new: &str, setter: &str| Change {
        old_value: old.into(),
        new_value: new.into(),
        setter: setter.into(),
    };
    let changes = ChangeSet {
        files: vec![
            FileChange {
                path: "apps/podinfo.yaml".into(),
                objects: vec![
                    ObjectChange {
                        object: obj("Deployment", "podinfo"),
                        changes: vec![ch(
                            "ghcr.io/stefanprodan/podinfo:5.0.0",
                            "ghcr.io/stefanprodan/podinfo:5.0.3",
                            "flux-system:podinfo",
                        )],
                    },
                    ObjectChange {
                        object: obj("CronJob", "builder"),
                        changes: vec![ch("1.15", "1.16.0", "flux-system:golang:tag")],
                    },
                ],
                content: String::new(),
            },
            FileChange {
                path: "apps/helm.yaml".into(),
                objects: vec![ObjectChange {
                    object: ObjectId {
                        api_version: "helm.toolkit.fluxcd.io/v2".into(),
                        kind: "HelmRelease".into(),
                        namespace: "default".into(),
                        name: "podinfo".into(),
                    },
                    changes: vec![ch("5.0.0", "5.0.3", "flux-system:podinfo:tag")],
                }],
                content: String::new(),
            },
        ],
        warnings: vec![],
        errors: vec![],
    };
    let mut values = BTreeMap::new();
    values.insert("env".to_owned(), "prod".to_owned());
    values.insert("team".to_owned(), "platform".to_owned());
    commit_data(&MessageInput {
        automation: ("flux-system", "flux-system"),
        values: &values,
        changes: &changes,
        policies: &policies,
    })
}

fn render(t: &str) -> String {
    Template::parse("msg", t)
        .and_then(|t| t.execute(&data()))
        .unwrap()
}

#[test]
fn guide_one_line_template() {
    assert_eq!(
        render("{{range .Updated.Images}}{{println .}}{{end}}"),
        "ghcr.io/stefanprodan/podinfo:5.0.3\ngolang:1.16.0\n"
    );
}

#[test]
fn guide_multi_line_template() {
    let t = "Automated image update\n\nAutomation name: {{ .AutomationObject }}\n\nFiles:\n{{ range $filename, $_ := .Updated.Files -}}\n- {{ $filename }}\n{{ end -}}\n\nObjects:\n{{ range $resource, $_ := .Updated.Objects -}}\n- {{ $resource.Kind }} {{ $resource.Name }}\n{{ end -}}\n\nImages:\n{{ range .Updated.Images -}}\n- {{.}}\n{{ end -}}\n";
    // Files sorted by path; objects by (APIVersion, Kind, Name, Namespace).
    assert_eq!(
        render(t),
        "Automated image update\n\nAutomation name: flux-system/flux-system\n\nFiles:\n- apps/helm.yaml\n- apps/podinfo.yaml\nObjects:\n- CronJob builder\n- Deployment podinfo\n- HelmRelease podinfo\nImages:\n- ghcr.io/stefanprodan/podinfo:5.0.3\n- golang:1.16.0\n"
    );
}

#[test]
fn flux_documented_changed_template() {
    let t = "Automated image update\n\nAutomation name: {{ .AutomationObject }}\n\nFiles:\n{{ range $filename, $_ := .Changed.FileChanges -}}\n- {{ $filename }}\n{{ end -}}\n\nObjects:\n{{ range $resource, $changes := .Changed.Objects -}}\n- {{ $resource.Kind }} {{ $resource.Name }}\n  Changes:\n{{- range $_, $change := $changes }}\n    - {{ $change.OldValue }} -> {{ $change.NewValue }}\n{{ end -}}\n{{ end -}}\n";
    assert_eq!(
        render(t),
        "Automated image update\n\nAutomation name: flux-system/flux-system\n\nFiles:\n- apps/helm.yaml\n- apps/podinfo.yaml\nObjects:\n- CronJob builder\n  Changes:\n    - 1.15 -> 1.16.0\n- Deployment podinfo\n  Changes:\n    - ghcr.io/stefanprodan/podinfo:5.0.0 -> ghcr.io/stefanprodan/podinfo:5.0.3\n- HelmRelease podinfo\n  Changes:\n    - 5.0.0 -> 5.0.3\n"
    );
    assert_eq!(
        render("{{ range .Changed.Changes }}{{ .Setter }};{{ end }}"),
        "flux-system:podinfo:tag;flux-system:podinfo;flux-system:golang:tag;"
    );
}

#[test]
fn values_and_missing_keys() {
    assert_eq!(
        render("[{{ .Values.env }}] {{ .Values.team | upper }}"),
        "[prod] PLATFORM"
    );
    assert_eq!(render("{{ .Values.nope }}"), "<no value>");
    assert_eq!(render("{{ index .Values \"nope\" }}|"), "|");
    assert_eq!(
        render("{{ range $k, $v := .Values }}{{ $k }}={{ $v }},{{ end }}"),
        "env=prod,team=platform,"
    );
}

#[test]
fn trim_markers_and_comments() {
    assert_eq!(render("a  {{- /* c */ -}}  b"), "ab");
    assert_eq!(render("a {{- 1 }} b"), "a1 b");
    assert_eq!(render("a {{ 1 -}} \n b"), "a 1b");
    assert_eq!(render("{{/* only a comment */}}x"), "x");
    // `{{-3}}` is the number -3, not a trim marker.
    assert_eq!(render("a {{-3}}"), "a -3");
}

#[test]
fn control_flow() {
    assert_eq!(
        render("{{ if .Values.env }}yes{{ else }}no{{ end }}"),
        "yes"
    );
    assert_eq!(render("{{ if eq .Values.env \"dev\" }}d{{ else if eq .Values.env \"prod\" }}p{{ else }}x{{ end }}"), "p");
    assert_eq!(
        render("{{ with .Values.nope }}x{{ else }}none{{ end }}"),
        "none"
    );
    assert_eq!(
        render("{{ with .AutomationObject }}{{ .Namespace }}{{ end }}"),
        "flux-system"
    );
    assert_eq!(
        render("{{ range .Values.nothing }}x{{ else }}empty{{ end }}"),
        "empty"
    );
    assert_eq!(render("{{ range $i, $e := .Changed.Changes }}{{ if eq $i 1 }}{{ break }}{{ end }}{{ $i }}{{ end }}"), "0");
    assert_eq!(render("{{ range $i, $e := .Changed.Changes }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ $i }}{{ end }}"), "02");
    assert_eq!(
        render("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}"),
        "2"
    );
    assert_eq!(render("{{ range 3 }}{{ . }}{{ end }}"), "012");
}

#[test]
fn builtins() {
    assert_eq!(
        render("{{ len .Changed.Changes }} {{ len \"héllo\" }}"),
        "3 6"
    );
    assert_eq!(
        render("{{ index .Updated.Images 0 }}"),
        "ghcr.io/stefanprodan/podinfo:5.0.3"
    );
    assert_eq!(render("{{ (index .Updated.Images 0).Repository }} {{ (index .Updated.Images 0).Registry }} {{ (index .Updated.Images 0).Tag }}"), "stefanprodan/podinfo ghcr.io 5.0.3");
    assert_eq!(
        render("{{ (index .Updated.Images 1).Name }} {{ (index .Updated.Images 1).Policy }}"),
        "index.docker.io/library/golang flux-system/golang"
    );
    assert_eq!(render("{{ slice \"abcdef\" 1 3 }}"), "bc");
    assert_eq!(render("{{ print 1 2 \"a\" \"b\" 3 }}"), "1 2ab3");
    assert_eq!(render("{{ println \"a\" 1 }}"), "a 1\n");
    assert_eq!(
        render("{{ printf \"%s has %d changes\" .AutomationObject.Name (len .Changed.Changes) }}"),
        "flux-system has 3 changes"
    );
    assert_eq!(
        render("{{ printf \"%v %q %t\" .AutomationObject \"x\" true }}"),
        "flux-system/flux-system \"x\" true"
    );
    assert_eq!(
        render("{{ and 1 0 2 }} {{ or 0 \"\" \"z\" }} {{ not 0 }}"),
        "0 z true"
    );
    assert_eq!(
        render("{{ lt 1 2 }} {{ ge \"b\" \"a\" }} {{ ne 1 2 }} {{ eq 1 3 2 1 }}"),
        "true true true true"
    );
    assert_eq!(render("{{ \"a\" | printf \"%s-%s\" \"b\" }}"), "b-a");
    assert!(render("{{ index (index .Changed.Objects) }}").starts_with("map["));
}

#[test]
fn sprig() {
    assert_eq!(
        render("{{ \"Hello\" | lower }} {{ \"hello world\" | title }} {{ \"  x  \" | trim }}"),
        "hello Hello World x"
    );
    assert_eq!(
        render("{{ trimPrefix \"ghcr.io/\" \"ghcr.io/a\" }} {{ trimSuffix \":1\" \"a:1\" }}"),
        "a a"
    );
    assert_eq!(render("{{ replace \".\" \"-\" \"1.2.3\" }} {{ contains \"io\" \"ghcr.io\" }} {{ hasPrefix \"gh\" \"ghcr\" }} {{ hasSuffix \"r\" \"ghcr\" }}"), "1-2-3 true true true");
    assert_eq!(render("{{ $s := split \":\" \"a:b\" }}{{ $s._1 }}"), "b");
    assert_eq!(
        render("{{ list \"b\" \"a\" \"b\" | uniq | sortAlpha | join \",\" }}"),
        "a,b"
    );
    assert_eq!(render("{{ .Values.nope | default \"dflt\" }}"), "dflt");
    assert_eq!(render("{{ quote \"a\" }} {{ squote \"b\" }}"), "\"a\" 'b'");
    assert_eq!(
        render("{{ \"a\\nb\" | indent 2 }}|{{ \"c\" | nindent 1 }}"),
        "  a\n  b|\n c"
    );
    assert_eq!(
        render("{{ list 1 2 3 | first }}{{ list 1 2 3 | last }}"),
        "13"
    );
    assert_eq!(render("{{ $d := dict \"k\" \"v\" }}{{ $d.k }}"), "v");
}

#[test]
fn errors_name_line_and_column() {
    let e = Template::parse("msg", "line one\n{{ .Foo").err();
    assert!(
        matches!(
            e,
            Some(TemplateError::Parse {
                line: 2,
                col: 1,
                ..
            })
        ),
        "{e:?}"
    );
    let e = Template::parse("msg", "{{ nosuchfunc 1 }}")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(e, "template: msg:1:4: function \"nosuchfunc\" not defined");
    let e = Template::parse("msg", "{{ if 1 }}x")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("unexpected EOF"), "{e}");
    let e = Template::parse("msg", "{{ end }}")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("unexpected {{end}}"), "{e}");
    let e = Template::parse("msg", "{{ $x }}")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("undefined variable \"$x\""), "{e}");
    let e = Template::parse("msg", "a\n  {{ .AutomationObject.Nope }}")
        .and_then(|t| t.execute(&data()))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(e, "template: msg:2:6: executing \"msg\": can't evaluate field Nope in type types.NamespacedName");
    let e = Template::parse("msg", "{{ upper 1 }}")
        .and_then(|t| t.execute(&data()))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("error calling upper: wrong type for value; expected string; got int"),
        "{e}"
    );
}

#[test]
fn default_message() {
    assert_eq!(
        render_message(None, &data()).ok().as_deref(),
        Some("Update from image update automation")
    );
    assert_eq!(
        render_message(Some(""), &data()).ok().as_deref(),
        Some("Update from image update automation")
    );
}

/// Every case in tests/gocheck/cases.txt rendered by Go 1.19's text/template (expected.json,
/// produced by tests/gocheck/main.go against the same data) must render identically here.
#[test]
fn matches_go_text_template_output() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gocheck");
    let cases = std::fs::read_to_string(dir.join("cases.txt")).unwrap();
    let expected = std::fs::read_to_string(dir.join("expected.json")).unwrap();
    let expected: BTreeMap<String, String> = serde_json::from_str(&expected).unwrap();
    let mut checked = 0;
    for line in cases
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let src: String = serde_json::from_str(line).unwrap();
        let want = expected
            .get(&src)
            .unwrap_or_else(|| panic!("no Go output for {src:?}"));
        let got = Template::parse("msg", &src).and_then(|t| t.execute(&data()));
        if want.starts_with("PARSE ERROR") || want.starts_with("EXEC ERROR") {
            assert!(
                got.is_err(),
                "{src:?}: Go failed ({want}) but we rendered {got:?}"
            );
        } else {
            assert_eq!(
                got.as_deref().map_err(ToString::to_string),
                Ok(want.as_str()),
                "{src:?}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, expected.len());
}
