//! CEL as notification-controller uses it on Receivers: `spec.resourceFilter` and
//! `spec.resources[].filter` over `res` (the object's metadata), `req` (the JSON body) and, for
//! `generic-oidc`, `claims`; and a `generic-oidc` provider's `variables` and `validations` over
//! the verified token's claims. Pure: compiled once per configuration, evaluated per request.

use std::fmt;

use serde_json::Value;
use tagpilot_api::OidcProvider;

/// A compiled boolean expression.
pub struct Expr {
    source: String,
    program: cel::Program,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

impl Expr {
    /// Parses `source` (syntax errors only: the interpreter has no type checker, so a
    /// non-boolean result is an error when evaluated).
    pub fn compile(source: &str) -> Result<Self, String> {
        let program = cel::Program::compile(source).map_err(|e| one_line(&e.to_string()))?;
        Ok(Expr {
            source: source.to_owned(),
            program,
        })
    }

    /// Evaluates with the given variables; anything but a boolean is an error.
    pub fn eval_bool(&self, vars: &[(&str, &Value)]) -> Result<bool, String> {
        match self.eval(vars)? {
            cel::Value::Bool(b) => Ok(b),
            other => Err(format!(
                "expression '{}' did not return a boolean but {}",
                self.source,
                other.type_of()
            )),
        }
    }

    fn eval(&self, vars: &[(&str, &Value)]) -> Result<cel::Value, String> {
        let mut ctx = cel::Context::default();
        for (name, value) in vars {
            ctx.add_variable(*name, *value)
                .map_err(|e| format!("variable {name}: {e}"))?;
        }
        self.program
            .execute(&ctx)
            .map_err(|e| format!("evaluating '{}': {e}", self.source))
    }
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_owned()
}

/// A Receiver's resource filters: the top-level one and one per `spec.resources` entry.
#[derive(Debug, Default)]
pub struct ResourceFilters {
    pub top: Option<Expr>,
    pub per_resource: Vec<Option<Expr>>,
}

impl ResourceFilters {
    /// Compiles the Receiver's expressions, with Flux's messages for invalid ones.
    pub fn compile(spec: &tagpilot_api::ReceiverSpec) -> Result<Self, String> {
        let top = spec
            .resource_filter
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                Expr::compile(s).map_err(|e| format!("invalid resourceFilter expression: {e}"))
            })
            .transpose()?;
        let per_resource = spec
            .resources
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.filter
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        Expr::compile(s).map_err(|e| {
                            format!(
                                "invalid filter expression for resources[{i}] (kind=\"{}\", name=\"{}\"): {e}",
                                r.kind, r.name
                            )
                        })
                    })
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        Ok(ResourceFilters { top, per_resource })
    }

    pub fn is_empty(&self) -> bool {
        self.top.is_none() && self.per_resource.iter().all(Option::is_none)
    }

    /// Whether resource `index`, described by `res`, is to be reconciled: both its own filter
    /// and the top-level one (when set) must say true.
    pub fn accepts(
        &self,
        index: usize,
        res: &Value,
        req: &Value,
        claims: Option<&Value>,
    ) -> Result<bool, String> {
        let mut vars = vec![("res", res), ("req", req)];
        if let Some(c) = claims {
            vars.push(("claims", c));
        }
        for e in [
            self.top.as_ref(),
            self.per_resource.get(index).and_then(Option::as_ref),
        ]
        .into_iter()
        .flatten()
        {
            if !e.eval_bool(&vars)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// A `generic-oidc` provider's compiled variables and validations.
#[derive(Debug)]
pub struct ClaimChecks {
    variables: Vec<(String, Expr)>,
    validations: Vec<(Expr, String)>,
}

impl ClaimChecks {
    pub fn compile(p: &OidcProvider) -> Result<Self, String> {
        let mut variables = Vec::new();
        for v in &p.variables {
            let ident = v
                .name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && v.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ident {
                return Err(format!(
                    "variable name '{}' is not a valid CEL identifier",
                    v.name
                ));
            }
            let e = Expr::compile(&v.expression)
                .map_err(|e| format!("invalid expression for variable '{}': {e}", v.name))?;
            variables.push((v.name.clone(), e));
        }
        let validations = p
            .validations
            .iter()
            .map(|v| {
                Expr::compile(&v.expression)
                    .map(|e| (e, v.message.clone()))
                    .map_err(|e| format!("invalid validation expression: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(ClaimChecks {
            variables,
            validations,
        })
    }

    /// Evaluates the variables in order (each sees the ones before it as `vars`), then every
    /// validation; the messages of the failing ones, joined, are the error.
    pub fn evaluate(&self, claims: &Value) -> Result<(), String> {
        let mut vars = serde_json::Map::new();
        for (name, e) in &self.variables {
            let v = e.eval(&[("claims", claims), ("vars", &Value::Object(vars.clone()))])?;
            let json = v.json().map_err(|e| format!("variable '{name}': {e}"))?;
            vars.insert(name.clone(), json);
        }
        let vars = Value::Object(vars);
        let mut failed = Vec::new();
        for (e, message) in &self.validations {
            if !e.eval_bool(&[("claims", claims), ("vars", &vars)])? {
                failed.push(message.clone());
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}

/// `res` for a filter: what notification-controller reads of the object (its metadata).
pub fn resource_value(api_version: &str, kind: &str, meta: &tagpilot_api::ObjectMeta) -> Value {
    serde_json::json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": meta.name,
            "namespace": meta.namespace,
            "labels": meta.labels,
            "annotations": meta.annotations,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(filter: &str, per: &str) -> tagpilot_api::ReceiverSpec {
        let text = format!(
            "apiVersion: notification.toolkit.fluxcd.io/v1\nkind: Receiver\nmetadata: {{name: r}}\nspec:\n  type: generic\n  secretRef: {{name: t}}\n  resourceFilter: '{filter}'\n  resources:\n  - {{kind: ImageRepository, name: a, filter: '{per}'}}\n  - {{kind: ImageRepository, name: b}}\n"
        );
        let c = tagpilot_api::load_str(&text, std::path::Path::new("r.yaml"));
        match c.objects().first().map(|l| &l.object) {
            Some(tagpilot_api::Object::Receiver(r)) => r.spec.clone(),
            _ => panic!("{:?}", c.errors),
        }
    }

    #[test]
    fn resource_filters_see_res_and_req() {
        let spec = receiver(
            "req.ref == \"refs/heads/main\"",
            "res.metadata.labels.team == \"a\"",
        );
        let f = ResourceFilters::compile(&spec).unwrap();
        let mut meta = tagpilot_api::ObjectMeta::new("a", "default");
        meta.labels.insert("team".into(), "a".into());
        let res = resource_value("image.toolkit.fluxcd.io/v1", "ImageRepository", &meta);
        let main = serde_json::json!({"ref": "refs/heads/main"});
        let dev = serde_json::json!({"ref": "refs/heads/dev"});
        assert_eq!(f.accepts(0, &res, &main, None), Ok(true));
        assert_eq!(f.accepts(0, &res, &dev, None), Ok(false));
        let other = resource_value(
            "v",
            "ImageRepository",
            &tagpilot_api::ObjectMeta::new("b", "default"),
        );
        // Resource 1 has no filter of its own: only the top-level one applies.
        assert_eq!(f.accepts(1, &other, &main, None), Ok(true));
        // A label the object lacks is an evaluation error, not a silent false.
        assert!(f.accepts(0, &other, &main, None).is_err());
    }

    #[test]
    fn invalid_expressions_are_named_as_flux_names_them() {
        let e = ResourceFilters::compile(&receiver("req.ref ==", "true"))
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("invalid resourceFilter expression: "), "{e}");
        let e = ResourceFilters::compile(&receiver("true", "res.("))
            .err()
            .unwrap_or_default();
        assert!(
            e.starts_with("invalid filter expression for resources[0] (kind=\"ImageRepository\", name=\"a\"): "),
            "{e}"
        );
        let f = ResourceFilters::compile(&receiver("1 + 1", "true")).unwrap();
        let v = serde_json::json!({});
        let e = f.accepts(0, &v, &v, None).err().unwrap_or_default();
        assert!(e.contains("did not return a boolean"), "{e}");
    }

    #[test]
    fn claim_checks_use_variables_and_name_what_failed() {
        let p = OidcProvider {
            issuer_url: "https://token.actions.githubusercontent.com".into(),
            audience: None,
            variables: vec![tagpilot_api::OidcVariable {
                name: "owner".into(),
                expression: "claims.repository_owner".into(),
            }],
            validations: vec![
                tagpilot_api::OidcValidation {
                    expression: "vars.owner == \"acme\"".into(),
                    message: "only acme's workflows".into(),
                },
                tagpilot_api::OidcValidation {
                    expression: "claims.ref.startsWith(\"refs/heads/\")".into(),
                    message: "branches only".into(),
                },
            ],
        };
        let c = ClaimChecks::compile(&p).unwrap();
        let good = serde_json::json!({"repository_owner": "acme", "ref": "refs/heads/main"});
        assert_eq!(c.evaluate(&good), Ok(()));
        let bad = serde_json::json!({"repository_owner": "eve", "ref": "refs/tags/v1"});
        assert_eq!(
            c.evaluate(&bad),
            Err("only acme's workflows; branches only".into())
        );
        assert_eq!(p.audience(), "notification-controller");
    }
}
