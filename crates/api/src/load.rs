//! Loading a directory of multi-document YAML manifests.
//!
//! Unknown kinds are skipped (users keep whole cluster folders here). A known kind with a bad
//! field is an error on that object only: every other object still loads. Errors name the file,
//! the document (1-based), the object and the field.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use tagpilot_sops::Keys;

use serde::de::DeserializeOwned;
use tagpilot_yaml::Node;

use crate::object::{FieldError, Kind, Object, Typed};

/// Where an object came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    pub file: PathBuf,
    /// 1-based document index within the file.
    pub document: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {})", self.file.display(), self.document)
    }
}

/// A loaded, valid object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub source: Source,
    pub object: Object,
}

/// Something that did not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub source: Source,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl LoadError {
    /// The object the error is about, when the document got that far.
    pub fn object(&self) -> Option<(Kind, &str, &str)> {
        Some((
            self.kind.as_deref().and_then(Kind::from_name)?,
            self.namespace.as_deref()?,
            self.name.as_deref()?,
        ))
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.source)?;
        if let Some(kind) = &self.kind {
            write!(f, "{kind} ")?;
            let ns = self.namespace.as_deref().unwrap_or("default");
            match &self.name {
                Some(name) => write!(f, "{ns}/{name}: ")?,
                None => write!(f, "{ns}/<no name>: ")?,
            }
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for LoadError {}

/// The result of loading a directory: every valid object and every error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Added with [`Config::add`] only, so that the index stays right; read with
    /// [`Config::objects`].
    objects: Vec<Loaded>,
    pub errors: Vec<LoadError>,
    /// Fields tagpilot does not know (misspellings, Flux fields it does not implement): the
    /// object still loads. `validate --strict` makes them errors.
    pub warnings: Vec<LoadError>,
    /// The Git revision (`branch@sha1:…`) the manifests came from, with a Git source.
    pub source_revision: Option<String>,
    /// (kind, namespace, name) → position in `objects`, for [`Config::get`]: the daemon looks
    /// objects up on every scan and resolution, and a linear search made 10,000 repositories
    /// quadratic. Kept by [`Config::add`].
    index: HashMap<(Kind, String, String), usize>,
}

impl Config {
    /// Every object, in load order.
    pub fn objects(&self) -> &[Loaded] {
        &self.objects
    }

    /// Adds a loaded object (the first of a kind/namespace/name is the one `get` finds).
    pub fn add(&mut self, loaded: Loaded) {
        let m = loaded.object.metadata();
        let key = (loaded.object.kind(), m.namespace.clone(), m.name.clone());
        self.index.entry(key).or_insert(self.objects.len());
        self.objects.push(loaded);
    }

    /// For a reload: nothing is dropped because it could not be read. Every object whose new
    /// version failed to load keeps its last good version from `previous` (the error stays in
    /// `errors`); a file (or directory) that could not be read or parsed keeps every object
    /// it held before that is not found elsewhere now, each with an error of its own naming the
    /// file's failure. Only a successful parse that no longer contains an object removes it.
    /// Returns the objects kept that way.
    pub fn keep_last_good(&mut self, previous: &Config) -> Vec<(Kind, String, String)> {
        let mut kept = Vec::new();
        let errors = std::mem::take(&mut self.errors);
        for e in &errors {
            let Some((kind, ns, name)) = e.object() else {
                continue;
            };
            let key = (kind, ns.to_owned(), name.to_owned());
            if kept.contains(&key) || self.get(kind, ns, name).is_some() {
                continue;
            }
            if let Some(old) = previous.get(kind, ns, name) {
                self.add(old.clone());
                kept.push(key);
            }
        }
        self.errors = errors;
        // Failures of whole files or directories: what they held before stays.
        let failed: Vec<LoadError> = self
            .errors
            .iter()
            .filter(|e| e.kind.is_none())
            .cloned()
            .collect();
        let mut derived = Vec::new();
        for e in &failed {
            for old in &previous.objects {
                let held = if e.source.document == 0 {
                    // A file or a directory (the root is the empty path, a prefix of all).
                    old.source.file.starts_with(&e.source.file)
                } else {
                    // A syntax error at document N: the documents before it loaded.
                    old.source.file == e.source.file
                };
                let m = old.object.metadata();
                let key = (old.object.kind(), m.namespace.clone(), m.name.clone());
                if !held || kept.contains(&key) || self.get(key.0, &key.1, &key.2).is_some() {
                    continue;
                }
                derived.push(LoadError {
                    source: old.source.clone(),
                    kind: Some(key.0.to_string()),
                    namespace: Some(key.1.clone()),
                    name: Some(key.2.clone()),
                    field: None,
                    message: format!("{} could not be loaded: {}", e.source, e.message),
                });
                self.add(old.clone());
                kept.push(key);
            }
        }
        self.errors.extend(derived);
        kept
    }

    /// Looks an object up by kind, namespace and name.
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Loaded> {
        let key = (kind, namespace.to_owned(), name.to_owned());
        self.index.get(&key).and_then(|&i| self.objects.get(i))
    }

    /// Objects of one kind, in load order.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Loaded> {
        self.objects.iter().filter(move |o| o.object.kind() == kind)
    }

    /// Every object of type `T` (`config.all::<ImagePolicy>()`).
    pub fn all<T: Typed + 'static>(&self) -> impl Iterator<Item = &T> {
        self.objects.iter().filter_map(|l| T::of(&l.object))
    }

    /// The object of type `T` with that namespace and name.
    pub fn find<T: Typed>(&self, namespace: &str, name: &str) -> Option<&T> {
        self.get(T::KIND, namespace, name)
            .and_then(|l| T::of(&l.object))
    }
}

/// Files larger than this are refused unread (a manifest directory holds small files).
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// YAML nested deeper than this is refused before it is parsed.
pub const MAX_DEPTH: usize = 256;

/// Loads every `*.yaml`/`*.yml` file under `dir` (recursively, sorted; hidden entries such as
/// `.git` and Kubernetes volume internals like `..data` are skipped, the visible symlinks into
/// them are followed). A file or directory that cannot be read is reported as an error (paths
/// relative to `dir`; the empty path is `dir` itself), as is a file over [`MAX_FILE_BYTES`] or
/// nested deeper than [`MAX_DEPTH`].
pub fn load_dir(dir: &Path) -> Config {
    load_dir_with(dir, &Keys::default())
}

/// [`load_dir`], decrypting SOPS-encrypted documents with `keys` (in memory only).
pub fn load_dir_with(dir: &Path, keys: &Keys) -> Config {
    let mut files = Vec::new();
    let mut config = Config::default();
    collect_files(dir, dir, &mut files, &mut config.errors);
    files.sort();
    for file in files {
        let display = file.strip_prefix(dir).unwrap_or(&file).to_path_buf();
        match read_bounded(&file) {
            Ok(text) => load_str_into(&text, &display, &mut config, keys),
            Err(message) => config.errors.push(file_error(&display, message)),
        }
    }
    config
}

/// Loads manifests read from a Git tree (`files`: path, content or why it was not read;
/// only `*.yaml`/`*.yml` are looked at), then the local directory `overlay` when given. An
/// object defined in both is an error on the second definition.
pub fn load_files_with(
    files: &[(PathBuf, Result<Vec<u8>, String>)],
    overlay: Option<&Path>,
    keys: &Keys,
) -> Config {
    let mut config = Config::default();
    for (path, content) in files {
        let name = path.to_string_lossy();
        if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        match content {
            Ok(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => load_str_into(text, path, &mut config, keys),
                Err(e) => config.errors.push(file_error(
                    path,
                    format!("cannot read file: not UTF-8: {e}"),
                )),
            },
            Err(message) => config.errors.push(file_error(path, message.clone())),
        }
    }
    if let Some(dir) = overlay {
        let local = load_dir_with(dir, keys);
        // Each local object passes the same duplicate check as a file of the tree would.
        for o in local.objects {
            let m = o.object.metadata();
            let kind = o.object.kind();
            if let Some(first) = config.get(kind, &m.namespace, &m.name) {
                config.errors.push(LoadError {
                    kind: Some(kind.to_string()),
                    namespace: Some(m.namespace.clone()),
                    name: Some(m.name.clone()),
                    field: Some("metadata.name".to_owned()),
                    message: format!(
                        "defined both in the Git source ({}) and locally; the local one is not used",
                        first.source
                    ),
                    source: o.source.clone(),
                });
            } else {
                config.add(o);
            }
        }
        config.errors.extend(local.errors);
        config.warnings.extend(local.warnings);
    }
    config
}

/// Reads a file of at most [`MAX_FILE_BYTES`] as UTF-8.
fn read_bounded(file: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let f = std::fs::File::open(file).map_err(|e| format!("cannot read file: {e}"))?;
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read file: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "file is larger than {} MiB, refused",
            MAX_FILE_BYTES >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|e| format!("cannot read file: not UTF-8: {e}"))
}

/// Refuses YAML nested deeper than [`MAX_DEPTH`] in time linear in its size (the full parser
/// can take minutes on a crafted file). Other syntax errors are left to the parser, which
/// names them better.
fn check_depth(text: &str) -> Result<(), String> {
    use saphyr_parser::{Event, Parser};
    let mut depth = 0usize;
    for item in Parser::new_from_str(text) {
        let (event, span) = match item {
            Ok(i) => i,
            // The event parser has a depth limit of its own, close to ours.
            Err(e) if e.to_string().contains("recursion limit") => {
                return Err(format!(
                    "invalid YAML: nested deeper than {MAX_DEPTH} levels ({e})"
                ))
            }
            Err(_) => return Ok(()),
        };
        match event {
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!(
                        "invalid YAML: nested deeper than {MAX_DEPTH} levels at line {}",
                        span.start.line()
                    ));
                }
            }
            Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Loads manifests from one string (multi-document), as if read from `file`.
pub fn load_str(text: &str, file: &Path) -> Config {
    load_str_with(text, file, &Keys::default())
}

/// [`load_str`] with SOPS keys.
pub fn load_str_with(text: &str, file: &Path, keys: &Keys) -> Config {
    let mut config = Config::default();
    load_str_into(text, file, &mut config, keys);
    config
}

fn file_error(file: &Path, message: String) -> LoadError {
    LoadError {
        source: Source {
            file: file.to_path_buf(),
            document: 0,
        },
        kind: None,
        namespace: None,
        name: None,
        field: None,
        message,
    }
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<LoadError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            let rel = dir.strip_prefix(root).unwrap_or(dir);
            errors.push(file_error(
                rel,
                format!("cannot read directory {}: {e}", dir.display()),
            ));
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // metadata() follows symlinks: ConfigMap volumes expose files as links into `..data`.
        let Ok(meta) = std::fs::metadata(&path) else {
            tracing::debug!(path = %path.display(), "skipping dangling link");
            continue;
        };
        if meta.is_dir() {
            collect_files(root, &path, out, errors);
        } else if meta.is_file() && (name.ends_with(".yaml") || name.ends_with(".yml")) {
            out.push(path);
        }
    }
}

fn load_str_into(text: &str, file: &Path, config: &mut Config, keys: &Keys) {
    if let Err(message) = check_depth(text) {
        config.errors.push(file_error(file, message));
        return;
    }
    // Empty documents are not counted: the parser skips them.
    for (index, doc) in tagpilot_yaml::documents(text).into_iter().enumerate() {
        let source = Source {
            file: file.to_path_buf(),
            document: index + 1,
        };
        let node = match doc {
            Ok(n) => n,
            Err(e) => {
                config.errors.push(LoadError {
                    source,
                    kind: None,
                    namespace: None,
                    name: None,
                    field: None,
                    message: format!("invalid YAML: {e}"),
                });
                // The next document still loads; after a syntax error there is none
                // (tagpilot_yaml::documents ends the stream there).
                continue;
            }
        };
        let node = if tagpilot_sops::is_encrypted(&node) {
            match tagpilot_sops::decrypt(&node, keys) {
                Ok(plain) => plain,
                Err(e) => {
                    config.errors.push(sops_error(&node, source, &e));
                    continue;
                }
            }
        } else {
            node
        };
        match load_value(node, &source, &mut config.warnings) {
            Ok(None) => {}
            Ok(Some(object)) => {
                let m = object.metadata();
                let key = (object.kind(), m.namespace.clone(), m.name.clone());
                let first = config.get(key.0, &key.1, &key.2).map(|l| l.source.clone());
                if let Some(first) = first {
                    config.errors.push(LoadError {
                        source,
                        kind: Some(object.kind().to_string()),
                        namespace: Some(key.1.clone()),
                        name: Some(key.2.clone()),
                        field: Some("metadata.name".to_owned()),
                        message: format!("duplicate object: already defined in {first}"),
                    });
                } else {
                    config.add(Loaded { source, object });
                }
            }
            Err(e) => config.errors.extend(e),
        }
    }
}

/// A document that cannot be decrypted: an error on its object when its kind and name are
/// readable (SOPS often leaves them in clear), else on the document.
fn sops_error(doc: &Node, source: Source, e: &tagpilot_sops::SopsError) -> LoadError {
    // An encrypted field reads `ENC[…]`: not a name.
    let clear = |path: &[&str]| {
        doc.at(path)?
            .as_str()
            .filter(|s| !s.starts_with("ENC["))
            .map(str::to_owned)
    };
    let kind = clear(&["kind"]);
    let namespace = kind
        .as_ref()
        .map(|_| clear(&["metadata", "namespace"]).unwrap_or_else(crate::types::default_namespace));
    LoadError {
        source,
        name: kind.as_ref().and_then(|_| clear(&["metadata", "name"])),
        kind,
        namespace,
        field: None,
        message: format!("cannot decrypt with SOPS: {e}"),
    }
}

/// Loads one document: `Ok(None)` for empty documents and kinds tagpilot does not read. Fields
/// it ignores go to `warnings`.
fn load_value(
    value: Node,
    source: &Source,
    warnings: &mut Vec<LoadError>,
) -> Result<Option<Object>, Vec<LoadError>> {
    if value.is_null() {
        return Ok(None);
    }
    let str_at = |path: &[&str]| value.at(path)?.as_str().map(str::to_owned);
    let kind_name = str_at(&["kind"]);
    let api_version = str_at(&["apiVersion"]);
    let namespace = str_at(&["metadata", "namespace"]);
    let name = str_at(&["metadata", "name"]);
    let error = |field: Option<&str>, message: String| LoadError {
        source: source.clone(),
        kind: kind_name.clone(),
        namespace: namespace.clone(),
        name: name.clone(),
        field: field.map(str::to_owned),
        message,
    };
    if !value.is_map() {
        return Err(vec![error(None, "document is not a mapping".to_owned())]);
    }
    let Some(kind) = kind_name.as_deref().and_then(Kind::from_name) else {
        tracing::debug!(%source, kind = kind_name.as_deref().unwrap_or(""), "skipping unknown kind");
        return Ok(None);
    };
    let api_version = api_version.unwrap_or_default();
    if !kind.api_versions().contains(&api_version.as_str()) {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        if group != kind.group() {
            // Same kind name in another API group (e.g. kustomize's Kustomization): not ours.
            tracing::debug!(%source, %kind, %api_version, "skipping kind of another API group");
            return Ok(None);
        }
        return Err(vec![error(
            Some("apiVersion"),
            format!(
                "unsupported apiVersion '{api_version}' for kind {kind}; accepted: {}",
                kind.api_versions().join(", ")
            ),
        )]);
    }
    let mut ignored = Vec::new();
    if kind == Kind::Secret {
        // Its body is flattened, which hides unknown keys from serde: check the top level here.
        ignored.extend(
            value
                .map_keys()
                .filter(|k| !SECRET_FIELDS.contains(k))
                .map(str::to_owned),
        );
    }
    let object = match kind {
        Kind::ImageRepository => typed(value, &mut ignored).map(Object::ImageRepository),
        Kind::ImagePolicy => typed(value, &mut ignored).map(Object::ImagePolicy),
        Kind::ImageUpdateAutomation => {
            typed(value, &mut ignored).map(|a| Object::ImageUpdateAutomation(Box::new(a)))
        }
        Kind::GitRepository => typed(value, &mut ignored).map(Object::GitRepository),
        Kind::Receiver => typed(value, &mut ignored).map(Object::Receiver),
        Kind::Provider => typed(value, &mut ignored).map(Object::Provider),
        Kind::Alert => typed(value, &mut ignored).map(Object::Alert),
        Kind::Secret => typed(value, &mut ignored).map(Object::Secret),
    };
    // Also when the object fails: `intreval: 5m` explains "spec.interval: is required".
    warnings.extend(ignored.into_iter().filter_map(|field| {
        let message = unknown_field(kind, &field)?;
        // `error` names the kind already (the document's `kind` is this kind's exact name).
        let mut w = error(Some(&field), message);
        w.namespace
            .get_or_insert_with(crate::types::default_namespace);
        Some(w)
    }));
    let object = object.map_err(|(field, message)| {
        // A parser quoting a Secret's content would put the secret into every channel.
        let message = if kind == Kind::Secret {
            redact_quoted(&message)
        } else {
            message
        };
        vec![error(Some(&field), message)]
    })?;
    let problems = object.validate();
    if problems.is_empty() {
        Ok(Some(object))
    } else {
        let m = object.metadata();
        Err(problems
            .into_iter()
            .map(|FieldError { field, message }| LoadError {
                source: source.clone(),
                kind: Some(kind.to_string()),
                namespace: Some(m.namespace.clone()),
                name: Some(m.name.clone()),
                field: Some(field),
                message,
            })
            .collect())
    }
}

/// Deserializes with the path of the failing field; the paths of ignored fields go to `ignored`.
fn typed<T: DeserializeOwned>(
    value: Node,
    ignored: &mut Vec<String>,
) -> Result<T, (String, String)> {
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(value, &mut track);
    serde_ignored::deserialize(de, |path| ignored.push(field_path(&path))).map_err(|e| {
        let path = track.path().to_string();
        let inner = e.to_string();
        // serde reports a missing field on its parent; name the field itself.
        let (path, message) = match missing_field(&inner) {
            Some(field) if path == "." => (field.to_owned(), "is required".to_owned()),
            Some(field) => (format!("{path}.{field}"), "is required".to_owned()),
            None => (path, inner),
        };
        (path, message)
    })
}

/// `spec.resources[0].nmae`, the way the other field errors name fields.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// The top-level fields of a v1 Secret.
const SECRET_FIELDS: [&str; 7] = [
    "apiVersion",
    "kind",
    "metadata",
    "type",
    "data",
    "stringData",
    "immutable",
];

/// Kubernetes' ObjectMeta fields tagpilot has no use for (present in `kubectl get -o yaml`).
const KUBERNETES_METADATA: [&str; 11] = [
    "generateName",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Flux fields of each kind that tagpilot reads past: correct in a cluster, without effect here.
fn flux_only(kind: Kind, field: &str) -> bool {
    let fields: &[&str] = match kind {
        Kind::GitRepository => &[
            "spec.include",
            "spec.verify",
            "spec.ignore",
            "spec.recurseSubmodules",
            "spec.sparseCheckout",
            "spec.serviceAccountName",
        ],
        Kind::Provider => &["spec.commitStatusExpr", "spec.serviceAccountName"],
        _ => &[],
    };
    fields.iter().any(|f| {
        field == *f
            || field
                .strip_prefix(f)
                .is_some_and(|r| r.starts_with(['.', '[']))
    })
}

/// The warning for an ignored field, or None where ignoring it is expected.
fn unknown_field(kind: Kind, field: &str) -> Option<String> {
    if field == "status" || field.starts_with("status.") || field.starts_with("status[") {
        return None;
    }
    if let Some(meta) = field.strip_prefix("metadata.") {
        let top = meta.split(['.', '[']).next().unwrap_or(meta);
        if KUBERNETES_METADATA.contains(&top) {
            return None;
        }
    }
    Some(if flux_only(kind, field) {
        "not supported by tagpilot, ignored".to_owned()
    } else {
        "unknown field, ignored (misspelled?)".to_owned()
    })
}

/// A parser message with every quoted part replaced, for errors about Secret content
/// (serde quotes the offending value: `invalid type: integer `12345`, expected a string`).
pub fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quote = None;
    for c in message.chars() {
        match quote {
            None if c == '"' || c == '`' => {
                quote = Some(c);
                out.push(c);
                out.push_str("<redacted>");
            }
            None => out.push(c),
            Some(q) if c == q => {
                quote = None;
                out.push(c);
            }
            Some(_) => {}
        }
    }
    if quote.is_some() {
        out.push_str(" (truncated)");
    }
    out
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::DigestReflectionPolicy;

    const GUIDE: &str = r#"
apiVersion: image.toolkit.fluxcd.io/v1beta1
kind: ImageRepository
metadata:
  name: podinfo
  namespace: flux-system
spec:
  image: ghcr.io/stefanprodan/podinfo
  interval: 1m0s
---
apiVersion: image.toolkit.fluxcd.io/v1beta1
kind: ImagePolicy
metadata:
  name: podinfo
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: podinfo
  policy:
    semver:
      range: 5.0.x
---
apiVersion: image.toolkit.fluxcd.io/v1beta1
kind: ImageUpdateAutomation
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  sourceRef:
    kind: GitRepository
    name: flux-system
  git:
    checkout:
      ref:
        branch: main
    commit:
      author:
        email: fluxcdbot@users.noreply.github.com
        name: fluxcdbot
      messageTemplate: '{{range .Updated.Images}}{{println .}}{{end}}'
    push:
      branch: main
  update:
    path: ./clusters/my-cluster
    strategy: Setters
"#;

    #[test]
    fn loads_the_guide_manifests_with_defaults() {
        let c = load_str(GUIDE, Path::new("guide.yaml"));
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(c.objects.len(), 3);
        let Some(Object::ImageRepository(repo)) = c
            .get(Kind::ImageRepository, "flux-system", "podinfo")
            .map(|l| &l.object)
        else {
            panic!("repository missing")
        };
        assert_eq!(repo.spec.exclusion_list, vec![r"^.*\.sig$".to_owned()]);
        assert_eq!(repo.spec.interval.to_string(), "1m0s");
        let Some(Object::ImagePolicy(pol)) = c
            .get(Kind::ImagePolicy, "flux-system", "podinfo")
            .map(|l| &l.object)
        else {
            panic!("policy missing")
        };
        assert_eq!(
            pol.spec.digest_reflection_policy,
            DigestReflectionPolicy::Never
        );
        assert_eq!(c.objects[2].source.document, 3);
    }

    #[test]
    fn providers_and_alerts_load_and_their_mistakes_are_named() {
        let text = r#"
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {name: flux, namespace: apps}
spec: {type: generic-hmac, address: "https://flux.example/hook/x", secretRef: {name: s}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta2
kind: Alert
metadata: {name: a, namespace: apps}
spec:
  providerRef: {name: flux}
  eventSources: [{kind: ImageUpdateAutomation, name: "*"}]
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {name: teams}
spec: {type: msteams, address: "https://x.example"}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {name: unsigned}
spec: {type: generic-hmac, address: "ftp://x.example"}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: bad}
spec:
  providerRef: {name: flux}
  inclusionList: ["("]
  eventSources: [{kind: Deployment, name: x}]
"#;
        let c = load_str(text, Path::new("alerts.yaml"));
        assert_eq!(c.objects.len(), 2, "{:?}", c.errors);
        let errors: Vec<String> = c.errors.iter().map(ToString::to_string).collect();
        let all = errors.join("\n");
        assert!(
            all.contains("Provider default/teams: spec.type")
                && all.contains("unknown variant `msteams`")
                && all.contains("`generic-hmac`"),
            "{all}"
        );
        assert!(
            all.contains(
                "Provider default/unsigned: spec.address: 'ftp://x.example' is not an http(s) URL"
            ),
            "{all}"
        );
        assert!(
            all.contains("Provider default/unsigned: spec.secretRef: generic-hmac needs a Secret"),
            "{all}"
        );
        assert!(
            all.contains("Alert default/bad: spec.inclusionList[0]: invalid regular expression"),
            "{all}"
        );
        assert!(
            all.contains(
                "Alert default/bad: spec.eventSources[0].kind: unsupported kind 'Deployment'"
            ),
            "{all}"
        );
    }

    #[test]
    fn a_broken_edit_keeps_the_last_good_version() {
        let good = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  imageRepositoryRef: {name: r}\n  policy: {semver: {range: 1.x}}\n";
        let previous = load_str(good, Path::new("a.yaml"));
        let broken = good.replace("1.x", "'not a range'");
        let mut next = load_str(&broken, Path::new("a.yaml"));
        assert!(next.objects.is_empty() && next.errors.len() == 1);
        let kept = next.keep_last_good(&previous);
        assert_eq!(
            kept,
            vec![(Kind::ImagePolicy, "default".to_owned(), "p".to_owned())]
        );
        assert_eq!(next.objects, previous.objects);
        assert_eq!(next.errors.len(), 1, "the error is still reported");
        // A broken new object has nothing to keep; a deleted one is not resurrected.
        let mut fresh = load_str(&broken, Path::new("a.yaml"));
        assert!(fresh
            .keep_last_good(&load_str("", Path::new("e.yaml")))
            .is_empty());
        let mut deleted = load_str("", Path::new("a.yaml"));
        assert!(deleted.keep_last_good(&previous).is_empty());
    }

    #[test]
    fn unreadable_or_unparsable_files_keep_what_they_held() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("config");
        std::fs::create_dir_all(root.join("apps")).unwrap();
        let policy = |name: &str| {
            format!("apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: {name}}}\nspec:\n  imageRepositoryRef: {{name: r}}\n  policy: {{semver: {{range: 1.x}}}}\n")
        };
        let write = |rel: &str, text: &str| std::fs::write(root.join(rel), text).unwrap();
        write("a.yaml", &format!("{}---\n{}", policy("a1"), policy("a2")));
        write("apps/b.yaml", &policy("b"));
        let good = load_dir(&root);
        assert_eq!(good.objects.len(), 3, "{:?}", good.errors);
        let names = |c: &Config| {
            let mut n: Vec<String> = c
                .objects
                .iter()
                .map(|o| o.object.metadata().name.clone())
                .collect();
            n.sort();
            n
        };

        // A syntax error in the second document: a1 loads anew, a2 keeps its last good version.
        write(
            "a.yaml",
            &format!("{}---\n{}  : [unclosed\n", policy("a1"), policy("a2")),
        );
        let mut next = load_dir(&root);
        let kept = next.keep_last_good(&good);
        assert_eq!(
            kept,
            vec![(Kind::ImagePolicy, "default".to_owned(), "a2".to_owned())]
        );
        assert_eq!(names(&next), ["a1", "a2", "b"]);
        assert!(
            next.errors
                .iter()
                .any(|e| e.object() == Some((Kind::ImagePolicy, "default", "a2"))
                    && e.message.contains("could not be loaded")),
            "{:?}",
            next.errors
        );

        // The whole directory gone for a moment: everything keeps running.
        std::fs::rename(&root, dir.path().join("away")).unwrap();
        let mut gone = load_dir(&root);
        assert!(gone.objects.is_empty());
        assert_eq!(gone.keep_last_good(&good).len(), 3);
        assert_eq!(names(&gone), ["a1", "a2", "b"]);
        std::fs::rename(dir.path().join("away"), &root).unwrap();

        // Only a successful parse that no longer holds an object removes it.
        write("apps/b.yaml", "# emptied\n");
        let mut emptied = load_dir(&root);
        emptied.keep_last_good(&good);
        assert!(!names(&emptied).contains(&"b".to_owned()));
    }

    #[test]
    fn deep_and_huge_files_are_refused_quickly() {
        let deep = "[".repeat(100_000);
        let c = load_str(&deep, Path::new("deep.yaml"));
        assert_eq!(c.errors.len(), 1);
        assert!(
            c.errors[0].message.contains("nested deeper than 256"),
            "{}",
            c.errors[0]
        );
        assert!(c.errors[0].to_string().contains("deep.yaml"));
        let mut ok = String::new();
        for _ in 0..100 {
            ok.push('[');
        }
        for _ in 0..100 {
            ok.push(']');
        }
        let ok = load_str(&ok, Path::new("ok.yaml"));
        assert!(
            ok.errors.iter().all(|e| !e.message.contains("nested")),
            "{:?}",
            ok.errors
        );

        let dir = tempfile::tempdir().unwrap();
        let big = "# padding\n".repeat((MAX_FILE_BYTES as usize / 10) + 1);
        std::fs::write(dir.path().join("big.yaml"), big).unwrap();
        let c = load_dir(dir.path());
        assert_eq!(c.errors.len(), 1);
        assert!(
            c.errors[0].message.contains("larger than 4 MiB"),
            "{}",
            c.errors[0]
        );
    }

    #[test]
    fn namespace_defaults_and_unknown_kinds_are_skipped() {
        let text = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo}
---
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [a.yaml]
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: p}
spec:
  imageRepositoryRef: {name: r}
  policy: {alphabetical: {}}
"#;
        let c = load_str(text, Path::new("x.yaml"));
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(c.objects.len(), 1);
        assert_eq!(c.objects[0].object.metadata().namespace, "default");
    }

    #[test]
    fn a_bad_object_names_file_document_object_and_field() {
        let text = r#"
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: good, namespace: apps}
spec:
  imageRepositoryRef: {name: r}
  policy: {semver: {range: ">=1.0.0"}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: bad, namespace: apps}
spec:
  imageRepositoryRef: {name: r}
  policy: {semver: {range: "1.0.0p"}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: repo}
spec: {image: alpine, interval: 5 minutes}
"#;
        let c = load_str(text, Path::new("policies.yaml"));
        assert_eq!(c.objects.len(), 1);
        assert_eq!(c.errors.len(), 2);
        assert_eq!(
            c.errors[0].to_string(),
            "policies.yaml (document 2): ImagePolicy apps/bad: spec.policy.semver.range: semver parse error: improper constraint: 1.0.0p"
        );
        let e = c.errors[1].to_string();
        assert!(e.starts_with("policies.yaml (document 3): ImageRepository default/repo: spec.interval: invalid duration '5 minutes'"), "{e}");
    }

    #[test]
    fn validation_rules() {
        let cases: &[(&str, &str, &str)] = &[
            ("kind: ImagePolicy\nspec: {imageRepositoryRef: {name: r}, policy: {}}", "spec.policy", "invalid policy"),
            ("kind: ImagePolicy\nspec: {imageRepositoryRef: {name: r}, policy: {semver: {range: '*'}, numerical: {}}}", "spec.policy", "exactly one"),
            ("kind: ImagePolicy\nspec: {imageRepositoryRef: {name: r}, policy: {numerical: {order: up}}}", "spec.policy.numerical.order", "invalid order"),
            ("kind: ImagePolicy\nspec: {imageRepositoryRef: {name: r}, policy: {alphabetical: {}}, filterTags: {pattern: '('}}", "spec.filterTags", "invalid regular expression pattern '('"),
            ("kind: ImagePolicy\nspec: {imageRepositoryRef: {name: r}, policy: {alphabetical: {}}, digestReflectionPolicy: Always}", "spec.interval", "must be set"),
            ("kind: ImagePolicy\nspec: {imageRepositoryRef: {name: r}, policy: {alphabetical: {}}, interval: 1m}", "spec.interval", "only accepted"),
            ("kind: ImagePolicy\nspec: {imageRepositoryRef: {name: r}, policy: {alphabetical: {}}, digestReflectionPolicy: Sometimes}", "spec.digestReflectionPolicy", "unknown variant"),
            ("kind: ImageRepository\nspec: {image: alpine, interval: 1m, exclusionList: ['(']}", "spec.exclusionList[0]", "failed to compile regex"),
            ("kind: ImageRepository\nspec: {image: alpine, interval: 1m, timeout: 1h}", "spec.timeout", "invalid duration"),
            ("kind: ImageRepository\nspec: {image: 'alpine:3', interval: 1m}", "spec.image", "should not include a tag"),
            ("kind: ImageRepository\nspec: {image: alpine}", "spec.interval", "is required"),
            ("kind: ImageUpdateAutomation\nspec: {interval: 1m, sourceRef: {name: g}, git: {commit: {author: {name: bot}}}}", "spec.git.commit.author.email", "is required"),
            ("kind: ImageUpdateAutomation\nspec: {interval: 1m, sourceRef: {name: g, kind: Bucket}, git: {commit: {author: {email: a@b}}}}", "spec.sourceRef.kind", "unsupported"),
            ("kind: ImagePolicy\nspec: {imageRepositoryRef: {name: r}, policy: {alphabetical: {}}, gates: {platforms: [linux/amd64, linux/amd64/v9]}}", "spec.gates.platforms[1]", "'v9' is not a variant of architecture 'amd64'"),
            ("kind: ImagePolicy\nspec: {imageRepositoryRef: {name: r}, policy: {alphabetical: {}}, gates: {minAge: 1 day}}", "spec.gates.minAge", "invalid duration"),
            ("kind: ImagePolicy\nspec: {imageRepositoryRef: {name: r}, policy: {alphabetical: {}}, gates: {repushHold: 0s}}", "spec.gates.repushHold", "more than 0s"),
            ("kind: ImageUpdateAutomation\nspec: {interval: 1m, sourceRef: {name: g}, git: {commit: {author: {email: a@b}}}, windows: [{cron: '0 9 * * 1-5', duration: 8h, timeZone: Europe/Berlin}, {cron: '0 25 * * *', duration: 1h}]}", "spec.windows[1].cron", "not a 5-field cron schedule"),
            ("kind: ImageUpdateAutomation\nspec: {interval: 1m, sourceRef: {name: g}, git: {commit: {author: {email: a@b}}}, windows: [{cron: '0 9 * * *', duration: 8h, timeZone: Europe/Brelin}]}", "spec.windows[0].timeZone", "not an IANA time zone"),
            ("kind: ImageUpdateAutomation\nspec: {interval: 1m, sourceRef: {name: g}, git: {commit: {author: {email: a@b}}}, manualChanges: keep}", "spec.manualChanges", "unknown variant"),
        ];
        for (body, field, message) in cases {
            let text =
                format!("apiVersion: image.toolkit.fluxcd.io/v1\nmetadata: {{name: x}}\n{body}\n");
            let c = load_str(&text, Path::new("t.yaml"));
            assert!(c.objects.is_empty(), "{body} should fail");
            let e = &c.errors[0];
            assert_eq!(e.field.as_deref(), Some(*field), "{body}: {e}");
            assert!(e.message.contains(message), "{body}: {e}");
        }
        let many: Vec<String> = (0..26).map(|i| format!("'^a{i}$'")).collect();
        let text = format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: x}}\nspec: {{image: alpine, interval: 1m, exclusionList: [{}]}}\n",
            many.join(", ")
        );
        let c = load_str(&text, Path::new("t.yaml"));
        assert_eq!(c.errors[0].field.as_deref(), Some("spec.exclusionList"));
    }

    #[test]
    fn lookups_find_every_object_by_kind_namespace_and_name() {
        let text: String = (0..50)
            .map(|i| format!("---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: r{i}, namespace: n{}}}\nspec: {{image: alpine, interval: 1m}}\n", i % 3))
            .collect();
        let c = load_str(&text, Path::new("many.yaml"));
        assert_eq!(c.objects.len(), 50, "{:?}", c.errors);
        for i in 0..50 {
            let found = c.get(
                Kind::ImageRepository,
                &format!("n{}", i % 3),
                &format!("r{i}"),
            );
            assert_eq!(found.map(|l| l.source.document), Some(i + 1));
            assert!(c
                .get(Kind::ImagePolicy, &format!("n{}", i % 3), &format!("r{i}"))
                .is_none());
            assert!(c
                .get(Kind::ImageRepository, "other", &format!("r{i}"))
                .is_none());
        }
    }

    #[test]
    fn duplicates_and_versions() {
        let doc = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: r}\nspec: {image: alpine, interval: 1m}\n";
        let c = load_str(&format!("{doc}---\n{doc}"), Path::new("d.yaml"));
        assert_eq!(c.objects.len(), 1);
        assert!(c.errors[0]
            .message
            .contains("duplicate object: already defined in d.yaml (document 1)"));
        let c = load_str(&doc.replace("/v1\n", "/v2\n"), Path::new("d.yaml"));
        assert_eq!(c.errors[0].field.as_deref(), Some("apiVersion"));
        let c = load_str("a: [1, 2\n", Path::new("broken.yaml"));
        assert!(c.errors[0].message.starts_with("invalid YAML"));
        // A duplicate key is an error on its document; the documents around it load, and a
        // syntax error keeps what came before it.
        let other = doc.replace("name: r}", "name: s}");
        let text = format!("{doc}---\nkind: X\nkind: Y\n---\n{other}---\nspec: [\n");
        let c = load_str(&text, Path::new("m.yaml"));
        assert_eq!(c.objects.len(), 2, "{:?}", c.errors);
        let at: Vec<_> = c.errors.iter().map(|e| e.source.document).collect();
        assert_eq!(at, [2, 4], "{:?}", c.errors);
        assert!(
            c.errors[0].message.contains("duplicate mapping key: kind"),
            "{:?}",
            c.errors
        );
    }

    #[test]
    fn secrets_decode() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {token: dG9rZW4=}\nstringData: {user: bob}\n";
        let c = load_str(text, Path::new("s.yaml"));
        let Some(Object::Secret(s)) = c.objects.first().map(|l| &l.object) else {
            panic!("{:?}", c.errors)
        };
        assert_eq!(s.get("token").as_deref(), Some(&b"token"[..]));
        assert_eq!(s.get("user").as_deref(), Some(&b"bob"[..]));
        let c = load_str(&text.replace("dG9rZW4=", "not*base64"), Path::new("s.yaml"));
        assert_eq!(c.errors[0].field.as_deref(), Some("data.token"));
    }

    fn warnings_of(c: &Config) -> Vec<String> {
        c.warnings
            .iter()
            .map(|w| {
                format!(
                    "{}/{} {}",
                    w.kind.as_deref().unwrap_or(""),
                    w.name.as_deref().unwrap_or(""),
                    w.field.as_deref().unwrap_or("")
                )
            })
            .collect()
    }

    #[test]
    fn unknown_fields_are_warnings() {
        let text = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: p, namespace: apps, uid: x, creationTimestamp: null, labels: {a: b}, annotaions: {}}\nspec:\n  imageRepositoryRef: {name: r}\n  suspnd: true\n  policy: {semver: {range: '1.x', rnage: '2.x'}}\nstatus: {latestRef: {tag: x}}\n---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {name: g}\nspec: {url: 'ssh://h/r', interval: 1m, include: [{repository: {name: x}}]}\n";
        let c = load_str(text, Path::new("p.yaml"));
        assert_eq!(c.objects.len(), 2, "{:?}", c.errors);
        assert_eq!(
            warnings_of(&c),
            [
                "ImagePolicy/p metadata.annotaions",
                "ImagePolicy/p spec.suspnd",
                "ImagePolicy/p spec.policy.semver.rnage",
                "GitRepository/g spec.include",
            ]
        );
        assert!(c.warnings[0].message.contains("unknown field"));
        assert_eq!(c.warnings[3].message, "not supported by tagpilot, ignored");
        assert_eq!(c.warnings[0].namespace.as_deref(), Some("apps"));
    }

    #[test]
    fn a_misspelling_explains_a_missing_field() {
        let text = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: r}\nspec: {image: alpine, intreval: 5m}\n";
        let c = load_str(text, Path::new("r.yaml"));
        assert_eq!(c.errors[0].field.as_deref(), Some("spec.interval"));
        assert_eq!(warnings_of(&c), ["ImageRepository/r spec.intreval"]);
        assert_eq!(c.warnings[0].namespace.as_deref(), Some("default"));
    }

    #[test]
    fn secret_top_level_and_redacted_errors() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: Opaque\nimmutable: true\nstrinData: {a: b}\ndata: {token: dG9rZW4=}\n";
        let c = load_str(text, Path::new("s.yaml"));
        assert_eq!(c.objects.len(), 1);
        assert_eq!(warnings_of(&c), ["Secret/s strinData"]);
        // serde would quote the value: `invalid type: integer `918273645`, expected a string`.
        let c = load_str(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: 918273645}\n",
            Path::new("s.yaml"),
        );
        let msg = c.errors[0].to_string();
        assert!(msg.contains("invalid type"), "{msg}");
        assert!(!msg.contains("918273645"), "{msg}");
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_quoted("invalid type: string \"s3cr3t\", expected a map at `x` and \"open"),
            "invalid type: string \"<redacted>\", expected a map at `<redacted>` and \"<redacted> (truncated)"
        );
    }

    #[test]
    fn update_paths_and_intervals() {
        let auto = |path: &str, interval: &str| {
            format!("apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata: {{name: a}}\nspec:\n  interval: {interval}\n  sourceRef: {{kind: GitRepository, name: g}}\n  git: {{commit: {{author: {{email: a@b}}}}}}\n  update: {{path: '{path}'}}\n")
        };
        for ok in ["./apps", "apps/b", ".", "./"] {
            let c = load_str(&auto(ok, "1m"), Path::new("a.yaml"));
            assert!(c.errors.is_empty(), "{ok}: {:?}", c.errors);
        }
        for bad in ["../../", "/etc", "apps/../b", ".."] {
            let c = load_str(&auto(bad, "1m"), Path::new("a.yaml"));
            assert_eq!(c.errors.len(), 1, "{bad}");
            assert_eq!(
                c.errors[0].field.as_deref(),
                Some("spec.update.path"),
                "{bad}"
            );
        }
        for bad in ["0s", "500ms", "0h0m"] {
            let c = load_str(&auto("./", bad), Path::new("a.yaml"));
            assert_eq!(c.errors[0].field.as_deref(), Some("spec.interval"), "{bad}");
            assert!(
                c.errors[0].message.starts_with("must be at least 1s"),
                "{bad}"
            );
        }
        let repo = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: r}\nspec: {image: alpine, interval: 0s}\n";
        assert_eq!(
            load_str(repo, Path::new("r.yaml")).errors[0]
                .field
                .as_deref(),
            Some("spec.interval")
        );
    }
}
