//! `tagpilot update PATH --latest NS/NAME=IMAGE…`: apply the setters to a directory, as an
//! image update automation would, and optionally render the commit message.
//!
//! stdout carries exactly one thing: the rendered message (`--message-template`), or the change
//! set as JSON (`--output json`), or nothing. The human summary goes to stderr.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use tagpilot_setters::{scan_tree, write_changes, ChangeSet, LatestRef, Policies};
use tagpilot_template::{commit_data, MessageInput, Template};

use crate::resolve::Output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The update path: the directory whose YAML files carry `$imagepolicy` markers.
    pub path: PathBuf,
    /// What a policy now resolves to: NAMESPACE/NAME=IMAGE[:TAG][@DIGEST]. Repeatable.
    #[arg(
        long = "latest",
        value_name = "NAMESPACE/NAME=IMAGE[:TAG][@DIGEST]",
        required = true
    )]
    pub latest: Vec<String>,
    /// Compute and report the changes without touching any file.
    #[arg(long)]
    pub dry_run: bool,
    /// text: summary on stderr; json: the change set on stdout.
    #[arg(
        long,
        value_enum,
        default_value = "text",
        conflicts_with = "message_template"
    )]
    pub output: Output,
    /// Go text/template file for the commit message; stdout gets exactly the rendered message.
    #[arg(long, value_name = "FILE")]
    pub message_template: Option<PathBuf>,
    /// The automation the message is for (`.AutomationObject`).
    #[arg(
        long,
        value_name = "NAMESPACE/NAME",
        default_value = "default/tagpilot"
    )]
    pub automation: String,
    /// A `.Values` entry for the template. Repeatable.
    #[arg(long = "value", value_name = "KEY=VALUE")]
    pub values: Vec<String>,
}

fn split_ns_name(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => bail!("{what} '{s}': expected NAMESPACE/NAME"),
    }
}

fn parse_latest(items: &[String]) -> anyhow::Result<Policies> {
    let mut policies = BTreeMap::new();
    for item in items {
        let Some((policy, image)) = item.split_once('=') else {
            bail!("--latest '{item}': expected NAMESPACE/NAME=IMAGE[:TAG][@DIGEST]");
        };
        let key = split_ns_name(policy, "--latest policy")?;
        let latest =
            LatestRef::parse(image).map_err(|e| anyhow::anyhow!("--latest '{item}': {e}"))?;
        if policies.insert(key, latest).is_some() {
            bail!("--latest '{item}': policy {policy} given twice");
        }
    }
    Ok(policies)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let policies = parse_latest(&args.latest)?;
    let automation = split_ns_name(&args.automation, "--automation")?;
    let mut values = BTreeMap::new();
    for v in &args.values {
        let Some((k, val)) = v.split_once('=') else {
            bail!("--value '{v}': expected KEY=VALUE");
        };
        values.insert(k.to_owned(), val.to_owned());
    }
    // Parse the template before touching anything: a bad template writes nothing.
    let template = match &args.message_template {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--message-template {}", path.display()))?;
            Some(Template::parse(&path.display().to_string(), &text)?)
        }
        None => None,
    };
    if !args.path.is_dir() {
        bail!("{}: not a directory", args.path.display());
    }
    let set = scan_tree(&args.path, &policies)?;
    let message = match &template {
        Some(t) => {
            let data = commit_data(&MessageInput {
                automation: (&automation.0, &automation.1),
                values: &values,
                changes: &set,
                policies: &policies,
            });
            Some(t.execute(&data)?)
        }
        None => None,
    };
    if !args.dry_run {
        write_changes(&args.path, &set)?;
    }
    summarize(&set, args.dry_run)?;
    let mut out = io::stdout().lock();
    if let Some(m) = message {
        out.write_all(m.as_bytes())?;
    } else if args.output == Output::Json {
        serde_json::to_writer_pretty(&mut out, &set)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(if set.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn summarize(set: &ChangeSet, dry_run: bool) -> io::Result<()> {
    let mut err = io::stderr().lock();
    for f in &set.files {
        for o in &f.objects {
            let id = &o.object;
            let object = if id.kind.is_empty() {
                "(no kind)".to_owned()
            } else if id.name.is_empty() {
                id.kind.clone()
            } else {
                let ns = if id.namespace.is_empty() {
                    "-"
                } else {
                    &id.namespace
                };
                format!("{} {ns}/{}", id.kind, id.name)
            };
            for c in &o.changes {
                writeln!(
                    err,
                    "{}: {object}: {} -> {} ({})",
                    f.path, c.old_value, c.new_value, c.setter
                )?;
            }
        }
    }
    for w in &set.warnings {
        writeln!(err, "warning: {w}")?;
    }
    for e in &set.errors {
        writeln!(err, "error: {e}")?;
    }
    let n = set.files.len();
    let verb = if dry_run { "would change" } else { "changed" };
    writeln!(err, "{verb} {n} file{}", if n == 1 { "" } else { "s" })?;
    Ok(())
}
