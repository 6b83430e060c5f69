//! Image update rounds from the command line, for bench/git-warm-vs-clone.sh: for each TAG,
//! sets the `flux-system:podinfo` markers under PATH to it on BRANCH of REMOTE (one round per
//! tag, warm clone in CACHE), and prints each round's wall time in milliseconds.
//!
//! usage: round CACHE REMOTE BRANCH PATH TAG...

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use tagpilot_git::{Applied, Change, CheckoutRef, RoundSpec, WarmRepo};
use tagpilot_setters::{scan_tree, write_changes_in_clone, LatestRef};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cache, remote, branch, path, tags @ ..] = args.as_slice() else {
        return Err("usage: round CACHE REMOTE BRANCH PATH TAG...".into());
    };
    let repo = WarmRepo::open(Path::new(cache), remote, Default::default())?;
    let spec = RoundSpec {
        checkout: CheckoutRef::Branch(branch.clone()),
        push_branch: branch.clone(),
        push_refspec: None,
        push_options: vec![],
        author_name: "tagpilot".into(),
        author_email: "tagpilot@example.com".into(),
        max_attempts: 5,
        signer: None,
    };
    let scratch = repo.scratch_dir()?;
    for tag in tags {
        let start = Instant::now();
        let mut policies = BTreeMap::new();
        policies.insert(
            ("flux-system".to_owned(), "podinfo".to_owned()),
            LatestRef {
                name: "ghcr.io/stefanprodan/podinfo".into(),
                tag: tag.clone(),
                digest: None,
            },
        );
        let change: Change<'_> = Box::new(|root: &Path| {
            let dir = root.join(path);
            let set = scan_tree(&dir, &policies).map_err(|e| e.to_string())?;
            if set.is_empty() {
                return Ok(None);
            }
            let written =
                write_changes_in_clone(&dir, &set, &scratch).map_err(|e| e.to_string())?;
            Ok(Some(Applied {
                message: format!("ghcr.io/stefanprodan/podinfo:{tag}\n"),
                paths: Some(written),
            }))
        });
        let out = repo.round(&spec, &mut [change])?;
        if out.pushed_commit.is_none() {
            return Err(format!("round {tag} pushed nothing").into());
        }
        println!("{}", start.elapsed().as_millis());
    }
    Ok(())
}
