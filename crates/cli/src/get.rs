//! `tagpilot get images all [-A]`, `tagpilot get image repository|policy|update [NAME]`,
//! `get receivers`, `get alerts`, `get alert-providers`: flux's tables, read from a running
//! daemon's API.

use std::process::ExitCode;

use anyhow::{bail, Context};

/// Where the daemon's API is and which namespace is meant (shared by `get` and the controls).
#[derive(Debug, clap::Args)]
pub struct Daemon {
    /// The daemon's API address.
    #[arg(
        long,
        global = true,
        env = "TAGPILOT_API_ADDRESS",
        default_value = "127.0.0.1:9480"
    )]
    pub api_address: String,
    /// The namespace.
    #[arg(short = 'n', long, global = true, default_value = "flux-system")]
    pub namespace: String,
    /// A file holding the daemon's API token (its `--api-token-file`).
    #[arg(long, global = true, env = "TAGPILOT_API_TOKEN_FILE")]
    pub api_token_file: Option<std::path::PathBuf>,
}

impl Daemon {
    /// The API token, when a file is given.
    pub fn token(&self) -> anyhow::Result<Option<String>> {
        self.api_token_file
            .as_ref()
            .map(|p| {
                std::fs::read_to_string(p)
                    .map(|t| t.trim().to_owned())
                    .with_context(|| format!("reading the API token {}", p.display()))
            })
            .transpose()
    }

    /// A request to the API, with the token and the header the daemon wants of controls.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let url = format!("http://{}{path}", self.api_address);
        let mut req = reqwest::Client::new()
            .request(method, url)
            .timeout(std::time::Duration::from_secs(10))
            .header("X-Tagpilot-Client", "cli");
        if let Some(t) = self.token()? {
            req = req.bearer_auth(t);
        }
        Ok(req)
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
    #[command(flatten)]
    pub daemon: Daemon,
    /// All namespaces.
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// No header line.
    #[arg(long, global = true)]
    pub no_header: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// Every image automation object.
    Images {
        /// `all`
        which: String,
    },
    /// One kind of image automation object.
    Image {
        #[command(subcommand)]
        kind: ImageKind,
    },
    /// Webhook receivers and their paths.
    #[command(alias = "receiver")]
    Receivers { name: Option<String> },
    /// Alerts (post-push notification routes).
    #[command(alias = "alert")]
    Alerts { name: Option<String> },
    /// Alert providers and their last delivery.
    #[command(name = "alert-providers", alias = "alert-provider")]
    AlertProviders { name: Option<String> },
}

#[derive(Debug, clap::Subcommand)]
pub enum ImageKind {
    Repository { name: Option<String> },
    Policy { name: Option<String> },
    Update { name: Option<String> },
}

pub(crate) struct Item {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub status: tagpilot_api::Status,
}

impl Item {
    /// The first line of the Ready condition's message, as flux's tables show it, and why the
    /// manifest on disk does not run when it is invalid.
    pub fn message(&self) -> String {
        let first = self.status.message().lines().next().unwrap_or("");
        match &self.status.config_error {
            Some(e) => format!("{first} [{}]", e.lines().next().unwrap_or("")),
            None => first.to_owned(),
        }
    }
}

pub(crate) fn fetch(daemon: &Daemon) -> anyhow::Result<Vec<Item>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let req = daemon.request(reqwest::Method::GET, "/api/v1/objects")?;
    let api = &daemon.api_address;
    let body: serde_json::Value = runtime.block_on(async {
        let resp = req.send().await.with_context(|| {
            format!("cannot reach the tagpilot API at {api} (is `tagpilot run` running?)")
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            bail!(
                "http://{api}/api/v1/objects: {status}: {}",
                String::from_utf8_lossy(&bytes).trim()
            );
        }
        Ok::<_, anyhow::Error>(serde_json::from_slice(&bytes)?)
    })?;
    Ok(body["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| Item {
                    kind: i["kind"].as_str().unwrap_or("").to_owned(),
                    namespace: i["namespace"].as_str().unwrap_or("").to_owned(),
                    name: i["name"].as_str().unwrap_or("").to_owned(),
                    status: tagpilot_api::Status::from_value(i["status"].clone()),
                })
                .collect()
        })
        .unwrap_or_default())
}

fn time(secs: Option<u64>) -> String {
    secs.map(tagpilot_api::rfc3339).unwrap_or_default()
}

fn print(rows: Vec<Vec<String>>) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:w$}\t", w = widths[c]));
            }
        }
        println!("{}", line.trim_end());
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let items = fetch(&args.daemon)?;
    let (kinds, only_name, prefix): (Vec<&str>, Option<String>, bool) = match &args.what {
        What::Images { which } if which == "all" => (
            vec!["ImageRepository", "ImagePolicy", "ImageUpdateAutomation"],
            None,
            true,
        ),
        What::Images { which } => bail!("unknown '{which}': use `get images all`"),
        What::Image {
            kind: ImageKind::Repository { name },
        } => (vec!["ImageRepository"], name.clone(), false),
        What::Image {
            kind: ImageKind::Policy { name },
        } => (vec!["ImagePolicy"], name.clone(), false),
        What::Image {
            kind: ImageKind::Update { name },
        } => (vec!["ImageUpdateAutomation"], name.clone(), false),
        What::Receivers { name } => (vec!["Receiver"], name.clone(), false),
        What::Alerts { name } => (vec!["Alert"], name.clone(), false),
        What::AlertProviders { name } => (vec!["Provider"], name.clone(), false),
    };
    let mut first = true;
    let mut found = false;
    for kind in kinds {
        let mut selected: Vec<&Item> = items
            .iter()
            .filter(|i| i.kind == kind)
            .filter(|i| args.all_namespaces || i.namespace == args.daemon.namespace)
            .filter(|i| only_name.as_ref().is_none_or(|n| &i.name == n))
            .collect();
        if selected.is_empty() {
            continue;
        }
        selected.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        found = true;
        if !first {
            println!();
        }
        first = false;
        let header: Vec<&str> = match kind {
            "ImageRepository" => vec!["NAME", "LAST SCAN", "SUSPENDED", "READY", "MESSAGE"],
            "ImagePolicy" => vec!["NAME", "IMAGE", "TAG", "READY", "MESSAGE"],
            "Receiver" | "Alert" | "Provider" => vec!["NAME", "SUSPENDED", "READY", "MESSAGE"],
            _ => vec!["NAME", "LAST RUN", "SUSPENDED", "READY", "MESSAGE"],
        };
        let mut rows = Vec::new();
        if !args.no_header {
            let mut h: Vec<String> = header.iter().map(|s| (*s).to_owned()).collect();
            if args.all_namespaces {
                h.insert(0, "NAMESPACE".into());
            }
            rows.push(h);
        }
        for i in selected {
            let cond = i.status.condition(tagpilot_api::ConditionType::Ready);
            let message = i.message();
            let ready = cond.map_or("Unknown", |c| c.status.as_str()).to_owned();
            let suspended = (i.status.suspended
                || i.status.message() == tagpilot_api::SUSPENDED_MESSAGE)
                .to_string();
            let name = if prefix {
                format!("{}/{}", kind.to_lowercase(), i.name)
            } else {
                i.name.clone()
            };
            let mut row = match kind {
                "ImageRepository" => vec![
                    name,
                    time(i.status.field("lastScanResult")["scanTime"].as_u64()),
                    suspended,
                    ready,
                    message,
                ],
                "ImagePolicy" => vec![
                    name,
                    i.status.field("latestRef")["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    i.status.field("latestRef")["tag"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    ready,
                    message,
                ],
                "Receiver" | "Alert" | "Provider" => vec![name, suspended, ready, message],
                _ => vec![
                    name,
                    // Flux's LAST RUN: the automation's last round.
                    i.status
                        .field("lastAutomationRunTime")
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    suspended,
                    ready,
                    message,
                ],
            };
            if args.all_namespaces {
                row.insert(0, i.namespace.clone());
            }
            rows.push(row);
        }
        print(rows);
    }
    if !found {
        eprintln!(
            "no image automation objects found in {}",
            if args.all_namespaces {
                "any namespace".to_owned()
            } else {
                format!("{} namespace", args.daemon.namespace)
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
