//! Caching and refreshing one lease. The rules:
//!
//! - obtained on first use, then served from the cache;
//! - due for refresh at 80% of its lifetime (from when it was obtained to its expiry); a lease
//!   without expiry is refreshed every [`Policy::no_expiry_refresh`];
//! - an expiry that is already past, or too close (moto's ECR tokens say 2015), is treated as
//!   [`Policy::min_lifetime`] from now, so that it cannot cause a tight refresh loop;
//! - a failed refresh keeps the old lease until its (effective) expiry and backs off
//!   exponentially (`backoff_base`, doubling, at most `backoff_max`) before trying again;
//! - one refresh at a time: callers of one refresher wait for the refresh in flight.
//!
//! Time comes from a [`Clock`], so tests need no real waits.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::{Credentials, ProviderError, TokenSource};

/// Wall-clock time (expiries are wall-clock).
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> SystemTime;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The knobs, with the defaults the issue and Flux's tokens suggest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Fraction of the lifetime after which a refresh is due.
    pub refresh_at: f64,
    pub min_lifetime: Duration,
    pub no_expiry_refresh: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            refresh_at: 0.8,
            min_lifetime: Duration::from_secs(15 * 60),
            no_expiry_refresh: Duration::from_secs(5 * 60),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(10 * 60),
        }
    }
}

#[derive(Debug, Clone)]
struct Held {
    credentials: Option<Credentials>,
    /// When it must no longer be used (the clamped expiry), if ever.
    expires: Option<SystemTime>,
    refresh_due: SystemTime,
}

#[derive(Debug, Default)]
struct State {
    held: Option<Held>,
    failures: u32,
    next_attempt: Option<SystemTime>,
    last_error: Option<ProviderError>,
    failures_total: u64,
    refreshes_total: u64,
}

/// What the metrics show of a refresher.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Seconds until the held lease expires (negative once past); None without a lease or expiry.
    pub seconds_to_expiry: Option<f64>,
    pub refreshes_total: u64,
    pub failures_total: u64,
    /// The last refresh failed with this (no credential in it).
    pub last_error: Option<String>,
}

/// One cached lease and the source that renews it.
#[derive(Debug)]
pub struct Refresher {
    source: Box<dyn TokenSource>,
    clock: Arc<dyn Clock>,
    policy: Policy,
    state: tokio::sync::Mutex<State>,
    /// A copy of the numbers for metrics, readable without waiting for a refresh; the expiry
    /// is kept as a time so the gauge follows the clock.
    published: Mutex<(Option<SystemTime>, Snapshot)>,
}

fn secs_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

impl Refresher {
    pub fn new(source: Box<dyn TokenSource>, clock: Arc<dyn Clock>, policy: Policy) -> Self {
        Refresher {
            source,
            clock,
            policy,
            state: tokio::sync::Mutex::new(State::default()),
            published: Mutex::new((None, Snapshot::default())),
        }
    }

    /// When a lease obtained at `now` with `expires_at` should be refreshed, and when it stops
    /// being usable.
    fn schedule(
        &self,
        now: SystemTime,
        expires_at: Option<SystemTime>,
    ) -> (Option<SystemTime>, SystemTime) {
        match expires_at {
            None => (None, now + self.policy.no_expiry_refresh),
            Some(at) => {
                let floor = now + self.policy.min_lifetime;
                let expires = at.max(floor);
                let life = expires.duration_since(now).unwrap_or_default();
                (Some(expires), now + life.mul_f64(self.policy.refresh_at))
            }
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        self.policy
            .backoff_base
            .saturating_mul(factor)
            .min(self.policy.backoff_max)
    }

    /// The credentials to use now: cached, refreshed when due, or the old ones while a failed
    /// refresh backs off and they have not expired.
    pub async fn get(&self) -> Result<Option<Credentials>, ProviderError> {
        let mut st = self.state.lock().await;
        let now = self.clock.now();
        let usable = |st: &State| {
            st.held
                .as_ref()
                .filter(|h| h.expires.is_none_or(|e| now < e))
                .map(|h| h.credentials.clone())
        };
        if let Some(h) = &st.held {
            if now < h.refresh_due {
                return Ok(h.credentials.clone());
            }
        }
        if st.next_attempt.is_some_and(|t| now < t) {
            let e = st.last_error.clone();
            return usable(&st).ok_or_else(|| {
                e.unwrap_or_else(|| ProviderError::Generic("credentials unavailable".into()))
            });
        }
        let outcome = self.source.fetch().await;
        let now = self.clock.now();
        let result = match outcome {
            Ok(lease) => {
                let (expires, refresh_due) = self.schedule(now, lease.expires_at);
                st.held = Some(Held {
                    credentials: lease.credentials.clone(),
                    expires,
                    refresh_due,
                });
                st.failures = 0;
                st.next_attempt = None;
                st.last_error = None;
                st.refreshes_total += 1;
                Ok(lease.credentials)
            }
            Err(e) => {
                st.failures += 1;
                st.failures_total += 1;
                st.next_attempt = Some(now + self.backoff(st.failures));
                st.last_error = Some(e.clone());
                usable(&st).ok_or(e)
            }
        };
        self.publish(&st);
        result
    }

    /// When the next refresh (or retry) is due, for a refreshing actor to sleep until.
    pub async fn next_due(&self) -> Option<SystemTime> {
        let st = self.state.lock().await;
        match (&st.held, st.next_attempt) {
            (_, Some(t)) => Some(t),
            (Some(h), None) => Some(h.refresh_due),
            (None, None) => None,
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let (expires, mut s) = self
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        s.seconds_to_expiry = expires.map(|e| secs_between(self.clock.now(), e));
        s
    }

    fn publish(&self, st: &State) {
        *self
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (
            st.held.as_ref().and_then(|h| h.expires),
            Snapshot {
                seconds_to_expiry: None,
                refreshes_total: st.refreshes_total,
                failures_total: st.failures_total,
                last_error: st.last_error.as_ref().map(ToString::to_string),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BoxFuture, Lease};
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU32, Ordering};

    const T0: u64 = 1_800_000_000;

    #[derive(Debug)]
    struct ManualClock(Mutex<SystemTime>);
    impl ManualClock {
        fn at(secs: u64) -> Arc<Self> {
            Arc::new(ManualClock(Mutex::new(
                SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            )))
        }
        fn advance(&self, d: Duration) {
            let mut t = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *t += d;
        }
    }
    impl Clock for ManualClock {
        fn now(&self) -> SystemTime {
            *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }

    /// Answers from a script; counts calls; optionally slow (real time) to expose concurrency.
    #[derive(Debug)]
    struct Script {
        answers: Mutex<VecDeque<Result<Lease, ProviderError>>>,
        calls: Arc<AtomicU32>,
        delay: Duration,
    }
    impl TokenSource for Script {
        fn fetch(&self) -> BoxFuture<'_, Result<Lease, ProviderError>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                if !self.delay.is_zero() {
                    tokio::time::sleep(self.delay).await;
                }
                self.answers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop_front()
                    .unwrap_or_else(|| Err(ProviderError::Aws("script exhausted".into())))
            })
        }
    }

    fn lease(password: &str, expires: Option<u64>) -> Result<Lease, ProviderError> {
        Ok(Lease {
            credentials: Some(Credentials::Basic {
                username: "AWS".into(),
                password: password.into(),
            }),
            expires_at: expires.map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
        })
    }

    fn refresher(
        clock: &Arc<ManualClock>,
        answers: Vec<Result<Lease, ProviderError>>,
        delay: Duration,
    ) -> (Refresher, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let src = Script {
            answers: Mutex::new(answers.into()),
            calls: calls.clone(),
            delay,
        };
        (
            Refresher::new(Box::new(src), clock.clone(), Policy::default()),
            calls,
        )
    }

    fn password(c: Result<Option<Credentials>, ProviderError>) -> String {
        match c {
            Ok(Some(Credentials::Basic { password, .. })) => password,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn refreshes_at_80_percent_of_a_12_hour_token() {
        let clock = ManualClock::at(T0);
        let twelve_h = 12 * 3600;
        let (r, calls) = refresher(
            &clock,
            vec![
                lease("one", Some(T0 + twelve_h)),
                lease("two", Some(T0 + 2 * twelve_h)),
            ],
            Duration::ZERO,
        );
        assert_eq!(password(r.get().await), "one");
        // Just before 80% (9.6 h): cached.
        clock.advance(Duration::from_secs(twelve_h * 8 / 10 - 1));
        assert_eq!(password(r.get().await), "one");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            r.next_due().await,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + twelve_h * 8 / 10))
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(password(r.get().await), "two");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let s = r.snapshot();
        assert_eq!(s.refreshes_total, 2);
        // The new token expires at T0 + 24 h; the clock is at T0 + 9.6 h.
        assert_eq!(
            s.seconds_to_expiry,
            Some((2 * twelve_h - twelve_h * 8 / 10) as f64)
        );
    }

    #[tokio::test]
    async fn an_already_expired_token_is_clamped_not_looped() {
        // moto: expiresAt 2015-01-01.
        let clock = ManualClock::at(T0);
        let (r, calls) = refresher(
            &clock,
            vec![
                lease("moto", Some(1_420_070_400)),
                lease("moto2", Some(1_420_070_400)),
            ],
            Duration::ZERO,
        );
        for _ in 0..100 {
            assert_eq!(password(r.get().await), "moto");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no tight loop");
        // Treated as 15 minutes: due at 12 minutes.
        clock.advance(Duration::from_secs(12 * 60));
        assert_eq!(password(r.get().await), "moto2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failures_keep_the_old_token_and_back_off_exponentially() {
        let clock = ManualClock::at(T0);
        let fail = || Err(ProviderError::Aws("throttled".into()));
        let (r, calls) = refresher(
            &clock,
            vec![
                lease("one", Some(T0 + 3600)),
                fail(),
                fail(),
                fail(),
                lease("two", Some(T0 + 7200)),
            ],
            Duration::ZERO,
        );
        assert_eq!(password(r.get().await), "one");
        clock.advance(Duration::from_secs(48 * 60)); // 80% of an hour
                                                     // Failure 1: the old token (valid 12 more minutes), retry in 5 s.
        assert_eq!(password(r.get().await), "one");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        clock.advance(Duration::from_secs(4));
        assert_eq!(password(r.get().await), "one");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "backing off");
        clock.advance(Duration::from_secs(1));
        assert_eq!(password(r.get().await), "one"); // failure 2: next in 10 s
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        clock.advance(Duration::from_secs(9));
        r.get().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        clock.advance(Duration::from_secs(1));
        assert_eq!(password(r.get().await), "one"); // failure 3: next in 20 s
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        let s = r.snapshot();
        assert_eq!(s.failures_total, 3);
        assert_eq!(s.last_error.as_deref(), Some("aws: throttled"));
        clock.advance(Duration::from_secs(20));
        assert_eq!(password(r.get().await), "two");
        assert_eq!(r.snapshot().last_error, None);
    }

    #[tokio::test]
    async fn an_expired_token_is_not_served_after_failures() {
        let clock = ManualClock::at(T0);
        let (r, _) = refresher(
            &clock,
            vec![
                lease("one", Some(T0 + 3600)),
                Err(ProviderError::Aws("down".into())),
            ],
            Duration::ZERO,
        );
        assert_eq!(password(r.get().await), "one");
        clock.advance(Duration::from_secs(3600));
        assert_eq!(r.get().await, Err(ProviderError::Aws("down".into())));
        // Within the back-off: the same error, no new call.
        assert_eq!(r.get().await, Err(ProviderError::Aws("down".into())));
    }

    #[tokio::test]
    async fn backoff_is_capped() {
        let clock = ManualClock::at(T0);
        let (r, _) = refresher(&clock, vec![], Duration::ZERO);
        assert_eq!(r.backoff(1), Duration::from_secs(5));
        assert_eq!(r.backoff(2), Duration::from_secs(10));
        assert_eq!(r.backoff(8), Duration::from_secs(600));
        assert_eq!(r.backoff(u32::MAX), Duration::from_secs(600));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_refresh() {
        let clock = ManualClock::at(T0);
        let (r, calls) = refresher(
            &clock,
            vec![lease("one", Some(T0 + 3600))],
            Duration::from_millis(100),
        );
        let r = Arc::new(r);
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let r = r.clone();
                tokio::spawn(async move { r.get().await })
            })
            .collect();
        for t in tasks {
            assert_eq!(password(t.await.unwrap()), "one");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
