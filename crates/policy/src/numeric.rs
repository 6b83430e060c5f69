//! Go's `strconv.ParseFloat(s, 64)`, which Flux's numerical policy uses: decimal and hex
//! floats, an optional sign, `Inf`/`Infinity`/`NaN` in any case, underscores between digits as
//! in Go literals (`1_000`, `1e1_0`; not `_1`, `1__0`, `1_`); no spaces, and out-of-range
//! values are errors (Go returns `ErrRange`).

/// Parses `s` as Go's `strconv.ParseFloat(s, 64)` would; `None` where Go returns an error.
pub fn parse_go_float(s: &str) -> Option<f64> {
    if let Some(v) = special(s) {
        return Some(v);
    }
    if s.contains('_') {
        // Go skips underscores in the digit loops, then checks them all at once.
        if !underscore_ok(s) {
            return None;
        }
        return parse_go_float(&s.replace('_', ""));
    }
    let (negative, body) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let magnitude = if body.len() > 2 && (body.starts_with("0x") || body.starts_with("0X")) {
        parse_hex(&body[2..])?
    } else {
        parse_decimal(body)?
    };
    if magnitude.is_infinite() {
        return None;
    }
    Some(if negative { -magnitude } else { magnitude })
}

/// `inf`, `infinity` (any case, optional sign) and `nan` (any case, no sign).
fn special(s: &str) -> Option<f64> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1.0, &s[1..]),
        b'-' => (-1.0, &s[1..]),
        _ => (0.0, s),
    };
    if rest.eq_ignore_ascii_case("inf") || rest.eq_ignore_ascii_case("infinity") {
        return Some(if sign < 0.0 {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if sign == 0.0 && rest.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    None
}

/// `digits[.digits][e[+-]digits]` with at least one mantissa digit; Rust's parser rounds as Go's.
fn parse_decimal(body: &str) -> Option<f64> {
    let b = body.as_bytes();
    let mut i = 0;
    let mut mantissa_digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        mantissa_digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            mantissa_digits += 1;
        }
    }
    if mantissa_digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    body.parse::<f64>().ok()
}

/// Go's `strconv.underscoreOK`: an underscore only between two digits, or between a base
/// prefix (`0x`, `0b`, `0o`) and a digit; never first or last.
fn underscore_ok(s: &str) -> bool {
    let b = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    // What came last: start, a digit (or the base prefix), an underscore, anything else.
    #[derive(PartialEq)]
    enum Saw {
        Start,
        Digit,
        Underscore,
        Other,
    }
    let mut saw = Saw::Start;
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = Saw::Digit;
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    for &c in &b[i..] {
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = Saw::Digit;
        } else if c == b'_' {
            if saw != Saw::Digit {
                return false;
            }
            saw = Saw::Underscore;
        } else if saw == Saw::Underscore {
            return false;
        } else {
            saw = Saw::Other;
        }
    }
    saw != Saw::Underscore
}

/// Hex mantissa (after `0x`) with a mandatory binary exponent: `1.8p3`.
fn parse_hex(body: &str) -> Option<f64> {
    let (mantissa, exponent) = body.split_once(['p', 'P'])?;
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut value = 0f64;
    for c in int_part.chars().chain(frac_part.chars()) {
        value = value * 16.0 + f64::from(c.to_digit(16)?);
    }
    let exp: i32 = match exponent.as_bytes().first()? {
        b'+' | b'-' | b'0'..=b'9' => exponent.parse().ok()?,
        _ => return None,
    };
    let frac_bits = i32::try_from(frac_part.len()).ok()?.checked_mul(4)?;
    Some(value * 2f64.powi(exp.checked_sub(frac_bits)?))
}

#[cfg(test)]
mod tests {
    use super::parse_go_float;

    #[test]
    fn accepts_what_go_accepts() {
        let cases: &[(&str, f64)] = &[
            ("1", 1.0),
            ("+1", 1.0),
            ("-3", -3.0),
            ("1.5", 1.5),
            ("1e3", 1000.0),
            ("1E-2", 0.01),
            (".5", 0.5),
            ("5.", 5.0),
            ("007", 7.0),
            ("20260528153652", 20260528153652.0),
            ("0x1p-2", 0.25),
            ("0X1.8P1", 3.0),
            ("0x_1p4", 16.0),
            ("1e-400", 0.0),
            // Underscores between digits, as Go literals allow (strconv.underscoreOK).
            ("1_000", 1000.0),
            ("1e1_0", 1e10),
            ("1_000.5", 1000.5),
            ("-1_0", -10.0),
            ("2026_05_28", 20260528.0),
            ("0x1_0p0", 16.0),
            ("0x1p1_0", 1024.0),
        ];
        for &(s, want) in cases {
            assert_eq!(parse_go_float(s), Some(want), "{s}");
        }
        assert_eq!(parse_go_float("Inf"), Some(f64::INFINITY));
        assert_eq!(parse_go_float("-infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_go_float("+INF"), Some(f64::INFINITY));
        assert!(parse_go_float("NaN").is_some_and(f64::is_nan));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for s in [
            "",
            " 1",
            "1 ",
            "_1",
            "1_",
            "1._5",
            "1_.5",
            "1_e5",
            "1e_5",
            "+_1",
            "0x10",
            "20260528-153652",
            "1e",
            "e3",
            ".",
            "+",
            "-",
            "1.2.3",
            "+nan",
            "infin",
            "1e400",
            "-1e400",
            "0x",
            "0xp1",
            "0x1p",
            "0x1_p1",
            "1__0",
            "v1",
            "١",
        ] {
            assert_eq!(parse_go_float(s), None, "{s:?}");
        }
    }
}
