//! YAML (and JSON) documents as tagpilot reads them: mappings in document order and typed
//! scalars. Order matters to SOPS, whose MAC hashes values in the order they were written;
//! that is why this is not a `serde_json::Value` (whose maps sort their keys).
//!
//! Documents are read with `serde-saphyr` ([`documents`]), YAML 1.2 scalars as `serde_yaml`
//! read them (`yes` is a string, `0755` and `1_000` too), with no source snippets in errors:
//! a message about a Secret's manifest must not quote its values.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One node of a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; keys are nodes as YAML allows (`80: http`).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The value under a string key of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value at a path of string keys (`["metadata", "name"]`).
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |v, key| v.get(key))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Node::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match self {
            Node::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The string keys of a mapping, in document order.
    pub fn map_keys(&self) -> impl Iterator<Item = &str> {
        let entries = match self {
            Node::Map(entries) => entries.as_slice(),
            _ => &[],
        };
        entries.iter().filter_map(|(k, _)| k.as_str())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }

    pub fn is_map(&self) -> bool {
        matches!(self, Node::Map(_))
    }

    /// The document as JSON, for typed loading. Scalar keys become strings, as Kubernetes'
    /// YAML-to-JSON conversion makes them; a float JSON cannot hold (`.nan`, `.inf`) is kept
    /// as its YAML spelling, so a field expecting a number names it in its error.
    pub fn into_json(self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Int(i) => i.into(),
            Node::UInt(u) => u.into(),
            Node::Float(f) => serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(float_text(f))),
            Node::Str(s) => Value::String(s),
            Node::Seq(items) => Value::Array(items.into_iter().map(Node::into_json).collect()),
            Node::Map(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.key_text(), v.into_json()))
                    .collect(),
            ),
        }
    }

    /// A key as JSON writes it.
    fn key_text(self) -> String {
        match self {
            Node::Str(s) => s,
            Node::Null => "null".to_owned(),
            Node::Bool(b) => b.to_string(),
            Node::Int(i) => i.to_string(),
            Node::UInt(u) => u.to_string(),
            Node::Float(f) => float_text(f),
            other => other.into_json().to_string(),
        }
    }
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        ".nan".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { ".inf" } else { "-.inf" }.to_owned()
    } else {
        f.to_string()
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML node")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(i64::try_from(v).map_or(Node::UInt(v), Node::Int))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        i64::try_from(v)
            .map(Node::Int)
            .or_else(|_| u64::try_from(v).map(Node::UInt))
            .map_err(|_| E::custom("integer out of range"))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        u64::try_from(v)
            .map(|u| self.visit_u64::<E>(u))
            .map_err(|_| E::custom("integer out of range"))?
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Node, E> {
        Ok(Node::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(Node, Node)> = Vec::new();
        // serde-saphyr refuses duplicate keys (its default policy), so none arrive here.
        while let Some((k, v)) = map.next_entry::<Node, Node>()? {
            entries.push((k, v));
        }
        Ok(Node::Map(entries))
    }
}

/// A node is a deserializer of its own, so typed loading keeps the document's order (a
/// warning about `spec.suspnd` comes before one about a field below it) and needs no second
/// tree. Scalar keys are offered as strings, as in [`Node::into_json`].
impl<'de> Deserializer<'de> for Node {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        use de::value::{MapDeserializer, SeqDeserializer};
        match self {
            Node::Null => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(b),
            Node::Int(i) => visitor.visit_i64(i),
            Node::UInt(u) => visitor.visit_u64(u),
            Node::Float(f) => visitor.visit_f64(f),
            Node::Str(s) => visitor.visit_string(s),
            Node::Seq(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter());
                let v = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(v)
            }
            Node::Map(entries) => {
                let entries = entries
                    .into_iter()
                    .map(|(k, v)| (Node::Str(k.key_text()), v));
                let mut map = MapDeserializer::new(entries);
                let v = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(v)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Node::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        use de::IntoDeserializer as _;
        match self {
            // A unit variant is its name; anything else is one `{variant: value}` entry.
            Node::Str(s) => visitor.visit_enum(s.into_deserializer()),
            Node::Map(mut entries) if entries.len() == 1 => {
                let (k, v) = entries.remove(0);
                visitor.visit_enum(de::value::MapAccessDeserializer::new(
                    de::value::MapDeserializer::new(std::iter::once((Node::Str(k.key_text()), v))),
                ))
            }
            other => Err(de::Error::invalid_type(
                other.unexpected(),
                &"an enum variant",
            )),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

impl<'de> de::IntoDeserializer<'de, de::value::Error> for Node {
    type Deserializer = Node;

    fn into_deserializer(self) -> Node {
        self
    }
}

impl Node {
    fn unexpected(&self) -> de::Unexpected<'_> {
        match self {
            Node::Null => de::Unexpected::Unit,
            Node::Bool(b) => de::Unexpected::Bool(*b),
            Node::Int(i) => de::Unexpected::Signed(*i),
            Node::UInt(u) => de::Unexpected::Unsigned(*u),
            Node::Float(f) => de::Unexpected::Float(*f),
            Node::Str(s) => de::Unexpected::Str(s),
            Node::Seq(_) => de::Unexpected::Seq,
            Node::Map(_) => de::Unexpected::Map,
        }
    }
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

fn options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.with_snippet = false;
    o.strict_booleans = true;
    o.leading_zero_numbers_as_strings = true;
    o.underscored_numbers_as_strings = true;
    o
}

/// The documents of a YAML stream, in order; empty documents are skipped. A document that
/// cannot be read (a duplicate key, `.nan`) is an error in its place; after a syntax error
/// the stream cannot be resynchronised, so that error is the last item.
pub fn documents(text: &str) -> Vec<Result<Node, ParseError>> {
    let mut reader = text.as_bytes();
    let mut out = Vec::new();
    for doc in serde_saphyr::read_with_options::<_, Node>(&mut reader, options()) {
        // After an error in one document the parser goes on with the next, unless the
        // syntax is broken: then the iterator ends by itself.
        out.push(doc.map_err(|e| ParseError(e.to_string())));
    }
    out
}

/// One document read straight into `T` (a Secret's `headers` map, say).
pub fn from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ParseError> {
    serde_saphyr::from_str_with_options(text, options()).map_err(|e| ParseError(e.to_string()))
}

/// Why a value could not be written as YAML.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WriteError(String);

/// `value` as one YAML document, the way kubectl and flux print manifests: two-space indent,
/// list items at their key's indent, multi-line strings as `|` blocks, long lines not folded.
pub fn to_string<T: serde::Serialize>(value: &T) -> Result<String, WriteError> {
    let mut o = serde_saphyr::SerializerOptions::default();
    o.folded_wrap_chars = usize::MAX;
    serde_saphyr::to_string_with_options(value, o).map_err(|e| WriteError(e.to_string()))
}

/// One document (a file that holds exactly one, such as a SOPS JSON file).
pub fn document(text: &str) -> Result<Node, ParseError> {
    serde_saphyr::from_str_with_options(text, options()).map_err(|e| ParseError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        match documents(text).pop() {
            Some(Ok(n)) => n,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn scalars_are_read_as_yaml_1_2() {
        let n = one("a: yes\nb: true\nc: 0755\nd: 1_000\ne: 3\nf: 2.5\ng: ~\nh: '3'\ni: 18446744073709551615\n");
        let get = |k: &str| n.get(k).cloned();
        assert_eq!(get("a"), Some(Node::Str("yes".into())));
        assert_eq!(get("b"), Some(Node::Bool(true)));
        assert_eq!(get("c"), Some(Node::Str("0755".into())));
        assert_eq!(get("d"), Some(Node::Str("1_000".into())));
        assert_eq!(get("e"), Some(Node::Int(3)));
        assert_eq!(get("f"), Some(Node::Float(2.5)));
        assert_eq!(get("g"), Some(Node::Null));
        assert_eq!(get("h"), Some(Node::Str("3".into())));
        assert_eq!(get("i"), Some(Node::UInt(u64::MAX)));
    }

    #[test]
    fn mappings_keep_document_order_and_refuse_duplicate_keys() {
        let Node::Map(entries) = one("z: 1\na: 2\nm: 3\n") else {
            panic!("a mapping");
        };
        let keys: Vec<_> = entries.iter().filter_map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "a", "m"]);
        let docs = documents("a: 1\na: 2\n");
        assert!(
            matches!(docs.last(), Some(Err(e)) if e.to_string().contains("duplicate mapping key: a")),
            "{docs:?}"
        );
    }

    #[test]
    fn a_syntax_error_ends_the_stream_after_the_good_documents_and_quotes_no_value() {
        let docs = documents("a: 1\n---\n\n---\nb: 2\n---\npassword: hunter2\n  bad: [\n");
        assert_eq!(docs.len(), 3, "{docs:?}");
        assert!(docs[0].is_ok() && docs[1].is_ok());
        let Err(e) = &docs[2] else {
            panic!("a syntax error")
        };
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn typed_reading_keeps_document_order_and_names_types() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        #[serde(rename_all = "camelCase")]
        enum Mode {
            Fast,
            Slow { by: u32 },
        }
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct T {
            n: Option<u32>,
            list: Vec<String>,
            labels: std::collections::BTreeMap<String, String>,
            mode: Mode,
            other: Mode,
        }
        let t: T = T::deserialize(one(
            "n: ~\nlist: [a, b]\nlabels: {80: http}\nmode: fast\nother: {slow: {by: 2}}\n",
        ))
        .unwrap();
        assert_eq!(
            t,
            T {
                n: None,
                list: vec!["a".into(), "b".into()],
                labels: [("80".to_owned(), "http".to_owned())].into(),
                mode: Mode::Fast,
                other: Mode::Slow { by: 2 },
            }
        );
        let e = u32::deserialize(Node::Str("x".into())).unwrap_err();
        assert_eq!(e.to_string(), "invalid type: string \"x\", expected u32");
        let mut seen = Vec::new();
        let _: serde::de::IgnoredAny = serde_ignored_like(one("z: 1\na: 2\n"), &mut seen);
        assert_eq!(seen, ["z", "a"]);
    }

    /// Visits a map's keys in the order the deserializer offers them.
    fn serde_ignored_like(n: Node, seen: &mut Vec<String>) -> serde::de::IgnoredAny {
        struct Keys<'a>(&'a mut Vec<String>);
        impl<'de> Visitor<'de> for Keys<'_> {
            type Value = serde::de::IgnoredAny;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                    self.0.push(k);
                }
                Ok(serde::de::IgnoredAny)
            }
        }
        n.deserialize_map(Keys(seen)).unwrap()
    }

    #[test]
    fn json_conversion_stringifies_keys() {
        let j = one("80: http\ntrue: x\nl: [1, -2, 2.5]\n").into_json();
        assert_eq!(
            j,
            serde_json::json!({"80": "http", "true": "x", "l": [1, -2, 2.5]})
        );
        // JSON has no NaN; YAML's is refused in its document, and the next one still loads.
        let docs = documents("n: .nan\n---\na: 1\n");
        assert!(
            matches!(&docs[0], Err(e) if e.to_string().contains(".nan")),
            "{docs:?}"
        );
        assert!(
            matches!(&docs[1], Ok(n) if n.get("a") == Some(&Node::Int(1))),
            "{docs:?}"
        );
    }
}
