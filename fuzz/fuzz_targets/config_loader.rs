//! Arbitrary manifests through the directory loader, for every kind it knows: nothing may
//! panic, whatever loads must pass validation, and no error about a Secret may quote its
//! content (every quoted part of such a message is redacted).
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
    for loaded in &config.objects {
        assert!(loaded.object.validate().is_empty(), "{loaded:?}");
    }
    for e in &config.errors {
        if e.kind.as_deref() == Some("Secret") {
            for quoted in e.message.split(['"', '`']).skip(1).step_by(2) {
                assert!(quoted == "<redacted>" || quoted.is_empty(), "{e}");
            }
        }
    }
    // A reload with the same text keeps the same objects.
    let mut again = load_str(&text, Path::new("fuzz.yaml"));
    again.keep_last_good(&config);
    assert_eq!(again.objects.len(), config.objects.len());
});
