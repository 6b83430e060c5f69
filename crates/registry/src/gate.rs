//! Per-host politeness: at most N requests in flight, a request rate that adapts to the
//! registry (AIMD: unlimited until the host pushes back, halved on a 429/503 or an exhausted
//! `RateLimit-Remaining`, recovering by one request per second each second), a configured
//! `requests_per_second` as a hard cap, and a shared pause on `Retry-After` / rate-limit resets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
// tokio's clock, so that a test can pause and advance it.
use tokio::time::Instant;

/// Limits applied to every registry host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Requests in flight per host.
    pub max_concurrent: usize,
    /// A hard cap on requests started per second per host (0 = none: the rate adapts, with
    /// [`saas_cap`]'s ceiling for public registries).
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
            requests_per_second: 0.0,
            max_attempts: 5,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// A ceiling for public registries that limit requests per client address, applied when no
/// `requests_per_second` is configured. They publish pull quotas rather than API request
/// rates, and one daemon may stand for many users behind one NAT address, so tagpilot stays
/// at the fixed rates it used before the rate became adaptive: 10/s on Docker Hub and ECR
/// Public (strict anonymous quotas), 20/s on GitHub, Quay and Google's registries.
pub fn saas_cap(host: &str) -> Option<f64> {
    let h = host.to_ascii_lowercase();
    let h = h.split(':').next().unwrap_or("");
    match h {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "public.ecr.aws" => Some(10.0),
        "ghcr.io" | "quay.io" | "gcr.io" => Some(20.0),
        _ if h.ends_with(".gcr.io") || h.ends_with(".pkg.dev") => Some(20.0),
        _ => None,
    }
}

/// The slowest rate a cut goes down to, in requests per second.
const MIN_RATE: f64 = 0.5;
/// Cuts closer together than this count once (the answers to requests already in flight).
const CUT_WINDOW: Duration = Duration::from_secs(1);
/// A rate this far above the last cut's starting point is as good as unlimited again.
const RECOVERED_FACTOR: f64 = 4.0;

/// The adaptive rate of one host: additive increase, multiplicative decrease.
#[derive(Debug, Clone)]
pub struct Aimd {
    /// None: no pushback seen (or fully recovered); the concurrency limit alone applies.
    rate: Option<f64>,
    /// The rate when the last cut happened (recovery ends at a multiple of it).
    cut_from: f64,
    last_cut: Option<Instant>,
    last_increase: Instant,
    /// Requests started in the current second, and the count of the last full second: the
    /// rate a first cut halves.
    window_start: Instant,
    in_window: u32,
    last_window: u32,
}

impl Aimd {
    pub fn new(now: Instant) -> Self {
        Aimd {
            rate: None,
            cut_from: 0.0,
            last_cut: None,
            last_increase: now,
            window_start: now,
            in_window: 0,
            last_window: 0,
        }
    }

    /// The rate in force (None: unlimited).
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// A request starts at `now`.
    pub fn started(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= Duration::from_secs(1) {
            self.last_window = if elapsed < Duration::from_secs(2) {
                self.in_window
            } else {
                0
            };
            self.window_start = now;
            self.in_window = 0;
        }
        self.in_window += 1;
    }

    /// The host pushed back (429, 503, no requests left): halve the rate, once per window.
    pub fn cut(&mut self, now: Instant) {
        if self
            .last_cut
            .is_some_and(|t| now.saturating_duration_since(t) < CUT_WINDOW)
        {
            return;
        }
        let current = self
            .rate
            .unwrap_or_else(|| f64::from(self.last_window.max(self.in_window)).max(1.0));
        self.cut_from = current;
        self.rate = Some((current / 2.0).max(MIN_RATE));
        self.last_cut = Some(now);
        self.last_increase = now;
    }

    /// A request went through: one more request per second for each clean second since the
    /// last change, until the rate is well above where the trouble began.
    pub fn succeeded(&mut self, now: Instant) {
        let Some(rate) = self.rate else {
            return;
        };
        let secs = now.saturating_duration_since(self.last_increase).as_secs();
        if secs == 0 {
            return;
        }
        let raised = rate + secs as f64;
        self.last_increase = now;
        self.rate = (raised < self.cut_from * RECOVERED_FACTOR).then_some(raised);
    }

    /// The host said how many requests it allows until a reset: keep under it.
    pub fn remaining(&mut self, left: i64, reset: Option<Duration>, now: Instant) {
        if left <= 0 {
            self.cut(now);
            return;
        }
        if let Some(reset) = reset.filter(|r| !r.is_zero()) {
            let allowed = (left as f64 / reset.as_secs_f64()).max(MIN_RATE);
            if self.rate.is_none_or(|r| r > allowed) {
                self.cut_from = self.cut_from.max(allowed);
                self.rate = Some(allowed);
                self.last_increase = now;
            }
        }
    }
}

/// The politeness state of one host.
#[derive(Debug)]
pub struct HostGate {
    limits: Limits,
    /// The hard cap: configured, or the public registry's ceiling.
    cap: Option<f64>,
    slots: Arc<Semaphore>,
    next_start: Mutex<Instant>,
    paused_until: Mutex<Option<Instant>>,
    aimd: Mutex<Aimd>,
    /// Docker Hub's `RateLimit-Remaining`, -1 when unknown.
    pub rate_limit_remaining: AtomicI64,
    /// Requests sent, and 429 answers received.
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
}

impl HostGate {
    fn new(limits: Limits, host: &str) -> Self {
        let cap = if limits.requests_per_second > 0.0 {
            Some(limits.requests_per_second)
        } else {
            saas_cap(host)
        };
        HostGate {
            limits,
            cap,
            slots: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            next_start: Mutex::new(Instant::now()),
            paused_until: Mutex::new(None),
            aimd: Mutex::new(Aimd::new(Instant::now())),
            rate_limit_remaining: AtomicI64::new(-1),
            requests: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The request rate in force: the adaptive rate under the cap (None: unlimited).
    pub fn current_rate(&self) -> Option<f64> {
        let adaptive = self.aimd.lock().ok().and_then(|a| a.rate());
        match (adaptive, self.cap) {
            (Some(a), Some(c)) => Some(a.min(c)),
            (a, c) => a.or(c),
        }
    }

    /// The host pushed back (a 429 or 503): slow down.
    pub fn pushed_back(&self) {
        if let Ok(mut a) = self.aimd.lock() {
            a.cut(Instant::now());
        }
    }

    /// A request was answered without pushback.
    pub fn succeeded(&self) {
        if let Ok(mut a) = self.aimd.lock() {
            a.succeeded(Instant::now());
        }
    }

    /// `RateLimit-Remaining` / `X-RateLimit-Remaining` and the seconds to the reset, if given:
    /// none left pauses the host until the reset.
    pub fn remaining(&self, left: i64, reset: Option<Duration>) {
        self.rate_limit_remaining.store(left, Ordering::Relaxed);
        if left <= 0 {
            if let Some(r) = reset {
                self.hold(r);
            }
        }
        if let Ok(mut a) = self.aimd.lock() {
            a.remaining(left, reset, Instant::now());
        }
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
        if let Some(rate) = self.current_rate() {
            let spacing = Duration::from_secs_f64(1.0 / rate);
            let start = match self.next_start.lock() {
                Ok(mut next) => {
                    let now = Instant::now();
                    let start = (*next).max(now);
                    *next = start + spacing;
                    start
                }
                Err(_) => Instant::now(),
            };
            tokio::time::sleep_until(start).await;
        }
        if let Ok(mut a) = self.aimd.lock() {
            a.started(Instant::now());
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        permit
    }

    /// Pauses every request to this host for `wait` (a 429's Retry-After) and slows down.
    pub fn pause(&self, wait: Duration) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
        self.pushed_back();
        self.hold(wait);
    }

    fn hold(&self, wait: Duration) {
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
                .or_insert_with(|| Arc::new(HostGate::new(self.limits, host)))
                .clone(),
            Err(_) => Arc::new(HostGate::new(self.limits, host)),
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

/// `RateLimit-Remaining` (Docker Hub: `98;w=21600`) or `X-RateLimit-Remaining`, with
/// `RateLimit-Reset` / `X-RateLimit-Reset` as seconds to the reset (a value past 10^9 is read as
/// a Unix time, GitHub's form).
pub fn rate_limit_headers(headers: &reqwest::header::HeaderMap) -> Option<(i64, Option<Duration>)> {
    let get = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    let left = get(["ratelimit-remaining", "x-ratelimit-remaining"])?;
    let reset = get(["ratelimit-reset", "x-ratelimit-reset"])
        .filter(|r| *r >= 0)
        .map(|r| {
            let r = r as u64;
            if r > 1_000_000_000 {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                Duration::from_secs(r.saturating_sub(now))
            } else {
                Duration::from_secs(r)
            }
        });
    Some((left, reset))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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

    #[tokio::test(start_paused = true)]
    async fn a_configured_rate_is_a_hard_cap() {
        let gates = Gates::new(Limits {
            requests_per_second: 50.0,
            ..Limits::default()
        });
        let g = gates.get("h");
        let start = Instant::now();
        for _ in 0..6 {
            drop(g.acquire().await);
        }
        // Five gaps of 20 ms, on the paused clock.
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        assert_eq!(g.requests.load(Ordering::Relaxed), 6);
        // Clean answers never raise a configured cap.
        tokio::time::advance(Duration::from_secs(60)).await;
        g.succeeded();
        assert_eq!(g.current_rate(), Some(50.0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_that_never_pushed_back_is_not_slowed() {
        let g = Gates::new(Limits::default()).get("registry.internal:5000");
        assert_eq!(g.current_rate(), None);
        let start = Instant::now();
        for _ in 0..100 {
            drop(g.acquire().await);
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        // Public registries keep a ceiling.
        let hub = Gates::new(Limits::default()).get("registry-1.docker.io");
        assert_eq!(hub.current_rate(), Some(10.0));
        assert_eq!(saas_cap("europe-docker.pkg.dev"), Some(20.0));
        assert_eq!(saas_cap("ghcr.io:443"), Some(20.0));
        assert_eq!(saas_cap("127.0.0.1:5000"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_storm_halves_the_rate_once_per_window_and_it_recovers_slowly() {
        let g = Gates::new(Limits::default()).get("h");
        // 40 requests in the first second, then a storm of 429s from those in flight.
        for _ in 0..40 {
            drop(g.acquire().await);
        }
        for _ in 0..8 {
            g.pause(Duration::ZERO);
        }
        assert_eq!(g.current_rate(), Some(20.0), "one cut for the whole storm");
        assert_eq!(g.throttled.load(Ordering::Relaxed), 8);
        // Another 429 a second later: halved again.
        tokio::time::advance(Duration::from_secs(1)).await;
        g.pause(Duration::ZERO);
        assert_eq!(g.current_rate(), Some(10.0));
        // Now requests are spaced: 10 starts take 0.9 s.
        let start = Instant::now();
        for _ in 0..10 {
            drop(g.acquire().await);
        }
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );
        // Clean seconds: +1 per second.
        tokio::time::advance(Duration::from_secs(5)).await;
        g.succeeded();
        assert_eq!(g.current_rate(), Some(15.0));
        // Just under four times the rate of the last cut (20/s): still adapting.
        tokio::time::advance(Duration::from_secs(64)).await;
        g.succeeded();
        assert_eq!(g.current_rate(), Some(79.0));
        // Past it: unlimited again.
        tokio::time::advance(Duration::from_secs(1)).await;
        g.succeeded();
        assert_eq!(g.current_rate(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_the_host_and_rate_limit_headers_shape_the_rate() {
        let g = Gates::new(Limits::default()).get("h");
        g.pause(Duration::from_secs(3));
        let start = Instant::now();
        drop(g.acquire().await);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        // 20 requests left for the next 10 s: 2 per second at most.
        let g = Gates::new(Limits::default()).get("h2");
        g.remaining(20, Some(Duration::from_secs(10)));
        assert_eq!(g.current_rate(), Some(2.0));
        // None left until the reset: the host waits for it.
        let g = Gates::new(Limits::default()).get("h3");
        g.remaining(0, Some(Duration::from_secs(7)));
        let start = Instant::now();
        drop(g.acquire().await);
        assert_eq!(start.elapsed(), Duration::from_secs(7));
        assert!(g.current_rate().is_some());

        let mut h = reqwest::header::HeaderMap::new();
        h.insert("ratelimit-remaining", "98;w=21600".parse().unwrap());
        assert_eq!(rate_limit_headers(&h), Some((98, None)));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("x-ratelimit-remaining", "5".parse().unwrap());
        h.insert("x-ratelimit-reset", "30".parse().unwrap());
        assert_eq!(
            rate_limit_headers(&h),
            Some((5, Some(Duration::from_secs(30))))
        );
        assert_eq!(rate_limit_headers(&reqwest::header::HeaderMap::new()), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let g = HostGate::new(Limits::default(), "h");
        assert!(g.backoff(1) <= Duration::from_millis(375));
        assert!(g.backoff(3) >= Duration::from_millis(500));
        assert!(g.backoff(30) <= Duration::from_secs(60));
    }
}
