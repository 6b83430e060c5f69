//! Executing a parsed template against a value, with Go's semantics.

use crate::funcs::call;
use crate::parse::{Branch, Cmd, Node, Operand, Pipe, Pos, Term};
use crate::value::{display, Value};
use crate::TemplateError;

/// Output larger than this is an error: a commit message, not a data dump.
const MAX_OUTPUT: usize = 1 << 20;
/// Most loop iterations in one execution.
const MAX_STEPS: usize = 1_000_000;

enum Flow {
    Normal,
    Break,
    Continue,
}

struct State<'a> {
    name: &'a str,
    out: String,
    vars: Vec<(String, Value)>,
    steps: usize,
}

type Res<T> = Result<T, TemplateError>;

pub fn execute(name: &str, nodes: &[Node], data: &Value) -> Res<String> {
    let mut s = State {
        name,
        out: String::new(),
        vars: vec![("$".to_owned(), data.clone())],
        steps: 0,
    };
    s.walk(data, nodes)?;
    Ok(s.out)
}

impl State<'_> {
    fn err(&self, pos: Pos, message: impl Into<String>) -> TemplateError {
        TemplateError::Exec {
            name: self.name.to_owned(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        }
    }

    fn walk(&mut self, dot: &Value, nodes: &[Node]) -> Res<Flow> {
        for node in nodes {
            match node {
                Node::Text(t) => self.emit(t, Pos::default())?,
                Node::Action(pipe) => {
                    let v = self.pipe(dot, pipe, true)?;
                    if pipe.decl.is_empty() {
                        let text = display(&v);
                        self.emit(&text, pipe.pos)?;
                    }
                }
                Node::If(b) => {
                    let flow = self.scoped(|s| {
                        let v = s.pipe(dot, &b.pipe, true)?;
                        s.branch(dot, b, v.truth(), dot)
                    })?;
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::With(b) => {
                    let flow = self.scoped(|s| {
                        let v = s.pipe(dot, &b.pipe, true)?;
                        s.branch(dot, b, v.truth(), &v)
                    })?;
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(b) => self.scoped(|s| s.range(dot, b))?,
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn branch(&mut self, dot: &Value, b: &Branch, taken: bool, inner: &Value) -> Res<Flow> {
        if taken {
            self.scoped(|s| s.walk(inner, &b.list))
        } else if let Some(e) = &b.else_list {
            self.scoped(|s| s.walk(dot, e))
        } else {
            Ok(Flow::Normal)
        }
    }

    /// Runs `f` and forgets the variables it declared.
    fn scoped<T>(&mut self, f: impl FnOnce(&mut Self) -> Res<T>) -> Res<T> {
        let mark = self.vars.len();
        let r = f(self);
        self.vars.truncate(mark);
        r
    }

    fn emit(&mut self, text: &str, pos: Pos) -> Res<()> {
        if self.out.len() + text.len() > MAX_OUTPUT {
            return Err(self.err(pos, format!("output larger than {MAX_OUTPUT} bytes")));
        }
        self.out.push_str(text);
        Ok(())
    }

    fn range(&mut self, dot: &Value, b: &Branch) -> Res<()> {
        let v = self.pipe(dot, &b.pipe, false)?;
        let items: Vec<(Value, Value)> = match &v {
            Value::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, x)| (Value::Int(i as i64), x.clone()))
                .collect(),
            Value::Map(m) => m.entries().to_vec(),
            Value::Int(n) => {
                if *n as usize > MAX_STEPS {
                    return Err(self.err(b.pipe.pos, "range over too large an integer"));
                }
                (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect()
            }
            Value::Nil | Value::NoValue => Vec::new(),
            other => {
                return Err(self.err(
                    b.pipe.pos,
                    format!("range can't iterate over {}", display(other)),
                ))
            }
        };
        if items.is_empty() {
            if let Some(e) = &b.else_list {
                self.scoped(|s| s.walk(dot, e))?;
            }
            return Ok(());
        }
        for (key, elem) in items {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return Err(self.err(b.pipe.pos, "too many iterations"));
            }
            let flow = self.scoped(|s| {
                match b.pipe.decl.as_slice() {
                    [one] => s.vars.push((one.clone(), elem.clone())),
                    [k, e] => {
                        s.vars.push((k.clone(), key.clone()));
                        s.vars.push((e.clone(), elem.clone()));
                    }
                    _ => {}
                }
                s.walk(&elem, &b.list)
            })?;
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        Ok(())
    }

    /// Evaluates a pipeline; `bind` declares or assigns its variables (range binds its own).
    fn pipe(&mut self, dot: &Value, pipe: &Pipe, bind: bool) -> Res<Value> {
        let mut last: Option<Value> = None;
        for cmd in &pipe.cmds {
            last = Some(self.cmd(dot, cmd, last)?);
        }
        let v = last.unwrap_or(Value::NoValue);
        if bind {
            for name in &pipe.decl {
                if pipe.assign {
                    match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                        Some(slot) => slot.1 = v.clone(),
                        None => {
                            return Err(self.err(pipe.pos, format!("undefined variable: {name}")))
                        }
                    }
                } else {
                    self.vars.push((name.clone(), v.clone()));
                }
            }
        }
        Ok(v)
    }

    fn cmd(&mut self, dot: &Value, cmd: &Cmd, piped: Option<Value>) -> Res<Value> {
        let first = &cmd.args[0];
        if let (Term::Func(name), true) = (&first.term, first.chain.is_empty()) {
            return self.call(dot, name, &cmd.args[1..], piped, first.pos);
        }
        if cmd.args.len() > 1 || piped.is_some() {
            return Err(self.err(
                first.pos,
                format!("can't give argument to non-function {}", describe(first)),
            ));
        }
        self.operand(dot, first)
    }

    fn call(
        &mut self,
        dot: &Value,
        name: &str,
        args: &[Operand],
        piped: Option<Value>,
        pos: Pos,
    ) -> Res<Value> {
        if name == "and" || name == "or" {
            // Lazy, and returns the deciding argument itself.
            let total = args.len() + usize::from(piped.is_some());
            if total == 0 {
                return Err(self.err(
                    pos,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut last = Value::Nil;
            for a in args {
                last = self.operand(dot, a)?;
                if (name == "and") != last.truth() {
                    return Ok(last);
                }
            }
            if let Some(p) = piped {
                last = p;
            }
            return Ok(last);
        }
        let mut values = Vec::with_capacity(args.len() + 1);
        for a in args {
            values.push(self.operand(dot, a)?);
        }
        if let Some(p) = piped {
            values.push(p);
        }
        call(name, &values).map_err(|m| {
            self.err(
                pos,
                format!(
                    "error calling {name}: {}",
                    m.trim_start_matches(&format!("error calling {name}: "))
                ),
            )
        })
    }

    fn operand(&mut self, dot: &Value, op: &Operand) -> Res<Value> {
        let mut v = match &op.term {
            Term::Dot => dot.clone(),
            Term::Var(name) => match self.vars.iter().rev().find(|(n, _)| n == name) {
                Some((_, v)) => v.clone(),
                None => return Err(self.err(op.pos, format!("undefined variable: {name}"))),
            },
            Term::Func(name) => self.call(dot, name, &[], None, op.pos)?,
            Term::Str(s) => Value::Str(s.clone()),
            Term::Int(i) => Value::Int(*i),
            Term::Float(f) => Value::Float(*f),
            Term::Bool(b) => Value::Bool(*b),
            Term::Nil => {
                if op.chain.is_empty() {
                    return Err(self.err(op.pos, "nil is not a command"));
                }
                Value::Nil
            }
            Term::Pipe(p) => self.pipe(dot, p, false)?,
        };
        for field in &op.chain {
            v = self.field(&v, field, op.pos)?;
        }
        Ok(v)
    }

    fn field(&self, v: &Value, name: &str, pos: Pos) -> Res<Value> {
        match v {
            Value::Struct(s) => s
                .fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    self.err(
                        pos,
                        format!("can't evaluate field {name} in type {}", s.type_name),
                    )
                }),
            Value::Map(m) => Ok(m.get_str(name).cloned().unwrap_or(Value::NoValue)),
            Value::NoValue | Value::Nil => {
                Err(self.err(pos, format!("nil data; no entry for key {name:?}")))
            }
            other => Err(self.err(
                pos,
                format!("can't evaluate field {name} in type {}", other.type_name()),
            )),
        }
    }
}

fn describe(op: &Operand) -> String {
    let base = match &op.term {
        Term::Dot => String::new(),
        Term::Var(v) => v.clone(),
        Term::Str(s) => format!("{s:?}"),
        Term::Int(i) => i.to_string(),
        Term::Float(f) => f.to_string(),
        Term::Bool(b) => b.to_string(),
        Term::Nil => "nil".into(),
        Term::Func(f) => f.clone(),
        Term::Pipe(_) => "(…)".into(),
    };
    let chain: String = op.chain.iter().map(|f| format!(".{f}")).collect();
    if base.is_empty() && chain.is_empty() {
        ".".into()
    } else {
        format!("{base}{chain}")
    }
}
