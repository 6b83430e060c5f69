//! `tagpilot create image repository|policy|update NAME … --export`: flux's generators. They
//! print v1 YAML (a `---` line, keys sorted, durations as Go prints them) to save into the
//! configuration directory; there is no cluster to apply them to.

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
    pub what: Image,
}

#[derive(Debug, clap::Subcommand)]
pub enum Image {
    /// Generators for image automation objects.
    Image {
        #[command(subcommand)]
        kind: Kind,
    },
}

#[derive(Debug, clap::Args)]
pub struct Common {
    /// Namespace of the object.
    #[arg(short = 'n', long, default_value = "flux-system")]
    pub namespace: String,
    /// Interval (Go duration; default 1m).
    #[arg(long)]
    pub interval: Option<String>,
    /// Labels, `key=value`; repeatable.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Print the YAML instead of applying it (required: tagpilot has no cluster to apply to).
    #[arg(long)]
    pub export: bool,
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

fn meta(name: &str, c: &Common) -> anyhow::Result<ObjectMeta> {
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
    let Image::Image { kind } = args.what;
    let (export, object) = match kind {
        Kind::Repository {
            name,
            common,
            image,
            secret_ref,
            cert_ref,
            scan_timeout,
        } => {
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
                provider: Provider::Generic,
                exclusion_list: vec![tagpilot_policy::DEFAULT_EXCLUSION.to_owned()],
                insecure: false,
                access_from: None,
                suspend: false,
            };
            (
                common.export,
                Object::ImageRepository(manifest("ImageRepository", meta(&name, &common)?, spec)),
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
            };
            (
                common.export,
                Object::ImagePolicy(manifest("ImagePolicy", meta(&name, &common)?, spec)),
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
            };
            (
                common.export,
                Object::ImageUpdateAutomation(manifest(
                    "ImageUpdateAutomation",
                    meta(&name, &common)?,
                    spec,
                )),
            )
        }
    };
    let problems = object.validate();
    if let Some(p) = problems.first() {
        bail!("{p}");
    }
    if !export {
        bail!("tagpilot has no cluster to apply to: use --export and save the YAML in the configuration directory");
    }
    // serde_json's map is ordered by key, which gives flux's sorted output.
    let mut value = match &object {
        Object::ImageRepository(o) => serde_json::to_value(o)?,
        Object::ImagePolicy(o) => serde_json::to_value(o)?,
        Object::ImageUpdateAutomation(o) => serde_json::to_value(o)?,
        _ => bail!("unsupported object"),
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
    }
    print!("---\n{}", serde_yaml::to_string(&value)?);
    Ok(ExitCode::SUCCESS)
}
