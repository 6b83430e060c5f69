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

    /// Sends `req` (from [`Daemon::request`]) and reads the JSON answer; a refusal is the
    /// error, in the daemon's words.
    pub fn call(&self, req: reqwest::RequestBuilder) -> anyhow::Result<serde_json::Value> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let api = &self.api_address;
        runtime.block_on(async {
            let resp = req.send().await.with_context(|| {
                format!("cannot reach the tagpilot API at {api} (is `tagpilot run` running?)")
            })?;
            let status = resp.status();
            let body = resp.bytes().await?;
            if !status.is_success() {
                anyhow::bail!("{}", String::from_utf8_lossy(&body).trim());
            }
            Ok(serde_json::from_slice(&body)?)
        })
    }

    /// A request to the API, with the token and the header the daemon wants of controls.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let url = format!("http://{}{path}", self.api_address);
        let mut req = tagpilot_http::builder()
            .build()?
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
    /// Only objects whose condition matches, `type=status` or `type!=status`
    /// (`ready=false`), as flux's.
    #[arg(long, global = true)]
    pub status_selector: Option<String>,
    /// Keep printing: a row again whenever that object changes (one kind only).
    #[arg(short = 'w', long, global = true)]
    pub watch: bool,
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

/// The rows of one kind out of the daemon's objects.
type Rows<'a> = dyn Fn(&[Item], &str) -> Vec<Vec<String>> + 'a;

/// `--watch`: the table once, then a row again whenever its object's row changes. Polls the
/// API every second until interrupted.
fn watch(args: &Args, kind: &str, select: &Rows<'_>) -> anyhow::Result<ExitCode> {
    let mut shown: std::collections::BTreeSet<Vec<String>> = Default::default();
    let mut first = true;
    loop {
        let rows = select(&fetch(&args.daemon)?, kind);
        let fresh: Vec<Vec<String>> = rows.into_iter().filter(|r| !shown.contains(r)).collect();
        if first || !fresh.is_empty() {
            let header = (first && !args.no_header).then(|| header_of(kind, args.all_namespaces));
            print_table(header.as_deref(), &fresh);
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
        }
        first = false;
        shown.extend(fresh);
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn time(secs: Option<u64>) -> String {
    secs.map(tagpilot_api::rfc3339).unwrap_or_default()
}

/// Prints a table the way flux's (tablewriter 0.0.5 with flux's settings) does: every cell
/// padded to its column's width and followed by a tab, the header's last cell by a space; a
/// multi-line cell takes as many lines.
fn print_table(header: Option<&[&str]>, rows: &[Vec<String>]) {
    print!("{}", render_table(header, rows));
}

fn render_table(header: Option<&[&str]>, rows: &[Vec<String>]) -> String {
    let cols = header
        .map_or(0, <[&str]>::len)
        .max(rows.iter().map(Vec::len).max().unwrap_or(0));
    let width = |c: usize| {
        let cells = rows.iter().filter_map(|r| r.get(c)).flat_map(|s| s.lines());
        header
            .and_then(|h| h.get(c))
            .into_iter()
            .copied()
            .chain(cells)
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..cols).map(width).collect();
    let mut out = String::new();
    if let Some(h) = header {
        for (c, cell) in h.iter().enumerate() {
            let pad = if c + 1 == h.len() { " " } else { "\t" };
            out.push_str(&format!("{cell:w$}{pad}", w = widths[c]));
        }
        out.push('\n');
    }
    for r in rows {
        let lines: Vec<Vec<&str>> = r.iter().map(|cell| cell.split('\n').collect()).collect();
        let height = lines.iter().map(Vec::len).max().unwrap_or(1);
        for k in 0..height {
            for (c, cell) in lines.iter().enumerate() {
                let text = cell.get(k).copied().unwrap_or("");
                out.push_str(&format!("{text:w$}\t", w = widths[c]));
            }
            out.push('\n');
        }
    }
    out
}

/// flux's `--status-selector type=status` / `type!=status`, over the object's conditions
/// (case-insensitive, the last condition of the type).
fn status_filter(selector: Option<&str>) -> anyhow::Result<impl Fn(&Item) -> bool> {
    let parsed = match selector {
        None => None,
        Some(sel) => {
            let (negate, sep) = if sel.contains("!=") {
                (true, "!=")
            } else {
                (false, "=")
            };
            let Some((t, st)) = sel.split_once(sep) else {
                bail!("expected status selector in type=status or type!=status format, but found: {sel}");
            };
            Some((negate, t.to_owned(), st.to_owned()))
        }
    };
    Ok(move |i: &Item| {
        let Some((negate, t, st)) = &parsed else {
            return true;
        };
        let matched = i
            .status
            .conditions
            .iter()
            .rfind(|c| c.type_.as_str().eq_ignore_ascii_case(t))
            .is_some_and(|c| c.status.as_str().eq_ignore_ascii_case(st));
        matched != *negate
    })
}

/// The header of one kind's table; `-A` puts NAMESPACE first.
fn header_of(kind: &str, all_namespaces: bool) -> Vec<&'static str> {
    let columns: &[&str] = match kind {
        "ImageRepository" => &["NAME", "LAST SCAN", "SUSPENDED", "READY", "MESSAGE"],
        "ImagePolicy" => &["NAME", "IMAGE", "TAG", "READY", "MESSAGE"],
        "Receiver" | "Alert" => &["NAME", "SUSPENDED", "READY", "MESSAGE"],
        "Provider" => &["NAME", "READY", "MESSAGE"],
        _ => &["NAME", "LAST RUN", "SUSPENDED", "READY", "MESSAGE"],
    };
    let namespace = all_namespaces.then_some("NAMESPACE");
    namespace
        .into_iter()
        .chain(columns.iter().copied())
        .collect()
}

/// One object's row, in [`header_of`]'s columns.
fn row_of(kind: &str, i: &Item, prefix: bool, all_namespaces: bool) -> Vec<String> {
    // flux: no Ready condition yet reads as False, "waiting to be reconciled".
    let (ready, message) = match i.status.condition(tagpilot_api::ConditionType::Ready) {
        Some(c) => (c.status.as_str().to_owned(), i.message()),
        None => ("False".to_owned(), "waiting to be reconciled".to_owned()),
    };
    // flux prints strconv.FormatBool title-cased.
    let suspended =
        if i.status.suspended || i.status.message() == tagpilot_api::SUSPENDED_MESSAGE {
            "True"
        } else {
            "False"
        }
        .to_owned();
    let name = if prefix {
        format!("{}/{}", kind.to_lowercase(), i.name)
    } else {
        i.name.clone()
    };
    let field = |f: &str, k: &str| i.status.field(f)[k].as_str().unwrap_or("").to_owned();
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
            field("latestRef", "name"),
            field("latestRef", "tag"),
            ready,
            message,
        ],
        "Receiver" | "Alert" => vec![name, suspended, ready, message],
        "Provider" => vec![name, ready, message],
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
    if all_namespaces {
        row.insert(0, i.namespace.clone());
    }
    row
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
    let keep = status_filter(args.status_selector.as_deref())?;
    let select = |items: &[Item], kind: &str| -> Vec<Vec<String>> {
        let mut selected: Vec<&Item> = items
            .iter()
            .filter(|i| i.kind == kind)
            .filter(|i| args.all_namespaces || i.namespace == args.daemon.namespace)
            .filter(|i| only_name.as_ref().is_none_or(|n| &i.name == n))
            .filter(|i| keep(i))
            .collect();
        selected.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        selected
            .into_iter()
            .map(|i| row_of(kind, i, prefix, args.all_namespaces))
            .collect()
    };
    let scope = if args.all_namespaces {
        "any".to_owned()
    } else {
        args.daemon.namespace.clone()
    };
    if args.watch {
        let [kind] = kinds[..] else {
            bail!("expected a single resource type, but found all");
        };
        return watch(&args, kind, &select);
    }
    for kind in &kinds {
        let rows = select(&items, kind);
        if rows.is_empty() {
            // flux: an error for one kind, silence for `all`.
            if prefix {
                continue;
            }
            match &only_name {
                Some(n) => bail!("{kind} object '{n}' not found in {scope} namespace"),
                None => bail!("no {kind} objects found in {scope} namespace"),
            }
        }
        let header = (!args.no_header).then(|| header_of(kind, args.all_namespaces));
        print_table(header.as_deref(), &rows);
        if prefix {
            println!();
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::render_table;

    #[test]
    fn tables_are_laid_out_as_flux_prints_them() {
        // tablewriter 0.0.5 as flux sets it up: no borders, padding "\t", no white space;
        // cells padded to the column width, then a tab; the header's last cell then a space.
        let rows = vec![
            vec!["podinfo".to_owned(), "True".to_owned(), "ok".to_owned()],
            vec!["a".to_owned(), "False".to_owned(), "two\nlines".to_owned()],
        ];
        assert_eq!(
            render_table(Some(&["NAME", "READY", "MESSAGE"]), &rows),
            "NAME   \tREADY\tMESSAGE \npodinfo\tTrue \tok     \t\na      \tFalse\ttwo    \t\n       \t     \tlines  \t\n"
        );
        assert_eq!(render_table(None, &rows[..1]), "podinfo\tTrue\tok\t\n");
    }
}
