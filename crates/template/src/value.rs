//! The values templates operate on, with Go's printing, truth and ordering rules.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::rc::Rc;

/// A template value. `NoValue` is Go's invalid value (a missing map key), printed `<no value>`.
#[derive(Debug, Clone)]
pub enum Value {
    NoValue,
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Rc<Vec<Value>>),
    Map(Rc<Map>),
    Struct(Rc<Struct>),
}

/// A map, kept sorted by key (Go's `fmtsort` order, which `range` and printing use).
#[derive(Debug, Clone)]
pub struct Map {
    entries: Vec<(Value, Value)>,
    /// What `index` returns for a missing key (the element type's zero value).
    zero: Value,
}

/// A struct: named fields, and how `{{.}}` prints it when the Go type has a `String` method.
#[derive(Debug, Clone)]
pub struct Struct {
    pub type_name: String,
    pub fields: Vec<(String, Value)>,
    pub display: Option<String>,
}

impl Map {
    pub fn new(mut entries: Vec<(Value, Value)>, zero: Value) -> Self {
        entries.sort_by(|a, b| compare_keys(&a.0, &b.0));
        entries.dedup_by(|a, b| compare_keys(&a.0, &b.0) == Ordering::Equal);
        Map { entries, zero }
    }

    pub fn entries(&self) -> &[(Value, Value)] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &Value) -> Option<&Value> {
        self.entries
            .binary_search_by(|(k, _)| compare_keys(k, key))
            .ok()
            .map(|i| &self.entries[i].1)
    }

    pub fn get_str(&self, key: &str) -> Option<&Value> {
        self.get(&Value::Str(key.to_owned()))
    }

    pub fn zero(&self) -> &Value {
        &self.zero
    }
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Rc::new(items))
    }

    pub fn map(entries: Vec<(Value, Value)>, zero: Value) -> Value {
        Value::Map(Rc::new(Map::new(entries, zero)))
    }

    /// A `map[string]string`.
    pub fn string_map<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Value {
        Value::map(
            pairs
                .into_iter()
                .map(|(k, v)| (Value::str(k.clone()), Value::str(v.clone())))
                .collect(),
            Value::str(""),
        )
    }

    pub fn structure(
        type_name: &str,
        fields: Vec<(&str, Value)>,
        display: Option<String>,
    ) -> Value {
        Value::Struct(Rc::new(Struct {
            type_name: type_name.to_owned(),
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            display,
        }))
    }

    /// Go's type name, for error messages.
    pub fn type_name(&self) -> String {
        match self {
            Value::NoValue => "invalid".into(),
            Value::Nil => "nil".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Float(_) => "float64".into(),
            Value::Str(_) => "string".into(),
            Value::List(_) => "[]interface {}".into(),
            Value::Map(_) => "map".into(),
            Value::Struct(s) => s.type_name.clone(),
        }
    }

    /// Go's truth: false, 0, nil, and empty strings, lists and maps are false.
    pub fn truth(&self) -> bool {
        match self {
            Value::NoValue | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Struct(_) => true,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// `fmt.Sprint(v)` for one value (`%v`).
pub fn display(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, true);
    out
}

fn write_value(out: &mut String, v: &Value, top: bool) {
    match v {
        Value::NoValue => out.push_str("<no value>"),
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&format_float_v(*f)),
        Value::Str(s) => out.push_str(s),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_value(out, item, false);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, val)) in m.entries.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_value(out, k, false);
                out.push(':');
                write_value(out, val, false);
            }
            out.push(']');
        }
        Value::Struct(s) => match &s.display {
            Some(d) => out.push_str(d),
            None => {
                out.push('{');
                for (i, (_, val)) in s.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    write_value(out, val, false);
                }
                out.push('}');
            }
        },
    }
    let _ = top;
}

/// Go's `%v` for a float64 (`strconv` 'g', shortest): exponent form below 1e-4 or from 1e6.
pub fn format_float_v(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Shortest round-trip digits and decimal exponent from Rust's `{:e}`.
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1;
    let s = if point <= 0 {
        format!("0.{}{}", "0".repeat((-point) as usize), digits)
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (a, b) = digits.split_at(point as usize);
        format!("{a}.{b}")
    };
    format!("{sign}{s}")
}

fn kind_rank(v: &Value) -> u8 {
    match v {
        Value::NoValue => 0,
        Value::Nil => 1,
        Value::Bool(_) => 2,
        Value::Int(_) => 3,
        Value::Float(_) => 4,
        Value::Str(_) => 5,
        Value::List(_) => 6,
        Value::Map(_) => 7,
        Value::Struct(_) => 8,
    }
}

/// Go's `fmtsort` order: numbers numerically, strings by bytes, false before true, structs
/// field by field.
pub fn compare_keys(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Value::Str(x), Value::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Struct(x), Value::Struct(y)) => {
            for ((_, fx), (_, fy)) in x.fields.iter().zip(&y.fields) {
                let o = compare_keys(fx, fy);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.fields.len().cmp(&y.fields.len())
        }
        (Value::List(x), Value::List(y)) => {
            for (ix, iy) in x.iter().zip(y.iter()) {
                let o = compare_keys(ix, iy);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => kind_rank(a).cmp(&kind_rank(b)),
    }
}

/// Structural equality, for `eq` on comparable values.
pub fn equal(a: &Value, b: &Value) -> bool {
    kind_rank(a) == kind_rank(b) && compare_keys(a, b) == Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_printing() {
        let cases = [
            (1.0, "1"),
            (1.5, "1.5"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (1e21, "1e+21"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.25, "-2.25"),
            (123456789.0, "1.23456789e+08"),
        ];
        for (f, want) in cases {
            assert_eq!(format_float_v(f), want, "{f}");
        }
    }

    #[test]
    fn printing_and_truth() {
        let m = Value::map(
            vec![
                (Value::str("b"), Value::Int(2)),
                (Value::str("a"), Value::Int(1)),
            ],
            Value::Nil,
        );
        assert_eq!(display(&m), "map[a:1 b:2]");
        assert_eq!(
            display(&Value::list(vec![Value::str("x"), Value::Bool(true)])),
            "[x true]"
        );
        assert!(!Value::str("").truth());
        assert!(Value::structure("T", vec![], None).truth());
        assert_eq!(display(&Value::NoValue), "<no value>");
    }
}
