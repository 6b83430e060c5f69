//! `tagpilot scan IMAGE`: list a repository's tags live, as an ImageRepository scan does.
//! The tags go to stdout (one per line, descending byte order, as Flux stores them); the count
//! and revision go to stderr, or everything to stdout as JSON.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tagpilot_registry::{
    scan, ClientOptions, DockerConfig, Gates, ImageName, Limits, ProxySpec, RepoClient,
};

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
    /// Proxy for registry requests, `http://[user:password@]host:port` (else HTTPS_PROXY,
    /// HTTP_PROXY and ALL_PROXY apply).
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Timeout per request, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
    /// Requests in flight per registry host.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_concurrent)]
    pub max_concurrent: usize,
    /// A hard cap on requests started per second per registry host (0: none, the rate adapts).
    #[arg(long, value_name = "RATE", default_value_t = Limits::default().requests_per_second)]
    pub rps: f64,
}

impl RegistryArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_concurrent: self.max_concurrent.max(1),
            requests_per_second: self.rps.max(0.0),
            ..Limits::default()
        }
    }
}

/// `http://user:password@host:port` → the address and the credentials apart.
fn proxy_spec(url: &str) -> anyhow::Result<ProxySpec> {
    let mut u = url::Url::parse(url).with_context(|| "--proxy: not a URL".to_owned())?;
    let username = (!u.username().is_empty()).then(|| u.username().to_owned());
    let password = u.password().map(str::to_owned);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    Ok(ProxySpec {
        address: u.to_string(),
        username,
        password,
    })
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let gates = Gates::new(args.limits());
    let config = docker_config(args)?;
    runtime.block_on(fetch_one(image, args, config.as_ref(), &gates))
}

fn docker_config(args: &RegistryArgs) -> anyhow::Result<Option<DockerConfig>> {
    args.docker_config
        .as_ref()
        .map(|p| Ok(DockerConfig::parse(&read(p, "--docker-config")?)?))
        .transpose()
}

/// A client for `image` with the registry flags (for `resolve --explain`'s platform gate).
pub async fn client(image: &str, args: &RegistryArgs, gates: &Gates) -> anyhow::Result<RepoClient> {
    let config = docker_config(args)?;
    let name = ImageName::parse(image)?;
    repo_client(&name, args, config.as_ref(), gates).await
}

async fn repo_client(
    name: &ImageName,
    args: &RegistryArgs,
    config: Option<&DockerConfig>,
    gates: &Gates,
) -> anyhow::Result<RepoClient> {
    let credentials = match config {
        Some(c) => c.credentials_for(&name.registry).await?,
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
        proxy: args.proxy.as_deref().map(proxy_spec).transpose()?,
        ..ClientOptions::default()
    };
    Ok(RepoClient::new(name, opts, gates)?)
}

async fn fetch_one(
    image: &str,
    args: &RegistryArgs,
    config: Option<&DockerConfig>,
    gates: &Gates,
) -> anyhow::Result<Listing> {
    let name = ImageName::parse(image)?;
    let client = repo_client(&name, args, config, gates).await?;
    let listing = client
        .list_tags()
        .await
        .with_context(|| format!("scanning {image}"))?;
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
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository, as in ImageRepository `spec.image` (no scheme, no tag). Several may be
    /// given: they are scanned concurrently within the per-host limits.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Record the listings in this state store (redb file), applying the never-downgrade rule.
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.images.len() == 1 && args.store.is_none() {
        return run_one(&args);
    }
    let store = args
        .store
        .as_ref()
        .map(|p| tagpilot_store::Store::open(p))
        .transpose()?;
    let config = docker_config(&args.registry)?;
    let gates = Gates::new(args.registry.limits());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results: Vec<anyhow::Result<Listing>> = runtime.block_on(async {
        let futures = args
            .images
            .iter()
            .map(|i| fetch_one(i, &args.registry, config.as_ref(), &gates));
        // Concurrent on one thread; the per-host gates bound the load.
        futures_util::future::join_all(futures).await
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut failed = 0;
    let mut out = io::stdout().lock();
    let mut accepted: Vec<&Listing> = Vec::new();
    let mut json = Vec::new();
    for (image, result) in args.images.iter().zip(&results) {
        match result {
            Err(e) => {
                failed += 1;
                eprintln!("error: {image}: {}", crate::format_chain(e));
            }
            Ok(l) => {
                let verdict = match &store {
                    Some(s) => {
                        let meta = s.repo_meta(&l.canonical_image_name)?;
                        scan::judge(
                            meta.as_ref().map(|m| m.tag_count),
                            meta.as_ref().and_then(|m| m.pending_revision.as_deref()),
                            &l.revision,
                            l.tag_count,
                            0.5,
                        )
                    }
                    None => scan::Verdict::Accept,
                };
                match verdict {
                    scan::Verdict::Accept => accepted.push(l),
                    scan::Verdict::Hold { reason } => {
                        eprintln!("warning: {}: {reason}", l.canonical_image_name);
                        if let Some(s) = &store {
                            s.set_pending(&l.canonical_image_name, Some(&l.revision))?;
                        }
                    }
                }
                match args.output {
                    Output::Text => writeln!(
                        out,
                        "{} {} tags {}",
                        l.canonical_image_name, l.tag_count, l.revision
                    )?,
                    Output::Json => json.push(l),
                }
            }
        }
    }
    if let Some(s) = &store {
        // Batches keep each transaction (and the memory it needs) small.
        for chunk in accepted.chunks(100) {
            let batch: Vec<(&str, &[String], &str)> = chunk
                .iter()
                .map(|l| {
                    (
                        l.canonical_image_name.as_str(),
                        l.tags.as_slice(),
                        l.revision.as_str(),
                    )
                })
                .collect();
            s.record_scans(&batch, now)?;
        }
    }
    if args.output == Output::Json {
        serde_json::to_writer_pretty(&mut out, &json)?;
        writeln!(out)?;
    }
    out.flush()?;
    eprintln!("{} scanned, {} failed", results.len() - failed, failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_one(args: &Args) -> anyhow::Result<ExitCode> {
    let listing = fetch(&args.images[0], &args.registry)?;
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
