//! `tagpilot resolve`: pick the latest tag of a tag list with an image policy given by flags
//! or by an ImagePolicy manifest. The chosen tag is the first line of stdout; on failure
//! stdout stays empty and stderr gets one line.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde::Serialize;
use tagpilot_api::gates::Platform;
use tagpilot_api::PolicyGates;
use tagpilot_api::{Kind, Object};
use tagpilot_policy::{Choice, Exclusions, Explanation, Policy, Selection, TagFilter};
use tagpilot_reconcile::gates::{check, Facts, Gates, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("choice").args(["semver", "alphabetical", "numerical", "policy"]).required(true)))]
#[command(group(clap::ArgGroup::new("source").args(["tags_file", "image"]).required(true)))]
pub struct Args {
    /// File with one tag per line (blank lines ignored), or - for standard input.
    #[arg(long, value_name = "FILE|-")]
    pub tags_file: Option<PathBuf>,
    /// List the tags of this repository live instead (as ImageRepository `spec.image`).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    #[command(flatten)]
    pub registry: crate::scan::RegistryArgs,
    /// Semver range (Masterminds v3 syntax), e.g. '5.0.x' or '>=1.0.0 <2.0.0'.
    #[arg(long, value_name = "RANGE")]
    pub semver: Option<String>,
    /// Alphabetical order: asc picks the greatest, desc the smallest.
    #[arg(long, value_name = "ORDER")]
    pub alphabetical: Option<String>,
    /// Numerical order: asc picks the largest, desc the smallest.
    #[arg(long, value_name = "ORDER")]
    pub numerical: Option<String>,
    /// An ImagePolicy manifest instead of the policy flags (an ImageRepository in the same
    /// file supplies its exclusionList).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["filter_pattern", "filter_extract"])]
    pub policy: Option<PathBuf>,
    /// Only tags matching this regex (unanchored) are considered.
    #[arg(long, value_name = "REGEX")]
    pub filter_pattern: Option<String>,
    /// What to rank from the match: Go Regexp.Expand template ($1, ${name}, $$).
    #[arg(long, value_name = "TEMPLATE", requires = "filter_pattern")]
    pub filter_extract: Option<String>,
    /// Drop tags matching this regex; repeatable; replaces the default '^.*\.sig$'.
    #[arg(long, value_name = "REGEX")]
    pub exclude: Vec<String>,
    /// Explain the fate of every tag after the chosen one.
    #[arg(long)]
    pub explain: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    tag: &'a str,
    value: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<&'a Explanation>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    gates: Vec<GateLine>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

/// A candidate the platform gate looked at.
#[derive(Debug, Serialize)]
struct GateLine {
    tag: String,
    #[serde(flatten)]
    verdict: Verdict,
    message: String,
}

/// Candidates whose platforms are read, best first, before giving up.
const MAX_PLATFORM_CHECKS: usize = 10;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (policy, exclusions, gates) = build(&args)?;
    let tags = match (&args.tags_file, &args.image) {
        (Some(file), _) => read_tags(file)?,
        (None, Some(image)) => crate::scan::fetch(image, &args.registry)?.tags,
        (None, None) => bail!("one of --tags-file or --image is required"),
    };
    let mut explanation = args.explain.then(|| policy.explain(&tags, &exclusions));
    let mut outcome: anyhow::Result<Selection> = match &explanation {
        Some(ex) => match (&ex.selected, &ex.error) {
            (Some(s), _) => Ok(s.clone()),
            (None, e) => Err(anyhow::anyhow!(e.clone().unwrap_or_default())),
        },
        None => policy.select(&tags, &exclusions).map_err(Into::into),
    };
    let (mut lines, mut notes) = (Vec::new(), Vec::new());
    if let Some(g) = &gates {
        if g.min_age.is_some() || g.repush_hold.is_some() {
            notes.push("minAge and repushHold need tagpilot's history of the repository (first-seen times, digests seen): not evaluated here; `tagpilot explain image policy NAME` asks a running daemon".to_owned());
        }
        match (&args.image, g.platforms.is_empty(), &outcome) {
            (_, true, _) | (_, _, Err(_)) => {}
            (None, false, _) => {
                notes.push("platforms need the registry: give --image to check them".to_owned())
            }
            (Some(image), false, Ok(_)) => {
                let (chosen, walked) =
                    platform_walk(image, &args.registry, &policy, &tags, &exclusions, g)?;
                lines = walked;
                outcome = chosen.ok_or_else(|| {
                    anyhow::anyhow!("no tag passes the gates among the {} best", lines.len())
                });
                if let Some(ex) = explanation.as_mut() {
                    ex.selected = outcome.as_ref().ok().cloned();
                }
            }
        }
    }
    for n in notes.iter().filter(|_| !args.explain) {
        eprintln!("note: {n}");
    }
    let selection = match outcome {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(ex) = &explanation {
                let mut err = io::stderr().lock();
                write_explanation(&mut err, ex)?;
                write_gates(&mut err, &lines, &notes)?;
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut out = io::stdout().lock();
    match args.output {
        Output::Text => {
            writeln!(out, "{}", selection.tag)?;
            if let Some(ex) = &explanation {
                write_explanation(&mut out, ex)?;
                write_gates(&mut out, &lines, &notes)?;
            }
        }
        Output::Json => {
            let json = JsonResult {
                tag: &selection.tag,
                value: &selection.value,
                explain: explanation.as_ref(),
                gates: lines,
                notes,
            };
            serde_json::to_writer_pretty(&mut out, &json)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn write_explanation(out: &mut dyn Write, ex: &Explanation) -> io::Result<()> {
    writeln!(out, "policy: {}", ex.policy)?;
    match (&ex.selected, &ex.error) {
        (Some(s), _) if s.value != s.tag => {
            writeln!(out, "selected: {} (ranked as '{}')", s.tag, s.value)?
        }
        (Some(s), _) => writeln!(out, "selected: {}", s.tag)?,
        (None, Some(e)) => writeln!(out, "nothing selected: {e}")?,
        (None, None) => {}
    }
    let width = ex
        .tags
        .iter()
        .map(|t| t.tag.len())
        .max()
        .unwrap_or(0)
        .min(60);
    for t in &ex.tags {
        match &t.value {
            Some(v) => writeln!(out, "  {:width$}  {} (value '{v}')", t.tag, t.verdict)?,
            None => writeln!(out, "  {:width$}  {}", t.tag, t.verdict)?,
        }
    }
    Ok(())
}

/// The platform gate, offline: the best candidates' indexes are read until one serves every
/// wanted platform. Returns that tag and the verdict of each candidate read.
fn platform_walk(
    image: &str,
    registry: &crate::scan::RegistryArgs,
    policy: &Policy,
    tags: &[String],
    exclusions: &Exclusions,
    spec: &PolicyGates,
) -> anyhow::Result<(Option<Selection>, Vec<GateLine>)> {
    let gates = Gates {
        platforms: Gates::from_spec(Some(spec)).platforms,
        ..Gates::default()
    };
    let ranked = policy.ranked(tags, exclusions)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let limits = tagpilot_registry::Gates::new(registry.limits());
    runtime.block_on(async {
        let client = crate::scan::client(image, registry, &limits).await?;
        let mut lines = Vec::new();
        for candidate in ranked.into_iter().take(MAX_PLATFORM_CHECKS) {
            let digest = client
                .head_digest(&candidate.tag)
                .await
                .map_err(|e| e.to_string());
            let platforms = match &digest {
                Ok(d) => Some(
                    client
                        .platforms(d)
                        .await
                        .map(|list| {
                            list.iter()
                                .filter_map(|p| Platform::parse(&p.to_string()).ok())
                                .collect()
                        })
                        .map_err(|e| e.to_string()),
                ),
                Err(_) => None,
            };
            let facts = Facts {
                digest: Some(digest),
                platforms,
                ..Facts::default()
            };
            // Only the platform gate runs here, and it has every fact it needs.
            let verdict = check(&gates, &facts, 0).unwrap_or(Verdict::Unchecked {
                gate: "platforms",
                reason: "not read".into(),
            });
            let passed = verdict.passed();
            lines.push(GateLine {
                tag: candidate.tag.clone(),
                message: verdict.to_string(),
                verdict,
            });
            if passed {
                return Ok((Some(candidate), lines));
            }
        }
        Ok((None, lines))
    })
}

fn write_gates(out: &mut dyn Write, lines: &[GateLine], notes: &[String]) -> io::Result<()> {
    if !lines.is_empty() {
        writeln!(out, "gates:")?;
        let width = lines.iter().map(|l| l.tag.len()).max().unwrap_or(0).min(60);
        for l in lines {
            writeln!(out, "  {:width$}  {}", l.tag, l.message)?;
        }
    }
    for n in notes {
        writeln!(out, "note: {n}")?;
    }
    Ok(())
}

fn build(args: &Args) -> anyhow::Result<(Policy, Exclusions, Option<PolicyGates>)> {
    let user_exclusions = (!args.exclude.is_empty())
        .then(|| Exclusions::new(&args.exclude))
        .transpose()?;
    if let Some(path) = &args.policy {
        let (policy, repo_exclusions, gates) = policy_from_file(path)?;
        let exclusions = user_exclusions
            .or(repo_exclusions)
            .unwrap_or_else(Exclusions::flux_default);
        return Ok((policy, exclusions, gates));
    }
    let choice = if let Some(range) = &args.semver {
        Choice::semver(range)?
    } else if let Some(order) = &args.alphabetical {
        Choice::alphabetical(order)?
    } else if let Some(order) = &args.numerical {
        Choice::numerical(order)?
    } else {
        bail!("one of --semver, --alphabetical, --numerical or --policy is required");
    };
    let filter = match &args.filter_pattern {
        Some(p) => Some(TagFilter::new_strict(
            p,
            args.filter_extract.as_deref().unwrap_or(""),
        )?),
        None => None,
    };
    Ok((
        Policy::new(choice, filter),
        user_exclusions.unwrap_or_else(Exclusions::flux_default),
        None,
    ))
}

/// The single ImagePolicy in `path`, and the exclusion list of the ImageRepository it
/// references when that is in the same file.
#[allow(clippy::type_complexity)]
fn policy_from_file(
    path: &Path,
) -> anyhow::Result<(Policy, Option<Exclusions>, Option<PolicyGates>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let config = tagpilot_api::load_str(&text, path);
    if let Some(e) = config.errors.first() {
        bail!("{e}");
    }
    let policies: Vec<_> = config.of_kind(Kind::ImagePolicy).collect();
    let loaded = match policies.as_slice() {
        [one] => one,
        [] => bail!("{}: no ImagePolicy found", path.display()),
        _ => bail!(
            "{}: {} ImagePolicy objects found, expected one",
            path.display(),
            policies.len()
        ),
    };
    let Object::ImagePolicy(policy) = &loaded.object else {
        bail!("{}: not an ImagePolicy", loaded.source);
    };
    let engine = tagpilot_api::build_policy(&policy.spec).map_err(|e| {
        anyhow::anyhow!(
            "{}: ImagePolicy {}/{}: {e}",
            loaded.source,
            policy.metadata.namespace,
            policy.metadata.name
        )
    })?;
    let (ns, name) = policy.repository_key();
    let exclusions = match config.find::<tagpilot_api::ImageRepository>(ns, name) {
        Some(repo) => Some(Exclusions::new(&repo.spec.exclusion_list)?),
        None => None,
    };
    Ok((engine, exclusions, policy.spec.gates.clone()))
}

fn read_tags(path: &Path) -> anyhow::Result<Vec<String>> {
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        let f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        Box::new(io::BufReader::new(f))
    };
    let mut tags = Vec::new();
    for line in reader.lines() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let tag = line.trim();
        if !tag.is_empty() {
            tags.push(tag.to_owned());
        }
    }
    Ok(tags)
}
