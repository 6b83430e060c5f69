//! Writing a new value into a scalar in its original quoting style.

/// The quoting style of a scalar in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Single,
    Double,
}

/// The source text for `value` in `style`. A plain scalar whose value would not read back as
/// the same string (YAML 1.1 booleans, numbers, nulls, timestamps; indicator characters) is
/// written double-quoted instead, as kyaml does. `flow` says the scalar sits in a flow
/// collection, where `,[]{}` also end a plain scalar.
pub fn render(value: &str, style: Style, flow: bool) -> String {
    match style {
        Style::Plain if plain_is_safe(value, flow) => value.to_owned(),
        Style::Plain | Style::Double => double_quoted(value),
        Style::Single => {
            if value.chars().any(|c| c.is_control()) {
                // Single quotes cannot escape control characters.
                double_quoted(value)
            } else {
                format!("'{}'", value.replace('\'', "''"))
            }
        }
    }
}

fn double_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `value` can be written as a plain scalar and read back as the same string.
pub fn plain_is_safe(value: &str, flow: bool) -> bool {
    let Some(first) = value.chars().next() else {
        return false;
    };
    if first.is_whitespace() || value.ends_with(char::is_whitespace) {
        return false;
    }
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        // `-foo`, `?x` and `:x` would be plain if followed by a non-space, but keep it simple.
        return false;
    }
    if value.contains(": ") || value.contains(" #") || value.ends_with(':') {
        return false;
    }
    if value.chars().any(|c| c.is_control() || c == '\u{feff}') {
        return false;
    }
    if flow && value.contains([',', '[', ']', '{', '}']) {
        return false;
    }
    !reads_as_non_string(value)
}

/// YAML 1.1 (and 1.2 core) implicit types: anything here is not read as a string when plain.
pub fn reads_as_non_string(v: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
        "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "~", "null", "Null", "NULL",
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
        ".NaN", ".NAN", "<<", "=",
    ];
    WORDS.contains(&v) || is_int(v) || is_float(v) || is_timestamp(v)
}

fn strip_sign(v: &str) -> &str {
    v.strip_prefix(['+', '-']).unwrap_or(v)
}

fn digits(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == b'_' || ok(b)) && s.bytes().any(&ok)
}

fn is_int(v: &str) -> bool {
    let s = strip_sign(v);
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return digits(h, |b| b.is_ascii_hexdigit());
    }
    if let Some(o) = s.strip_prefix("0o") {
        return digits(o, |b| (b'0'..=b'7').contains(&b));
    }
    if let Some(b) = s.strip_prefix("0b") {
        return digits(b, |b| b == b'0' || b == b'1');
    }
    if digits(s, |b| b.is_ascii_digit()) {
        return true;
    }
    // Sexagesimal (YAML 1.1): 190:20:30.
    is_sexagesimal(s, false)
}

fn is_sexagesimal(s: &str, allow_fraction: bool) -> bool {
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) if allow_fraction => (w, Some(f)),
        Some(_) => return false,
        None => (s, None),
    };
    let mut parts = whole.split(':');
    let first_ok = parts
        .next()
        .is_some_and(|p| digits(p, |b| b.is_ascii_digit()));
    let rest: Vec<&str> = parts.collect();
    first_ok
        && !rest.is_empty()
        && rest
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()))
        && frac.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
}

fn is_float(v: &str) -> bool {
    let s = strip_sign(v);
    if is_sexagesimal(s, true) {
        return true;
    }
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (int.is_empty() || int.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
                && frac.bytes().all(|b| b.is_ascii_digit() || b == b'_')
                && (int.bytes().any(|b| b.is_ascii_digit())
                    || frac.bytes().any(|b| b.is_ascii_digit()))
        }
        None => exp.is_some() && digits(mantissa, |b| b.is_ascii_digit()),
    };
    mantissa_ok
        && exp.is_none_or(|e| digits(strip_sign(e), |b| b.is_ascii_digit()) && !e.contains('_'))
}

fn is_timestamp(v: &str) -> bool {
    // 2001-12-14, 2001-12-14t21:59:43.10-05:00, 2001-12-14 21:59:43.10 -5
    let b = v.as_bytes();
    b.len() >= 8
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && v[5..]
            .split(['-', 'T', 't', ' ', ':', '.', 'Z', '+'])
            .next()
            .is_some_and(|m| !m.is_empty() && m.len() <= 2 && m.bytes().all(|c| c.is_ascii_digit()))
        && v[5..]
            .bytes()
            .all(|c| c.is_ascii_digit() || b"-Tt :.Z+".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_strings_get_quoted() {
        for v in [
            "1.10",
            "20230101",
            "true",
            "yes",
            "on",
            "null",
            "~",
            "0x1f",
            "1e3",
            "0o17",
            "1_000",
            ".5",
            "-1",
            "+2.5",
            "1:30",
            "2023-01-01",
            ".inf",
            "",
            " x",
            "x:",
            "a: b",
            "#x",
            "- x",
            "*x",
            "!x",
            "@x",
        ] {
            assert_eq!(render(v, Style::Plain, false), double_quoted(v), "{v:?}");
        }
    }

    #[test]
    fn image_refs_stay_plain() {
        for v in [
            "ghcr.io/stefanprodan/podinfo:5.0.3",
            "podinfo:1.10",
            "v1.10",
            "5.0.3",
            "1.2.3-rc.1",
            "ghcr.io/x/y:1.0@sha256:abcdef",
            "sha256:0123",
            "latest",
            "main-1a2b3c-1700000000",
        ] {
            assert_eq!(render(v, Style::Plain, false), v, "{v:?}");
        }
        assert_eq!(render("a,b", Style::Plain, true), "\"a,b\"");
    }

    #[test]
    fn quoting_styles() {
        assert_eq!(render("it's", Style::Single, false), "'it''s'");
        assert_eq!(render("a\"b\\c", Style::Double, false), r#""a\"b\\c""#);
        assert_eq!(render("1.10", Style::Single, false), "'1.10'");
    }
}
