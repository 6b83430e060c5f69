//! `tagpilot explain image policy NAME [-n NAMESPACE]`: every tag of the policy's repository
//! with the verdict of each filter and gate (excluded, filtered out, out of range, too young,
//! re-pushed, missing platform, chosen), as the running daemon last resolved it.

use std::io::Write;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: Target,
    #[command(flatten)]
    pub daemon: crate::get::Daemon,
    #[arg(long, short = 'o', value_enum, default_value = "text", global = true)]
    pub output: crate::resolve::Output,
}

#[derive(Debug, clap::Subcommand)]
pub enum Target {
    /// An image automation object.
    Image {
        #[command(subcommand)]
        kind: Kind,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum Kind {
    Policy { name: String },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Target::Image {
        kind: Kind::Policy { name },
    } = &args.what;
    let ns = &args.daemon.namespace;
    let path = format!("/api/v1/explain/ImagePolicy/{ns}/{name}");
    let req = args.daemon.request(reqwest::Method::GET, &path)?;
    let body = args.daemon.call(req)?;
    let mut out = std::io::stdout().lock();
    match args.output {
        crate::resolve::Output::Json => {
            serde_json::to_writer_pretty(&mut out, &body)?;
            writeln!(out)?;
        }
        crate::resolve::Output::Text => write_text(&mut out, &body)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn write_text(out: &mut dyn Write, body: &serde_json::Value) -> std::io::Result<()> {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    writeln!(out, "policy: {}", s(&body["policy"]))?;
    if let Some(g) = body["gates"].as_object().filter(|g| !g.is_empty()) {
        let parts: Vec<String> = g
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::Array(a) => {
                    format!("{k} {}", a.iter().map(&s).collect::<Vec<_>>().join(", "))
                }
                serde_json::Value::String(t) => format!("{k} {t}"),
                other => format!("{k} {other}"),
            })
            .collect();
        writeln!(out, "gates: {}", parts.join("; "))?;
    }
    match body["latestRef"]["tag"].as_str() {
        Some(t) => writeln!(out, "latest: {t}")?,
        None => writeln!(out, "latest: none yet")?,
    }
    if let Some(m) = body["message"].as_str().filter(|m| !m.is_empty()) {
        writeln!(out, "status: {m}")?;
    }
    let rows = body["tags"].as_array().cloned().unwrap_or_default();
    let width = |key: &str| {
        rows.iter()
            .map(|r| r[key].as_str().map_or(0, str::len))
            .max()
            .unwrap_or(0)
            .min(60)
    };
    let (tw, vw) = (width("tag"), width("verdict"));
    for r in &rows {
        let mut line = format!(
            "  {:tw$}  {:vw$}  {}",
            s(&r["tag"]),
            s(&r["verdict"]),
            s(&r["message"])
        );
        if let Some(v) = r["value"].as_str() {
            line.push_str(&format!(" (value '{v}')"));
        }
        if let Some(t) = r["firstSeen"].as_str() {
            line.push_str(&format!(" (first seen {t})"));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
