//! The OCI distribution client for one repository: tag listing with pagination, manifest
//! digests, the auth challenge flow, and retries through the host's gate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LINK, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use sha2::Digest as _;
use url::Url;

use crate::auth::{parse_challenge, Challenge, Credentials};
use crate::error::RegistryError;
use crate::gate::{parse_retry_after, Gates, HostGate};
use crate::name::ImageName;

/// Manifest media types accepted when reading a digest, index types first so a multi-arch tag
/// yields its index digest (as Flux's `remote.Head` does).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A proxy (from `proxySecretRef`: `address`, optional `username`/`password`).
#[derive(Clone, PartialEq, Eq)]
pub struct ProxySpec {
    pub address: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for ProxySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProxySpec({})", self.address)
    }
}

/// How to reach one repository.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Plain HTTP (`spec.insecure`).
    pub insecure: bool,
    /// Extra CA certificates (PEM), added to the system roots (`ca.crt`).
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key (PEM) for mutual TLS (`tls.crt`, `tls.key`).
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
    pub proxy: Option<ProxySpec>,
    /// Per-request timeout (`spec.timeout`, else the interval).
    pub timeout: Duration,
    pub credentials: Option<Credentials>,
    /// Tags asked per page (`n`).
    pub page_size: u32,
    /// Refuse listings longer than this (a runaway registry must not exhaust memory).
    pub max_tags: usize,
    /// Largest response body read.
    pub max_body: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: false,
            ca_pem: None,
            client_cert: None,
            proxy: None,
            timeout: Duration::from_secs(60),
            credentials: None,
            page_size: 1000,
            max_tags: 1_000_000,
            max_body: 32 << 20,
        }
    }
}

/// A complete tag listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagListing {
    /// As the registry sent them (registries do not all sort).
    pub tags: Vec<String>,
    pub pages: u32,
}

/// A client for one repository.
#[derive(Debug)]
pub struct RepoClient {
    http: reqwest::Client,
    name: ImageName,
    base: Url,
    gate: Arc<HostGate>,
    opts: ClientOptions,
    /// The current bearer token, or basic auth once a Basic challenge was seen.
    auth: Mutex<Option<String>>,
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    url: Url,
}

#[derive(Deserialize)]
struct TagsBody {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TokenBody {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// An error and its sources on one line (`a: b: c`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

fn transport(url: &Url, e: &reqwest::Error) -> RegistryError {
    RegistryError::Transport {
        url: url.to_string(),
        message: error_chain(e),
    }
}

pub(crate) fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl RepoClient {
    /// Builds a client for `name`, sharing the host's politeness gate from `gates`.
    pub fn new(
        name: &ImageName,
        opts: ClientOptions,
        gates: &Gates,
    ) -> Result<Self, RegistryError> {
        let scheme = if opts.insecure { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{}/", name.registry)).map_err(|e| {
            RegistryError::Config(format!("registry host '{}': {e}", name.registry))
        })?;
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (opts.insecure, &opts.ca_pem, &opts.client_cert, opts.timeout).hash(&mut h);
            opts.proxy
                .as_ref()
                .map(|p| (&p.address, &p.username, &p.password))
                .hash(&mut h);
            h.finish()
        };
        let http = gates.http_client(key, || Self::build_http(&opts))?;
        Ok(RepoClient {
            http,
            name: name.clone(),
            base,
            gate: gates.get(&name.registry),
            opts,
            auth: Mutex::new(None),
        })
    }

    fn build_http(opts: &ClientOptions) -> Result<reqwest::Client, RegistryError> {
        let mut builder = tagpilot_http::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout.min(Duration::from_secs(30)))
            // Same-origin redirects only: credentials must never follow a redirect elsewhere.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let origin = attempt.previous().first().map(Url::origin);
                if attempt.previous().len() >= MAX_REDIRECTS
                    || Some(attempt.url().origin()) != origin
                {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            }));
        if let Some(ca) = &opts.ca_pem {
            builder = tagpilot_http::add_pem_roots(builder, ca)
                .map_err(|e| RegistryError::Config(format!("ca.crt {e}")))?;
        }
        if let Some((cert, key)) = &opts.client_cert {
            let mut pem = cert.clone();
            pem.push(b'\n');
            pem.extend_from_slice(key);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| RegistryError::Config(format!("tls.crt/tls.key: {e}")))?;
            builder = builder.identity(id);
        }
        if let Some(p) = &opts.proxy {
            let mut proxy = reqwest::Proxy::all(&p.address)
                // Not quoted: a proxy address may carry user:password.
                .map_err(|_| RegistryError::Config("proxy address is not a valid URL".into()))?;
            if let Some(u) = &p.username {
                proxy = proxy.basic_auth(u, p.password.as_deref().unwrap_or(""));
            }
            builder = builder.proxy(proxy);
        }
        builder
            .build()
            .map_err(|e| RegistryError::Config(format!("HTTP client: {e}")))
    }

    pub fn name(&self) -> &ImageName {
        &self.name
    }

    /// Lists every tag, following `Link: <…>; rel="next"` pages.
    pub async fn list_tags(&self) -> Result<TagListing, RegistryError> {
        let mut page_size = self.opts.page_size.max(1);
        let mut url = self.tags_url(page_size)?;
        let mut tags: Vec<String> = Vec::new();
        let mut pages = 0u32;
        let mut seen = std::collections::HashSet::new();
        loop {
            let truncated = |cause: RegistryError, pages: u32, n: usize| {
                if pages == 0 {
                    cause
                } else {
                    RegistryError::Truncated {
                        pages,
                        tags: n,
                        cause: Box::new(cause),
                    }
                }
            };
            let reply = match self.send(Method::GET, url.clone(), None).await {
                Ok(r) => r,
                Err(e) => return Err(truncated(e, pages, tags.len())),
            };
            if reply.status == StatusCode::BAD_REQUEST && pages == 0 && page_size > 50 {
                // Some registries reject large page sizes: ask for less.
                page_size = if page_size > 100 { 100 } else { 50 };
                tracing::debug!(registry = %self.name.registry, page_size, "page size rejected, retrying smaller");
                url = self.tags_url(page_size)?;
                continue;
            }
            let page = match self.parse_tags(&reply) {
                Ok(p) => p,
                Err(e) => return Err(truncated(e, pages, tags.len())),
            };
            pages += 1;
            tags.extend(page);
            if tags.len() > self.opts.max_tags {
                return Err(RegistryError::InvalidResponse {
                    url: reply.url.to_string(),
                    message: format!(
                        "more than {} tags; refusing to list further",
                        self.opts.max_tags
                    ),
                });
            }
            let Some(next) = next_link(&reply.headers) else {
                break;
            };
            let next = reply
                .url
                .join(&next)
                .map_err(|e| RegistryError::InvalidResponse {
                    url: reply.url.to_string(),
                    message: format!("bad Link header: {e}"),
                })?;
            if next.origin() != self.base.origin() {
                return Err(truncated(
                    RegistryError::Redirect {
                        url: reply.url.to_string(),
                        location: next.to_string(),
                    },
                    pages,
                    tags.len(),
                ));
            }
            if !seen.insert(next.to_string()) {
                return Err(truncated(
                    RegistryError::InvalidResponse {
                        url: reply.url.to_string(),
                        message: "pagination loops back to a page already read".into(),
                    },
                    pages,
                    tags.len(),
                ));
            }
            url = next;
        }
        Ok(TagListing { tags, pages })
    }

    fn tags_url(&self, n: u32) -> Result<Url, RegistryError> {
        self.base
            .join(&format!("v2/{}/tags/list?n={n}", self.name.repository))
            .map_err(|e| {
                RegistryError::Config(format!("repository '{}': {e}", self.name.repository))
            })
    }

    fn parse_tags(&self, reply: &Reply) -> Result<Vec<String>, RegistryError> {
        let url = reply.url.to_string();
        match reply.status {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Err(RegistryError::NotFound { url }),
            s => {
                return Err(RegistryError::Status {
                    url,
                    status: s.as_u16(),
                    message: snippet(&reply.body),
                })
            }
        }
        if let Some(ct) = reply
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            let mime = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if !(mime == "application/json"
                || mime.ends_with("+json")
                || mime == "text/plain"
                || mime.is_empty())
            {
                return Err(RegistryError::InvalidResponse {
                    url,
                    message: format!("unexpected content type '{ct}'"),
                });
            }
        }
        let body: TagsBody =
            serde_json::from_slice(&reply.body).map_err(|e| RegistryError::InvalidResponse {
                url: url.clone(),
                message: format!("not a tag list: {e}"),
            })?;
        let tags = body.tags.unwrap_or_default();
        if let Some(bad) = tags.iter().find(|t| !valid_tag(t)) {
            return Err(RegistryError::InvalidResponse {
                url,
                message: format!("invalid tag {bad:?} in listing"),
            });
        }
        Ok(tags)
    }

    /// The digest of `tag`'s manifest (an index digest for multi-arch tags).
    pub async fn head_digest(&self, tag: &str) -> Result<String, RegistryError> {
        if !valid_tag(tag) {
            return Err(RegistryError::Config(format!("invalid tag {tag:?}")));
        }
        let url = self
            .base
            .join(&format!("v2/{}/manifests/{tag}", self.name.repository))
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        let reply = self
            .send(Method::HEAD, url.clone(), Some(MANIFEST_ACCEPT))
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                url: url.to_string(),
            });
        }
        if !reply.status.is_success() {
            return Err(RegistryError::Status {
                url: url.to_string(),
                status: reply.status.as_u16(),
                message: String::new(),
            });
        }
        if let Some(d) = reply
            .headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            return Ok(d.to_owned());
        }
        // No digest header: fetch the manifest and hash it ourselves.
        let reply = self
            .send(Method::GET, url.clone(), Some(MANIFEST_ACCEPT))
            .await?;
        if !reply.status.is_success() {
            return Err(RegistryError::Status {
                url: url.to_string(),
                status: reply.status.as_u16(),
                message: snippet(&reply.body),
            });
        }
        Ok(format!("sha256:{:x}", sha2::Sha256::digest(&reply.body)))
    }

    /// A URL below the registry's base.
    pub(crate) fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base
            .join(path)
            .map_err(|e| RegistryError::Config(e.to_string()))
    }

    /// Follows a redirect to another host (a blob store) once, without credentials, and
    /// never from HTTPS down to plain HTTP.
    pub(crate) async fn fetch_elsewhere(
        &self,
        from: &Url,
        location: &str,
    ) -> Result<Reply, RegistryError> {
        let to = from
            .join(location)
            .map_err(|e| RegistryError::InvalidResponse {
                url: from.to_string(),
                message: format!("unusable redirect location: {e}"),
            })?;
        if from.scheme() == "https" && to.scheme() != "https" {
            return Err(RegistryError::Redirect {
                url: from.to_string(),
                location: format!("{} (not HTTPS)", to.origin().ascii_serialization()),
            });
        }
        let resp = self
            .http
            .get(to.clone())
            .send()
            .await
            .map_err(|e| transport(&to, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = self.read_body(resp, &to).await?;
        Ok(Reply {
            status,
            headers,
            body,
            url: to,
        })
    }

    /// Sends one request through the gate, with auth, retries and back-off.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        accept: Option<&str>,
    ) -> Result<Reply, RegistryError> {
        let max = self.gate.limits().max_attempts.max(1);
        let mut authenticated_now = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let permit = self.gate.acquire().await;
            let mut req = self.http.request(method.clone(), url.clone());
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(auth) = self.auth.lock().ok().and_then(|a| a.clone()) {
                req = req.header(AUTHORIZATION, auth);
            }
            let result = req.send().await;
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    drop(permit);
                    if attempt < max {
                        tracing::debug!(%url, attempt, "transport error, backing off");
                        tokio::time::sleep(self.gate.backoff(attempt)).await;
                        continue;
                    }
                    return Err(transport(&url, &e));
                }
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            let final_url = resp.url().clone();
            if let Some((left, reset)) = crate::gate::rate_limit_headers(&headers) {
                self.gate.remaining(left, reset);
            }
            let body = match self.read_body(resp, &final_url).await {
                Ok(b) => b,
                Err(e) => {
                    drop(permit);
                    if attempt < max && matches!(e, RegistryError::Transport { .. }) {
                        tokio::time::sleep(self.gate.backoff(attempt)).await;
                        continue;
                    }
                    return Err(e);
                }
            };
            drop(permit);
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after)
                    .unwrap_or_else(|| self.gate.backoff(attempt));
                self.gate.pause(wait);
                tracing::info!(registry = %self.name.registry, wait_ms = wait.as_millis() as u64, "rate limited (429), pausing host");
                if attempt < max {
                    continue;
                }
                return Err(RegistryError::RateLimited {
                    url: url.to_string(),
                    attempts: attempt,
                });
            }
            if status == StatusCode::SERVICE_UNAVAILABLE {
                self.gate.pushed_back();
            }
            if status.is_server_error() && attempt < max {
                tokio::time::sleep(self.gate.backoff(attempt)).await;
                continue;
            }
            if !status.is_server_error() {
                self.gate.succeeded();
            }
            if status == StatusCode::UNAUTHORIZED && !authenticated_now {
                let challenge = headers
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge);
                let Some(challenge) = challenge else {
                    return Err(RegistryError::Unauthorized {
                        url: url.to_string(),
                        status: 401,
                        message: "no usable WWW-Authenticate challenge".into(),
                    });
                };
                self.authenticate(&challenge).await?;
                authenticated_now = true;
                attempt -= 1;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(RegistryError::Unauthorized {
                    url: url.to_string(),
                    status: status.as_u16(),
                    message: snippet(&body),
                });
            }
            if status.is_redirection() {
                let location = headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                // The policy stops at another origin or after too many hops: say which.
                let same_origin = final_url
                    .join(&location)
                    .is_ok_and(|to| to.origin() == final_url.origin());
                if same_origin {
                    return Err(RegistryError::TooManyRedirects {
                        url: url.to_string(),
                        hops: MAX_REDIRECTS,
                    });
                }
                return Err(RegistryError::Redirect {
                    url: url.to_string(),
                    location,
                });
            }
            return Ok(Reply {
                status,
                headers,
                body,
                url: final_url,
            });
        }
    }

    async fn read_body(
        &self,
        mut resp: reqwest::Response,
        url: &Url,
    ) -> Result<Vec<u8>, RegistryError> {
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.opts.max_body {
                        return Err(RegistryError::InvalidResponse {
                            url: url.to_string(),
                            message: format!(
                                "response body larger than {} bytes",
                                self.opts.max_body
                            ),
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) => return Err(transport(url, &e)),
            }
        }
    }

    /// Answers a 401 challenge: Basic with the credentials, or a bearer token from the realm.
    async fn authenticate(&self, challenge: &Challenge) -> Result<(), RegistryError> {
        use base64::Engine as _;
        let header = match challenge {
            Challenge::Basic => match &self.opts.credentials {
                Some(Credentials::Basic { username, password }) => {
                    let raw = format!("{username}:{password}");
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(raw)
                    )
                }
                _ => {
                    return Err(RegistryError::Unauthorized {
                        url: self.base.to_string(),
                        status: 401,
                        message: "the registry requires a username and password".into(),
                    })
                }
            },
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let token = self
                    .fetch_token(realm, service.as_deref(), scope.as_deref())
                    .await?;
                format!("Bearer {token}")
            }
        };
        if let Ok(mut a) = self.auth.lock() {
            *a = Some(header);
        }
        Ok(())
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<String, RegistryError> {
        if let Some(Credentials::Bearer(t)) = &self.opts.credentials {
            return Ok(t.clone());
        }
        let mut url = Url::parse(realm).map_err(|e| RegistryError::Unauthorized {
            url: realm.to_owned(),
            status: 401,
            message: format!("invalid token realm: {e}"),
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(RegistryError::Unauthorized {
                url: realm.to_owned(),
                status: 401,
                message: "token realm must be http(s)".into(),
            });
        }
        // The realm gets the credentials: never in cleartext for a registry reached over TLS
        // (a hostile or misconfigured registry could name any plain-HTTP listener).
        if url.scheme() == "http" && self.base.scheme() == "https" {
            return Err(RegistryError::Unauthorized {
                url: realm.to_owned(),
                status: 401,
                message: "the token realm is plain http while the registry is https: \
                          credentials are never sent in cleartext (spec.insecure: true allows it)"
                    .into(),
            });
        }
        let default_scope = format!("repository:{}:pull", self.name.repository);
        let scope = scope.unwrap_or(&default_scope);
        let req = match &self.opts.credentials {
            Some(Credentials::IdentityToken { token, .. }) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str()),
                    ("scope", scope),
                    ("client_id", "tagpilot"),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                self.http.post(url.clone()).form(&form)
            }
            creds => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", scope);
                }
                let mut r = self.http.get(url.clone());
                if let Some(Credentials::Basic { username, password }) = creds {
                    r = r.basic_auth(username, Some(password));
                }
                r
            }
        };
        let resp = req.send().await.map_err(|e| transport(&url, &e))?;
        let status = resp.status();
        let body = self.read_body(resp, &url).await?;
        if !status.is_success() {
            return Err(RegistryError::Unauthorized {
                url: url.to_string(),
                status: status.as_u16(),
                message: "unable to retrieve auth token: invalid username/password or no access"
                    .into(),
            });
        }
        let tb: TokenBody =
            serde_json::from_slice(&body).map_err(|e| RegistryError::InvalidResponse {
                url: url.to_string(),
                message: format!("token response: {e}"),
            })?;
        tb.token
            .filter(|t| !t.is_empty())
            .or(tb.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::InvalidResponse {
                url: url.to_string(),
                message: "token response holds no token".into(),
            })
    }
}

/// Same-origin redirects followed per request before it counts as a loop.
const MAX_REDIRECTS: usize = 5;

/// OCI tag grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v: &HeaderValue| v.to_str().ok())
        .find_map(|v| {
            v.split(',').find_map(|part| {
                let (target, params) = part.split_once(';')?;
                let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
                params
                    .split(';')
                    .any(|p| {
                        let p = p.trim().to_ascii_lowercase().replace(' ', "");
                        p == "rel=\"next\"" || p == "rel=next"
                    })
                    .then(|| target.to_owned())
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static("</v2/app/tags/list?last=b&n=2>; rel=\"next\""),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("/v2/app/tags/list?last=b&n=2")
        );
        h.insert(LINK, HeaderValue::from_static("<https://r.io/v2/a/tags/list?n=2&last=x>; rel=next, <https://r.io/x>; rel=\"prev\""));
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://r.io/v2/a/tags/list?n=2&last=x")
        );
        h.insert(
            LINK,
            HeaderValue::from_static("<https://r.io/x>; rel=\"prev\""),
        );
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn tag_grammar() {
        assert!(valid_tag("v1.2.3-rc.1_x"));
        assert!(!valid_tag(".hidden"));
        assert!(!valid_tag("a b"));
        assert!(!valid_tag(&"a".repeat(129)));
    }
}
