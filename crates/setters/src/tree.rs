//! Walking an update path for marked files, and writing the results atomically.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::edit::{update_str, FileError, Policies};
use crate::ObjectChange;

/// The literal every candidate file must contain (Flux's cheap screen).
const SCREEN: &[u8] = b"\"$imagepolicy\"";

/// A file that could not be processed or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{path}: {source}")]
    Refused { path: String, source: FileError },
}

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// Relative to the update path, `/`-separated.
    pub path: String,
    pub objects: Vec<ObjectChange>,
    /// The new contents.
    #[serde(skip)]
    pub content: String,
}

/// The result of applying the setters to a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChangeSet {
    /// Changed files, sorted by path.
    pub files: Vec<FileChange>,
    /// Files skipped or markers not applied, with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Files that could not be read or safely edited; nothing is written for them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Applies the setters to every marked file under `root` without writing anything.
pub fn scan_tree(root: &Path, policies: &Policies) -> Result<ChangeSet, TreeError> {
    let canonical_root = root.canonicalize().map_err(|e| TreeError::Io {
        path: root.display().to_string(),
        message: e.to_string(),
    })?;
    if !canonical_root.is_dir() {
        return Err(TreeError::Io {
            path: root.display().to_string(),
            message: "not a directory".to_owned(),
        });
    }
    let mut set = ChangeSet::default();
    let mut files = Vec::new();
    walk(&canonical_root, &canonical_root, &mut files, &mut set);
    files.sort();
    // Reading and editing files is independent per file: spread it over the cores, then
    // merge in path order so the result does not depend on scheduling.
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = files.len().div_ceil(workers).max(64);
    let outcomes: Vec<Vec<Outcome>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(rel, path)| process(rel, path, policies))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![Outcome::Error("internal error: worker panicked".to_owned())]
                })
            })
            .collect()
    });
    for outcome in outcomes.into_iter().flatten() {
        match outcome {
            Outcome::Unmarked => {}
            Outcome::Changed(change, warnings) => {
                set.warnings.extend(warnings);
                if let Some(c) = change {
                    set.files.push(c);
                }
            }
            Outcome::Warning(w) => set.warnings.push(w),
            Outcome::Error(e) => set.errors.push(e),
        }
    }
    Ok(set)
}

enum Outcome {
    Unmarked,
    Changed(Option<FileChange>, Vec<String>),
    Warning(String),
    Error(String),
}

fn process(rel: &str, path: &Path, policies: &Policies) -> Outcome {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) => return Outcome::Error(format!("{rel}: cannot read: {e}")),
    };
    if memchr::memmem::find(&bytes, SCREEN).is_none() {
        return Outcome::Unmarked;
    }
    let Ok(text) = String::from_utf8(bytes) else {
        return Outcome::Warning(format!("{rel}: not UTF-8, skipped"));
    };
    match update_str(&text, policies) {
        Ok(update) => {
            let warnings = update
                .warnings
                .into_iter()
                .map(|w| format!("{rel}: {w}"))
                .collect();
            let change = (!update.objects.is_empty()).then(|| FileChange {
                path: rel.to_owned(),
                objects: update.objects,
                content: update.content,
            });
            Outcome::Changed(change, warnings)
        }
        Err(e @ FileError::Parse(_)) => Outcome::Warning(format!("{rel}: {e}")),
        Err(e @ FileError::Verify(_)) => Outcome::Error(format!("{rel}: {e}")),
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>, set: &mut ChangeSet) {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            set.errors
                .push(format!("{}: cannot read directory: {e}", rel(root, dir)));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        // The directory entry's type needs no extra system call (unlike a stat per file).
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_symlink() {
            // Never followed: a link inside the tree is visited at its target anyway, and a
            // link leading out of the update path must not be read or written.
            let inside = path.canonicalize().is_ok_and(|t| t.starts_with(root));
            if !inside && is_candidate(&name.to_string_lossy()) {
                set.warnings.push(format!(
                    "{}: symlink leads outside the update path, refused",
                    rel(root, &path)
                ));
            }
            continue;
        }
        if file_type.is_dir() {
            if name != ".git" {
                walk(root, &path, out, set);
            }
        } else if file_type.is_file() && is_candidate(&name.to_string_lossy()) {
            out.push((rel(root, &path), path));
        }
    }
}

fn is_candidate(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml") || name == "Kustomization"
}

fn rel(root: &Path, path: &Path) -> String {
    let r = path.strip_prefix(root).unwrap_or(path);
    r.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Writes every changed file under `root`: temp file in the same directory, same mode, fsync,
/// rename. A file is either fully old or fully new, never half-written.
pub fn write_changes(root: &Path, set: &ChangeSet) -> Result<(), TreeError> {
    write_files(root, set, None).map(drop)
}

/// Like [`write_changes`], for the work tree of a clone: the temp files go to `scratch` (a
/// directory on the same file system that nothing stages, such as the clone's `.git`), so a
/// temp file can never be committed, and nothing is fsynced: the work tree is rebuilt from
/// Git at the start of every round and only the commit made from it has to last (a crash
/// before it loses nothing the next round does not redo). An fsync per file was most of a
/// 100-file `run --once`. Returns the files written, resolved (absolute, no symlinks), so
/// that the commit can stage just those.
pub fn write_changes_in_clone(
    root: &Path,
    set: &ChangeSet,
    scratch: &Path,
) -> Result<Vec<PathBuf>, TreeError> {
    write_files(root, set, Some(scratch))
}

/// `scratch`: the temp files' directory, and no fsync (see [`write_changes_in_clone`]).
fn write_files(
    root: &Path,
    set: &ChangeSet,
    scratch: Option<&Path>,
) -> Result<Vec<PathBuf>, TreeError> {
    let real_root = root.canonicalize().map_err(|e| TreeError::Io {
        path: root.display().to_string(),
        message: e.to_string(),
    })?;
    let mut written = Vec::with_capacity(set.files.len());
    for f in &set.files {
        let escapes = |message: &str| TreeError::Io {
            path: f.path.clone(),
            message: message.to_owned(),
        };
        if f.path.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(escapes("path escapes the update path"));
        }
        let target = real_root.join(&f.path);
        // The tree may have changed since it was scanned: resolve again right before writing,
        // so neither a directory nor the file itself can be a link out of the update path.
        let Some(parent) = target
            .parent()
            .and_then(|p| p.canonicalize().ok())
            .filter(|p| p.starts_with(&real_root))
        else {
            return Err(escapes(
                "leads outside the update path through a symlink, refused",
            ));
        };
        if fs::symlink_metadata(&target).is_ok_and(|m| !m.file_type().is_file()) {
            return Err(escapes("is no longer a regular file, refused"));
        }
        write_atomic(&target, f.content.as_bytes(), scratch).map_err(|e| TreeError::Io {
            path: f.path.clone(),
            message: e.to_string(),
        })?;
        written.push(parent.join(target.file_name().unwrap_or_default()));
    }
    Ok(written)
}

fn write_atomic(target: &Path, content: &[u8], scratch: Option<&Path>) -> std::io::Result<()> {
    let dir = scratch.unwrap_or_else(|| target.parent().unwrap_or(Path::new(".")));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tagpilot-{}.tmp", std::process::id()));
    let perms = fs::metadata(target)?.permissions();
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(content)?;
        f.set_permissions(perms)?;
        if scratch.is_none() {
            f.sync_all()?;
        }
        fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
