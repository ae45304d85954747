//! The decision log printed under the report table: for each controller, every switch it
//! decided (time, from→to, the sentence) and every span of ticks a guard blocked (the
//! guard and until when), in time order, so an SRE sees why the numbers in the table came
//! out as they did. Computed from the same records as the table and the tick file.

use crate::core::Timestamp;
use crate::core::event::Guard;
use crate::sim::record::{ControllerRun, Note};
use std::fmt::Write as _;

/// One line of the log.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry<'a> {
    /// A decided switch.
    Switch {
        /// Tick at which it was decided.
        tick: u32,
        /// Its time.
        at: Timestamp,
        /// The sentence (`escalated A→B: ...`).
        sentence: &'a str,
    },
    /// Consecutive ticks on which a guard refused the same switch.
    Blocked {
        /// First blocked tick.
        tick: u32,
        /// Its time.
        at: Timestamp,
        /// How many ticks in a row.
        ticks: u32,
        /// The guard.
        guard: Guard,
        /// Profile decided (name).
        from: &'a str,
        /// Profile wanted (name).
        to: &'a str,
        /// When the guard stops blocking, as of the last blocked tick, if time-bound.
        until: Option<Timestamp>,
    },
}

/// Every entry of one run, in time order.
pub fn entries(run: &ControllerRun) -> Vec<Entry<'_>> {
    let name = |i: u8| run.profiles.get(usize::from(i)).map_or("?", String::as_str);
    let mut out: Vec<Entry<'_>> = Vec::new();
    // Whether the previous tick was blocked, so a span grows instead of starting anew.
    let mut in_span = false;
    for r in &run.ticks {
        match r.note {
            Note::Switched(i) => {
                in_span = false;
                out.push(Entry::Switch {
                    tick: r.tick,
                    at: r.timestamp,
                    sentence: run.texts.get(i as usize).map_or("", String::as_str),
                });
            }
            Note::Blocked { guard, to, until } => {
                let (from, to) = (name(r.decided), name(to));
                match out.last_mut() {
                    Some(Entry::Blocked {
                        ticks,
                        guard: g,
                        from: f,
                        to: t,
                        until: u,
                        ..
                    }) if in_span && *g == guard && *f == from && *t == to => {
                        *ticks += 1;
                        *u = until;
                    }
                    _ => out.push(Entry::Blocked {
                        tick: r.tick,
                        at: r.timestamp,
                        ticks: 1,
                        guard,
                        from,
                        to,
                        until,
                    }),
                }
                in_span = true;
            }
            _ => in_span = false,
        }
    }
    out
}

/// The log of every run, at most `cap` entries per controller, each cut list ending with
/// how many more there are and where to find them.
pub fn render(runs: &[ControllerRun], cap: usize) -> String {
    let mut out = String::from("decisions (time, from→to, why):\n");
    for run in runs {
        let all = entries(run);
        let _ = writeln!(out, "  {}", run.name);
        if all.is_empty() {
            let _ = writeln!(out, "    no switch decided, none blocked");
            continue;
        }
        for e in all.iter().take(cap) {
            let _ = writeln!(out, "    {}", line(e));
        }
        if all.len() > cap {
            let _ = writeln!(out, "    … {} more, see --ticks", all.len() - cap);
        }
    }
    out
}

/// One entry as text.
fn line(e: &Entry<'_>) -> String {
    match *e {
        Entry::Switch { at, sentence, .. } => format!("{}  {sentence}", time(at)),
        Entry::Blocked {
            at,
            ticks,
            guard,
            from,
            to,
            until,
            ..
        } => {
            let until = until.map_or(String::new(), |u| format!(" until {}", time(u)));
            let plural = if ticks == 1 { "" } else { "s" };
            format!(
                "{}  {from}→{to} blocked by {}{until} ({ticks} tick{plural})",
                time(at),
                guard.label()
            )
        }
    }
}

/// A timestamp as the tick file writes it, without milliseconds when there are none.
fn time(t: Timestamp) -> String {
    let s = t.to_string();
    match s.strip_suffix(".000Z") {
        Some(whole) => format!("{whole}Z"),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::record::TickRecord;
    use std::time::Duration;

    fn run(notes: &[Note]) -> ControllerRun {
        ControllerRun {
            name: "p".into(),
            profiles: vec!["conservative".into(), "balanced".into()],
            retentions: vec![0.9, 0.5],
            budget_series: 100.0,
            tick: Duration::from_secs(15),
            ticks: notes
                .iter()
                .enumerate()
                .map(|(i, &note)| TickRecord {
                    tick: i as u32,
                    timestamp: Timestamp::from_secs(15 * i as i64),
                    input: 1.0,
                    output: 1.0,
                    profile: 0,
                    decided: 1,
                    note,
                    anomaly: None,
                })
                .collect(),
            texts: vec!["escalated conservative→balanced: because".into()],
            anomaly_threshold: None,
        }
    }

    fn blocked(secs: i64) -> Note {
        Note::Blocked {
            guard: Guard::DwellRelax,
            to: 0,
            until: Some(Timestamp::from_secs(secs)),
        }
    }

    #[test]
    fn switches_and_spans_of_blocked_ticks() {
        let r = run(&[
            Note::Switched(0),
            blocked(60),
            blocked(60),
            blocked(75),
            Note::None,
            blocked(90),
        ]);
        let text = render(&[r], 10);
        assert_eq!(
            text,
            "decisions (time, from→to, why):\n  p\n\
             \x20   1970-01-01T00:00:00Z  escalated conservative→balanced: because\n\
             \x20   1970-01-01T00:00:15Z  balanced→conservative blocked by min_dwell_relax until 1970-01-01T00:01:15Z (3 ticks)\n\
             \x20   1970-01-01T00:01:15Z  balanced→conservative blocked by min_dwell_relax until 1970-01-01T00:01:30Z (1 tick)\n"
        );
    }

    #[test]
    fn the_log_is_capped_and_says_where_the_rest_is() {
        let r = run(&[Note::Switched(0); 5]);
        let text = render(&[r], 2);
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(text.ends_with("    … 3 more, see --ticks\n"), "{text}");
        let quiet = render(&[run(&[Note::None])], 2);
        assert!(quiet.contains("no switch decided, none blocked"), "{quiet}");
    }
}
