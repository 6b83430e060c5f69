//! `tagpilot create image repository|policy|update`, `create source git`, `create secret
//! git|oci`, `create receiver` NAME … `--export`: flux's generators. They print v1 YAML (a `---`
//! line, keys sorted, durations as Go prints them) to save into the configuration directory;
//! there is no cluster to apply them to.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::bail;
use tagpilot_api::{
    CommitSpec, CommitUser, CrossNamespaceSourceReference, DigestReflectionPolicy, GitCheckoutSpec,
    GitRepositoryRef, GitSpec, GoDuration, ImagePolicyChoice, ImagePolicySpec, ImageRepositorySpec,
    ImageUpdateAutomationSpec, LocalObjectReference, Manifest, NamespacedObjectReference, Object,
    ObjectMeta, OrderPolicy, Provider, PushSpec, SemVerPolicy, SigningKey, SigningKeyType,
    TagFilterSpec, Timeout, UpdateStrategy, UpdateStrategyName,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// Generators for image automation objects.
    Image {
        #[command(subcommand)]
        kind: Kind,
    },
    /// Generators for sources.
    Source {
        #[command(subcommand)]
        kind: SourceKind,
    },
    /// Generators for Secrets.
    Secret {
        #[command(subcommand)]
        kind: SecretKind,
    },
    /// A webhook Receiver.
    Receiver {
        name: String,
        #[command(flatten)]
        common: Plain,
        /// github, gitlab, bitbucket, harbor, dockerhub, quay, gcr, nexus, acr, generic,
        /// generic-hmac, cdevents.
        #[arg(long = "type")]
        receiver_type: Option<String>,
        /// An event to handle (github: push, ping, …); repeatable or comma-separated.
        #[arg(long = "event", value_delimiter = ',')]
        events: Vec<String>,
        /// A resource to reconcile, `Kind/name` or `Kind/namespace/name`; repeatable or
        /// comma-separated.
        #[arg(long = "resource", value_delimiter = ',')]
        resources: Vec<String>,
        /// The Secret whose `token` key authenticates the webhook.
        #[arg(long)]
        secret_ref: Option<String>,
    },
}

/// Namespace, labels and `--export`, for generators without an interval.
#[derive(Debug, clap::Args)]
pub struct Plain {
    /// Namespace of the object.
    #[arg(short = 'n', long, default_value = "flux-system")]
    pub namespace: String,
    /// Labels, `key=value`; repeatable.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Print the YAML instead of applying it (required: tagpilot has no cluster to apply to).
    #[arg(long)]
    pub export: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum SourceKind {
    /// A GitRepository.
    Git {
        name: String,
        #[command(flatten)]
        common: Common,
        /// ssh://, https://, http://, git:// or file:// URL of the repository.
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        branch: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long = "tag-semver")]
        semver: Option<String>,
        #[arg(long)]
        commit: Option<String>,
        /// The Secret with the Git credentials.
        #[arg(long)]
        secret_ref: Option<String>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum SecretKind {
    /// Git credentials: `--username`/`--password` (HTTPS) or `--private-key-file` with
    /// `--known-hosts-file` (SSH).
    Git {
        name: String,
        #[command(flatten)]
        common: Plain,
        /// The repository URL (its scheme decides which credentials are needed).
        #[arg(long)]
        url: Option<String>,
        #[arg(short = 'u', long)]
        username: Option<String>,
        /// The basic-auth password (HTTPS) or the private key's password (SSH), as flux's.
        #[arg(short = 'p', long)]
        password: Option<String>,
        #[arg(long)]
        bearer_token: Option<String>,
        #[arg(long)]
        private_key_file: Option<std::path::PathBuf>,
        /// OpenSSH known_hosts lines for the server (tagpilot does not scan the host).
        #[arg(long)]
        known_hosts_file: Option<std::path::PathBuf>,
        /// A CA certificate for an HTTPS server with a private CA (`ca.crt`).
        #[arg(long)]
        ca_crt_file: Option<std::path::PathBuf>,
    },
    /// Registry credentials as a `kubernetes.io/dockerconfigjson` Secret.
    Oci {
        name: String,
        #[command(flatten)]
        common: Plain,
        /// The registry host, e.g. ghcr.io.
        #[arg(long)]
        url: Option<String>,
        #[arg(short = 'u', long)]
        username: Option<String>,
        #[arg(short = 'p', long)]
        password: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct Common {
    #[command(flatten)]
    pub plain: Plain,
    /// Interval (Go duration; default 1m).
    #[arg(long)]
    pub interval: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Kind {
    /// An ImageRepository.
    Repository {
        name: String,
        #[command(flatten)]
        common: Common,
        /// The repository to scan, e.g. ghcr.io/org/app.
        #[arg(long)]
        image: Option<String>,
        #[arg(long)]
        secret_ref: Option<String>,
        #[arg(long)]
        cert_ref: Option<String>,
        #[arg(long)]
        scan_timeout: Option<String>,
        /// Plain HTTP (and TLS without verification is never offered).
        #[arg(long)]
        insecure: bool,
        /// generic, aws, azure or gcp.
        #[arg(long, default_value = "generic")]
        provider: String,
        /// Regular expressions of tags to leave out; repeatable (replaces the default `^.*\.sig$`).
        #[arg(long = "exclusion-list")]
        exclusion_list: Vec<String>,
    },
    /// An ImagePolicy.
    Policy {
        name: String,
        #[command(flatten)]
        common: Common,
        /// The ImageRepository this policy reads.
        #[arg(long)]
        image_ref: Option<String>,
        #[arg(long)]
        select_semver: Option<String>,
        #[arg(long)]
        select_alpha: Option<String>,
        #[arg(long)]
        select_numeric: Option<String>,
        #[arg(long)]
        filter_regex: Option<String>,
        #[arg(long)]
        filter_extract: Option<String>,
        /// Never, IfNotPresent or Always.
        #[arg(long)]
        reflect_digest: Option<String>,
    },
    /// An ImageUpdateAutomation.
    Update {
        name: String,
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        git_repo_ref: Option<String>,
        #[arg(long)]
        git_repo_namespace: Option<String>,
        #[arg(long)]
        git_repo_path: Option<String>,
        #[arg(long)]
        checkout_branch: Option<String>,
        #[arg(long)]
        push_branch: Option<String>,
        #[arg(long)]
        author_name: Option<String>,
        #[arg(long)]
        author_email: Option<String>,
        #[arg(long)]
        commit_template: Option<String>,
        #[arg(long)]
        signing_key_secret: Option<String>,
        /// gpg or ssh.
        #[arg(long, default_value = "gpg")]
        signing_key_type: String,
    },
}

fn meta(name: &str, c: &Plain) -> anyhow::Result<ObjectMeta> {
    let mut m = ObjectMeta::new(name, &c.namespace);
    for l in &c.labels {
        let Some((k, v)) = l.split_once('=') else {
            bail!("invalid label format '{l}', must be key=value")
        };
        m.labels.insert(k.to_owned(), v.to_owned());
    }
    Ok(m)
}

fn interval(c: &Common) -> anyhow::Result<GoDuration> {
    GoDuration::parse(c.interval.as_deref().unwrap_or("1m"))
        .map_err(|e| anyhow::anyhow!("invalid --interval: {e}"))
}

fn manifest<S>(kind: &str, metadata: ObjectMeta, spec: S) -> Manifest<S> {
    Manifest {
        api_version: "image.toolkit.fluxcd.io/v1".into(),
        kind: kind.into(),
        metadata,
        spec,
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let kind = match args.what {
        What::Image { kind } => kind,
        What::Source { kind } => return print(source(kind)?),
        What::Secret { kind } => return print(secret(kind)?),
        What::Receiver {
            name,
            common,
            receiver_type,
            events,
            resources,
            secret_ref,
        } => {
            return print(receiver(
                name,
                common,
                receiver_type,
                events,
                resources,
                secret_ref,
            )?)
        }
    };
    let (export, object) = match kind {
        Kind::Repository {
            name,
            common,
            image,
            secret_ref,
            cert_ref,
            scan_timeout,
            insecure,
            provider,
            exclusion_list,
        } => {
            let provider = match provider.as_str() {
                "generic" => Provider::Generic,
                "aws" => Provider::Aws,
                "azure" => Provider::Azure,
                "gcp" => Provider::Gcp,
                other => {
                    bail!("invalid --provider '{other}': must be one of generic, aws, azure, gcp")
                }
            };
            let exclusion_list = if exclusion_list.is_empty() {
                vec![tagpilot_policy::DEFAULT_EXCLUSION.to_owned()]
            } else {
                exclusion_list
            };
            let image = image
                .ok_or_else(|| anyhow::anyhow!("an image repository (--image) is required"))?;
            tagpilot_registry::ImageName::parse(&image)
                .map_err(|e| anyhow::anyhow!("unable to parse image value: {e}"))?;
            let spec = ImageRepositorySpec {
                image,
                interval: interval(&common)?,
                timeout: scan_timeout
                    .map(|t| {
                        GoDuration::parse_timeout(&t)
                            .map(Timeout)
                            .map_err(|e| anyhow::anyhow!("invalid --scan-timeout: {e}"))
                    })
                    .transpose()?,
                secret_ref: secret_ref.map(|name| LocalObjectReference { name }),
                cert_secret_ref: cert_ref.map(|name| LocalObjectReference { name }),
                proxy_secret_ref: None,
                service_account_name: None,
                provider,
                exclusion_list,
                insecure,
                access_from: None,
                suspend: false,
            };
            (
                common.plain.export,
                Object::ImageRepository(manifest(
                    "ImageRepository",
                    meta(&name, &common.plain)?,
                    spec,
                )),
            )
        }
        Kind::Policy {
            name,
            common,
            image_ref,
            select_semver,
            select_alpha,
            select_numeric,
            filter_regex,
            filter_extract,
            reflect_digest,
        } => {
            let image_ref = image_ref
                .ok_or_else(|| anyhow::anyhow!("the image repository (--image-ref) is required"))?;
            if select_alpha.is_some() && select_numeric.is_some() {
                bail!("only one of --select-alpha or --select-numeric can be specified");
            }
            // flux silently produces a policy with no choice here; refuse instead.
            if select_semver.is_some() && (select_alpha.is_some() || select_numeric.is_some()) {
                bail!("only one of --select-semver, --select-alpha or --select-numeric can be specified");
            }
            let policy = ImagePolicyChoice {
                semver: select_semver.map(|range| SemVerPolicy { range }),
                alphabetical: select_alpha.map(|order| OrderPolicy { order }),
                numerical: select_numeric.map(|order| OrderPolicy { order }),
            };
            if filter_extract.is_some() && filter_regex.is_none() {
                bail!("cannot specify --filter-extract without specifying --filter-regex");
            }
            let filter_tags = filter_regex.map(|pattern| TagFilterSpec {
                pattern,
                extract: filter_extract.unwrap_or_default(),
            });
            let digest = match reflect_digest.as_deref() {
                None | Some("Never") => DigestReflectionPolicy::Never,
                Some("IfNotPresent") => DigestReflectionPolicy::IfNotPresent,
                Some("Always") => DigestReflectionPolicy::Always,
                Some(other) => bail!("invalid --reflect-digest '{other}': must be one of Never, IfNotPresent, Always"),
            };
            let policy_interval = match (digest, common.interval.is_some()) {
                (DigestReflectionPolicy::Always, _) => Some(interval(&common)?),
                (_, true) => {
                    bail!("the --interval flag can only be used with --reflect-digest=Always")
                }
                _ => None,
            };
            let spec = ImagePolicySpec {
                image_repository_ref: NamespacedObjectReference {
                    name: image_ref,
                    namespace: None,
                },
                policy,
                filter_tags,
                digest_reflection_policy: digest,
                interval: policy_interval,
                suspend: false,
                gates: None,
            };
            (
                common.plain.export,
                Object::ImagePolicy(manifest("ImagePolicy", meta(&name, &common.plain)?, spec)),
            )
        }
        Kind::Update {
            name,
            common,
            git_repo_ref,
            git_repo_namespace,
            git_repo_path,
            checkout_branch,
            push_branch,
            author_name,
            author_email,
            commit_template,
            signing_key_secret,
            signing_key_type,
        } => {
            let source = git_repo_ref.ok_or_else(|| {
                anyhow::anyhow!("a reference to a GitRepository is required (--git-repo-ref)")
            })?;
            let branch = checkout_branch.ok_or_else(|| {
                anyhow::anyhow!(
                    "the Git repository branch to checkout is required (--checkout-branch)"
                )
            })?;
            let author_name = author_name
                .ok_or_else(|| anyhow::anyhow!("the author name (--author-name) is required"))?;
            let author_email = author_email
                .ok_or_else(|| anyhow::anyhow!("the author email (--author-email) is required"))?;
            let key_type = match signing_key_type.as_str() {
                "gpg" => SigningKeyType::Gpg,
                "ssh" => SigningKeyType::Ssh,
                other => bail!("invalid --signing-key-type '{other}': must be gpg or ssh"),
            };
            let spec = ImageUpdateAutomationSpec {
                source_ref: CrossNamespaceSourceReference {
                    api_version: None,
                    kind: "GitRepository".into(),
                    name: source,
                    namespace: git_repo_namespace,
                },
                interval: interval(&common)?,
                git: GitSpec {
                    checkout: Some(GitCheckoutSpec {
                        reference: GitRepositoryRef {
                            branch: Some(branch),
                            ..Default::default()
                        },
                    }),
                    commit: CommitSpec {
                        author: CommitUser {
                            name: author_name,
                            email: author_email,
                        },
                        signing_key: signing_key_secret.map(|name| SigningKey {
                            secret_ref: LocalObjectReference { name },
                            key_type,
                        }),
                        message_template: commit_template,
                        message_template_values: BTreeMap::new(),
                    },
                    push: push_branch.map(|b| PushSpec {
                        branch: Some(b),
                        ..Default::default()
                    }),
                },
                update: UpdateStrategy {
                    strategy: UpdateStrategyName::Setters,
                    path: git_repo_path,
                },
                policy_selector: None,
                suspend: false,
                manual_changes: Default::default(),
                windows: Vec::new(),
            };
            (
                common.plain.export,
                Object::ImageUpdateAutomation(Box::new(manifest(
                    "ImageUpdateAutomation",
                    meta(&name, &common.plain)?,
                    spec,
                ))),
            )
        }
    };
    print((export, object))
}

/// Validates the object and prints it as flux's `--export` does.
fn print((export, object): (bool, Object)) -> anyhow::Result<ExitCode> {
    let problems = object.validate();
    if let Some(p) = problems.first() {
        bail!("{p}");
    }
    if !export {
        bail!("tagpilot has no cluster to apply to: use --export and save the YAML in the configuration directory");
    }
    print!("{}", to_yaml(&object)?);
    Ok(ExitCode::SUCCESS)
}

/// An object as flux's `--export` and `flux export` print it: `---`, keys sorted, CRD defaults
/// left implicit.
pub(crate) fn to_yaml(object: &Object) -> anyhow::Result<String> {
    // serde_json's map is ordered by key, which gives flux's sorted output.
    let mut value = match &object {
        Object::ImageRepository(o) => serde_json::to_value(o)?,
        Object::ImagePolicy(o) => serde_json::to_value(o)?,
        Object::ImageUpdateAutomation(o) => serde_json::to_value(o)?,
        Object::GitRepository(o) => serde_json::to_value(o)?,
        Object::Receiver(o) => serde_json::to_value(o)?,
        Object::Secret(o) => serde_json::to_value(o)?,
        Object::Provider(o) => serde_json::to_value(o)?,
        Object::Alert(o) => serde_json::to_value(o)?,
    };
    // Like flux, print only what the flags set: CRD defaults stay implicit.
    if let Some(spec) = value.get_mut("spec").and_then(|s| s.as_object_mut()) {
        if spec.get("provider").and_then(|p| p.as_str()) == Some("generic") {
            spec.remove("provider");
        }
        if spec.get("exclusionList")
            == Some(&serde_json::json!([tagpilot_policy::DEFAULT_EXCLUSION]))
        {
            spec.remove("exclusionList");
        }
        if spec.get("update") == Some(&serde_json::json!({"strategy": "Setters"})) {
            spec.remove("update");
        }
        if matches!(object, Object::Receiver(_)) && spec.get("interval") == Some(&"10m0s".into()) {
            spec.remove("interval");
        }
    }
    Ok(format!("---\n{}", tagpilot_yaml::to_string(&value)?))
}

fn source(kind: SourceKind) -> anyhow::Result<(bool, Object)> {
    let SourceKind::Git {
        name,
        common,
        url,
        branch,
        tag,
        semver,
        commit,
        secret_ref,
    } = kind;
    let url = url.ok_or_else(|| anyhow::anyhow!("url is required"))?;
    if branch.is_none() && tag.is_none() && semver.is_none() && commit.is_none() {
        bail!("a Git ref is required, use one of the following: --branch, --tag, --commit or --tag-semver");
    }
    let spec = tagpilot_api::GitRepositorySpec {
        url,
        interval: interval(&common)?,
        reference: Some(GitRepositoryRef {
            branch,
            tag,
            semver,
            name: None,
            commit,
        }),
        secret_ref: secret_ref.map(|name| LocalObjectReference { name }),
        proxy_secret_ref: None,
        timeout: None,
        provider: None,
        suspend: false,
    };
    let object = Manifest {
        api_version: "source.toolkit.fluxcd.io/v1".into(),
        kind: "GitRepository".into(),
        metadata: meta(&name, &common.plain)?,
        spec,
    };
    Ok((common.plain.export, Object::GitRepository(object)))
}

fn secret(kind: SecretKind) -> anyhow::Result<(bool, Object)> {
    use base64::Engine as _;
    let read = |p: &std::path::Path, what: &str| {
        std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("reading {what} {}: {e}", p.display()))
    };
    let (name, common, secret_type, data) = match kind {
        SecretKind::Git {
            name,
            common,
            url,
            username,
            password,
            bearer_token,
            private_key_file,
            known_hosts_file,
            ca_crt_file,
        } => {
            let url = url.ok_or_else(|| anyhow::anyhow!("url is required"))?;
            let mut data = BTreeMap::new();
            match url.split_once("://").map(|(scheme, _)| scheme) {
                Some("ssh") => {
                    let key = private_key_file.ok_or_else(|| {
                        anyhow::anyhow!("--private-key-file is required for ssh:// URLs (tagpilot does not generate keys)")
                    })?;
                    let hosts = known_hosts_file.ok_or_else(|| {
                        anyhow::anyhow!("--known-hosts-file is required for ssh:// URLs (tagpilot does not scan hosts)")
                    })?;
                    data.insert("identity".to_owned(), read(&key, "the private key")?);
                    let public = key.with_extension("pub");
                    if let Ok(p) = std::fs::read_to_string(&public) {
                        data.insert("identity.pub".to_owned(), p);
                    }
                    data.insert("known_hosts".to_owned(), read(&hosts, "known_hosts")?);
                    if let Some(p) = password {
                        data.insert("password".to_owned(), p);
                    }
                }
                Some("http" | "https") => {
                    match (username, password, bearer_token) {
                        (Some(_), Some(_), Some(_)) => {
                            bail!("user credentials and bearer token cannot be used together")
                        }
                        (Some(u), Some(p), None) => {
                            data.insert("username".to_owned(), u);
                            data.insert("password".to_owned(), p);
                        }
                        (_, _, Some(t)) => {
                            data.insert("bearerToken".to_owned(), t);
                        }
                        _ => bail!("for Git over HTTP/S the username and password, or a bearer token is required"),
                    }
                    if let Some(ca) = ca_crt_file {
                        data.insert("ca.crt".to_owned(), read(&ca, "the CA certificate")?);
                    }
                }
                _ => bail!("git URL scheme '{url}' not supported, can be: ssh, http and https"),
            }
            (name, common, None, data)
        }
        SecretKind::Oci {
            name,
            common,
            url,
            username,
            password,
        } => {
            let url = url.ok_or_else(|| anyhow::anyhow!("--url is required"))?;
            let (Some(username), Some(password)) = (username, password) else {
                bail!("--username and --password are required");
            };
            let auth =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            // In the field order of flux's (Go's) struct, not sorted.
            #[derive(serde::Serialize)]
            struct Entry {
                username: String,
                password: String,
                auth: String,
            }
            #[derive(serde::Serialize)]
            struct Config {
                auths: BTreeMap<String, Entry>,
            }
            let config = serde_json::to_string(&Config {
                auths: BTreeMap::from([(
                    url,
                    Entry {
                        username,
                        password,
                        auth,
                    },
                )]),
            })?;
            let data = BTreeMap::from([(".dockerconfigjson".to_owned(), config)]);
            (
                name,
                common,
                Some("kubernetes.io/dockerconfigjson".to_owned()),
                data,
            )
        }
    };
    let object = tagpilot_api::Secret {
        api_version: "v1".into(),
        kind: "Secret".into(),
        metadata: meta(&name, &common)?,
        body: tagpilot_api::SecretBody {
            secret_type,
            data: BTreeMap::new(),
            string_data: data,
        },
    };
    Ok((common.export, Object::Secret(object)))
}

fn receiver(
    name: String,
    common: Plain,
    receiver_type: Option<String>,
    events: Vec<String>,
    resources: Vec<String>,
    secret_ref: Option<String>,
) -> anyhow::Result<(bool, Object)> {
    let receiver_type =
        receiver_type.ok_or_else(|| anyhow::anyhow!("Receiver type is required"))?;
    let receiver_type: tagpilot_api::ReceiverType =
        serde_json::from_value(serde_json::Value::String(receiver_type.clone()))
            .map_err(|_| anyhow::anyhow!("invalid --type '{receiver_type}'"))?;
    if resources.is_empty() {
        bail!("at least one resource is required");
    }
    let secret_ref = secret_ref.ok_or_else(|| anyhow::anyhow!("secret ref is required"))?;
    let resources = resources
        .iter()
        .map(|r| {
            let parts: Vec<&str> = r.split('/').collect();
            let (kind, namespace, name) = match parts[..] {
                [k, n] => (k, None, n),
                [k, ns, n] => (k, Some(ns.to_owned()), n),
                _ => bail!("invalid event source '{r}', must be in format <kind>/<name>"),
            };
            Ok(tagpilot_api::ReceiverResource {
                api_version: None,
                kind: kind.to_owned(),
                name: name.to_owned(),
                namespace,
                match_labels: BTreeMap::new(),
                filter: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let object = Manifest {
        api_version: "notification.toolkit.fluxcd.io/v1".into(),
        kind: "Receiver".into(),
        metadata: meta(&name, &common)?,
        spec: tagpilot_api::ReceiverSpec {
            receiver_type,
            interval: GoDuration::from_secs(600),
            events,
            resources,
            resource_filter: None,
            secret_ref: Some(LocalObjectReference { name: secret_ref }),
            oidc_providers: Vec::new(),
            suspend: false,
        },
    };
    Ok((common.export, Object::Receiver(object)))
}
