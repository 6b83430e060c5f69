//! `tagpilot validate [--strict] DIR`: one line per object, one per error or warning; exit 1 if
//! any error (with `--strict`, any warning too).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of Flux manifests (multi-document YAML, searched recursively).
    pub dir: PathBuf,
    /// Treat warnings (unknown or unsupported fields) as errors.
    #[arg(long)]
    pub strict: bool,
    /// Where `*.agekey` files for SOPS-encrypted manifests are (besides $SOPS_AGE_KEY_FILE and
    /// $SOPS_AGE_KEY).
    #[arg(long, value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.dir.is_dir() {
        anyhow::bail!("{}: not a directory", args.dir.display());
    }
    let (keys, problems) = tagpilot_api::sops_keys(args.secrets_dir.as_deref());
    for p in &problems {
        println!("warning SOPS age key not usable: {p}");
    }
    let config = tagpilot_api::load_dir_with(&args.dir, &keys);
    for loaded in config.objects() {
        let m = loaded.object.metadata();
        println!(
            "ok     {} {}/{} in {}",
            loaded.object.kind(),
            m.namespace,
            m.name,
            loaded.source
        );
    }
    for e in &config.errors {
        println!("error  {e}");
    }
    let label = if args.strict { "error " } else { "warning" };
    for w in &config.warnings {
        println!("{label} {w}");
    }
    eprintln!(
        "{} object(s) valid, {} error(s), {} warning(s)",
        config.objects().len(),
        config.errors.len(),
        config.warnings.len()
    );
    let failed = !config.errors.is_empty() || (args.strict && !config.warnings.is_empty());
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
