//! tagpilot's policies against answers recorded from the Go code current Flux runs
//! (tests/oracle/flux_policy.go; the data file's header names the Masterminds/semver and Go
//! versions that decided). Ties and NaN are left out on purpose: Flux keeps the first tag it
//! met, tagpilot breaks ties deterministically (so that the answer never depends on order).
#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion: a panic with the error

use tagpilot_policy::{Choice, Exclusions, Policy, PolicyError};

const DATA: &str = include_str!("data/flux_oracle.tsv");

fn answer(kind: &str, arg: &str, tags: &[&str]) -> String {
    let choice = match kind {
        "semver" => Choice::semver(arg),
        "numerical" => Choice::numerical(arg),
        other => panic!("unknown kind {other}"),
    };
    let choice = match choice {
        Ok(c) => c,
        Err(PolicyError::InvalidRange(_)) => return "invalid".into(),
        Err(e) => panic!("{kind} {arg}: {e}"),
    };
    match Policy::new(choice, None).select(tags, &Exclusions::none()) {
        Ok(s) => s.tag,
        Err(PolicyError::NoneSelectable) => "none".into(),
        Err(PolicyError::InvalidNumber(_)) => "error".into(),
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn every_recorded_case_agrees_with_flux() {
    let (mut checked, mut skipped, mut wrong) = (0, 0, Vec::new());
    for line in DATA
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let [kind, arg, tags, want] = cols[..] else {
            panic!("malformed line: {line:?}");
        };
        if want.starts_with("tie:") || want.starts_with("nan:") {
            skipped += 1;
            continue;
        }
        let tags: Vec<&str> = tags.split(',').collect();
        let got = answer(kind, arg, &tags);
        if got != want {
            wrong.push(format!(
                "{kind} {arg:?} {tags:?}: Flux {want}, tagpilot {got}"
            ));
        }
        checked += 1;
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(
        checked >= 300,
        "only {checked} cases checked ({skipped} ties/NaN skipped)"
    );
}

#[test]
fn the_issue_examples() {
    // Short tags count (current Flux splits on the first two dots, then parses leniently).
    assert_eq!(
        answer("semver", ">=3.0.0-0", &["3.1-rc.2", "3.0.0"]),
        "3.1-rc.2"
    );
    assert_eq!(
        answer("semver", ">=2.0.0-0", &["v2-rc.1.2", "1.0.0"]),
        "v2-rc.1.2"
    );
    assert_eq!(
        answer("semver", ">=1.5.0", &["v1.5+build.7", "1.4.0"]),
        "v1.5+build.7"
    );
    assert_eq!(
        answer("semver", ">=1.0.0", &["1.2", "v1", "1.2.3.4"]),
        "none"
    );
    // A hyphen range after whitespace glues onto the constraint before it.
    assert_eq!(answer("semver", ">=1.0.0 1.2 - 1.4", &["1.3.0"]), "invalid");
    assert_eq!(answer("semver", ">=1.0.0, 1.2 - 1.4", &["1.3.0"]), "1.3.0");
    assert_eq!(
        answer("semver", "1.2 - 1.4 >=1.3", &["1.3.0", "1.2.0"]),
        "1.3.0"
    );
    // Underscores between digits, as Go's ParseFloat.
    assert_eq!(
        answer("numerical", "asc", &["1_000", "999", "1e1_0"]),
        "1e1_0"
    );
    assert_eq!(answer("numerical", "asc", &["1_000.5", "1000"]), "1_000.5");
    assert_eq!(answer("numerical", "asc", &["_1", "2"]), "error");
    assert_eq!(answer("numerical", "asc", &["1__0", "2"]), "error");
}
