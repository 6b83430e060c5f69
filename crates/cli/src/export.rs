//! `tagpilot export [--kind KIND]... DIR`: every object of a configuration directory as flux
//! prints it (`flux export`): one `---` document each, keys sorted, defaults implicit, no
//! status. Secrets are left out (their values would go to a terminal); errors go to stderr
//! and make the exit code 1.

use std::path::PathBuf;
use std::process::ExitCode;

use tagpilot_api::Kind;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of Flux manifests.
    pub dir: PathBuf,
    /// Only objects of this kind (ImageRepository, ImagePolicy, …); repeatable.
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.dir.is_dir() {
        anyhow::bail!("{}: not a directory", args.dir.display());
    }
    let kinds = args
        .kinds
        .iter()
        .map(|k| {
            Kind::ALL
                .into_iter()
                .find(|kind| kind.as_str().eq_ignore_ascii_case(k))
                .ok_or_else(|| anyhow::anyhow!("unknown kind '{k}'"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = tagpilot_api::load_dir(&args.dir);
    let mut objects: Vec<_> = config
        .objects()
        .iter()
        .map(|l| &l.object)
        .filter(|o| o.kind() != Kind::Secret)
        .filter(|o| kinds.is_empty() || kinds.contains(&o.kind()))
        .collect();
    objects.sort_by(|a, b| {
        let key = |o: &tagpilot_api::Object| {
            let m = o.metadata();
            (o.kind(), m.namespace.clone(), m.name.clone())
        };
        key(a).cmp(&key(b))
    });
    let mut out = String::new();
    for o in objects {
        out.push_str(&crate::create::to_yaml(o)?);
    }
    print!("{out}");
    for e in &config.errors {
        eprintln!("error  {e}");
    }
    Ok(if config.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
