//! Time as the core sees it: a `Timestamp` passed in by the caller, never read from a clock.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

/// Milliseconds since the Unix epoch, supplied by whoever drives the core (the daemon's
/// clock or the simulator's virtual clock); the core never reads a clock itself.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The timestamp `secs` seconds after the epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs * 1000)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Seconds since the epoch, as a float (for plots and reports).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later (clocks can step back).
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// `self + d`, saturating at the end of representable time.
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(d.as_millis().min(i64::MAX as u128) as i64),
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match chrono::DateTime::from_timestamp_millis(self.0) {
            Some(t) => write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%S%.3fZ")),
            None => write!(f, "{}ms", self.0),
        }
    }
}

/// Formats a duration the way policy files write them (`90s`, `5m`, `1h30m`).
pub fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.is_zero() {
        return "0s".to_string();
    }
    if d.subsec_millis() != 0 || secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::with_capacity(12);
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if m > 0 {
        let _ = write!(out, "{m}m");
    }
    if s > 0 {
        let _ = write!(out, "{s}s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_never_negative() {
        let a = Timestamp::from_secs(10);
        let b = Timestamp::from_secs(5);
        assert_eq!(a.saturating_since(b), Duration::from_secs(5));
        assert_eq!(b.saturating_since(a), Duration::ZERO);
    }

    #[test]
    fn durations_print_like_policy_files() {
        assert_eq!(fmt_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(fmt_duration(Duration::from_secs(300)), "5m");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(
            Timestamp::from_secs(0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
    }
}
