//! The parsed forms of tagpilot's gate fields: platforms (`spec.gates.platforms` of an
//! ImagePolicy) and change windows (`spec.windows` of an ImageUpdateAutomation).

use std::fmt;

use crate::types::ChangeWindow;

/// `os/architecture[/variant]`, as in an OCI image index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// Go's GOOS values (what image indexes use).
const OSES: [&str; 16] = [
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
];

/// Go's GOARCH values.
const ARCHITECTURES: [&str; 14] = [
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le", "ppc64",
    "ppc64le", "riscv64", "s390x", "wasm",
];

/// The variants an architecture has (GOAMD64, GOARM, GOARM64); others have none.
fn variant_ok(architecture: &str, variant: &str) -> bool {
    let minor = |rest: &str, max: u8| {
        rest.is_empty()
            || rest
                .strip_prefix('.')
                .and_then(|m| m.parse::<u8>().ok())
                .is_some_and(|m| m <= max)
    };
    match architecture {
        "amd64" => matches!(variant, "v1" | "v2" | "v3" | "v4"),
        "arm" => matches!(variant, "v5" | "v6" | "v7" | "v8"),
        "arm64" => match variant {
            v if v.starts_with("v8") => minor(&v[2..], 9),
            v if v.starts_with("v9") => minor(&v[2..], 5),
            _ => false,
        },
        _ => false,
    }
}

impl Platform {
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let (os, architecture, variant) = match parts.as_slice() {
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some(*variant)),
            _ => {
                return Err(format!(
                    "'{s}' is not a platform: give os/architecture[/variant], e.g. linux/arm64"
                ))
            }
        };
        if !OSES.contains(&os) {
            return Err(format!("'{s}': unknown operating system '{os}'"));
        }
        if !ARCHITECTURES.contains(&architecture) {
            return Err(format!("'{s}': unknown architecture '{architecture}'"));
        }
        if let Some(v) = variant {
            if !variant_ok(architecture, v) {
                return Err(format!(
                    "'{s}': '{v}' is not a variant of architecture '{architecture}'"
                ));
            }
        }
        Ok(Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        })
    }

    /// Whether an image built for `found` serves this platform: same os and architecture,
    /// and the variant when this one names it (an entry without a variant is the
    /// architecture's baseline: v8 for arm64, v1 for amd64, v7 for arm, as containerd reads it).
    pub fn served_by(&self, found: &Platform) -> bool {
        if self.os != found.os || self.architecture != found.architecture {
            return false;
        }
        let Some(wanted) = &self.variant else {
            return true;
        };
        let baseline = match self.architecture.as_str() {
            "arm64" => "v8",
            "amd64" => "v1",
            "arm" => "v7",
            _ => "",
        };
        let have = found.variant.as_deref().unwrap_or(baseline);
        let norm = |v: &str| if v == "v8.0" { "v8" } else { v }.to_owned();
        norm(have) == norm(wanted)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A change window, parsed: a 5-field cron schedule in a time zone, open for `duration` from
/// each time the schedule names.
#[derive(Debug, Clone)]
pub struct Window {
    pub cron: croner::Cron,
    pub duration: std::time::Duration,
    pub zone: chrono_tz::Tz,
}

impl Window {
    /// Parses one window; the error names the field at fault (relative to the window).
    pub fn parse(w: &ChangeWindow) -> Result<Self, (&'static str, String)> {
        use croner::parser::{CronParser, Seconds, Year};
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(&w.cron)
            .map_err(|e| {
                (
                    "cron",
                    format!("'{}' is not a 5-field cron schedule: {e}", w.cron),
                )
            })?;
        let zone = match w.time_zone.as_deref() {
            None => chrono_tz::UTC,
            Some(name) => name.parse::<chrono_tz::Tz>().map_err(|_| {
                (
                    "timeZone",
                    format!("'{name}' is not an IANA time zone (e.g. Europe/Berlin)"),
                )
            })?,
        };
        if w.duration.0 < std::time::Duration::from_secs(60) {
            return Err((
                "duration",
                format!("must be at least 1m, is {}", w.duration),
            ));
        }
        Ok(Window {
            cron,
            duration: w.duration.0,
            zone,
        })
    }
}

/// Whether pushes may happen at a time (Unix seconds), by the windows of an automation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    /// No windows, or inside one: `closes` is when the last open window ends (None: never).
    Open { closes: Option<u64> },
    /// Outside every window: `opens` is when the next one starts (None: no schedule fires).
    Closed { opens: Option<u64> },
}

/// The window state at `now` (Unix seconds); no windows means always open.
pub fn window_state(windows: &[Window], now: u64) -> WindowState {
    use chrono::{TimeZone, Utc};
    if windows.is_empty() {
        return WindowState::Open { closes: None };
    }
    let Some(at) = i64::try_from(now)
        .ok()
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
    else {
        return WindowState::Closed { opens: None };
    };
    let secs = |t: chrono::DateTime<chrono_tz::Tz>| u64::try_from(t.timestamp()).ok();
    let mut closes: Option<u64> = None;
    let mut opens: Option<u64> = None;
    for w in windows {
        let local = at.with_timezone(&w.zone);
        let start = w
            .cron
            .find_previous_occurrence(&local, true)
            .ok()
            .and_then(secs);
        let end = start.map(|s| s.saturating_add(w.duration.as_secs()));
        match end {
            Some(end) if end > now => closes = Some(closes.map_or(end, |c| c.max(end))),
            _ => {
                if let Some(next) = w
                    .cron
                    .find_next_occurrence(&local, false)
                    .ok()
                    .and_then(secs)
                {
                    opens = Some(opens.map_or(next, |o| o.min(next)));
                }
            }
        }
    }
    match closes {
        Some(c) => WindowState::Open { closes: Some(c) },
        None => WindowState::Closed { opens },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::GoDuration;

    #[test]
    fn platforms_parse_and_refuse_what_no_index_has() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(Platform::parse("linux/amd64").unwrap().variant, None);
        for (bad, says) in [
            (
                "linux/amd64/v9",
                "'v9' is not a variant of architecture 'amd64'",
            ),
            ("linux", "not a platform"),
            ("linux/amd64/v2/x", "not a platform"),
            ("linux/x86_64", "unknown architecture 'x86_64'"),
            ("Linux/amd64", "unknown operating system 'Linux'"),
            ("linux/riscv64/v1", "not a variant"),
        ] {
            let e = Platform::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(Platform::parse("linux/arm64/v8.2").is_ok());
        assert!(Platform::parse("linux/arm64/v8.12").is_err());
    }

    #[test]
    fn a_platform_is_served_by_its_variants_and_baseline() {
        let p = |s| Platform::parse(s).unwrap();
        assert!(p("linux/arm64").served_by(&p("linux/arm64/v8")));
        assert!(p("linux/arm64/v8").served_by(&p("linux/arm64")));
        assert!(!p("linux/arm/v6").served_by(&p("linux/arm")));
        assert!(p("linux/arm/v7").served_by(&p("linux/arm")));
        assert!(!p("linux/amd64").served_by(&p("linux/arm64")));
        assert!(!p("linux/amd64").served_by(&p("windows/amd64")));
    }

    #[test]
    fn windows_parse_cron_zone_and_duration() {
        let w = |cron: &str, d: u64, tz: Option<&str>| ChangeWindow {
            cron: cron.into(),
            duration: GoDuration::from_secs(d),
            time_zone: tz.map(str::to_owned),
        };
        let ok = Window::parse(&w("0 9 * * 1-5", 8 * 3600, Some("Europe/Berlin"))).unwrap();
        assert_eq!(ok.zone, chrono_tz::Europe::Berlin);
        let (field, e) = Window::parse(&w("0 9 * *", 60, None)).unwrap_err();
        assert_eq!(field, "cron", "{e}");
        // Six fields (seconds) are not the standard form.
        assert_eq!(
            Window::parse(&w("0 0 9 * * 1", 60, None)).unwrap_err().0,
            "cron"
        );
        assert_eq!(
            Window::parse(&w("0 61 * * *", 60, None)).unwrap_err().0,
            "cron"
        );
        let (field, e) = Window::parse(&w("0 9 * * *", 60, Some("Mars/Olympus"))).unwrap_err();
        assert_eq!(
            (field, e.as_str()),
            (
                "timeZone",
                "'Mars/Olympus' is not an IANA time zone (e.g. Europe/Berlin)"
            )
        );
        assert_eq!(
            Window::parse(&w("0 9 * * *", 30, None)).unwrap_err().0,
            "duration"
        );
    }

    #[test]
    fn window_state_follows_the_schedule_in_its_zone() {
        use crate::duration::parse_rfc3339;
        let t = |s: &str| parse_rfc3339(s).unwrap();
        let berlin = Window::parse(&ChangeWindow {
            cron: "0 9 * * 1-5".into(),
            duration: GoDuration::from_secs(8 * 3600),
            time_zone: Some("Europe/Berlin".into()),
        })
        .unwrap();
        let ws = [berlin];
        // Wednesday 2026-12-02, Berlin is UTC+1 in winter: open 08:00Z to 16:00Z.
        assert_eq!(
            window_state(&ws, t("2026-12-02T07:59:59Z")),
            WindowState::Closed {
                opens: Some(t("2026-12-02T08:00:00Z"))
            }
        );
        assert_eq!(
            window_state(&ws, t("2026-12-02T08:00:00Z")),
            WindowState::Open {
                closes: Some(t("2026-12-02T16:00:00Z"))
            }
        );
        assert_eq!(
            window_state(&ws, t("2026-12-02T16:00:00Z")),
            WindowState::Closed {
                opens: Some(t("2026-12-03T08:00:00Z"))
            }
        );
        // Friday evening → Monday morning.
        assert_eq!(
            window_state(&ws, t("2026-12-04T20:00:00Z")),
            WindowState::Closed {
                opens: Some(t("2026-12-07T08:00:00Z"))
            }
        );
        // Summer time: 09:00 Berlin is 07:00Z.
        assert_eq!(
            window_state(&ws, t("2026-07-01T07:30:00Z")),
            WindowState::Open {
                closes: Some(t("2026-07-01T15:00:00Z"))
            }
        );
        assert_eq!(window_state(&[], 0), WindowState::Open { closes: None });
        // Two windows: open while either is; overlapping ones close at the later end.
        let w = |cron: &str, d: u64| {
            Window::parse(&ChangeWindow {
                cron: cron.into(),
                duration: GoDuration::from_secs(d),
                time_zone: None,
            })
            .unwrap()
        };
        let two = [w("0 10 * * *", 3600), w("30 10 * * *", 3600)];
        assert_eq!(
            window_state(&two, t("2026-12-02T10:45:00Z")),
            WindowState::Open {
                closes: Some(t("2026-12-02T11:30:00Z"))
            }
        );
        assert_eq!(
            window_state(&two, t("2026-12-02T12:00:00Z")),
            WindowState::Closed {
                opens: Some(t("2026-12-03T10:00:00Z"))
            }
        );
    }
}
