//! Sending a [`Request`] with a bounded retry schedule (Flux retries a notification four times):
//! transport errors, 429 and 5xx are retried with doubling waits (429's `Retry-After` honoured up
//! to the cap); any other status is final. Errors name only the address's origin.

use std::error::Error as _;
use std::time::Duration;

use crate::payload::{origin, Request};

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, at least 1.
    pub attempts: u32,
    pub first_wait: Duration,
    pub max_wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            first_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(16),
        }
    }
}

/// A delivery the endpoint accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub status: u16,
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("{origin} answered HTTP {status} (after {attempts} attempt(s))")]
    Status {
        origin: String,
        status: u16,
        attempts: u32,
    },
    #[error("cannot deliver to {origin}: {message} (after {attempts} attempt(s))")]
    Transport {
        origin: String,
        message: String,
        attempts: u32,
    },
    #[error("cannot set up an HTTP client: {0}")]
    Client(String),
}

/// The error and its causes, without the URL (which may carry a secret).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = s.source();
    }
    text
}

/// A client for one Provider: its timeout, extra trust (`ca.crt`) and proxy. Redirects are not
/// followed: a signed body must reach the address the user configured or nobody.
pub fn client(
    timeout: Duration,
    ca_pem: Option<&[u8]>,
    proxy: Option<&str>,
) -> Result<reqwest::Client, DeliveryError> {
    let mut b = tagpilot_http::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = ca_pem {
        b = tagpilot_http::add_pem_roots(b, pem)
            .map_err(|e| DeliveryError::Client(format!("ca.crt {e}")))?;
    }
    if let Some(p) = proxy {
        b = b.proxy(
            reqwest::Proxy::all(p)
                .map_err(|_| DeliveryError::Client("the proxy address is not a URL".into()))?,
        );
    }
    b.build().map_err(|e| DeliveryError::Client(describe(e)))
}

/// Sends `req`, retrying as `retry` says.
pub async fn deliver(
    client: &reqwest::Client,
    req: &Request,
    retry: &Retry,
) -> Result<Delivered, DeliveryError> {
    let origin = origin(&req.url);
    let attempts = retry.attempts.max(1);
    let mut wait = retry.first_wait;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut r = client.post(&req.url).body(req.body.clone());
        for (k, v) in &req.headers {
            r = r.header(k, v);
        }
        let (failure, retry_after) = match r.send().await {
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    return Ok(Delivered {
                        status: status.as_u16(),
                        attempts: attempt,
                    });
                }
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let e = DeliveryError::Status {
                    origin: origin.clone(),
                    status: status.as_u16(),
                    attempts: attempt,
                };
                if !(status.is_server_error() || status.as_u16() == 429) {
                    return Err(e);
                }
                (e, retry_after)
            }
            Err(e) => (
                DeliveryError::Transport {
                    origin: origin.clone(),
                    message: describe(e),
                    attempts: attempt,
                },
                None,
            ),
        };
        if attempt >= attempts {
            return Err(failure);
        }
        tokio::time::sleep(retry_after.unwrap_or(wait).min(retry.max_wait)).await;
        wait = (wait * 2).min(retry.max_wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers each connection with the next status of `statuses` and counts requests.
    async fn server(statuses: Vec<u16>) -> (String, tokio::task::JoinHandle<usize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let h = tokio::spawn(async move {
            let mut served = 0;
            for status in statuses {
                let Ok((mut s, _)) = l.accept().await else {
                    break;
                };
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = s.write_all(resp.as_bytes()).await;
                served += 1;
            }
            served
        });
        (format!("http://{addr}/secret/path"), h)
    }

    fn fast() -> Retry {
        Retry {
            attempts: 3,
            first_wait: Duration::from_millis(10),
            max_wait: Duration::from_millis(40),
        }
    }

    fn request(url: String) -> Request {
        Request {
            url,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: b"{}".to_vec(),
        }
    }

    #[tokio::test]
    async fn retries_5xx_then_succeeds() {
        let (url, h) = server(vec![500, 503, 200]).await;
        let c = client(Duration::from_secs(5), None, None).unwrap();
        let d = deliver(&c, &request(url), &fast()).await;
        assert_eq!(
            d,
            Ok(Delivered {
                status: 200,
                attempts: 3
            })
        );
        assert_eq!(h.await.unwrap_or_default(), 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_last_attempt_and_hides_the_path() {
        let (url, h) = server(vec![502, 502, 502]).await;
        let c = client(Duration::from_secs(5), None, None).unwrap();
        let e = deliver(&c, &request(url), &fast())
            .await
            .expect_err("every attempt fails");
        assert!(
            matches!(
                e,
                DeliveryError::Status {
                    status: 502,
                    attempts: 3,
                    ..
                }
            ),
            "{e}"
        );
        assert!(!e.to_string().contains("secret"), "{e}");
        assert_eq!(h.await.unwrap_or_default(), 3);
    }

    #[tokio::test]
    async fn client_errors_are_final() {
        let (url, h) = server(vec![403, 200]).await;
        let c = client(Duration::from_secs(5), None, None).unwrap();
        let e = deliver(&c, &request(url), &fast())
            .await
            .expect_err("403 is final");
        assert!(
            matches!(
                e,
                DeliveryError::Status {
                    status: 403,
                    attempts: 1,
                    ..
                }
            ),
            "{e}"
        );
        h.abort();
    }

    #[tokio::test]
    async fn unreachable_is_a_transport_error_without_the_path() {
        // A port nobody listens on: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let c = client(Duration::from_secs(5), None, None).unwrap();
        let e = deliver(
            &c,
            &request(format!("http://127.0.0.1:{port}/secret")),
            &fast(),
        )
        .await
        .expect_err("nobody listens");
        assert!(
            matches!(e, DeliveryError::Transport { attempts: 3, .. }),
            "{e}"
        );
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
