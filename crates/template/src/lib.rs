//! Commit-message templates with Go `text/template` semantics.
//!
//! A parser and executor for the template language (actions, trim markers, pipelines,
//! variables, `if`/`with`/`range` with `else`, `break`/`continue`), Go's builtin functions and
//! the hermetic Sprig functions commit templates use, Go's `fmt` printing, and Flux's data
//! model (`.AutomationObject`, `.Values`, `.Changed`, and the guide's `.Updated`). Maps are
//! ranged in sorted key order, struct keys field by field. Pure.

mod data;
mod exec;
mod funcs;
mod parse;
mod value;

pub use data::{commit_data, MessageInput};
pub use value::{display, Map, Struct, Value};

/// Flux's default commit message.
pub const DEFAULT_MESSAGE: &str = "Update from image update automation";

/// A template that did not parse or failed to run, with its line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template: {name}:{line}:{col}: {message}")]
    Parse {
        name: String,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("template: {name}:{line}:{col}: executing \"{name}\": {message}")]
    Exec {
        name: String,
        line: usize,
        col: usize,
        message: String,
    },
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    nodes: Vec<parse::Node>,
}

impl Template {
    /// Parses `text`; `name` appears in error messages.
    pub fn parse(name: &str, text: &str) -> Result<Self, TemplateError> {
        Ok(Template {
            name: name.to_owned(),
            nodes: parse::parse(name, text)?,
        })
    }

    /// Runs the template against `data`.
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        exec::execute(&self.name, &self.nodes, data)
    }
}

/// Renders a commit message: the template if given (and not empty), else Flux's default.
pub fn render_message(template: Option<&str>, data: &Value) -> Result<String, TemplateError> {
    match template {
        Some(t) if !t.is_empty() => Template::parse("commit message", t)?.execute(data),
        _ => Ok(DEFAULT_MESSAGE.to_owned()),
    }
}
