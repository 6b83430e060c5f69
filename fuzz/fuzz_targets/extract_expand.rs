//! Arbitrary patterns, templates and tags through filterTags: never panics, and the winner
//! is always one of the input tags.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tagpilot_policy::{Choice, Exclusions, Order, Policy, TagFilter};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\n');
    let (Some(pattern), Some(template)) = (parts.next(), parts.next()) else { return };
    let tags: Vec<&str> = parts.next().unwrap_or("").lines().collect();
    // Keep compile time bounded: huge patterns only test the regex crate.
    if pattern.len() > 200 {
        return;
    }
    let Ok(filter) = TagFilter::new(pattern, template) else { return };
    for t in &tags {
        let _ = filter.apply(t);
    }
    for choice in [Choice::Alphabetical(Order::Asc), Choice::Numerical(Order::Desc)] {
        let p = Policy::new(choice, Some(filter.clone()));
        if let Ok(sel) = p.select(&tags, &Exclusions::none()) {
            assert!(tags.contains(&sel.tag.as_str()));
        }
    }
});
