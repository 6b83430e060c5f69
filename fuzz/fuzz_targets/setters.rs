//! Arbitrary bytes through the setters: never panics, and an edited file always parses.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tagpilot_setters::{update_str, LatestRef};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut policies = BTreeMap::new();
    policies.insert(
        ("ns".to_owned(), "p".to_owned()),
        LatestRef { name: "reg.io/a/b".into(), tag: "1.10".into(), digest: Some("sha256:00".into()) },
    );
    policies.insert(
        ("ns".to_owned(), "q".to_owned()),
        LatestRef { name: "x".into(), tag: "true".into(), digest: None },
    );
    if let Ok(u) = update_str(text, &policies) {
        if !u.objects.is_empty() {
            let reparsed = saphyr_parser::Parser::new_from_str(&u.content).all(|e| e.is_ok());
            assert!(reparsed, "edited output does not parse");
            let again = update_str(&u.content, &policies).expect("edited output parses");
            assert!(again.objects.is_empty(), "second run changed something");
        }
    }
});
