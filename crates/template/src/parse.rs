//! Lexing and parsing Go text/template syntax into a tree.

use crate::funcs::is_function;
use crate::TemplateError;

/// A position in the template source (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
pub struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
pub struct Pipe {
    pub pos: Pos,
    /// Variables declared (`$x :=`) or assigned (`$x =`).
    pub decl: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
pub struct Cmd {
    pub args: Vec<Operand>,
}

/// A term and the field chain applied to it (`.A.B`, `$x.A`, `(pipe).A`).
#[derive(Debug, Clone)]
pub struct Operand {
    pub pos: Pos,
    pub term: Term,
    pub chain: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum Term {
    Dot,
    Var(String),
    Func(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Pipe(Box<Pipe>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(String),
    Dot,
    Var(String),
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    LParen,
    RParen,
    Bar,
    Declare,
    Assign,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: Pos,
    /// Whitespace came right before this token.
    spaced: bool,
}

/// One raw piece of the template: text, or an action's tokens.
enum Item {
    Text(String),
    Action(Vec<Token>, Pos),
}

struct Source<'a> {
    name: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn pos(&self, offset: usize) -> Pos {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rfind('\n')
            .map_or(before.chars().count(), |i| before[i + 1..].chars().count())
            + 1;
        Pos { line, col }
    }

    fn err(&self, offset: usize, msg: impl Into<String>) -> TemplateError {
        self.err_at(self.pos(offset), msg)
    }

    fn err_at(&self, pos: Pos, msg: impl Into<String>) -> TemplateError {
        TemplateError::Parse {
            name: self.name.to_owned(),
            line: pos.line,
            col: pos.col,
            message: msg.into(),
        }
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Splits the template into text and action token lists, applying `{{-` and `-}}` trimming
/// and dropping comments.
fn split(src: &Source<'_>) -> Result<Vec<Item>, TemplateError> {
    let t = src.text;
    let b = t.as_bytes();
    let mut items = Vec::new();
    let mut i = 0;
    let mut trim_next = false;
    while i < b.len() {
        let open = t[i..].find("{{").map(|o| i + o);
        let text_end = open.unwrap_or(b.len());
        let mut text = &t[i..text_end];
        if trim_next {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
        }
        let Some(open) = open else {
            if !text.is_empty() {
                items.push(Item::Text(text.to_owned()));
            }
            break;
        };
        let mut j = open + 2;
        if b.get(j) == Some(&b'-') && b.get(j + 1).is_some_and(|c| is_space(*c)) {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            j += 2;
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_owned()));
        }
        // Skip leading space inside the action.
        while j < b.len() && is_space(b[j]) {
            j += 1;
        }
        if t[j..].starts_with("/*") {
            let close = t[j..]
                .find("*/")
                .ok_or_else(|| src.err(open, "unclosed comment"))?
                + j
                + 2;
            let (end, trim) = close_delim(t, close)
                .ok_or_else(|| src.err(open, "comment ends before closing delimiter"))?;
            trim_next = trim;
            i = end;
            continue;
        }
        let (tokens, end, trim) = lex_action(src, j, open)?;
        items.push(Item::Action(tokens, src.pos(open)));
        trim_next = trim;
        i = end;
    }
    Ok(items)
}

/// At `at` (after optional spaces) expects `}}` or ` -}}`; returns (offset after, trim).
fn close_delim(t: &str, at: usize) -> Option<(usize, bool)> {
    let rest = &t[at..];
    if let Some(r) = rest.strip_prefix("}}") {
        let _ = r;
        return Some((at + 2, false));
    }
    let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
    let skipped = rest.len() - trimmed.len();
    if skipped > 0 && trimmed.starts_with("-}}") {
        return Some((at + skipped + 3, true));
    }
    if skipped > 0 && trimmed.starts_with("}}") {
        return Some((at + skipped + 2, false));
    }
    None
}

fn lex_action(
    src: &Source<'_>,
    start: usize,
    open: usize,
) -> Result<(Vec<Token>, usize, bool), TemplateError> {
    let t = src.text;
    let b = t.as_bytes();
    let mut i = start;
    let mut tokens = Vec::new();
    let mut spaced = true;
    loop {
        if i >= b.len() {
            return Err(src.err(open, "unclosed action"));
        }
        let c = b[i];
        if is_space(c) {
            // ` -}}` closes with trimming.
            let rest = t[i..].trim_start_matches([' ', '\t', '\r', '\n']);
            if rest.starts_with("-}}") {
                let end = t.len() - rest.len() + 3;
                return Ok((tokens, end, true));
            }
            spaced = true;
            i += 1;
            continue;
        }
        if t[i..].starts_with("}}") {
            return Ok((tokens, i + 2, false));
        }
        let pos = src.pos(i);
        let (tok, next) = match c {
            b'(' => (Tok::LParen, i + 1),
            b')' => (Tok::RParen, i + 1),
            b'|' => (Tok::Bar, i + 1),
            b',' => (Tok::Comma, i + 1),
            b'=' => (Tok::Assign, i + 1),
            b':' if b.get(i + 1) == Some(&b'=') => (Tok::Declare, i + 2),
            b'"' => lex_quoted(src, i)?,
            b'`' => {
                let close = t[i + 1..]
                    .find('`')
                    .ok_or_else(|| src.err(i, "unterminated raw quoted string"))?;
                (Tok::Str(t[i + 1..i + 1 + close].to_owned()), i + close + 2)
            }
            b'\'' => lex_char(src, i)?,
            b'.' if b
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') =>
            {
                let end = ident_end(b, i + 1);
                (Tok::Field(t[i + 1..end].to_owned()), end)
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => lex_number(src, i)?,
            b'.' => (Tok::Dot, i + 1),
            b'$' => {
                let end = ident_end(b, i + 1);
                (Tok::Var(t[i..end].to_owned()), end)
            }
            b'0'..=b'9' | b'+' | b'-' => lex_number(src, i)?,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = ident_end(b, i);
                (Tok::Ident(t[i..end].to_owned()), end)
            }
            _ => {
                let ch = t[i..].chars().next().unwrap_or('?');
                return Err(src.err(i, format!("unexpected {ch:?} in command")));
            }
        };
        tokens.push(Token { tok, pos, spaced });
        spaced = false;
        i = next;
    }
}

fn ident_end(b: &[u8], from: usize) -> usize {
    let mut j = from;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
        j += 1;
    }
    j
}

fn lex_quoted(src: &Source<'_>, start: usize) -> Result<(Tok, usize), TemplateError> {
    let t = src.text;
    let mut out = String::new();
    let mut chars = t[start + 1..].char_indices();
    while let Some((k, c)) = chars.next() {
        match c {
            '"' => return Ok((Tok::Str(out), start + 1 + k + 1)),
            '\n' => break,
            '\\' => {
                let (_, e) = chars
                    .next()
                    .ok_or_else(|| src.err(start, "unterminated quoted string"))?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = (0..n)
                            .filter_map(|_| chars.next().map(|(_, h)| h))
                            .collect();
                        let code = u32::from_str_radix(&hex, 16)
                            .ok()
                            .filter(|_| hex.len() == n);
                        match code.and_then(char::from_u32) {
                            Some(ch) => out.push(ch),
                            None => return Err(src.err(start, "invalid escape in quoted string")),
                        }
                    }
                    _ => return Err(src.err(start, format!("unknown escape sequence \\{e}"))),
                }
            }
            c => out.push(c),
        }
    }
    Err(src.err(start, "unterminated quoted string"))
}

fn lex_char(src: &Source<'_>, start: usize) -> Result<(Tok, usize), TemplateError> {
    let t = &src.text[start + 1..];
    let mut it = t.char_indices();
    let c = match it.next() {
        Some((_, '\\')) => match it.next() {
            Some((_, 'n')) => '\n',
            Some((_, 't')) => '\t',
            Some((_, '\\')) => '\\',
            Some((_, '\'')) => '\'',
            _ => return Err(src.err(start, "unsupported character escape")),
        },
        Some((_, c)) => c,
        None => return Err(src.err(start, "unterminated character constant")),
    };
    match it.next() {
        Some((k, '\'')) => Ok((Tok::Int(i64::from(u32::from(c))), start + 1 + k + 1)),
        _ => Err(src.err(start, "unterminated character constant")),
    }
}

fn lex_number(src: &Source<'_>, start: usize) -> Result<(Tok, usize), TemplateError> {
    let t = src.text;
    let b = t.as_bytes();
    let mut j = start;
    if matches!(b[j], b'+' | b'-') {
        j += 1;
    }
    while j < b.len()
        && (b[j].is_ascii_alphanumeric()
            || matches!(b[j], b'.' | b'_')
            || (matches!(b[j], b'+' | b'-') && matches!(b[j - 1], b'e' | b'E' | b'p' | b'P')))
    {
        j += 1;
    }
    let text = t[start..j].replace('_', "");
    let (neg, body) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let int = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(bin) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
        i64::from_str_radix(bin, 2).ok()
    } else if body.len() > 1 && body.starts_with('0') && body.bytes().all(|c| c.is_ascii_digit()) {
        i64::from_str_radix(&body[1..], 8).ok()
    } else {
        body.parse::<i64>().ok()
    };
    if let Some(n) = int {
        return Ok((Tok::Int(if neg { -n } else { n }), j));
    }
    match body.parse::<f64>() {
        Ok(f) if !body.is_empty() => Ok((Tok::Float(if neg { -f } else { f }), j)),
        _ => Err(src.err(start, format!("bad number syntax: {:?}", &t[start..j]))),
    }
}

/// Parses a whole template.
pub fn parse(name: &str, text: &str) -> Result<Vec<Node>, TemplateError> {
    let src = Source { name, text };
    let items = split(&src)?;
    let mut p = Parser {
        src: &src,
        items: items.into_iter().peekable(),
        vars: vec![vec!["$".to_owned()]],
        range_depth: 0,
        pending_else: None,
    };
    let (list, end) = p.list()?;
    match end {
        End::Eof => Ok(list),
        End::Keyword(k, pos) => Err(src.err_at(pos, format!("unexpected {{{{{k}}}}}"))),
    }
}

enum End {
    Eof,
    /// `end` or `else` (with the rest of the action's tokens for `else if`).
    Keyword(String, Pos),
}

struct Parser<'a, I: Iterator<Item = Item>> {
    src: &'a Source<'a>,
    items: std::iter::Peekable<I>,
    /// Declared variables per scope, for "undefined variable" errors.
    vars: Vec<Vec<String>>,
    range_depth: usize,
    /// Tokens after an `else` keyword, for `else if` / `else with`.
    pending_else: Option<Vec<Token>>,
}

impl<I: Iterator<Item = Item>> Parser<'_, I> {
    /// Parses nodes until `end`, `else` or end of input.
    fn list(&mut self) -> Result<(Vec<Node>, End), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            match item {
                Item::Text(t) => nodes.push(Node::Text(t)),
                Item::Action(tokens, pos) => {
                    let first = tokens.first().map(|t| t.tok.clone());
                    match first {
                        None => return Err(self.src.err_at(pos, "missing value for command")),
                        Some(Tok::Ident(k)) if k == "end" => {
                            if tokens.len() > 1 {
                                return Err(self.src.err_at(pos, "unexpected token after end"));
                            }
                            return Ok((nodes, End::Keyword("end".into(), pos)));
                        }
                        Some(Tok::Ident(k)) if k == "else" => {
                            // Keep the tokens after `else` for `else if` / `else with`.
                            self.pending_else = Some(tokens[1..].to_vec());
                            return Ok((nodes, End::Keyword("else".into(), pos)));
                        }
                        Some(Tok::Ident(k)) if k == "if" || k == "with" || k == "range" => {
                            nodes.push(self.branch(&k, &tokens[1..], pos)?);
                        }
                        Some(Tok::Ident(k)) if k == "break" || k == "continue" => {
                            if self.range_depth == 0 {
                                return Err(self
                                    .src
                                    .err_at(pos, format!("{{{{{k}}}}} outside {{{{range}}}}")));
                            }
                            if tokens.len() > 1 {
                                return Err(self
                                    .src
                                    .err_at(pos, format!("unexpected token in {{{{{k}}}}}")));
                            }
                            nodes.push(if k == "break" {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        Some(Tok::Ident(k))
                            if matches!(k.as_str(), "define" | "template" | "block") =>
                        {
                            return Err(self.src.err_at(
                                pos,
                                format!("{{{{{k}}}}} is not supported in commit message templates"),
                            ));
                        }
                        _ => {
                            let pipe = self.pipeline(&tokens, pos, true)?;
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
            }
        }
        Ok((nodes, End::Eof))
    }
}

impl<I: Iterator<Item = Item>> Parser<'_, I> {
    fn branch(&mut self, keyword: &str, tokens: &[Token], pos: Pos) -> Result<Node, TemplateError> {
        self.vars.push(Vec::new());
        let pipe = self.pipeline(
            tokens,
            pos,
            keyword == "range" || keyword == "with" || keyword == "if",
        )?;
        if pipe.cmds.is_empty() {
            return Err(self.src.err_at(pos, format!("missing value for {keyword}")));
        }
        if keyword == "range" {
            self.range_depth += 1;
        }
        let result = self.branch_body(keyword, pos);
        if keyword == "range" {
            self.range_depth -= 1;
        }
        self.vars.pop();
        let (list, else_list) = result?;
        let b = Branch {
            pipe,
            list,
            else_list,
        };
        Ok(match keyword {
            "if" => Node::If(b),
            "with" => Node::With(b),
            _ => Node::Range(b),
        })
    }

    fn branch_body(
        &mut self,
        keyword: &str,
        pos: Pos,
    ) -> Result<(Vec<Node>, Option<Vec<Node>>), TemplateError> {
        let (list, end) = self.list()?;
        match end {
            End::Eof => Err(self.src.err_at(
                pos,
                format!("unexpected EOF: {{{{{keyword}}}}} has no {{{{end}}}}"),
            )),
            End::Keyword(k, _) if k == "end" => Ok((list, None)),
            End::Keyword(_, else_pos) => {
                let rest = self.pending_else.take().unwrap_or_default();
                if rest.is_empty() {
                    // Plain else: its list runs to `end`.
                    if keyword == "range" {
                        self.range_depth -= 1;
                    }
                    let parsed = self.list();
                    if keyword == "range" {
                        self.range_depth += 1;
                    }
                    let (else_list, end) = parsed?;
                    match end {
                        End::Keyword(k, _) if k == "end" => Ok((list, Some(else_list))),
                        _ => Err(self.src.err_at(
                            else_pos,
                            format!("expected {{{{end}}}} for {{{{{keyword}}}}}"),
                        )),
                    }
                } else {
                    // `else if …` / `else with …`: a nested branch that shares our `end`.
                    let nested_kw = match &rest[0].tok {
                        Tok::Ident(k) if k == "if" || k == "with" => k.clone(),
                        _ => {
                            return Err(self.src.err_at(else_pos, "expected if or with after else"))
                        }
                    };
                    let nested = self.branch(&nested_kw, &rest[1..], else_pos)?;
                    Ok((list, Some(vec![nested])))
                }
            }
        }
    }
}

impl<I: Iterator<Item = Item>> Parser<'_, I> {
    fn declared(&self, var: &str) -> bool {
        self.vars.iter().any(|scope| scope.iter().any(|v| v == var))
    }

    /// Parses a pipeline from an action's tokens, with an optional `$x :=` / `$k, $v :=`.
    fn pipeline(
        &mut self,
        tokens: &[Token],
        pos: Pos,
        allow_decl: bool,
    ) -> Result<Pipe, TemplateError> {
        let mut decl = Vec::new();
        let mut assign = false;
        let mut i = 0;
        if allow_decl {
            let names: Vec<&str> = match tokens {
                [Token {
                    tok: Tok::Var(a), ..
                }, Token {
                    tok: Tok::Comma, ..
                }, Token {
                    tok: Tok::Var(b), ..
                }, Token {
                    tok: Tok::Declare | Tok::Assign,
                    ..
                }, ..] => vec![a, b],
                [Token {
                    tok: Tok::Var(a), ..
                }, Token {
                    tok: Tok::Declare | Tok::Assign,
                    ..
                }, ..] => vec![a],
                _ => vec![],
            };
            if !names.is_empty() {
                let op = &tokens[names.len() * 2 - 1].tok;
                assign = *op == Tok::Assign;
                for n in &names {
                    if assign && !self.declared(n) {
                        return Err(self.src.err_at(pos, format!("undefined variable \"{n}\"")));
                    }
                }
                decl = names.iter().map(|s| (*s).to_owned()).collect();
                i = names.len() * 2;
            }
        }
        let (cmds, next) = self.commands(tokens, i, pos)?;
        if next != tokens.len() {
            return Err(self.src.err_at(tokens[next].pos, "unexpected right paren"));
        }
        if !assign {
            if let Some(scope) = self.vars.last_mut() {
                scope.extend(decl.iter().cloned());
            }
        }
        if cmds.is_empty() && !decl.is_empty() {
            return Err(self.src.err_at(pos, "missing value for command"));
        }
        Ok(Pipe {
            pos,
            decl,
            assign,
            cmds,
        })
    }

    /// Commands separated by `|`, until the end or an unmatched `)`.
    fn commands(
        &mut self,
        tokens: &[Token],
        mut i: usize,
        pos: Pos,
    ) -> Result<(Vec<Cmd>, usize), TemplateError> {
        let mut cmds = Vec::new();
        loop {
            let cmd_pos = tokens.get(i).map_or(pos, |t| t.pos);
            let mut args = Vec::new();
            while i < tokens.len() && !matches!(tokens[i].tok, Tok::Bar | Tok::RParen) {
                let (op, next) = self.operand(tokens, i)?;
                if !args.is_empty() && !tokens[i].spaced && !matches!(tokens[i].tok, Tok::LParen) {
                    return Err(self
                        .src
                        .err_at(tokens[i].pos, "missing space between arguments"));
                }
                args.push(op);
                i = next;
            }
            if args.is_empty() {
                if i < tokens.len() && tokens[i].tok == Tok::Bar {
                    return Err(self.src.err_at(tokens[i].pos, "missing command before |"));
                }
                if !cmds.is_empty() {
                    return Err(self.src.err_at(cmd_pos, "missing command after |"));
                }
                return Ok((cmds, i));
            }
            cmds.push(Cmd { args });
            if i < tokens.len() && tokens[i].tok == Tok::Bar {
                i += 1;
                continue;
            }
            return Ok((cmds, i));
        }
    }

    fn operand(&mut self, tokens: &[Token], i: usize) -> Result<(Operand, usize), TemplateError> {
        let t = &tokens[i];
        let mut next = i + 1;
        let mut chain = Vec::new();
        let term = match &t.tok {
            Tok::Field(f) => {
                chain.push(f.clone());
                Term::Dot
            }
            Tok::Dot => Term::Dot,
            Tok::Var(v) => {
                if !self.declared(v) {
                    return Err(self
                        .src
                        .err_at(t.pos, format!("undefined variable \"{v}\"")));
                }
                Term::Var(v.clone())
            }
            Tok::Ident(id) => match id.as_str() {
                "true" => Term::Bool(true),
                "false" => Term::Bool(false),
                "nil" => Term::Nil,
                _ if is_function(id) => Term::Func(id.clone()),
                _ => {
                    return Err(self
                        .src
                        .err_at(t.pos, format!("function \"{id}\" not defined")))
                }
            },
            Tok::Str(s) => Term::Str(s.clone()),
            Tok::Int(n) => Term::Int(*n),
            Tok::Float(f) => Term::Float(*f),
            Tok::LParen => {
                let (cmds, close) = self.commands(tokens, i + 1, t.pos)?;
                if close >= tokens.len() || tokens[close].tok != Tok::RParen {
                    return Err(self.src.err_at(t.pos, "unclosed left paren"));
                }
                if cmds.is_empty() {
                    return Err(self
                        .src
                        .err_at(t.pos, "missing value in parenthesized pipeline"));
                }
                next = close + 1;
                Term::Pipe(Box::new(Pipe {
                    pos: t.pos,
                    decl: Vec::new(),
                    assign: false,
                    cmds,
                }))
            }
            Tok::RParen => return Err(self.src.err_at(t.pos, "unexpected right paren")),
            Tok::Bar | Tok::Comma | Tok::Declare | Tok::Assign => {
                return Err(self.src.err_at(t.pos, "unexpected token in operand"))
            }
        };
        while next < tokens.len() && !tokens[next].spaced {
            match &tokens[next].tok {
                Tok::Field(f) => {
                    chain.push(f.clone());
                    next += 1;
                }
                _ => break,
            }
        }
        Ok((
            Operand {
                pos: t.pos,
                term,
                chain,
            },
            next,
        ))
    }
}
