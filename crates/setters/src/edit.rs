//! Applying setters to one file's contents: find the markers, replace only the marked scalars'
//! bytes, then re-parse and check that exactly those scalars changed.

use std::collections::BTreeMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::marker::{parse_marker, Setter};
use crate::scalar::{render, Style};
use crate::{Change, LatestRef, ObjectChange, ObjectId};

/// Why a file was not updated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The file is not YAML (a Helm template, say): skipped, with a warning.
    #[error("not valid YAML, skipped: {0}")]
    Parse(String),
    /// The edit could not be verified: the file is refused and left untouched.
    #[error("refusing to write: {0}")]
    Verify(String),
}

/// The result of updating one file's contents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileUpdate {
    /// The new contents (equal to the input when nothing changed).
    pub content: String,
    /// Changed objects, in document order.
    pub objects: Vec<ObjectChange>,
    /// Markers that were recognised but not applied, and why.
    pub warnings: Vec<String>,
}

/// The policies the setters know, by (namespace, name).
pub type Policies = BTreeMap<(String, String), LatestRef>;

/// A scalar event with its byte span.
#[derive(Debug, Clone, PartialEq)]
struct Scalar {
    value: String,
    style: ScalarStyle,
    start: usize,
    end: usize,
}

/// Every event of the stream reduced to what must survive an edit unchanged.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    /// Value, style, anchor id, and the tag as text (rare, so formatted only when present).
    Scalar(String, ScalarStyle, usize, Option<String>),
    /// Event kind, anchor id, tag as text.
    Other(u8, usize, Option<String>),
}

fn shape(event: &Event<'_>) -> Shape {
    let tag =
        |t: &Option<std::borrow::Cow<'_, saphyr_parser::Tag>>| t.as_ref().map(|t| format!("{t:?}"));
    match event {
        Event::Scalar(v, style, anchor, t) => Shape::Scalar(v.to_string(), *style, *anchor, tag(t)),
        Event::SequenceStart(anchor, t) => Shape::Other(1, *anchor, tag(t)),
        Event::MappingStart(anchor, t) => Shape::Other(2, *anchor, tag(t)),
        Event::SequenceEnd => Shape::Other(3, 0, None),
        Event::MappingEnd => Shape::Other(4, 0, None),
        Event::Alias(id) => Shape::Other(5, *id, None),
        Event::DocumentStart(explicit) => Shape::Other(6, usize::from(*explicit), None),
        Event::DocumentEnd => Shape::Other(7, 0, None),
        Event::StreamStart => Shape::Other(8, 0, None),
        Event::StreamEnd => Shape::Other(9, 0, None),
        Event::Nothing => Shape::Other(10, 0, None),
    }
}

/// Maps char indices (the parser's unit) to byte offsets.
struct CharMap {
    offsets: Option<Vec<usize>>,
    len: usize,
}

impl CharMap {
    fn new(text: &str) -> Self {
        let offsets = (!text.is_ascii()).then(|| {
            let mut v: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
            v.push(text.len());
            v
        });
        CharMap {
            offsets,
            len: text.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        match &self.offsets {
            None => char_index.min(self.len),
            Some(v) => v.get(char_index).copied().unwrap_or(self.len),
        }
    }
}

enum Frame {
    Map {
        expect_key: bool,
        key: Option<String>,
        flow: bool,
    },
    Seq {
        flow: bool,
    },
}

impl Frame {
    fn is_flow(&self) -> bool {
        match self {
            Frame::Map { flow, .. } | Frame::Seq { flow } => *flow,
        }
    }
}

/// One document's bookkeeping while walking events.
#[derive(Default)]
struct Doc {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
    changes: Vec<Change>,
}

/// A pending replacement of `start..end` by `text`.
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

/// Applies every marker in `content` whose policy is in `policies`.
pub fn update_str(content: &str, policies: &Policies) -> Result<FileUpdate, FileError> {
    let chars = CharMap::new(content);
    let mut frames: Vec<Frame> = Vec::new();
    let mut doc = Doc::default();
    let mut objects = Vec::new();
    let mut warnings = Vec::new();
    let mut edits: Vec<Edit> = Vec::new();
    let mut expected: Vec<(usize, String)> = Vec::new();
    let mut scalar_count = 0usize;
    let mut before = Vec::new();

    for item in Parser::new_from_str(content) {
        let (event, span) = item.map_err(|e| FileError::Parse(e.to_string()))?;
        before.push(shape(&event));
        match event {
            Event::DocumentStart(_) => {
                frames.clear();
                doc = Doc::default();
            }
            Event::DocumentEnd => {
                finish_doc(&mut doc, &mut objects);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                node_consumed(&mut frames);
                // Block collections start with an empty span; flow ones at their bracket.
                let at = chars.byte(span.start.index());
                let flow = span.end.index() > span.start.index()
                    && matches!(content.as_bytes().get(at), Some(b'[' | b'{'));
                frames.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Map {
                        expect_key: true,
                        key: None,
                        flow,
                    }
                } else {
                    Frame::Seq { flow }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                frames.pop();
            }
            Event::Alias(_) => node_consumed(&mut frames),
            Event::Scalar(value, style, _, _) => {
                let index = scalar_count;
                scalar_count += 1;
                if let Some(Frame::Map {
                    expect_key: true,
                    key,
                    ..
                }) = frames.last_mut()
                {
                    *key = Some(value.to_string());
                    if let Some(Frame::Map { expect_key, .. }) = frames.last_mut() {
                        *expect_key = false;
                    }
                    continue;
                }
                record_identity(&frames, &value, &mut doc);
                let end = chars.byte(span.end.index());
                let start = skip_properties(content, chars.byte(span.start.index()), end);
                let scalar = Scalar {
                    value: value.to_string(),
                    style,
                    start,
                    end: scalar_end(content, start, style, end),
                };
                let in_flow = frames.iter().any(Frame::is_flow);
                if let Some(edit) =
                    plan_edit(content, &scalar, in_flow, policies, &mut doc, &mut warnings)
                {
                    expected.push((index, edit.1));
                    edits.push(edit.0);
                }
                node_consumed(&mut frames);
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
    finish_doc(&mut doc, &mut objects);

    if edits.is_empty() {
        return Ok(FileUpdate {
            content: content.to_owned(),
            objects: Vec::new(),
            warnings,
        });
    }
    let mut out = content.to_owned();
    for e in edits.iter().rev() {
        out.replace_range(e.start..e.end, &e.text);
    }
    verify(&before, &out, &expected)?;
    Ok(FileUpdate {
        content: out,
        objects,
        warnings,
    })
}

/// A node finished as the value (or key) of its parent.
fn node_consumed(frames: &mut [Frame]) {
    if let Some(Frame::Map { expect_key, .. }) = frames.last_mut() {
        *expect_key = !*expect_key;
    }
}

/// Records apiVersion, kind, metadata.name and metadata.namespace of the document.
fn record_identity(frames: &[Frame], value: &str, doc: &mut Doc) {
    fn key(f: &Frame) -> Option<&str> {
        match f {
            Frame::Map { key, .. } => key.as_deref(),
            Frame::Seq { .. } => None,
        }
    }
    match frames {
        [top] => match key(top) {
            Some("apiVersion") => doc.api_version = value.to_owned(),
            Some("kind") => doc.kind = value.to_owned(),
            _ => {}
        },
        [top, meta] if key(top) == Some("metadata") => match key(meta) {
            Some("name") => doc.name = value.to_owned(),
            Some("namespace") => doc.namespace = value.to_owned(),
            _ => {}
        },
        _ => {}
    }
}

fn finish_doc(doc: &mut Doc, objects: &mut Vec<ObjectChange>) {
    let d = std::mem::take(doc);
    if !d.changes.is_empty() {
        objects.push(ObjectChange {
            object: ObjectId {
                api_version: d.api_version,
                kind: d.kind,
                namespace: d.namespace,
                name: d.name,
            },
            changes: d.changes,
        });
    }
}

/// The first byte of the scalar itself: a node's span starts at its properties (`&anchor`,
/// `!tag`), which an edit must leave in place.
fn skip_properties(text: &str, mut start: usize, end: usize) -> usize {
    let b = text.as_bytes();
    while start < end && matches!(b.get(start), Some(b'&' | b'!')) {
        while start < end && !matches!(b[start], b' ' | b'\t' | b'\n' | b'\r') {
            start += 1;
        }
        while start < end && matches!(b[start], b' ' | b'\t' | b'\n' | b'\r') {
            start += 1;
        }
    }
    start
}

/// The byte just past the scalar's last character. The parser's end mark is exact for plain
/// and single-quoted scalars; double-quoted ones are re-scanned from the opening quote.
fn scalar_end(text: &str, start: usize, style: ScalarStyle, parser_end: usize) -> usize {
    let b = text.as_bytes();
    match style {
        ScalarStyle::DoubleQuoted if b.get(start) == Some(&b'"') => {
            let mut i = start + 1;
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 2,
                    b'"' => return i + 1,
                    _ => i += 1,
                }
            }
            parser_end
        }
        ScalarStyle::SingleQuoted if b.get(start) == Some(&b'\'') => {
            let mut i = start + 1;
            while i < b.len() {
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    return i + 1;
                }
                i += 1;
            }
            parser_end
        }
        _ => parser_end,
    }
}

/// The line comment following a value scalar ending at `end`, if any.
fn line_comment(text: &str, end: usize) -> Option<&str> {
    let b = text.as_bytes();
    let mut i = end;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b',' | b']' | b'}') {
        i += 1;
    }
    if i >= b.len() || b[i] != b'#' || i == 0 || !matches!(b[i - 1], b' ' | b'\t') {
        return None;
    }
    let line_end = text[i..].find('\n').map_or(text.len(), |n| i + n);
    Some(text[i..line_end].trim_end_matches('\r'))
}

/// Decides the edit for one value scalar: (edit, expected new value).
fn plan_edit(
    text: &str,
    s: &Scalar,
    in_flow: bool,
    policies: &Policies,
    doc: &mut Doc,
    warnings: &mut Vec<String>,
) -> Option<(Edit, String)> {
    let style = match s.style {
        ScalarStyle::Plain => Style::Plain,
        ScalarStyle::SingleQuoted => Style::Single,
        ScalarStyle::DoubleQuoted => Style::Double,
        // Text inside block scalars is never a marker.
        ScalarStyle::Literal | ScalarStyle::Folded => return None,
    };
    if s.start == s.end {
        // An empty value: there are no bytes to replace.
        return None;
    }
    let comment = line_comment(text, s.end)?;
    let marker = parse_marker(comment)?;
    let latest = policies.get(&(marker.namespace.clone(), marker.name.clone()))?;
    let new_value = match marker.setter {
        Setter::Image => latest.image(),
        Setter::Tag => latest.tag.clone(),
        Setter::Name => latest.name.clone(),
        Setter::Digest => match &latest.digest {
            Some(d) if !d.is_empty() => d.clone(),
            _ => {
                warnings.push(format!(
                    "marker {} not applied: policy {}/{} has no digest",
                    marker.text, marker.namespace, marker.name
                ));
                return None;
            }
        },
    };
    if new_value == s.value {
        return None;
    }
    doc.changes.push(Change {
        old_value: s.value.clone(),
        new_value: new_value.clone(),
        setter: marker.text.clone(),
    });
    Some((
        Edit {
            start: s.start,
            end: s.end,
            text: render(&new_value, style, in_flow),
        },
        new_value,
    ))
}

/// Re-parses both texts and checks that they differ exactly in the planned scalars.
fn verify(old: &[Shape], after: &str, expected: &[(usize, String)]) -> Result<(), FileError> {
    let new = shapes(after)
        .map_err(|e| FileError::Verify(format!("the edited file does not parse: {e}")))?;
    if old.len() != new.len() {
        return Err(FileError::Verify(
            "the edit changed the document structure".to_owned(),
        ));
    }
    let mut scalar_index = 0usize;
    let mut want = expected.iter().peekable();
    for (o, n) in old.iter().zip(&new) {
        match (o, n) {
            (Shape::Scalar(..), Shape::Scalar(nv, ..)) => {
                if let Some((_, value)) = want.next_if(|(i, _)| *i == scalar_index) {
                    if nv != value {
                        return Err(FileError::Verify(format!(
                            "scalar {scalar_index} reads back as {nv:?}, expected {value:?}"
                        )));
                    }
                } else if o != n {
                    return Err(FileError::Verify(format!(
                        "an unmarked scalar changed: {o:?} became {n:?}"
                    )));
                }
                scalar_index += 1;
            }
            (a, b) if a == b => {}
            _ => {
                return Err(FileError::Verify(
                    "the edit changed the document structure".to_owned(),
                ))
            }
        }
    }
    Ok(())
}

fn shapes(text: &str) -> Result<Vec<Shape>, String> {
    let mut out = Vec::new();
    for item in Parser::new_from_str(text) {
        let (event, _) = item.map_err(|e| e.to_string())?;
        out.push(shape(&event));
    }
    Ok(out)
}
