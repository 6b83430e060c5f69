//! `tagpilot scan IMAGE`: list a repository's tags live, as an ImageRepository scan does.
//! The tags go to stdout (one per line, descending byte order, as Flux stores them); the count
//! and revision go to stderr, or everything to stdout as JSON.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tagpilot_registry::{scan, ClientOptions, DockerConfig, Gates, ImageName, Limits, RepoClient};

use crate::resolve::Output;

/// How to reach the registry (shared by `scan` and `resolve --image`).
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Plain HTTP (ImageRepository `spec.insecure`).
    #[arg(long)]
    pub insecure: bool,
    /// Docker config JSON with credentials (`config.json`, `.dockerconfigjson` or `.dockercfg`).
    #[arg(long, value_name = "FILE")]
    pub docker_config: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust, in addition to the system roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --key-file.
    #[arg(long, value_name = "FILE", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// Timeout per request, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
}

/// A live listing.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listing {
    pub image: String,
    pub canonical_image_name: String,
    pub tags: Vec<String>,
    pub tag_count: usize,
    pub revision: String,
    pub pages: u32,
    pub requests: u64,
}

fn read(path: &PathBuf, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{what} {}", path.display()))
}

/// Lists `image`'s tags with the given registry settings.
pub fn fetch(image: &str, args: &RegistryArgs) -> anyhow::Result<Listing> {
    let name = ImageName::parse(image)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let credentials = match &args.docker_config {
            Some(p) => {
                DockerConfig::parse(&read(p, "--docker-config")?)?
                    .credentials_for(&name.registry)
                    .await?
            }
            None => None,
        };
        let opts = ClientOptions {
            insecure: args.insecure,
            ca_pem: args
                .ca_file
                .as_ref()
                .map(|p| read(p, "--ca-file"))
                .transpose()?,
            client_cert: match (&args.cert_file, &args.key_file) {
                (Some(c), Some(k)) => Some((read(c, "--cert-file")?, read(k, "--key-file")?)),
                _ => None,
            },
            timeout: Duration::from_secs(args.timeout.max(1)),
            credentials,
            ..ClientOptions::default()
        };
        let gates = Gates::new(Limits::default());
        let client = RepoClient::new(&name, opts, &gates)?;
        let listing = client.list_tags().await?;
        let mut tags = listing.tags;
        scan::sort_desc(&mut tags);
        tags.dedup();
        let revision = scan::revision(&tags);
        Ok(Listing {
            image: image.to_owned(),
            canonical_image_name: name.canonical(),
            tag_count: tags.len(),
            tags,
            revision,
            pages: listing.pages,
            requests: gates
                .get(&name.registry)
                .requests
                .load(std::sync::atomic::Ordering::Relaxed),
        })
    })
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository, as in ImageRepository `spec.image` (no scheme, no tag).
    pub image: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let listing = fetch(&args.image, &args.registry)?;
    let mut out = io::stdout().lock();
    match args.output {
        Output::Text => {
            for t in &listing.tags {
                writeln!(out, "{t}")?;
            }
            out.flush()?;
            eprintln!(
                "{}: {} tags, revision {} ({} page{}, {} request{})",
                listing.canonical_image_name,
                listing.tag_count,
                listing.revision,
                listing.pages,
                if listing.pages == 1 { "" } else { "s" },
                listing.requests,
                if listing.requests == 1 { "" } else { "s" }
            );
        }
        Output::Json => {
            serde_json::to_writer_pretty(&mut out, &listing)?;
            writeln!(out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
