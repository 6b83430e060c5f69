//! Flux image-automation setters, done surgically.
//!
//! Finds `$imagepolicy` markers in YAML files (line comments on mapping values and sequence
//! items) and replaces only the marked scalars' bytes: comments, blank lines, `---`, indentation,
//! quoting, CRLF and unicode elsewhere stay byte-identical. Every edited file is re-parsed and
//! checked before it is offered for writing. Pure apart from reading the tree and, on request,
//! writing the files ([`write_changes`]).

mod edit;
mod marker;
mod scalar;
mod tree;

use serde::Serialize;

pub use edit::{update_str, FileError, FileUpdate, Policies};
pub use marker::{parse_marker, Marker, Setter};
pub use scalar::{plain_is_safe, reads_as_non_string, render, Style};
pub use tree::{
    scan_tree, write_changes, write_changes_in_clone, ChangeSet, FileChange, TreeError,
};

/// What a policy resolved to: `name` is the ImageRepository's `spec.image` verbatim.
pub use tagpilot_reference::Reference as LatestRef;

/// The identity of the YAML document holding a change (empty fields for non-Kubernetes YAML).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectId {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// One changed value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub old_value: String,
    pub new_value: String,
    /// The marker value, e.g. `flux-system:podinfo:tag`.
    pub setter: String,
}

/// The changes in one object (document), in document order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectChange {
    pub object: ObjectId,
    pub changes: Vec<Change>,
}
