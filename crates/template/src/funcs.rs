//! Go's builtin template functions and the hermetic Sprig functions people use in commit
//! messages, with Go's argument rules and output formats.

use std::fmt::Write as _;

use crate::value::{compare_keys, display, equal, format_float_v, Value};

/// Every function a template may call (checked at parse time, as Go does).
const FUNCTIONS: &[&str] = &[
    // Go builtins
    "and",
    "or",
    "not",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "print",
    "printf",
    "println",
    "len",
    "index",
    "slice",
    "html",
    "js",
    "urlquery",
    // Sprig (hermetic subset)
    "lower",
    "upper",
    "title",
    "trim",
    "trimPrefix",
    "trimSuffix",
    "trimAll",
    "replace",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "join",
    "split",
    "splitList",
    "default",
    "empty",
    "quote",
    "squote",
    "indent",
    "nindent",
    "first",
    "last",
    "uniq",
    "sortAlpha",
    "list",
    "dict",
    "toString",
    "repeat",
    "trunc",
    "substr",
    "nospace",
    "cat",
    "coalesce",
    "ternary",
    "keys",
];

pub fn is_function(name: &str) -> bool {
    FUNCTIONS.contains(&name)
}

type R = Result<Value, String>;

fn want_str<'a>(f: &str, v: &'a Value) -> Result<&'a str, String> {
    v.as_str().ok_or_else(|| {
        format!(
            "error calling {f}: wrong type for value; expected string; got {}",
            v.type_name()
        )
    })
}

fn want_int(f: &str, v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        _ => Err(format!(
            "error calling {f}: wrong type for value; expected int; got {}",
            v.type_name()
        )),
    }
}

fn arity(f: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {f}: want {n} got {}",
            args.len()
        ))
    }
}

/// Sprig's `strval`/`toString`: strings as they are, nil as "", the rest as `%v`.
fn strval(v: &Value) -> String {
    match v {
        Value::Nil | Value::NoValue => String::new(),
        other => display(other),
    }
}

/// Sprig's `empty`.
fn is_empty(v: &Value) -> bool {
    !v.truth()
}

fn list_of(f: &str, v: &Value) -> Result<Vec<Value>, String> {
    match v {
        Value::List(l) => Ok(l.as_ref().clone()),
        Value::Nil | Value::NoValue => Ok(Vec::new()),
        other => Err(format!(
            "error calling {f}: cannot find {f} on type {}",
            other.type_name()
        )),
    }
}

/// Calls a function whose arguments are already evaluated (`and`/`or` are handled by the
/// executor, which evaluates lazily).
pub fn call(name: &str, args: &[Value]) -> R {
    match name {
        "not" => {
            arity(name, args, 1)?;
            Ok(Value::Bool(!args[0].truth()))
        }
        "eq" => {
            if args.len() < 2 {
                return Err("missing argument for comparison".into());
            }
            for other in &args[1..] {
                comparable(&args[0], other)?;
                if equal(&args[0], other) {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" => {
            arity(name, args, 2)?;
            comparable(&args[0], &args[1])?;
            Ok(Value::Bool(!equal(&args[0], &args[1])))
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(name, args, 2)?;
            let o = ordered(&args[0], &args[1])?;
            Ok(Value::Bool(match name {
                "lt" => o.is_lt(),
                "le" => o.is_le(),
                "gt" => o.is_gt(),
                _ => o.is_ge(),
            }))
        }
        "print" => Ok(Value::Str(sprint(args))),
        "println" => Ok(Value::Str(sprintln(args))),
        "printf" => {
            let Some(format) = args.first() else {
                return Err("wrong number of args for printf: want at least 1 got 0".into());
            };
            Ok(Value::Str(sprintf(want_str(name, format)?, &args[1..])))
        }
        "len" => {
            arity(name, args, 1)?;
            let n = match &args[0] {
                Value::Str(s) => s.len(),
                Value::List(l) => l.len(),
                Value::Map(m) => m.len(),
                other => {
                    return Err(format!(
                        "error calling len: len of type {}",
                        other.type_name()
                    ))
                }
            };
            Ok(Value::Int(n as i64))
        }
        "index" => index(args),
        "slice" => slice(args),
        "html" => Ok(Value::Str(
            sprint(args)
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&#34;")
                .replace('\'', "&#39;"),
        )),
        "js" => Ok(Value::Str(
            sprint(args)
                .replace('\\', "\\\\")
                .replace('\'', "\\'")
                .replace('"', "\\\"")
                .replace('<', "\\u003C")
                .replace('>', "\\u003E"),
        )),
        "urlquery" => Ok(Value::Str(urlquery(&sprint(args)))),
        _ => sprig(name, args),
    }
}

fn sprig(name: &str, args: &[Value]) -> R {
    let s1 = |f: fn(&str) -> String| -> R {
        arity(name, args, 1)?;
        Ok(Value::Str(f(want_str(name, &args[0])?)))
    };
    match name {
        "lower" => s1(str::to_lowercase),
        "upper" => s1(str::to_uppercase),
        "title" => s1(title),
        "trim" => s1(|s| s.trim().to_owned()),
        "nospace" => s1(|s| s.chars().filter(|c| !c.is_whitespace()).collect()),
        "toString" => {
            arity(name, args, 1)?;
            Ok(Value::Str(strval(&args[0])))
        }
        "trimPrefix" | "trimSuffix" | "trimAll" | "contains" | "hasPrefix" | "hasSuffix" => {
            arity(name, args, 2)?;
            let a = want_str(name, &args[0])?;
            let s = want_str(name, &args[1])?;
            Ok(match name {
                "trimPrefix" => Value::Str(s.strip_prefix(a).unwrap_or(s).to_owned()),
                "trimSuffix" => Value::Str(s.strip_suffix(a).unwrap_or(s).to_owned()),
                "trimAll" => Value::Str(s.trim_matches(|c| a.contains(c)).to_owned()),
                "contains" => Value::Bool(s.contains(a)),
                "hasPrefix" => Value::Bool(s.starts_with(a)),
                _ => Value::Bool(s.ends_with(a)),
            })
        }
        "replace" => {
            arity(name, args, 3)?;
            let (old, new, s) = (
                want_str(name, &args[0])?,
                want_str(name, &args[1])?,
                want_str(name, &args[2])?,
            );
            Ok(Value::Str(if old.is_empty() {
                go_replace_empty(s, new)
            } else {
                s.replace(old, new)
            }))
        }
        "repeat" => {
            arity(name, args, 2)?;
            let n = want_int(name, &args[0])?.clamp(0, 10_000) as usize;
            Ok(Value::Str(want_str(name, &args[1])?.repeat(n)))
        }
        "trunc" => {
            arity(name, args, 2)?;
            let n = want_int(name, &args[0])?;
            let s = want_str(name, &args[1])?;
            let len = s.len() as i64;
            let out = if n >= 0 {
                s.get(..n.min(len) as usize).unwrap_or(s)
            } else {
                s.get((len + n).max(0) as usize..).unwrap_or(s)
            };
            Ok(Value::Str(out.to_owned()))
        }
        "substr" => {
            arity(name, args, 3)?;
            let (start, end) = (want_int(name, &args[0])?, want_int(name, &args[1])?);
            let s = want_str(name, &args[2])?;
            let len = s.len() as i64;
            let start = start.clamp(0, len) as usize;
            let end = if end < 0 || end > len {
                len as usize
            } else {
                end as usize
            };
            Ok(Value::Str(
                s.get(start..end.max(start)).unwrap_or("").to_owned(),
            ))
        }
        "join" => {
            arity(name, args, 2)?;
            let sep = want_str(name, &args[0])?;
            let items: Vec<String> = match &args[1] {
                Value::List(l) => l
                    .iter()
                    .filter(|v| !matches!(v, Value::Nil))
                    .map(strval)
                    .collect(),
                other => vec![strval(other)],
            };
            Ok(Value::Str(items.join(sep)))
        }
        "split" | "splitList" => {
            arity(name, args, 2)?;
            let sep = want_str(name, &args[0])?;
            let s = want_str(name, &args[1])?;
            let parts: Vec<&str> = if sep.is_empty() {
                s.char_indices()
                    .map(|(i, c)| &s[i..i + c.len_utf8()])
                    .collect()
            } else {
                s.split(sep).collect()
            };
            Ok(if name == "split" {
                Value::map(
                    parts
                        .iter()
                        .enumerate()
                        .map(|(i, p)| (Value::str(format!("_{i}")), Value::str(*p)))
                        .collect(),
                    Value::str(""),
                )
            } else {
                Value::list(parts.into_iter().map(Value::str).collect())
            })
        }
        "default" => {
            if args.is_empty() || args.len() > 2 {
                return Err(format!(
                    "wrong number of args for default: want 2 got {}",
                    args.len()
                ));
            }
            Ok(match args.get(1) {
                Some(v) if !is_empty(v) => v.clone(),
                _ => args[0].clone(),
            })
        }
        "empty" => {
            arity(name, args, 1)?;
            Ok(Value::Bool(is_empty(&args[0])))
        }
        "coalesce" => Ok(args
            .iter()
            .find(|v| !is_empty(v))
            .cloned()
            .unwrap_or(Value::Nil)),
        "ternary" => {
            arity(name, args, 3)?;
            Ok(if args[2].truth() {
                args[0].clone()
            } else {
                args[1].clone()
            })
        }
        "quote" => Ok(Value::Str(
            args.iter()
                .filter(|v| !matches!(v, Value::Nil | Value::NoValue))
                .map(|v| go_quote(&strval(v)))
                .collect::<Vec<_>>()
                .join(" "),
        )),
        "squote" => Ok(Value::Str(
            args.iter()
                .filter(|v| !matches!(v, Value::Nil | Value::NoValue))
                .map(|v| format!("'{}'", strval(v)))
                .collect::<Vec<_>>()
                .join(" "),
        )),
        "cat" => Ok(Value::Str(
            args.iter()
                .filter(|v| !matches!(v, Value::Nil | Value::NoValue))
                .map(strval)
                .collect::<Vec<_>>()
                .join(" "),
        )),
        "indent" | "nindent" => {
            arity(name, args, 2)?;
            let n = want_int(name, &args[0])?.clamp(0, 1000) as usize;
            let s = want_str(name, &args[1])?;
            let pad = " ".repeat(n);
            let indented = format!("{pad}{}", s.replace('\n', &format!("\n{pad}")));
            Ok(Value::Str(if name == "nindent" {
                format!("\n{indented}")
            } else {
                indented
            }))
        }
        "first" | "last" => {
            arity(name, args, 1)?;
            let l = list_of(name, &args[0])?;
            let item = if name == "first" { l.first() } else { l.last() };
            Ok(item.cloned().unwrap_or(Value::Nil))
        }
        "uniq" => {
            arity(name, args, 1)?;
            let mut out: Vec<Value> = Vec::new();
            for v in list_of(name, &args[0])? {
                if !out.iter().any(|o| equal(o, &v)) {
                    out.push(v);
                }
            }
            Ok(Value::list(out))
        }
        "sortAlpha" => {
            arity(name, args, 1)?;
            let mut items: Vec<String> = match &args[0] {
                Value::List(l) => l.iter().map(strval).collect(),
                other => vec![strval(other)],
            };
            items.sort();
            Ok(Value::list(items.into_iter().map(Value::Str).collect()))
        }
        "keys" => {
            let mut out = Vec::new();
            for a in args {
                match a {
                    Value::Map(m) => {
                        out.extend(m.entries().iter().map(|(k, _)| Value::Str(strval(k))))
                    }
                    other => {
                        return Err(format!(
                            "error calling keys: expected map; got {}",
                            other.type_name()
                        ))
                    }
                }
            }
            Ok(Value::list(out))
        }
        "list" => Ok(Value::list(args.to_vec())),
        "dict" => {
            let mut entries = Vec::new();
            for pair in args.chunks(2) {
                let key = Value::Str(strval(&pair[0]));
                let value = pair.get(1).cloned().unwrap_or_else(|| Value::str(""));
                entries.retain(|(k, _): &(Value, Value)| !equal(k, &key));
                entries.push((key, value));
            }
            Ok(Value::map(entries, Value::Nil))
        }
        _ => Err(format!("function {name:?} not defined")),
    }
}

/// `strings.Replace(s, "", new, -1)`: inserts `new` around every character.
fn go_replace_empty(s: &str, new: &str) -> String {
    let mut out = String::from(new);
    for c in s.chars() {
        out.push(c);
        out.push_str(new);
    }
    out
}

/// `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

fn urlquery(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn basic_kind(v: &Value) -> Option<u8> {
    match v {
        Value::Bool(_) => Some(0),
        Value::Int(_) => Some(1),
        Value::Float(_) => Some(2),
        Value::Str(_) => Some(3),
        _ => None,
    }
}

fn comparable(a: &Value, b: &Value) -> Result<(), String> {
    match (basic_kind(a), basic_kind(b)) {
        (Some(x), Some(y)) if x != y => {
            Err("error calling eq: incompatible types for comparison".into())
        }
        (Some(_), Some(_)) => Ok(()),
        _ if matches!(a, Value::List(_) | Value::Map(_))
            || matches!(b, Value::List(_) | Value::Map(_)) =>
        {
            Err("error calling eq: non-comparable type".into())
        }
        _ => Ok(()),
    }
}

fn ordered(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Int(_), Value::Int(_))
        | (Value::Float(_), Value::Float(_))
        | (Value::Str(_), Value::Str(_)) => Ok(compare_keys(a, b)),
        (
            Value::Int(_) | Value::Float(_) | Value::Str(_),
            Value::Int(_) | Value::Float(_) | Value::Str(_),
        ) => Err("incompatible types for comparison".into()),
        _ => Err(format!("invalid type for comparison: {}", a.type_name())),
    }
}

fn index(args: &[Value]) -> R {
    let Some(mut item) = args.first().cloned() else {
        return Err("wrong number of args for index: want at least 1 got 0".into());
    };
    for key in &args[1..] {
        item = match (&item, key) {
            (Value::List(l), Value::Int(i)) => {
                let i = usize::try_from(*i).ok().filter(|i| *i < l.len());
                match i {
                    Some(i) => l[i].clone(),
                    None => {
                        return Err(format!(
                            "error calling index: index out of range: {}",
                            display(key)
                        ))
                    }
                }
            }
            (Value::Str(s), Value::Int(i)) => {
                match usize::try_from(*i).ok().and_then(|i| s.as_bytes().get(i)) {
                    Some(b) => Value::Int(i64::from(*b)),
                    None => {
                        return Err(format!(
                            "error calling index: index out of range: {}",
                            display(key)
                        ))
                    }
                }
            }
            (Value::Map(m), k) => m.get(k).cloned().unwrap_or_else(|| m.zero().clone()),
            (Value::Nil | Value::NoValue, _) => {
                return Err("error calling index: index of untyped nil".into())
            }
            (other, _) => {
                return Err(format!(
                    "error calling index: can't index item of type {}",
                    other.type_name()
                ))
            }
        };
    }
    Ok(item)
}

fn slice(args: &[Value]) -> R {
    let Some(item) = args.first() else {
        return Err("wrong number of args for slice: want at least 1 got 0".into());
    };
    let idx: Vec<i64> = args[1..]
        .iter()
        .map(|a| want_int("slice", a))
        .collect::<Result<_, _>>()?;
    let len = match item {
        Value::Str(s) => s.len(),
        Value::List(l) => l.len(),
        other => {
            return Err(format!(
                "error calling slice: can't slice item of type {}",
                other.type_name()
            ))
        }
    } as i64;
    let lo = idx.first().copied().unwrap_or(0);
    let hi = idx.get(1).copied().unwrap_or(len);
    if idx.len() > 2 || lo < 0 || hi < lo || hi > len {
        return Err(format!(
            "error calling slice: index out of range: {lo}:{hi}"
        ));
    }
    let (lo, hi) = (lo as usize, hi as usize);
    Ok(match item {
        Value::Str(s) => Value::Str(
            s.get(lo..hi)
                .ok_or("error calling slice: not a character boundary")?
                .to_owned(),
        ),
        Value::List(l) => Value::list(l[lo..hi].to_vec()),
        _ => Value::Nil,
    })
}

/// `fmt.Sprint`: spaces between operands when neither side is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&display(a));
    }
    out
}

/// `fmt.Sprintln`: spaces between all operands, newline at the end.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = args.iter().map(display).collect::<Vec<_>>().join(" ");
    out.push('\n');
    out
}

/// `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `fmt.Sprintf` for the verbs commit templates use: `%v %s %d %q %t %x %X %f %c %%`, with
/// flags `-`, `+`, `0`, width and precision.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = format.chars().peekable();
    let mut argi = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero) = (false, false, false);
        while let Some(&f) = it.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' | '#' => {}
                _ => break,
            }
            it.next();
        }
        let mut width = String::new();
        while let Some(&d) = it.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            it.next();
        }
        let mut precision: Option<usize> = None;
        if it.peek() == Some(&'.') {
            it.next();
            let mut p = String::new();
            while let Some(&d) = it.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                it.next();
            }
            precision = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argi += 1;
        let bad = || format!("%!{verb}({}={})", arg.type_name(), display(arg));
        let body = match (verb, arg) {
            ('v', _) => display(arg),
            ('s', Value::Str(s)) => match precision {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            },
            ('s', Value::List(_) | Value::Map(_) | Value::Struct(_)) => display(arg),
            ('q', Value::Str(s)) => go_quote(s),
            ('d', Value::Int(i)) => {
                if plus && *i >= 0 {
                    format!("+{i}")
                } else {
                    i.to_string()
                }
            }
            ('t', Value::Bool(b)) => b.to_string(),
            ('x', Value::Int(i)) => format!("{i:x}"),
            ('X', Value::Int(i)) => format!("{i:X}"),
            ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('X', Value::Str(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
            ('c', Value::Int(i)) => u32::try_from(*i)
                .ok()
                .and_then(char::from_u32)
                .map(String::from)
                .unwrap_or_else(bad),
            ('f' | 'F', Value::Float(f)) => format!("{f:.*}", precision.unwrap_or(6)),
            ('g', Value::Float(f)) => format_float_v(*f),
            _ => bad(),
        };
        let w: usize = width.parse().unwrap_or(0);
        let len = body.chars().count();
        if len < w {
            let pad = w - len;
            if minus {
                out.push_str(&body);
                out.push_str(&" ".repeat(pad));
            } else if zero && matches!(arg, Value::Int(_) | Value::Float(_)) {
                let (sign, digits) = match body.strip_prefix(['-', '+']) {
                    Some(d) => (&body[..1], d),
                    None => ("", body.as_str()),
                };
                out.push_str(sign);
                out.push_str(&"0".repeat(pad));
                out.push_str(digits);
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(&body);
            }
        } else {
            out.push_str(&body);
        }
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), display(a)))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::str(v)
    }

    #[test]
    fn printf_like_go() {
        assert_eq!(
            sprintf(
                "%s=%d %q %t %v%%",
                &[
                    s("a"),
                    Value::Int(3),
                    s("x\"y"),
                    Value::Bool(true),
                    Value::Float(1.5)
                ]
            ),
            "a=3 \"x\\\"y\" true 1.5%"
        );
        assert_eq!(
            sprintf("%5s|%-5s|%05d", &[s("ab"), s("cd"), Value::Int(-42)]),
            "   ab|cd   |-0042"
        );
        assert_eq!(sprintf("%d", &[s("x")]), "%!d(string=x)");
        assert_eq!(sprintf("%s %s", &[s("x")]), "x %!s(MISSING)");
        assert_eq!(sprintf("%s", &[s("x"), Value::Int(1)]), "x%!(EXTRA int=1)");
        assert_eq!(sprintf("%.2f", &[Value::Float(1.23456)]), "1.23");
    }

    #[test]
    fn sprint_spacing() {
        assert_eq!(sprint(&[s("a"), s("b")]), "ab");
        assert_eq!(sprint(&[Value::Int(1), Value::Int(2)]), "1 2");
        assert_eq!(sprint(&[s("a"), Value::Int(1), s("b")]), "a1b");
        assert_eq!(sprintln(&[s("a"), s("b")]), "a b\n");
    }

    #[test]
    fn sprig_functions() {
        assert_eq!(
            display(&call("title", &[s("hello wide-world")]).unwrap_or(Value::Nil)),
            "Hello Wide-World"
        );
        assert_eq!(
            display(&call("indent", &[Value::Int(2), s("a\nb")]).unwrap_or(Value::Nil)),
            "  a\n  b"
        );
        assert_eq!(
            display(&call("nindent", &[Value::Int(1), s("a")]).unwrap_or(Value::Nil)),
            "\n a"
        );
        assert_eq!(
            display(&call("quote", &[s("a"), Value::Int(1)]).unwrap_or(Value::Nil)),
            "\"a\" \"1\""
        );
        assert_eq!(
            display(&call("split", &[s(","), s("a,b")]).unwrap_or(Value::Nil)),
            "map[_0:a _1:b]"
        );
        assert_eq!(
            display(&call("default", &[s("d"), s("")]).unwrap_or(Value::Nil)),
            "d"
        );
        assert_eq!(
            display(&call("replace", &[s("a"), s("b"), s("aXa")]).unwrap_or(Value::Nil)),
            "bXb"
        );
        assert!(call("upper", &[Value::Int(1)]).is_err());
    }
}
