//! Kubernetes/Flux duration fields: Go duration strings restricted by the CRD pattern
//! `^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$` (timeouts: without `h`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration as written in a manifest (`1m0s`, `90s`, `1.5h`, `500ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub Duration);

/// A string that is not a valid duration for the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration '{value}': must match {pattern}")]
pub struct DurationError {
    pub value: String,
    pub pattern: &'static str,
}

const PATTERN: &str = "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$";
const PATTERN_NO_HOURS: &str = "^([0-9]+(\\.[0-9]+)?(ms|s|m))+$";

impl GoDuration {
    /// Parses an `interval`-style duration (units ms, s, m, h).
    pub fn parse(s: &str) -> Result<Self, DurationError> {
        parse(s, true).ok_or_else(|| DurationError {
            value: s.to_owned(),
            pattern: PATTERN,
        })
    }

    /// Parses a `timeout`-style duration (units ms, s, m).
    pub fn parse_timeout(s: &str) -> Result<Self, DurationError> {
        parse(s, false).ok_or_else(|| DurationError {
            value: s.to_owned(),
            pattern: PATTERN_NO_HOURS,
        })
    }

    pub fn from_secs(secs: u64) -> Self {
        GoDuration(Duration::from_secs(secs))
    }

    pub fn as_duration(&self) -> Duration {
        self.0
    }
}

fn parse(s: &str, hours: bool) -> Option<GoDuration> {
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let mut i = 0;
    let mut total_nanos: u128 = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let int: u128 = s[start..i].parse().ok()?;
        let mut frac_num: u128 = 0;
        let mut frac_den: u128 = 1;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let fs = i;
            while i < b.len() && b[i].is_ascii_digit() {
                // Digits past nanosecond precision cannot change the result.
                if frac_den < 1_000_000_000_000 {
                    frac_num = frac_num * 10 + u128::from(b[i] - b'0');
                    frac_den *= 10;
                }
                i += 1;
            }
            if i == fs {
                return None;
            }
        }
        let unit: u128 = if s[i..].starts_with("ms") {
            i += 2;
            1_000_000
        } else {
            let u = match b.get(i)? {
                b's' => 1_000_000_000,
                b'm' => 60_000_000_000,
                b'h' if hours => 3_600_000_000_000,
                _ => return None,
            };
            i += 1;
            u
        };
        total_nanos = total_nanos
            .checked_add(int.checked_mul(unit)?)?
            .checked_add(frac_num * unit / frac_den)?;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).ok()?;
    // Go durations are int64 nanoseconds; beyond that Go fails too.
    if total_nanos > i64::MAX as u128 {
        return None;
    }
    Some(GoDuration(Duration::new(
        secs,
        (total_nanos % 1_000_000_000) as u32,
    )))
}

impl fmt::Display for GoDuration {
    /// Go's `time.Duration.String()`: `1m0s`, `1h0m0s`, `1.5s`, `500ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        if nanos < 1_000_000_000 {
            let (unit, div) = if nanos < 1_000 {
                ("ns", 1)
            } else if nanos < 1_000_000 {
                ("µs", 1_000)
            } else {
                ("ms", 1_000_000)
            };
            return write!(f, "{}{unit}", frac(nanos, div));
        }
        let hours = nanos / 3_600_000_000_000;
        let minutes = (nanos / 60_000_000_000) % 60;
        let secs = nanos % 60_000_000_000;
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if hours > 0 || minutes > 0 {
            write!(f, "{minutes}m")?;
        }
        write!(f, "{}s", frac(secs, 1_000_000_000))
    }
}

/// `n / div` with the fraction's trailing zeros removed.
fn frac(n: u128, div: u128) -> String {
    let int = n / div;
    let rem = n % div;
    if rem == 0 {
        return int.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A `timeout` field: same as [`GoDuration`] but without hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timeout(pub GoDuration);

impl Serialize for Timeout {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoDuration::parse_timeout(&s)
            .map(Timeout)
            .map_err(serde::de::Error::custom)
    }
}

/// Seconds since the Unix epoch as RFC 3339 in UTC, as Kubernetes and flux print times.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The inverse of [`rfc3339`] for `YYYY-MM-DDTHH:MM:SS[.frac]Z` (fractions are dropped).
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let t = text.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.split('.').next()?;
    let mut c = time.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (hh, mm, ss) = (c.next()??, c.next()??, c.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_607_874_708), "2020-12-13T15:51:48Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        for secs in [0, 951_782_400, 1_607_874_708, 4_102_444_800, 1_700_000_123] {
            assert_eq!(super::parse_rfc3339(&super::rfc3339(secs)), Some(secs));
        }
        assert_eq!(
            super::parse_rfc3339("2020-12-13T15:51:48.123456789Z"),
            Some(1_607_874_708)
        );
        assert_eq!(super::parse_rfc3339("2020-13-13T15:51:48Z"), None);
        assert_eq!(super::parse_rfc3339("yesterday"), None);
    }

    use super::*;

    fn d(s: &str) -> Duration {
        GoDuration::parse(s).map(|g| g.0).unwrap()
    }

    #[test]
    fn parses_the_crd_pattern() {
        assert_eq!(d("1m0s"), Duration::from_secs(60));
        assert_eq!(d("1h"), Duration::from_secs(3600));
        assert_eq!(d("1.5h"), Duration::from_secs(5400));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("1h30m10s"), Duration::from_secs(5410));
        assert_eq!(d("2m2m"), Duration::from_secs(240));
        for bad in [
            "", "1", "1d", "m", "1.m", ".5s", "-1s", "1 m", "1us", "1ns", "1µs", "1M",
        ] {
            assert!(GoDuration::parse(bad).is_err(), "{bad:?}");
        }
        assert!(GoDuration::parse_timeout("1h").is_err());
        assert!(GoDuration::parse_timeout("90s").is_ok());
        assert!(GoDuration::parse("99999999999h").is_err());
    }

    #[test]
    fn formats_as_go() {
        let f = |s: &str| {
            GoDuration::parse(s)
                .map(|g| g.to_string())
                .unwrap_or_default()
        };
        assert_eq!(f("1m"), "1m0s");
        assert_eq!(f("5m"), "5m0s");
        assert_eq!(f("1h"), "1h0m0s");
        assert_eq!(f("90s"), "1m30s");
        assert_eq!(f("1.5s"), "1.5s");
        assert_eq!(f("500ms"), "500ms");
        assert_eq!(f("1h0m1.25s"), "1h0m1.25s");
        assert_eq!(f("0s"), "0s");
        assert_eq!(GoDuration(Duration::from_micros(1500)).to_string(), "1.5ms");
    }
}
