//! Arbitrary ranges and tags: parsing and checking never panic, and a range that parses
//! behaves consistently (checking a version twice gives the same answer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tagpilot_policy::semver::Version;
use tagpilot_policy::{Choice, Constraints, Exclusions, Policy};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (range, tags) = text.split_once('\n').unwrap_or((text, ""));
    let tags: Vec<&str> = tags.lines().collect();
    if let Ok(c) = Constraints::parse(range) {
        for t in &tags {
            if let Ok(v) = Version::parse_tag(t) {
                assert_eq!(c.check(&v), c.check(&v));
                let _ = c.check_explained(&v);
            }
        }
        let p = Policy::new(Choice::SemVer(c), None);
        if let Ok(sel) = p.select(&tags, &Exclusions::none()) {
            assert!(tags.contains(&sel.tag.as_str()));
        }
        let _ = p.explain(&tags, &Exclusions::none());
    }
});
