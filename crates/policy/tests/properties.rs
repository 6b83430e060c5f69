//! Properties of selection: the winner satisfies the policy, nothing outranks it, and the
//! answer does not depend on the order of the input.
#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion: a panic with the error

use std::cmp::Ordering;

use proptest::prelude::*;
use tagpilot_policy::semver::Version;
use tagpilot_policy::{parse_go_float, Choice, Constraints, Exclusions, Order, Policy, TagFilter};

fn version_tag() -> impl Strategy<Value = String> {
    (
        prop::bool::ANY,
        0u64..4,
        0u64..12,
        0u64..12,
        prop::option::of(prop::sample::select(vec![
            "rc.1", "rc.2", "rc.10", "alpha", "beta.3", "0",
        ])),
        prop::option::of(prop::sample::select(vec!["build.5", "build.7", "sha.abc"])),
    )
        .prop_map(|(v, a, b, c, pre, build)| {
            let mut s = format!("{}{a}.{b}.{c}", if v { "v" } else { "" });
            if let Some(p) = pre {
                s.push('-');
                s.push_str(p);
            }
            if let Some(m) = build {
                s.push('+');
                s.push_str(m);
            }
            s
        })
}

fn any_tag() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => version_tag(),
        1 => "[a-z0-9._-]{1,12}",
        1 => (0u32..5000).prop_map(|n| n.to_string()),
        1 => Just("latest".to_owned()),
        1 => "[a-f0-9]{6}\\.sig",
    ]
}

fn range() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "*",
        ">=1.0.0",
        "<2",
        "<=2",
        ">1.2",
        "~1.2",
        "^1.x",
        "^0.3",
        "1.x || >=3.0.0",
        "!=1.2.3",
        ">=1.0.0-0 <3.0.0",
        "^2.x-0",
        "1.2 - 2.5.1",
        "=1.2.3",
        "~>0.1",
        ">=0.1.0, <0.9.0",
    ])
    .prop_map(str::to_owned)
}

fn shuffled(tags: &[String], seed: u64) -> Vec<String> {
    // Deterministic Fisher–Yates with a tiny xorshift, so failures replay.
    let mut v = tags.to_vec();
    let mut s = seed | 1;
    for i in (1..v.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn semver_winner_is_admitted_maximal_and_order_independent(
        tags in prop::collection::vec(any_tag(), 0..40),
        range in range(),
        seed in any::<u64>(),
    ) {
        let c = Constraints::parse(&range).expect("fixed ranges parse");
        let p = Policy::new(Choice::SemVer(c.clone()), None);
        let ex = Exclusions::flux_default();
        let first = p.select(&tags, &ex);
        let second = p.select(&shuffled(&tags, seed), &ex);
        prop_assert_eq!(&first, &second);
        let admitted: Vec<(&String, Version<'_>)> = tags
            .iter()
            .filter(|t| ex.matching(t).is_none())
            .filter_map(|t| Version::parse_tag(t).ok().map(|v| (t, v)))
            .filter(|(_, v)| c.check(v))
            .collect();
        match first {
            Ok(sel) => {
                let win = Version::parse_tag(&sel.tag).expect("winner parses");
                prop_assert!(c.check(&win));
                for (t, v) in &admitted {
                    match v.precedence(&win) {
                        Ordering::Greater => prop_assert!(false, "{} outranks {}", t, sel.tag),
                        Ordering::Equal => prop_assert!(t.as_bytes() <= sel.tag.as_bytes()),
                        Ordering::Less => {}
                    }
                }
            }
            Err(_) => prop_assert!(admitted.is_empty()),
        }
    }

    #[test]
    fn alphabetical_and_numerical_are_extremes(
        tags in prop::collection::vec(any_tag(), 1..40),
        desc in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let order = if desc { Order::Desc } else { Order::Asc };
        let none = Exclusions::none();
        let a = Policy::new(Choice::Alphabetical(order), None);
        let sel = a.select(&tags, &none).expect("non-empty list");
        let want = if desc { tags.iter().min() } else { tags.iter().max() };
        prop_assert_eq!(Some(&sel.tag), want);
        prop_assert_eq!(a.select(&shuffled(&tags, seed), &none), Ok(sel));

        let n = Policy::new(Choice::Numerical(order), None);
        let parsed: Option<Vec<f64>> = tags.iter().map(|t| parse_go_float(t)).collect();
        match (n.select(&tags, &none), parsed) {
            (Ok(sel), Some(values)) => {
                let win = parse_go_float(&sel.tag).expect("winner parses");
                for v in values.iter().filter(|v| !v.is_nan()) {
                    let ok = if desc { win <= *v } else { win >= *v };
                    prop_assert!(ok, "{} does not beat {}", sel.tag, v);
                }
                prop_assert_eq!(n.select(&shuffled(&tags, seed), &none), Ok(sel));
            }
            (Err(_), None) => {}
            (got, parsed) => prop_assert!(false, "numerical {:?} vs parse {:?}", got, parsed),
        }
    }

    #[test]
    fn extracted_duplicates_are_deterministic(
        tags in prop::collection::vec("[0-9]\\.[0-9]\\.[0-9]-(alpine|debian|slim)", 1..30),
        seed in any::<u64>(),
    ) {
        let f = || TagFilter::new(r"^(\d\.\d\.\d)-", "$1").ok();
        let p = Policy::new(Choice::semver("*").expect("range"), f());
        let none = Exclusions::none();
        let a = p.select(&tags, &none).expect("every tag matches");
        prop_assert_eq!(p.select(&shuffled(&tags, seed), &none), Ok(a.clone()));
        // The winner is the byte-greatest among tags extracting the winning value.
        let best = tags.iter().filter(|t| t.starts_with(&a.value)).max();
        prop_assert_eq!(Some(&a.tag), best);
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,40}") {
        let _ = Constraints::parse(&s);
        let _ = Version::parse_tag(&s);
        let _ = parse_go_float(&s);
        let _ = tagpilot_policy::Template::parse(&s);
    }
}
