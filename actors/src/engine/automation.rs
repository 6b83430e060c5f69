//! ImageUpdateAutomation: plans (GitRepository, push branch, auth, signer, the policies it
//! selects) and the Git rounds of one remote, one branch after the other.

use super::*;
use tagpilot_reconcile::manual::{self, ManualState};

/// The holds of an automation, for its status line.
fn manual_note(state: &ManualState) -> Option<String> {
    let held: Vec<String> = state
        .holds
        .iter()
        .filter(|(_, h)| !h.released)
        .map(|(p, h)| {
            format!(
                "{p} kept at {} by a manual change until a tag above {}",
                h.value, h.moved_away_from
            )
        })
        .collect();
    (!held.is_empty()).then(|| held.join("; "))
}

impl Engine {
    /// Runs every automation; automations writing the same remote share one round per branch.
    pub fn automations(&self) {
        self.automations_for(None);
    }

    /// Records why an automation can never run (no GitRepository, no push branch, a bad
    /// signing key, …) at load, not at its first round. Suspended ones are not reported.
    pub fn check_automations(&self) {
        for a in self.config.all::<ImageUpdateAutomation>() {
            if self.is_suspended(Kind::ImageUpdateAutomation, &a.metadata, a.spec.suspend) {
                continue;
            }
            if let Err(e) = self.plan(a) {
                self.plan_failed(a, &e);
            }
        }
    }

    /// The manual-change state of a `manualChanges: hold` automation, with the holds that end
    /// now (a tag above the one the person left, or a release request) marked released.
    fn manual_state(
        &self,
        a: &ImageUpdateAutomation,
        policies: &Policies,
        pending: &[(String, String)],
    ) -> (ManualState, Vec<(String, String)>) {
        let key = format!("{}/{}", a.metadata.namespace, a.metadata.name);
        let mut state: ManualState = match self.store.manual_state(&key) {
            Ok(Some(v)) => serde_json::from_value(v).unwrap_or_else(|e| {
                tracing::warn!(kind = "ImageUpdateAutomation", namespace = %a.metadata.namespace, name = %a.metadata.name, error = %e, "stored manual holds unreadable; starting afresh");
                ManualState::default()
            }),
            Ok(None) => ManualState::default(),
            Err(e) => {
                tracing::warn!(kind = "ImageUpdateAutomation", namespace = %a.metadata.namespace, name = %a.metadata.name, error = %e, "cannot read manual holds");
                ManualState::default()
            }
        };
        // This automation's requests (`automation|policy` → token); one for a policy it does
        // not hold is moot and retired with the others.
        let releases: Vec<(String, String)> = pending
            .iter()
            .filter(|(k, _)| k.split_once('|').is_some_and(|(auto, _)| auto == key))
            .cloned()
            .collect();
        let requested: Vec<&str> = releases
            .iter()
            .filter_map(|(k, _)| k.split_once('|').map(|(_, p)| p))
            .collect();
        let latest = |p: &str| {
            let (ns, n) = p.split_once('/')?;
            policies
                .get(&(ns.to_owned(), n.to_owned()))
                .map(|l| l.tag.clone())
        };
        let cmp = |p: &str, x: &str, y: &str| {
            let (ns, n) = p.split_once('/')?;
            let policy = self.config.find::<ImagePolicy>(ns, n)?;
            build_policy(&policy.spec).ok()?.compare(x, y)
        };
        for p in manual::release(&mut state, &requested, latest, cmp) {
            tracing::info!(kind = "ImageUpdateAutomation", namespace = %a.metadata.namespace, name = %a.metadata.name, policy = %p, "manual hold released");
        }
        (state, releases)
    }

    /// After a successful round: records what the markers are at now and the holds, and
    /// retires the release requests applied.
    fn settle_manual(
        &self,
        a: &ImageUpdateAutomation,
        state: &mut ManualState,
        policies: &Policies,
        releases: &[(String, String)],
    ) {
        let latest: BTreeMap<String, manual::Written> = policies
            .iter()
            .map(|((ns, n), l)| {
                (
                    format!("{ns}/{n}"),
                    manual::Written {
                        name: l.name.clone(),
                        tag: l.tag.clone(),
                        digest: l.digest.clone(),
                    },
                )
            })
            .collect();
        manual::settle(state, &latest);
        let key = format!("{}/{}", a.metadata.namespace, a.metadata.name);
        let value = serde_json::to_value(&*state).unwrap_or_default();
        if let Err(e) = self.store.put_manual_state(&key, &value) {
            tracing::warn!(kind = "ImageUpdateAutomation", namespace = %a.metadata.namespace, name = %a.metadata.name, error = %e, "cannot store manual holds");
        }
        for (policy, token) in releases {
            if let Err(e) = self.store.release_done(policy, token) {
                tracing::warn!(policy = %policy, error = %e, "cannot retire a release request");
            }
        }
    }

    /// How long until a change window of a closed automation on remote `url` opens (a round
    /// then pushes what waited); None when none waits for one.
    pub fn until_window_opens(&self, url: &str) -> Option<std::time::Duration> {
        use tagpilot_api::gates::{window_state, WindowState};
        let now = (self.shared.clock)();
        self.config
            .all::<ImageUpdateAutomation>()
            .filter(|a| !a.spec.windows.is_empty())
            .filter(|a| writers::remote_of(&self.config, a) == Some(url))
            .filter(|a| {
                !self.is_suspended(Kind::ImageUpdateAutomation, &a.metadata, a.spec.suspend)
            })
            .filter_map(|a| match window_state(&a.spec.parsed_windows(), now) {
                WindowState::Closed { opens: Some(t) } => Some(t),
                _ => None,
            })
            .min()
            // A second past the opening, so the round sees the window open; at most a week
            // ahead (a later round plans again).
            .map(|t| std::time::Duration::from_secs(t.saturating_sub(now).min(7 * 86_400) + 1))
    }

    /// Why the automation does not push now: outside all of its change windows, unless a
    /// reconcile request asked for this round.
    pub(crate) fn outside_windows(&self, a: &ImageUpdateAutomation) -> Option<String> {
        use tagpilot_api::gates::{window_state, WindowState};
        if a.spec.windows.is_empty() {
            return None;
        }
        let windows = a.spec.parsed_windows();
        let WindowState::Closed { opens } = window_state(&windows, (self.shared.clock)()) else {
            return None;
        };
        let key = format!(
            "{}/{}/{}",
            Kind::ImageUpdateAutomation,
            a.metadata.namespace,
            a.metadata.name
        );
        if lock(&self.shared.handling).contains_key(&key) {
            tracing::info!(kind = "ImageUpdateAutomation", namespace = %a.metadata.namespace, name = %a.metadata.name, "outside the change windows; running as requested");
            return None;
        }
        Some(match opens {
            Some(t) => format!(
                "outside the change windows: changes wait until {} (tagpilot reconcile forces a round)",
                tagpilot_api::rfc3339(t)
            ),
            None => "outside the change windows, and none opens again: changes wait (tagpilot reconcile forces a round)".to_owned(),
        })
    }

    /// An automation that cannot be planned: counted, alerted once, recorded.
    fn plan_failed(&self, a: &ImageUpdateAutomation, e: &anyhow::Error) {
        let (ns, name) = (&a.metadata.namespace, &a.metadata.name);
        let message = format_chain(e);
        self.shared.metrics.push_failed(ns, name);
        self.emit(a, Some(&message), message.clone(), BTreeMap::new());
        self.record_outcome(
            Kind::ImageUpdateAutomation,
            ns,
            name,
            Outcome::failed(reason::SOURCE_MANAGER_FAILED, message),
            json!({}),
        );
    }

    /// Runs the automations that write remote `url` (or every remote with `None`): one Git
    /// round per push branch, one after the other. Only the remote's Git worker calls this for
    /// a URL, so nothing else touches that warm clone meanwhile.
    pub fn automations_for(&self, only: Option<&str>) {
        let git_cache = self.git_cache.as_path();
        struct Job<'c> {
            automation: &'c ImageUpdateAutomation,
            policies: Policies,
            message_template: Option<String>,
            /// Files the setters skipped or could not edit in the last attempt, with why.
            skipped: Mutex<Vec<String>>,
            /// `manualChanges: hold`: what it last wrote and the holds; None for overwrite.
            manual: Option<Mutex<ManualState>>,
            /// The release requests applied to `manual` (policy, token).
            releases: Vec<(String, String)>,
        }
        let pending_releases = self.store.releases().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read release requests");
            Vec::new()
        });
        let mut groups: BTreeMap<(String, String), (RoundSpec, Access, Vec<Job<'_>>)> =
            BTreeMap::new();
        for a in self.config.all::<ImageUpdateAutomation>() {
            let (ns, name) = (a.metadata.namespace.clone(), a.metadata.name.clone());
            if only.is_some_and(|url| writers::remote_of(&self.config, a) != Some(url)) {
                continue;
            }
            self.begin(Kind::ImageUpdateAutomation, &ns, &name);
            if self.is_suspended(Kind::ImageUpdateAutomation, &a.metadata, a.spec.suspend) {
                self.record(
                    Kind::ImageUpdateAutomation,
                    &ns,
                    &name,
                    true,
                    "suspended".into(),
                );
                continue;
            }
            if let Some(wait) = self.outside_windows(a) {
                self.record(Kind::ImageUpdateAutomation, &ns, &name, true, wait);
                continue;
            }
            match self.plan(a) {
                Ok((key, spec, auth, policies)) => {
                    self.mark_progressing(Kind::ImageUpdateAutomation, &ns, &name);
                    let (manual, releases) = match a.spec.manual_changes {
                        tagpilot_api::ManualChanges::Overwrite => (None, Vec::new()),
                        tagpilot_api::ManualChanges::Hold => {
                            let (state, releases) =
                                self.manual_state(a, &policies, &pending_releases);
                            (Some(Mutex::new(state)), releases)
                        }
                    };
                    let job = Job {
                        automation: a,
                        policies,
                        message_template: a.spec.git.commit.message_template.clone(),
                        skipped: Mutex::new(Vec::new()),
                        manual,
                        releases,
                    };
                    groups
                        .entry(key)
                        .or_insert_with(|| (spec, auth, Vec::new()))
                        .2
                        .push(job);
                }
                Err(e) => self.plan_failed(a, &e),
            }
        }
        for ((url, branch), (spec, auth, jobs)) in groups {
            let started = std::time::Instant::now();
            let outcome = (|| -> anyhow::Result<tagpilot_git::RoundOutcome> {
                let prepared = lock(&self.prepared).remove(&url);
                let repo = match prepared {
                    Some(repo) => repo,
                    None => WarmRepo::open_with_roots(git_cache, &url, auth.0, auth.1)?,
                };
                let scratch = repo.scratch_dir()?;
                let scratch = scratch.as_path();
                let mut changes: Vec<Change<'_>> = jobs
                    .iter()
                    .map(|job| -> Change<'_> {
                        let a = job.automation;
                        Box::new(move |root: &Path| {
                            let dir = update_dir(root, a.spec.update.path.as_deref())?;
                            let mut set =
                                scan_tree(&dir, &job.policies).map_err(|e| e.to_string())?;
                            if let Some(m) = &job.manual {
                                let held = {
                                    let mut st = lock(m);
                                    let seen: Vec<manual::Seen<'_>> = set
                                        .files
                                        .iter()
                                        .flat_map(|f| &f.objects)
                                        .flat_map(|o| &o.changes)
                                        .map(|c| manual::Seen {
                                            setter: &c.setter,
                                            old_value: &c.old_value,
                                        })
                                        .collect();
                                    manual::detect(&mut st, &seen, now());
                                    st.held().map(str::to_owned).collect::<Vec<_>>()
                                };
                                if !held.is_empty() {
                                    // The person's values stay: their policies' markers are left out.
                                    let kept: Policies = job
                                        .policies
                                        .iter()
                                        .filter(|((ns, n), _)| !held.contains(&format!("{ns}/{n}")))
                                        .map(|(k, v)| (k.clone(), v.clone()))
                                        .collect();
                                    set = scan_tree(&dir, &kept).map_err(|e| e.to_string())?;
                                }
                            }
                            *lock(&job.skipped) =
                                set.errors.iter().chain(&set.warnings).cloned().collect();
                            if set.is_empty() {
                                return Ok(None);
                            }
                            let data = commit_data(&MessageInput {
                                automation: (&a.metadata.namespace, &a.metadata.name),
                                values: &a.spec.git.commit.message_template_values,
                                changes: &set,
                                policies: &job.policies,
                            });
                            let message = render_message(job.message_template.as_deref(), &data)
                                .map_err(|e| format!("failed to run template from spec: {e}"))?;
                            let written = write_changes_in_clone(&dir, &set, scratch)
                                .map_err(|e| e.to_string())?;
                            Ok(Some(Applied {
                                message,
                                paths: Some(written),
                            }))
                        })
                    })
                    .collect();
                Ok(repo.round(&spec, &mut changes)?)
            })();
            for job in &jobs {
                let a = job.automation;
                let (ready, message, fields) = match &outcome {
                    Ok(o) => {
                        let checkout_branch = spec.checkout.branch().unwrap_or(&branch).to_owned();
                        match &o.pushed_commit {
                            Some(c) => (
                                true,
                                tagpilot_git::pushed_message(
                                    c,
                                    &branch,
                                    o.messages.first().map_or("", String::as_str),
                                ),
                                json!({
                                    "lastPushCommit": c,
                                    "lastPushTime": now(),
                                    "observedSourceRevision": if checkout_branch == branch {
                                        tagpilot_git::source_revision(&branch, c)
                                    } else {
                                        tagpilot_git::source_revision(&checkout_branch, &o.checkout_commit)
                                    },
                                    "observedPolicies": job.policies.iter().map(|((_, n), l)| (n.clone(), l.clone())).collect::<BTreeMap<_, _>>(),
                                }),
                            ),
                            None => (
                                true,
                                "repository up-to-date".to_owned(),
                                json!({ "observedSourceRevision": tagpilot_git::source_revision(&checkout_branch, &o.checkout_commit) }),
                            ),
                        }
                    }
                    Err(e) => (false, format_chain(e), json!({})),
                };
                let mut fields = fields;
                // On the first line, which logs, `get` and `run --once` show: "up-to-date" must
                // not hide a file that was never looked at.
                let skipped = std::mem::take(&mut *lock(&job.skipped));
                let message = match (outcome.is_ok(), skipped_note(&skipped)) {
                    (true, Some(note)) => match message.split_once('\n') {
                        Some((first, rest)) => format!("{first} ({note})\n{rest}"),
                        None => format!("{message} ({note})"),
                    },
                    _ => message,
                };
                if let (serde_json::Value::Object(f), false) = (&mut fields, skipped.is_empty()) {
                    f.insert("skippedFiles".into(), json!(skipped));
                }
                let message = match &job.manual {
                    Some(m) => {
                        let mut st = lock(m);
                        if outcome.is_ok() {
                            self.settle_manual(a, &mut st, &job.policies, &job.releases);
                        }
                        fields["manualHolds"] = json!(st
                            .holds
                            .iter()
                            .map(|(p, h)| json!({"policy": p, "value": h.value, "movedAwayFrom": h.moved_away_from, "since": tagpilot_api::rfc3339(h.since)}))
                            .collect::<Vec<_>>());
                        match manual_note(&st) {
                            Some(note) => match message.split_once('\n') {
                                Some((first, rest)) => format!("{first} ({note})\n{rest}"),
                                None => format!("{message} ({note})"),
                            },
                            None => message,
                        }
                    }
                    None => message,
                };
                if let serde_json::Value::Object(f) = &mut fields {
                    f.insert(
                        "lastAutomationRunTime".into(),
                        json!(tagpilot_api::rfc3339(now())),
                    );
                }
                let (ns, name) = (&a.metadata.namespace, &a.metadata.name);
                let metrics = &self.shared.metrics;
                match (&outcome, &fields["lastPushCommit"]) {
                    (Ok(_), serde_json::Value::String(_)) => {
                        metrics.pushed(ns, name, started.elapsed());
                    }
                    (Ok(_), _) => {}
                    (Err(_), _) => metrics.push_failed(ns, name),
                }
                match (&outcome, &fields["lastPushCommit"]) {
                    (Ok(_), serde_json::Value::String(c)) => self.emit(
                        a,
                        None,
                        message.clone(),
                        BTreeMap::from([(
                            "revision".to_owned(),
                            tagpilot_git::source_revision(&branch, c),
                        )]),
                    ),
                    (Ok(_), _) => self.emit_clear(a),
                    (Err(_), _) => self.emit(a, Some(&message), message.clone(), BTreeMap::new()),
                }
                let outcome = match &outcome {
                    _ if ready => Outcome::ready(message),
                    Err(e)
                        if matches!(
                            e.downcast_ref::<tagpilot_git::GitError>(),
                            Some(tagpilot_git::GitError::Apply(_))
                        ) =>
                    {
                        Outcome::failed(reason::UPDATE_FAILED, message)
                    }
                    _ => Outcome::failed(reason::GIT_OPERATION_FAILED, message),
                };
                self.record_outcome(
                    Kind::ImageUpdateAutomation,
                    &a.metadata.namespace,
                    &a.metadata.name,
                    outcome,
                    fields,
                );
            }
        }
    }

    /// Opens (cloning it if needed) and fetches the warm clone of every remote an automation
    /// writes to, ahead of the rounds, which then start from that fetch: `run --once` does
    /// this while its scans run, so that a cold run's clone costs no time of its own. Anything
    /// that fails here is left for the round to meet and report.
    pub fn prepare_remotes(&self) {
        // One clone per remote, checked out for the first automation that pushes to it.
        let mut remotes: BTreeMap<String, (RoundSpec, Access)> = BTreeMap::new();
        for a in self.config.all::<ImageUpdateAutomation>() {
            if let Ok(((url, _), spec, access, _)) = self.plan(a) {
                remotes.entry(url).or_insert((spec, access));
            }
        }
        for (url, (spec, (auth, roots))) in remotes {
            let clone_lock = self.shared.clone_lock(&url);
            let _owner = lock(&clone_lock);
            let opened = WarmRepo::open_with_roots(self.git_cache.as_path(), &url, auth, roots)
                .and_then(|repo| repo.prefetch(&spec).map(|()| repo));
            match opened {
                Ok(repo) => {
                    lock(&self.prepared).insert(url, repo);
                }
                Err(e) => {
                    tracing::debug!(remote = %tagpilot_git::redact(&url), error = %e, "could not prepare the warm clone; its round will try again")
                }
            }
        }
    }

    /// Everything a round needs for one automation: (remote, branch) key, spec, auth, policies.
    #[allow(clippy::type_complexity)]
    fn plan(
        &self,
        a: &ImageUpdateAutomation,
    ) -> anyhow::Result<((String, String), RoundSpec, Access, Policies)> {
        let ns = &a.metadata.namespace;
        let src = &a.spec.source_ref;
        let src_ns = src.namespace.as_deref().unwrap_or(ns);
        let Some(gitrepo) = self.config.find::<GitRepository>(src_ns, &src.name) else {
            anyhow::bail!(
                "referenced GitRepository {src_ns}/{} does not exist",
                src.name
            );
        };
        let r = a
            .spec
            .git
            .checkout
            .as_ref()
            .map(|c| c.reference.clone())
            .or_else(|| gitrepo.spec.reference.clone())
            .unwrap_or_default();
        let checkout = CheckoutRef::from_fields(
            r.branch.as_deref(),
            r.tag.as_deref(),
            r.semver.as_deref(),
            r.name.as_deref(),
            r.commit.as_deref(),
        );
        let push = a.spec.git.push.clone().unwrap_or_default();
        let branch = tagpilot_git::push_branch(&checkout, push.branch.as_deref())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let url = gitrepo.spec.url.clone();
        let (auth, roots) = git_access(
            &self.secrets(),
            &url,
            gitrepo
                .spec
                .secret_ref
                .as_ref()
                .map(|s| (src_ns, s.name.as_str())),
        )?;
        let signer = match &a.spec.git.commit.signing_key {
            None => None,
            Some(k) => {
                let get = |key: &str| {
                    self.secrets()
                        .get(ns, &k.secret_ref.name, key)
                        .map(|v| v.map(text))
                };
                Some(Arc::new(
                    match k.key_type {
                        SigningKeyType::Gpg => Signer::openpgp(
                            &get("git.asc")?.ok_or_else(|| {
                                anyhow::anyhow!("signing key secret has no 'git.asc'")
                            })?,
                            get("passphrase")?.as_deref(),
                        ),
                        SigningKeyType::Ssh => Signer::ssh(
                            &get("identity")?.ok_or_else(|| {
                                anyhow::anyhow!("signing key secret has no 'identity'")
                            })?,
                            get("password")?.as_deref(),
                        ),
                    }
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
                ))
            }
        };
        // Flux's rule: every policy of the automation's namespace that the selector admits and
        // that has resolved; a deleted policy's ref is never applied.
        let policies: Policies = writers::applicable(&self.config, a, &self.lock_latest())
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let spec = RoundSpec {
            checkout,
            push_branch: branch.clone(),
            push_refspec: push.refspec,
            push_options: push
                .options
                .iter()
                .map(|(k, v)| {
                    if v.is_empty() {
                        k.clone()
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect(),
            author_name: a.spec.git.commit.author.name.clone(),
            author_email: a.spec.git.commit.author.email.clone(),
            max_attempts: 5,
            signer,
        };
        Ok(((url, branch), spec, (auth, roots), policies))
    }
}

/// How to reach a Git remote: credentials and extra CAs.
type Access = (GitAuth, Option<ExtraRoots>);

/// `not updated: a.yaml: not UTF-8, skipped; …`, or None when the setters skipped nothing.
fn skipped_note(skipped: &[String]) -> Option<String> {
    const SHOWN: usize = 3;
    let (first, rest) = skipped.split_at(skipped.len().min(SHOWN));
    let more = match rest.len() {
        0 => String::new(),
        n => format!("; and {n} more in status.skippedFiles"),
    };
    (!first.is_empty()).then(|| format!("not updated: {}{more}", first.join("; ")))
}

/// The update path inside the work tree: `..` may not lead out of it, and neither may a
/// symlink in the repository (the path is checked again after resolving links).
fn update_dir(root: &Path, path: Option<&str>) -> Result<PathBuf, String> {
    let shown = path.unwrap_or(".");
    tagpilot_api::check_update_path(shown).map_err(|e| format!("update path {e}"))?;
    let real_root = root
        .canonicalize()
        .map_err(|e| format!("work tree {}: {e}", root.display()))?;
    let real = root
        .join(shown)
        .canonicalize()
        .map_err(|e| format!("update path '{shown}': {e}"))?;
    if !real.starts_with(&real_root) {
        return Err(format!(
            "update path '{shown}' leads outside the repository through a symlink, refused"
        ));
    }
    Ok(real)
}
