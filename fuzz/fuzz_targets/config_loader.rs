//! Arbitrary manifests through the directory loader, for every kind it knows: nothing may
//! panic, whatever loads must pass validation, and no error may quote a Secret's value (any
//! `data`/`stringData` value of 8+ letters and digits with a digit in it, unless it is also the
//! name, namespace or a key, which messages may name).
//!
//! Input: the first byte picks a kind and apiVersion (or none: the text as it is); the rest is
//! the YAML, appended after `apiVersion:` and `kind:` lines.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tagpilot_api::{load_str, Kind};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(body) = std::str::from_utf8(rest) else {
        return;
    };
    let kinds = Kind::ALL;
    let text = match kinds.get(usize::from(pick) % (kinds.len() + 1)) {
        Some(kind) => {
            let versions = kind.api_versions();
            let version = versions[usize::from(pick / 16) % versions.len()];
            format!("apiVersion: {version}\nkind: {}\n{body}", kind.as_str())
        }
        None => body.to_owned(),
    };
    let config = load_str(&text, Path::new("fuzz.yaml"));
    for loaded in config.objects() {
        assert!(loaded.object.validate().is_empty(), "{loaded:?}");
    }
    let values = secret_values(&text);
    for e in &config.errors {
        for v in &values {
            assert!(!e.message.contains(v.as_str()), "{v}: {e}");
        }
    }
    // A reload with the same text keeps the same objects.
    let mut again = load_str(&text, Path::new("fuzz.yaml"));
    again.keep_last_good(&config);
    assert_eq!(again.objects().len(), config.objects().len());
});

/// The values of `data` and `stringData` in every document that could be quoted.
fn secret_values(text: &str) -> Vec<String> {
    use tagpilot_yaml::Node;
    let mut out = Vec::new();
    for doc in tagpilot_yaml::documents(text) {
        let Ok(v) = doc else {
            break;
        };
        let scalar = |v: &Node| match v {
            Node::Str(s) => Some(s.clone()),
            Node::Int(i) => Some(i.to_string()),
            Node::UInt(u) => Some(u.to_string()),
            Node::Float(f) => Some(f.to_string()),
            _ => None,
        };
        let mut named: Vec<String> = ["name", "namespace"]
            .iter()
            .filter_map(|k| v.get("metadata").and_then(|m| m.get(*k)).and_then(scalar))
            .collect();
        let mut found = Vec::new();
        for field in ["data", "stringData"] {
            if let Some(Node::Map(m)) = v.get(field) {
                for (k, val) in m {
                    named.extend(scalar(k));
                    found.extend(scalar(val));
                }
            }
        }
        out.extend(found.into_iter().filter(|s| {
            s.len() >= 8
                && s.bytes().all(|b| b.is_ascii_alphanumeric())
                && s.bytes().any(|b| b.is_ascii_digit())
                && !named.iter().any(|n| n.contains(s.as_str()))
        }));
    }
    out
}
