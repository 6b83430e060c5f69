//! Receiver: webhook routes and their status.

use super::*;

impl Engine {
    /// The webhook routes of every Receiver, recording each one's status (`webhookPath`, or
    /// why it has none).
    pub fn receiver_routes(&self) -> Vec<crate::receiver::Route> {
        let mut routes = Vec::new();
        for l in self.config.of_kind(Kind::Receiver) {
            let Object::Receiver(r) = &l.object else {
                continue;
            };
            let (ns, name) = (&r.metadata.namespace, &r.metadata.name);
            // Compiled first: an invalid expression stalls the Receiver (Flux marks it
            // terminally failed), whatever its Secret says.
            let compiled = tagpilot_webhook::filter::ResourceFilters::compile(&r.spec)
                .map_err(|e| (reason::INVALID_CEL_EXPRESSION, e))
                .and_then(|filters| {
                    let oidc = r
                        .spec
                        .oidc_providers
                        .iter()
                        .map(|p| {
                            tagpilot_webhook::filter::ClaimChecks::compile(p)
                                .map(|c| (p.clone(), c))
                                .map_err(|e| {
                                    let e = format!("invalid oidcProvider '{}': {e}", p.issuer_url);
                                    (reason::VALIDATION_FAILED, e)
                                })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok((Arc::new(filters), Arc::new(oidc)))
                });
            let (filters, oidc) = match compiled {
                Ok(c) => c,
                Err((why, e)) => {
                    let stalled = Outcome::stalled(why, e);
                    self.record_outcome(Kind::Receiver, ns, name, stalled, json!({}));
                    continue;
                }
            };
            let token = match &r.spec.secret_ref {
                // generic-oidc authenticates with the ID token: its path hashes no token.
                None if r.spec.receiver_type == ReceiverType::GenericOidc => Ok(Vec::new()),
                Some(s) => self
                    .secrets()
                    .require(ns, &s.name, "token")
                    .map_err(|e| format!("unable to read token: {e}"))
                    .and_then(|t| {
                        // The path is a hash of token, name and namespace: with no token,
                        // anyone who knows the object can compute it.
                        if String::from_utf8_lossy(&t).trim().is_empty() {
                            Err(format!(
                                "unable to read token: secret '{ns}/{}' key 'token' is empty",
                                s.name
                            ))
                        } else {
                            Ok(t)
                        }
                    }),
                None => Err("spec.secretRef is required".to_owned()),
            };
            // gcr: the ID token's expected audience and email, from the same Secret.
            let token = token.and_then(|t| {
                let gcr = match (&r.spec.secret_ref, r.spec.receiver_type) {
                    (Some(s), ReceiverType::Gcr) => {
                        let key = |k: &str| {
                            self.secrets()
                                .require(ns, &s.name, k)
                                .map(|v| String::from_utf8_lossy(&v).trim().to_owned())
                                .map_err(|e| format!("gcr receivers need '{k}': {e}"))
                        };
                        Some(tagpilot_webhook::GcrExpect {
                            audience: key("audience")?,
                            email: key("email")?,
                        })
                    }
                    _ => None,
                };
                Ok((t, gcr))
            });
            match token {
                Ok((token, gcr)) => {
                    let token_text = String::from_utf8_lossy(&token).into_owned();
                    let path = tagpilot_webhook::webhook_path(&token_text, name, ns);
                    let message = if r.spec.suspend {
                        "suspended".to_owned()
                    } else {
                        format!("Receiver initialized for path: {path}")
                    };
                    self.record_with(
                        Kind::Receiver,
                        ns,
                        name,
                        true,
                        message,
                        json!({ "webhookPath": path }),
                    );
                    routes.push(crate::receiver::Route {
                        path,
                        namespace: ns.clone(),
                        name: name.clone(),
                        kind: r.spec.receiver_type,
                        token,
                        events: r.spec.events.clone(),
                        suspended: r.spec.suspend,
                        gcr,
                        filters,
                        oidc,
                    });
                }
                Err(message) => self.record(Kind::Receiver, ns, name, false, message),
            }
        }
        routes
    }
}
