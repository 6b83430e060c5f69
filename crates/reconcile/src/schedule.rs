//! One run at a time per key, the rest coalesced (kube-runtime's runner never reconciles one
//! key twice at once; its scheduler de-duplicates pending requests).

/// What a request should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Nothing runs: start a run now.
    Start,
    /// A run is in flight: this request merged into its single follow-up.
    Merged,
}

/// The state of one key's runs. A request while idle starts a run; any number of requests
/// while a run is in flight become exactly one follow-up run, which starts when the current
/// one finishes. Urgency is kept: the follow-up is urgent if any merged request was.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Coalescer {
    running: bool,
    /// A follow-up is owed; `Some(urgent)`.
    follow_up: Option<bool>,
}

impl Coalescer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A request for a run.
    pub fn request(&mut self, urgent: bool) -> Request {
        if self.running {
            self.follow_up = Some(self.follow_up.unwrap_or(false) || urgent);
            Request::Merged
        } else {
            self.running = true;
            Request::Start
        }
    }

    /// The run in flight ended. Returns the follow-up to start (its urgency), if one is owed;
    /// the coalescer then counts it as running.
    pub fn finish(&mut self) -> Option<bool> {
        match self.follow_up.take() {
            Some(urgent) => {
                self.running = true;
                Some(urgent)
            }
            None => {
                self.running = false;
                None
            }
        }
    }

    /// Whether a run is in flight.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Whether a follow-up is owed.
    pub fn has_follow_up(&self) -> bool {
        self.follow_up.is_some()
    }

    /// Drops a follow-up that is owed (shutting down: nothing new starts).
    pub fn cancel_follow_up(&mut self) {
        self.follow_up = None;
    }
}

/// What an urgent request (a webhook) should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgent<T> {
    /// Run now: nothing ran for a whole window.
    Now,
    /// Run once at this time, the end of the window of the last run; later requests merge.
    At(T),
    /// A run at the end of the window is already owed.
    Merged,
}

/// Leading- and trailing-edge throttle for urgent requests: the first of a burst runs at once
/// (no added latency), every other request inside the window becomes one run at its end. A
/// burst of any size spread over less than the window is therefore at most two runs. Times
/// are given by the caller (an `Instant`, or a number in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle<T, D> {
    window: D,
    last: Option<T>,
    trailing: bool,
}

impl<T, D> Throttle<T, D>
where
    T: Copy + PartialOrd + std::ops::Add<D, Output = T>,
    D: Copy,
{
    pub fn new(window: D) -> Self {
        Throttle {
            window,
            last: None,
            trailing: false,
        }
    }

    pub fn request(&mut self, now: T) -> Urgent<T> {
        if self.trailing {
            return Urgent::Merged;
        }
        match self.last {
            Some(last) if now < last + self.window => {
                self.trailing = true;
                Urgent::At(last + self.window)
            }
            _ => {
                self.last = Some(now);
                Urgent::Now
            }
        }
    }

    /// The trailing run owed by [`Urgent::At`] starts now.
    pub fn fire(&mut self, now: T) {
        self.trailing = false;
        self.last = Some(now);
    }

    /// Forget everything (a restarted actor).
    pub fn reset(&mut self) {
        self.last = None;
        self.trailing = false;
    }
}

/// Gathers wake-ups into one run: the first wake-up of a batch makes the run due a delay
/// later, and later ones never push it back (a sliding debounce starves a key whose wake-ups
/// keep coming: during a first pass over 10,000 policies a remote's round waited until the
/// resolutions paused). An urgent wake-up may only bring it forward, to its own shorter delay.
/// Times are given by the caller (an `Instant`, or a number in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<T> {
    due: Option<T>,
    urgent: bool,
}

impl<T: Copy + PartialOrd> Default for Batch<T> {
    fn default() -> Self {
        Batch {
            due: None,
            urgent: false,
        }
    }
}

impl<T: Copy + PartialOrd> Batch<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// A wake-up wanting a run at `at` (its time plus its delay). Returns the new due time
    /// when it changed (the caller sets its timer to it), None when the run already due
    /// covers it.
    pub fn wake(&mut self, at: T, urgent: bool) -> Option<T> {
        self.urgent |= urgent;
        match self.due {
            Some(due) if due <= at => None,
            _ => {
                self.due = Some(at);
                Some(at)
            }
        }
    }

    /// The batch's run starts now: whether any of its wake-ups was urgent. The next wake-up
    /// begins a new batch.
    pub fn fire(&mut self) -> bool {
        self.due = None;
        std::mem::take(&mut self.urgent)
    }

    /// When the batch's run is due, if one is.
    pub fn due(&self) -> Option<T> {
        self.due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_during_a_run_becomes_one_follow_up() {
        let mut c = Coalescer::new();
        assert_eq!(c.request(false), Request::Start);
        for _ in 0..29 {
            assert_eq!(c.request(false), Request::Merged);
        }
        assert!(c.has_follow_up());
        assert_eq!(c.finish(), Some(false));
        assert!(c.is_running());
        assert_eq!(c.finish(), None);
        assert!(!c.is_running());
        assert_eq!(c.request(false), Request::Start);
    }

    #[test]
    fn urgency_of_any_merged_request_is_kept() {
        let mut c = Coalescer::new();
        c.request(false);
        c.request(false);
        c.request(true);
        c.request(false);
        assert_eq!(c.finish(), Some(true));
    }

    #[test]
    fn a_burst_inside_the_window_is_at_most_two_runs() {
        let mut t: Throttle<u64, u64> = Throttle::new(1000);
        assert_eq!(t.request(0), Urgent::Now);
        assert_eq!(t.request(5), Urgent::At(1000));
        for now in 6..900 {
            assert_eq!(t.request(now), Urgent::Merged);
        }
        t.fire(1000);
        // Right after the trailing run: the next one waits for its window again.
        assert_eq!(t.request(1500), Urgent::At(2000));
        t.fire(2000);
        // Quiet for a whole window: at once.
        assert_eq!(t.request(3500), Urgent::Now);
        t.reset();
        assert_eq!(t.request(3600), Urgent::Now);
    }

    #[test]
    fn a_cancelled_follow_up_does_not_run() {
        let mut c = Coalescer::new();
        c.request(false);
        c.request(true);
        c.cancel_follow_up();
        assert_eq!(c.finish(), None);
        assert!(!c.is_running());
    }

    #[test]
    fn wake_ups_that_keep_coming_never_push_the_run_back() {
        let mut b = Batch::new();
        // Non-urgent wake-ups want a run 1000 after them; they arrive every 100.
        assert_eq!(b.wake(1000, false), Some(1000));
        for t in (100..900).step_by(100) {
            assert_eq!(b.wake(t + 1000, false), None, "wake-up at {t}");
        }
        assert_eq!(b.due(), Some(1000));
        assert!(!b.fire());
        assert_eq!(b.due(), None);
        // After the run, the next wake-up starts a new batch.
        assert_eq!(b.wake(2100, false), Some(2100));
    }

    #[test]
    fn an_urgent_wake_up_brings_the_run_forward_and_is_remembered() {
        let mut b = Batch::new();
        assert_eq!(b.wake(1000, false), Some(1000));
        // Urgent at 200 with a delay of 50: due at 250.
        assert_eq!(b.wake(250, true), Some(250));
        // A later non-urgent wake-up leaves it there.
        assert_eq!(b.wake(1300, false), None);
        assert_eq!(b.due(), Some(250));
        assert!(b.fire(), "the run is urgent");
        assert_eq!(b.wake(1400, false), Some(1400));
        assert!(!b.fire(), "urgency does not carry into the next batch");
    }
}
