//! Registry errors: each names the registry host or URL and the cause, never a credential.

/// A failed registry operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Name(#[from] crate::name::NameError),
    #[error("invalid registry configuration: {0}")]
    Config(String),
    #[error("GET {url}: {message}")]
    Transport { url: String, message: String },
    #[error("GET {url}: authentication failed ({status}): {message}")]
    Unauthorized {
        url: String,
        status: u16,
        message: String,
    },
    #[error("GET {url}: repository not found (404)")]
    NotFound { url: String },
    #[error("GET {url}: unexpected status {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("GET {url}: rate limited (429) after {attempts} attempts")]
    RateLimited { url: String, attempts: u32 },
    #[error("GET {url}: invalid response: {message}")]
    InvalidResponse { url: String, message: String },
    #[error("GET {url}: redirect to another host refused: {location}")]
    Redirect { url: String, location: String },
    #[error("GET {url}: more than {hops} redirects within the registry (a redirect loop?)")]
    TooManyRedirects { url: String, hops: usize },
    /// The listing stopped part way; what was listed is not the whole truth.
    #[error("tag listing incomplete after {pages} page(s) and {tags} tags: {cause}")]
    Truncated {
        pages: u32,
        tags: usize,
        cause: Box<RegistryError>,
    },
}
