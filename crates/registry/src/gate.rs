//! Per-host politeness: at most N requests in flight, at most R requests per second, and a
//! shared pause when the registry answers 429 with `Retry-After`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limits applied to every registry host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Requests in flight per host.
    pub max_concurrent: usize,
    /// Requests started per second per host (0 = unlimited).
    pub requests_per_second: f64,
    /// Attempts per request (first try included) on 429, 5xx and transport errors.
    pub max_attempts: u32,
    /// First back-off delay; doubled per attempt, with jitter.
    pub backoff_base: Duration,
    /// Longest single wait (back-off or Retry-After).
    pub backoff_max: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent: 8,
            requests_per_second: 20.0,
            max_attempts: 5,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// The politeness state of one host.
#[derive(Debug)]
pub struct HostGate {
    limits: Limits,
    slots: Arc<Semaphore>,
    next_start: Mutex<Instant>,
    paused_until: Mutex<Option<Instant>>,
    /// Docker Hub's `RateLimit-Remaining`, -1 when unknown.
    pub rate_limit_remaining: AtomicI64,
    /// Requests sent, and 429 answers received.
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
}

impl HostGate {
    fn new(limits: Limits) -> Self {
        HostGate {
            limits,
            slots: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            next_start: Mutex::new(Instant::now()),
            paused_until: Mutex::new(None),
            rate_limit_remaining: AtomicI64::new(-1),
            requests: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Waits for a slot, the rate limit and any 429 pause, then lets one request start.
    pub async fn acquire(&self) -> OwnedSemaphorePermit {
        let permit = loop {
            match self.slots.clone().acquire_owned().await {
                Ok(p) => break p,
                // The semaphore is never closed; if it were, waiting again is still correct.
                Err(_) => tokio::task::yield_now().await,
            }
        };
        let pause = self
            .paused_until
            .lock()
            .ok()
            .and_then(|p| *p)
            .and_then(|until| until.checked_duration_since(Instant::now()));
        if let Some(wait) = pause {
            tokio::time::sleep(wait).await;
        }
        if self.limits.requests_per_second > 0.0 {
            let spacing = Duration::from_secs_f64(1.0 / self.limits.requests_per_second);
            let start = match self.next_start.lock() {
                Ok(mut next) => {
                    let now = Instant::now();
                    let start = (*next).max(now);
                    *next = start + spacing;
                    start
                }
                Err(_) => Instant::now(),
            };
            if let Some(wait) = start.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        permit
    }

    /// Pauses every request to this host for `wait` (a 429's Retry-After).
    pub fn pause(&self, wait: Duration) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut p) = self.paused_until.lock() {
            let until = Instant::now() + wait.min(self.limits.backoff_max);
            *p = Some(p.map_or(until, |cur| cur.max(until)));
        }
    }

    /// Exponential back-off with jitter for attempt `n` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self.limits.backoff_base.as_secs_f64()
            * 2f64.powi(attempt.saturating_sub(1).min(16) as i32);
        let jittered = base * (0.5 + fastrand::f64());
        Duration::from_secs_f64(jittered).min(self.limits.backoff_max)
    }
}

/// The gates of every host, shared by all scans so that limits hold across repositories, and
/// the HTTP clients they use (one per distinct TLS/proxy setting, so connections are reused and
/// certificate stores are loaded once, not once per repository).
#[derive(Debug, Default)]
pub struct Gates {
    limits: Limits,
    hosts: Mutex<HashMap<String, Arc<HostGate>>>,
    clients: Mutex<HashMap<u64, reqwest::Client>>,
}

impl Gates {
    pub fn new(limits: Limits) -> Self {
        Gates {
            limits,
            hosts: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The shared client for settings identified by `key`, built on first use.
    pub fn http_client<E>(
        &self,
        key: u64,
        build: impl FnOnce() -> Result<reqwest::Client, E>,
    ) -> Result<reqwest::Client, E> {
        if let Some(c) = self.clients.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(c);
        }
        let client = build()?;
        if let Ok(mut m) = self.clients.lock() {
            m.insert(key, client.clone());
        }
        Ok(client)
    }

    /// Every host seen so far, with its gate (for request and 429 metrics).
    pub fn hosts(&self) -> Vec<(String, Arc<HostGate>)> {
        match self.hosts.lock() {
            Ok(m) => {
                let mut v: Vec<_> = m.iter().map(|(h, g)| (h.clone(), g.clone())).collect();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                v
            }
            Err(_) => Vec::new(),
        }
    }

    pub fn get(&self, host: &str) -> Arc<HostGate> {
        match self.hosts.lock() {
            Ok(mut m) => m
                .entry(host.to_owned())
                .or_insert_with(|| Arc::new(HostGate::new(self.limits)))
                .clone(),
            Err(_) => Arc::new(HostGate::new(self.limits)),
        }
    }
}

/// `Retry-After`: delta seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        let d = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap_or_default();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[tokio::test]
    async fn rate_limit_spaces_requests() {
        let gates = Gates::new(Limits {
            requests_per_second: 50.0,
            ..Limits::default()
        });
        let g = gates.get("h");
        let start = Instant::now();
        for _ in 0..6 {
            drop(g.acquire().await);
        }
        // Five gaps of 20 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(95),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(g.requests.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let g = HostGate::new(Limits::default());
        assert!(g.backoff(1) <= Duration::from_millis(375));
        assert!(g.backoff(3) >= Duration::from_millis(500));
        assert!(g.backoff(30) <= Duration::from_secs(60));
    }
}
