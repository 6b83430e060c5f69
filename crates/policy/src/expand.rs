//! Go's `Regexp.ExpandString`, which Flux uses for `filterTags.extract`.
//!
//! `$name` and `${name}` insert a group; `name` is the longest run of letters, digits and `_`
//! (so `$1x` names the group `1x`, which usually does not exist and expands to nothing); an
//! all-digit name without a leading zero is a group number; `$$` is a literal `$`; a malformed
//! reference leaves the `$` as text.

use regex::{Captures, Regex};

/// A parsed extract template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Number(usize),
    Name(String),
}

impl Template {
    /// Parses a template. Every string is a valid template in Go, so this cannot fail.
    pub fn parse(template: &str) -> Self {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = template;
        while let Some(pos) = rest.find('$') {
            text.push_str(&rest[..pos]);
            rest = &rest[pos + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                text.push('$');
                rest = after;
                continue;
            }
            match reference(rest) {
                Some((piece, after)) => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(piece);
                    rest = after;
                }
                None => text.push('$'),
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Template { pieces }
    }

    /// Group names the template refers to that `re` does not define (for validation).
    pub fn unknown_names<'a>(&'a self, re: &Regex) -> Vec<&'a str> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Name(n) if !re.capture_names().flatten().any(|g| g == n) => Some(n.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Expands the template against the first match's groups.
    pub fn expand(&self, re: &Regex, caps: &Captures<'_>, out: &mut String) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Number(n) => {
                    if let Some(m) = caps.get(*n) {
                        out.push_str(m.as_str());
                    }
                }
                Piece::Name(name) => {
                    // Go takes the first group with that name that participated in the match.
                    for (i, group) in re.capture_names().enumerate() {
                        if group == Some(name.as_str()) {
                            if let Some(m) = caps.get(i) {
                                out.push_str(m.as_str());
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Parses a reference after `$`: `name` or `{name}`. Returns the piece and the rest.
fn reference(s: &str) -> Option<(Piece, &str)> {
    let (brace, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    let mut rest = &body[end..];
    if brace {
        rest = rest.strip_prefix('}')?;
    }
    let numeric =
        name.bytes().all(|b| b.is_ascii_digit()) && !(name.len() > 1 && name.starts_with('0'));
    // Go gives up on numbers of 1e8 and above and treats them as names.
    let piece = match name.parse::<usize>() {
        Ok(n) if numeric && n < 100_000_000 => Piece::Number(n),
        _ => Piece::Name(name.to_owned()),
    };
    Some((piece, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(pattern: &str, template: &str, input: &str) -> String {
        let re = Regex::new(pattern).unwrap();
        let caps = re
            .captures(input)
            .unwrap_or_else(|| panic!("{pattern} must match {input}"));
        let mut out = String::new();
        Template::parse(template).expand(&re, &caps, &mut out);
        out
    }

    #[test]
    fn go_expand_rules() {
        let re = r"^(?P<major>\d+)\.(?P<minor>\d+)-(?P<ts>\d+)$";
        let tag = "1.2-20250101";
        assert_eq!(expand(re, "$ts", tag), "20250101");
        assert_eq!(expand(re, "${ts}", tag), "20250101");
        assert_eq!(expand(re, "$1.$2", tag), "1.2");
        assert_eq!(expand(re, "${1}x", tag), "1x");
        // `$1x` names a group "1x" that does not exist.
        assert_eq!(expand(re, "$1x", tag), "");
        assert_eq!(expand(re, "$$", tag), "$");
        assert_eq!(expand(re, "$$1", tag), "$1");
        assert_eq!(expand(re, "${ts", tag), "${ts");
        assert_eq!(expand(re, "a$", tag), "a$");
        assert_eq!(expand(re, "$-", tag), "$-");
        assert_eq!(expand(re, "$9", tag), "");
        assert_eq!(expand(re, "$01", tag), "");
        assert_eq!(expand(re, "$nope", tag), "");
        assert_eq!(expand(re, "v$major.$minor", tag), "v1.2");
        assert_eq!(expand(re, "${major}_${minor}", tag), "1_2");
        // The underscore is part of a name: `$major_` is the group "major_".
        assert_eq!(expand(re, "$major_$minor", tag), "2");
    }

    #[test]
    fn unknown_names_are_reported() {
        let re = Regex::new(r"(?P<a>x)").unwrap();
        assert_eq!(
            Template::parse("$a $b ${c} $1").unknown_names(&re),
            vec!["b", "c"]
        );
    }
}
