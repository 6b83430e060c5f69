//! Random YAML documents with markers: only the marked scalars change, the result parses,
//! everything else is byte-identical, and a second run changes nothing.
#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion: a panic with the error

use std::collections::BTreeMap;

use proptest::prelude::*;
use saphyr_parser::{Event, Parser};
use tagpilot_setters::{update_str, LatestRef, Policies};

fn policies() -> Policies {
    let mut p = BTreeMap::new();
    p.insert(
        ("ns".into(), "app".into()),
        LatestRef {
            name: "ghcr.io/org/app".into(),
            tag: "2.0.1".into(),
            digest: None,
        },
    );
    p.insert(
        ("ns".into(), "num".into()),
        LatestRef {
            name: "reg.io/num".into(),
            tag: "1.10".into(),
            digest: None,
        },
    );
    p.insert(
        ("ns".into(), "dig".into()),
        LatestRef {
            name: "reg.io/dig".into(),
            tag: "v3".into(),
            digest: Some("sha256:00ff".into()),
        },
    );
    p
}

/// The value a marker should write, if any.
fn expected(marker: &str) -> Option<&'static str> {
    match marker {
        "ns:app" => Some("ghcr.io/org/app:2.0.1"),
        "ns:app:tag" => Some("2.0.1"),
        "ns:num:tag" => Some("1.10"),
        "ns:num:name" => Some("reg.io/num"),
        "ns:dig" => Some("reg.io/dig:v3@sha256:00ff"),
        "ns:dig:digest" => Some("sha256:00ff"),
        _ => None,
    }
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    value: String,
    quote: u8,
    marker: Option<&'static str>,
    hashes: usize,
    blank_before: bool,
    comment_before: bool,
    in_list: bool,
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        "[a-z][a-z0-9]{0,7}",
        "[a-z][a-z0-9./-]{0,15}(:[a-z0-9.]{1,6})?",
        0u8..3,
        prop::option::of(prop::sample::select(vec![
            "ns:app",
            "ns:app:tag",
            "ns:num:tag",
            "ns:num:name",
            "ns:dig",
            "ns:dig:digest",
            "ns:nope",
            "other:app",
            "ns:app:bogus",
        ])),
        1usize..3,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(key, value, quote, marker, hashes, blank_before, comment_before, in_list)| Entry {
                key,
                value,
                quote,
                marker,
                hashes,
                blank_before,
                comment_before,
                in_list,
            },
        )
}

fn render(entries: &[Entry], crlf: bool, leading_doc: bool) -> String {
    let nl = if crlf { "\r\n" } else { "\n" };
    let mut out = String::new();
    if leading_doc {
        out.push_str("---");
        out.push_str(nl);
    }
    let (top, list): (Vec<&Entry>, Vec<&Entry>) = entries.iter().partition(|e| !e.in_list);
    let mut seen = std::collections::HashSet::new();
    let line = |out: &mut String, indent: &str, prefix: &str, e: &Entry| {
        if e.blank_before {
            out.push_str(nl);
        }
        if e.comment_before {
            out.push_str(indent);
            out.push_str("# a comment — ünïcode");
            out.push_str(nl);
        }
        let v = match e.quote {
            0 => e.value.clone(),
            1 => format!("'{}'", e.value),
            _ => format!("\"{}\"", e.value),
        };
        out.push_str(&format!("{indent}{prefix}{}: {v}", e.key));
        if let Some(m) = e.marker {
            out.push_str(&format!(
                " {} {{\"$imagepolicy\": \"{m}\"}}",
                "#".repeat(e.hashes)
            ));
        }
        out.push_str(nl);
    };
    for e in top {
        // Keys must be unique within the mapping.
        if seen.insert(e.key.clone()) {
            line(&mut out, "", "", e);
        }
    }
    if !list.is_empty() && seen.insert("items".to_owned()) {
        out.push_str("items:");
        out.push_str(nl);
        for e in list {
            line(&mut out, "  ", "- ", e);
        }
    }
    out
}

fn scalars(text: &str) -> Vec<String> {
    Parser::new_from_str(text)
        .filter_map(|r| match r {
            Ok((Event::Scalar(v, ..), _)) => Some(v.to_string()),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn only_marked_scalars_change(entries in prop::collection::vec(entry(), 1..12), crlf in any::<bool>(), doc in any::<bool>()) {
        let text = render(&entries, crlf, doc);
        let before = scalars(&text);
        let u = update_str(&text, &policies()).expect("generated YAML parses and edits verify");
        let after = scalars(&u.content);
        prop_assert_eq!(before.len(), after.len());

        // Lines without a recognised, applicable marker are byte-identical.
        let old_lines: Vec<&str> = text.split('\n').collect();
        let new_lines: Vec<&str> = u.content.split('\n').collect();
        prop_assert_eq!(old_lines.len(), new_lines.len());
        let mut changed = 0;
        for (o, n) in old_lines.iter().zip(&new_lines) {
            if o == n {
                continue;
            }
            changed += 1;
            let marker = o.split("\"$imagepolicy\": \"").nth(1).and_then(|r| r.split('"').next());
            let want = marker.and_then(expected);
            prop_assert!(want.is_some(), "unmarked line changed: {:?} -> {:?}", o, n);
            // The comment is untouched; only the value before it differs.
            let tail = |l: &str| l.split_once(" #").map(|(_, t)| t.to_owned());
            prop_assert_eq!(tail(o), tail(n));
        }
        let total: usize = u.objects.iter().map(|o| o.changes.len()).sum();
        prop_assert_eq!(changed, total);
        for c in u.objects.iter().flat_map(|o| &o.changes) {
            prop_assert_eq!(Some(c.new_value.as_str()), expected(&c.setter));
            prop_assert!(after.contains(&c.new_value));
        }
        // Idempotent.
        let again = update_str(&u.content, &policies()).expect("second run");
        prop_assert_eq!(&again.content, &u.content);
        prop_assert!(again.objects.is_empty());
    }
}
