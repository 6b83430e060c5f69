//! The data a commit-message template sees, as Flux's image-automation-controller builds it:
//! `.AutomationObject`, `.Values`, `.Changed` (current) and `.Updated` (the guide's legacy
//! model), with deterministic orders where Go's are random.

use std::collections::BTreeMap;

use tagpilot_setters::{Change, ChangeSet, LatestRef, ObjectId, Policies};

use crate::value::Value;

/// What the message is about.
#[derive(Debug, Clone, Copy)]
pub struct MessageInput<'a> {
    /// The automation's namespace and name.
    pub automation: (&'a str, &'a str),
    /// `messageTemplateValues`.
    pub values: &'a BTreeMap<String, String>,
    pub changes: &'a ChangeSet,
    /// The policies the setters used, to describe images for `.Updated`.
    pub policies: &'a Policies,
}

fn namespaced_name(namespace: &str, name: &str) -> Value {
    Value::structure(
        "types.NamespacedName",
        vec![
            ("Namespace", Value::str(namespace)),
            ("Name", Value::str(name)),
        ],
        Some(format!("{namespace}/{name}")),
    )
}

/// Flux's `ObjectIdentifier` (kyaml `ResourceIdentifier`): fields in Go's declaration order
/// (APIVersion, Kind, Name, Namespace), which is also how struct-keyed maps are sorted.
fn object_id(o: &ObjectId) -> Value {
    Value::structure(
        "update.ObjectIdentifier",
        vec![
            ("APIVersion", Value::str(&o.api_version)),
            ("Kind", Value::str(&o.kind)),
            ("Name", Value::str(&o.name)),
            ("Namespace", Value::str(&o.namespace)),
        ],
        Some(format!(
            "{{{{{{{} {}}} {{{} {}}}}}}}",
            o.api_version, o.kind, o.name, o.namespace
        )),
    )
}

fn change(c: &Change) -> Value {
    Value::structure(
        "update.Change",
        vec![
            ("OldValue", Value::str(&c.old_value)),
            ("NewValue", Value::str(&c.new_value)),
            ("Setter", Value::str(&c.setter)),
        ],
        None,
    )
}

/// The legacy `ImageRef`: prints as the full reference.
fn image_ref(policy: (&str, &str), latest: &LatestRef) -> Value {
    let full = latest.image();
    // go-containerregistry's reading: Docker Hub's aliases are one host, `library/` added.
    let (registry, repository) = latest.registry_and_repository();
    let identifier = match latest.digest.as_deref() {
        Some(d) if !d.is_empty() => d.to_owned(),
        _ => latest.tag.clone(),
    };
    Value::structure(
        "update.ImageRef",
        vec![
            ("String", Value::str(&full)),
            ("Name", Value::str(format!("{registry}/{repository}"))),
            ("Registry", Value::str(registry)),
            ("Repository", Value::str(repository)),
            ("Tag", Value::str(&latest.tag)),
            ("Identifier", Value::str(identifier)),
            ("Policy", namespaced_name(policy.0, policy.1)),
        ],
        Some(full),
    )
}

/// The policy a change's setter names (`ns:name[:suffix]`).
fn policy_of(setter: &str) -> Option<(&str, &str)> {
    let mut parts = setter.split(':');
    Some((parts.next()?, parts.next()?))
}

fn push_unique(list: &mut Vec<Value>, v: Value) {
    if !list.iter().any(|x| crate::value::equal(x, &v)) {
        list.push(v);
    }
}

/// Builds the template data.
pub fn commit_data(input: &MessageInput<'_>) -> Value {
    let mut file_changes = Vec::new();
    let mut merged: BTreeMap<ObjectId, Vec<Value>> = BTreeMap::new();
    let mut all_changes: Vec<Value> = Vec::new();
    let mut legacy_files = Vec::new();
    let mut legacy_objects: BTreeMap<ObjectId, Vec<Value>> = BTreeMap::new();
    let mut images: Vec<Value> = Vec::new();

    let mut files: Vec<_> = input.changes.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for file in files {
        let mut objects = Vec::new();
        let mut file_images = Vec::new();
        for obj in &file.objects {
            let changes: Vec<Value> = obj.changes.iter().map(change).collect();
            merged
                .entry(obj.object.clone())
                .or_default()
                .extend(changes.iter().cloned());
            for c in &changes {
                push_unique(&mut all_changes, c.clone());
            }
            objects.push((object_id(&obj.object), Value::list(changes)));

            let mut refs = Vec::new();
            for c in &obj.changes {
                let Some((ns, name)) = policy_of(&c.setter) else {
                    continue;
                };
                let Some(latest) = input.policies.get(&(ns.to_owned(), name.to_owned())) else {
                    continue;
                };
                push_unique(&mut refs, image_ref((ns, name), latest));
            }
            for r in &refs {
                push_unique(&mut images, r.clone());
                let entry = legacy_objects.entry(obj.object.clone()).or_default();
                push_unique(entry, r.clone());
            }
            file_images.push((object_id(&obj.object), Value::list(refs)));
        }
        file_changes.push((Value::str(&file.path), Value::map(objects, Value::Nil)));
        let file_result = Value::structure(
            "update.FileResult",
            vec![("Objects", Value::map(file_images, Value::Nil))],
            None,
        );
        legacy_files.push((Value::str(&file.path), file_result));
    }

    let objects_map = |m: BTreeMap<ObjectId, Vec<Value>>| {
        Value::map(
            m.into_iter()
                .map(|(k, v)| (object_id(&k), Value::list(v)))
                .collect(),
            Value::Nil,
        )
    };
    let changed = Value::structure(
        "update.Result",
        vec![
            ("FileChanges", Value::map(file_changes, Value::Nil)),
            ("Objects", objects_map(merged)),
            ("Changes", Value::list(all_changes)),
        ],
        None,
    );
    let updated = Value::structure(
        "update.Result",
        vec![
            ("Files", Value::map(legacy_files, Value::Nil)),
            ("Objects", objects_map(legacy_objects)),
            ("Images", Value::list(images)),
        ],
        None,
    );
    Value::structure(
        "TemplateData",
        vec![
            (
                "AutomationObject",
                namespaced_name(input.automation.0, input.automation.1),
            ),
            ("Values", Value::string_map(input.values)),
            ("Changed", changed),
            ("Updated", updated),
        ],
        None,
    )
}
