//! The built-in controllers a policy is compared against: the original Phoenix threshold
//! actuator, the Kubernetes HPA algorithm mapped to profiles, and the clairvoyant oracle.
//!
//! They follow their published algorithms literally (they are the yardstick, so tuning
//! happens in policies, never here) and see exactly what a policy sees: the output series
//! of the profile in force, the input, and virtual time.

use super::record::Note;
use super::runner::{Controller, TickView};
use crate::core::Timestamp;
use crate::core::config::ProfileSpec;
use crate::core::event::{fmt_pct, fmt_series, fmt_series_vs};
use std::collections::VecDeque;
use std::time::Duration;

/// The original Phoenix bash actuator: fixed output thresholds, 120 s between changes.
#[derive(Clone, Debug)]
pub struct Threshold {
    budget: f64,
    // Profile names, for the switch sentences.
    names: Vec<String>,
    // The three profiles it knows, mapped onto the ladder: its ends and its middle.
    conservative: usize,
    balanced: usize,
    aggressive: usize,
    last_change: Option<Timestamp>,
}

impl Threshold {
    /// Conservative max = 0.6·budget, aggressive min = 1.0·budget, on this ladder.
    pub fn new(budget: f64, ladder: &[ProfileSpec]) -> Self {
        let n = ladder.len();
        let last = n.saturating_sub(1);
        Threshold {
            budget,
            names: ladder.iter().map(|p| p.name.clone()).collect(),
            conservative: 0,
            balanced: n / 2,
            aggressive: last,
            last_change: None,
        }
    }
}

/// Seconds the threshold actuator waits after a change.
const THRESHOLD_COOLDOWN: Duration = Duration::from_secs(120);

impl Controller for Threshold {
    fn name(&self) -> &str {
        "threshold"
    }

    fn decide(&mut self, v: &TickView, texts: &mut Vec<String>) -> (usize, Note) {
        let cur = v.decided_before;
        let o = v.output;
        if !o.is_finite() {
            return (cur, Note::None);
        }
        if self
            .last_change
            .is_some_and(|t| v.now.saturating_since(t) < THRESHOLD_COOLDOWN)
        {
            return (cur, Note::None);
        }
        let cmax = 0.6 * self.budget;
        let amin = self.budget;
        // The rule that fired, in the bash actuator's words.
        let above = |limit: f64, what: &str| {
            format!(
                "output {} > {what} {}",
                fmt_series_vs(o, limit),
                fmt_series(limit)
            )
        };
        let below = |limit: f64, what: &str| {
            format!(
                "output {} < {what} {}",
                fmt_series_vs(o, limit),
                fmt_series(limit)
            )
        };
        let (to, rule) = if cur == self.conservative {
            if o > 1.1 * cmax {
                if o > amin {
                    (self.aggressive, above(amin, "aggressive-min"))
                } else {
                    (self.balanced, above(1.1 * cmax, "1.1 × conservative-max"))
                }
            } else {
                (cur, String::new())
            }
        } else if cur == self.aggressive {
            if o < 0.9 * amin {
                if o < cmax {
                    (self.conservative, below(cmax, "conservative-max"))
                } else {
                    (self.balanced, below(0.9 * amin, "0.9 × aggressive-min"))
                }
            } else {
                (cur, String::new())
            }
        } else if o > amin {
            (self.aggressive, above(amin, "aggressive-min"))
        } else if o < cmax {
            (self.conservative, below(cmax, "conservative-max"))
        } else {
            (cur, String::new())
        };
        if to == cur {
            return (cur, Note::None);
        }
        self.last_change = Some(v.now);
        texts.push(format!(
            "{}: threshold rule: {rule}",
            switch_words(&self.names, cur, to)
        ));
        (to, Note::Switched(texts.len() as u32 - 1))
    }
}

/// `escalated A→B` or `relaxed A→B`, as policy sentences start.
fn switch_words(names: &[String], from: usize, to: usize) -> String {
    let name = |i: usize| names.get(i).map_or("?", String::as_str);
    let verb = if to > from { "escalated" } else { "relaxed" };
    format!("{verb} {}→{}", name(from), name(to))
}

/// The Kubernetes HPA algorithm with profiles as replicas: tolerance 0.1, stabilization
/// window 0 s up and 300 s down.
#[derive(Clone, Debug)]
pub struct Hpa {
    budget: f64,
    retentions: Vec<f64>,
    // Profile names, for the switch sentences.
    names: Vec<String>,
    // Recommendations of the last 300 s, (time, profile index).
    recent: VecDeque<(Timestamp, usize)>,
}

/// HPA's default downscale stabilization window.
const HPA_DOWN_WINDOW: Duration = Duration::from_secs(300);
/// HPA's default tolerance.
const HPA_TOLERANCE: f64 = 0.1;
/// The HPA's target utilisation of the budget.
const HPA_TARGET: f64 = 0.9;

impl Hpa {
    /// An HPA over this ladder.
    pub fn new(budget: f64, ladder: &[ProfileSpec]) -> Self {
        Hpa {
            budget,
            retentions: ladder.iter().map(|p| p.retention).collect(),
            names: ladder.iter().map(|p| p.name.clone()).collect(),
            recent: VecDeque::new(),
        }
    }

    /// Least-reducing profile whose retention ≤ `desired`; the most reducing if none is.
    fn recommend(&self, desired: f64) -> usize {
        self.retentions
            .iter()
            .position(|&r| r <= desired)
            .unwrap_or(self.retentions.len() - 1)
    }
}

impl Controller for Hpa {
    fn name(&self) -> &str {
        "hpa"
    }

    fn decide(&mut self, v: &TickView, texts: &mut Vec<String>) -> (usize, Note) {
        let cur = v.decided_before;
        let o = v.output;
        if !o.is_finite() {
            return (cur, Note::None);
        }
        let target = HPA_TARGET * self.budget;
        let ratio = o / target;
        let (rec, desired) = if (1.0 - ratio).abs() <= HPA_TOLERANCE {
            (cur, None)
        } else {
            // Retention of the profile that produced this output (the "current replicas").
            let desired = self.retentions[v.in_force] / ratio;
            (self.recommend(desired), Some(desired))
        };
        while self
            .recent
            .front()
            .is_some_and(|&(t, _)| v.now.saturating_since(t) >= HPA_DOWN_WINDOW)
        {
            self.recent.pop_front();
        }
        self.recent.push_back((v.now, rec));
        let to = if rec > cur {
            rec
        } else {
            // Relax only as far as the most protective recommendation of the window.
            let most_protective = self.recent.iter().map(|&(_, p)| p).max().unwrap_or(rec);
            most_protective.min(cur)
        };
        if to == cur {
            return (to, Note::None);
        }
        let name = |i: usize| self.names.get(i).map_or("?", String::as_str);
        let why = match desired {
            Some(d) if to > cur => format!(
                "output {} is {} of the target {} (90% of budget): desired retention {d:.3}, and {} keeps {}",
                fmt_series(o),
                fmt_pct(ratio),
                fmt_series(target),
                name(to),
                self.retentions[to]
            ),
            _ => format!(
                "output {} is {} of the target {}; {} is the most protective recommendation of the last {}s",
                fmt_series(o),
                fmt_pct(ratio),
                fmt_series(target),
                name(to),
                HPA_DOWN_WINDOW.as_secs()
            ),
        };
        texts.push(format!(
            "{}: hpa rule: {why}",
            switch_words(&self.names, cur, to)
        ));
        (to, Note::Switched(texts.len() as u32 - 1))
    }
}

/// The clairvoyant limit: the least-reducing profile that fits this tick's demand, with no
/// delay. It is not a controller anyone could run; it bounds what one could achieve.
#[derive(Clone, Debug)]
pub struct Oracle {
    budget: f64,
    retentions: Vec<f64>,
}

impl Oracle {
    /// The oracle for this ladder.
    pub fn new(budget: f64, retentions: Vec<f64>) -> Self {
        Oracle { budget, retentions }
    }

    /// Why it puts `to` in force for a tick of demand `input`, after `from`.
    pub fn reason(&self, names: &[String], from: usize, to: usize, input: f64) -> String {
        let kept = input * self.retentions[to];
        let why = if !input.is_finite() {
            "the next tick has no demand, so nothing needs reducing".to_string()
        } else if kept <= self.budget {
            format!(
                "demand {} × {} = {} fits budget {}; no less reducing profile does",
                fmt_series(input),
                self.retentions[to],
                fmt_series_vs(kept, self.budget),
                fmt_series(self.budget)
            )
        } else {
            format!(
                "demand {} × {} = {} > budget {}, and no profile fits",
                fmt_series(input),
                self.retentions[to],
                fmt_series(kept),
                fmt_series(self.budget)
            )
        };
        format!("{}: oracle: {why}", switch_words(names, from, to))
    }

    /// The profile it puts in force for a tick of demand `input`.
    pub fn choose(&self, input: f64) -> usize {
        if !input.is_finite() {
            return 0;
        }
        self.retentions
            .iter()
            .position(|&r| input * r <= self.budget)
            .unwrap_or(self.retentions.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder() -> Vec<ProfileSpec> {
        [
            ("conservative", 0.9),
            ("balanced", 0.6),
            ("aggressive", 0.35),
        ]
        .map(|(name, retention)| ProfileSpec {
            name: name.into(),
            retention,
        })
        .to_vec()
    }

    fn view(now_s: i64, output: f64, cur: usize) -> TickView {
        TickView {
            tick: 0,
            now: Timestamp::from_secs(now_s),
            input: output,
            output,
            in_force: cur,
            decided_before: cur,
            apply_ended: None,
        }
    }

    #[test]
    fn threshold_follows_the_bash_actuator() {
        let mut t = Threshold::new(100.0, &ladder());
        let mut texts = Vec::new();
        // From conservative: 65 is not above 1.1·60 = 66.
        assert_eq!(t.decide(&view(0, 65.0, 0), &mut texts).0, 0);
        assert_eq!(t.decide(&view(15, 67.0, 0), &mut texts).0, 1);
        // Within 120 s of the change nothing moves.
        assert_eq!(t.decide(&view(120, 150.0, 1), &mut texts).0, 1);
        assert_eq!(t.decide(&view(135, 150.0, 1), &mut texts).0, 2);
        // From aggressive: leave only below 90; 59 < 60 → conservative.
        assert_eq!(t.decide(&view(300, 95.0, 2), &mut texts).0, 2);
        assert_eq!(t.decide(&view(315, 59.0, 2), &mut texts).0, 0);
    }

    #[test]
    fn hpa_escalates_at_once_and_relaxes_after_the_window() {
        let mut h = Hpa::new(100.0, &ladder());
        let mut texts = Vec::new();
        // Output 90 is the target: no change.
        assert_eq!(h.decide(&view(0, 90.0, 0), &mut texts).0, 0);
        // 120 out of conservative: desired 0.9·90/120 = 0.675 → balanced.
        assert_eq!(h.decide(&view(15, 120.0, 0), &mut texts).0, 1);
        // Low output on balanced recommends conservative, but balanced was recommended
        // within 300 s.
        let mut t = 30;
        while t < 15 + 300 {
            assert_eq!(h.decide(&view(t, 40.0, 1), &mut texts).0, 1, "at {t}");
            t += 15;
        }
        assert_eq!(h.decide(&view(t, 40.0, 1), &mut texts).0, 0);
    }

    #[test]
    fn oracle_picks_least_reducing_fit() {
        let o = Oracle::new(100.0, vec![0.9, 0.6, 0.35]);
        assert_eq!(o.choose(100.0), 0);
        assert_eq!(o.choose(120.0), 1);
        assert_eq!(o.choose(1000.0), 2);
    }
}
