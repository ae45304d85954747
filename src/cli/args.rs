//! Value parsers for flags shared by the commands (durations, rescaling, profile ladders).
//! Each returns clap's error text: what is wrong with the value and an example of a good
//! one. Also the `bench` command group's subcommands (the validation protocols).

use crate::core::config::ProfileSpec;
use crate::policy::{LadderProblem, check_ladder};
use std::time::Duration;

/// The `bench` subcommands: validation protocols that score a configuration on the
/// shared data and on stressed variants of it.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Score the default anomaly detector at its fixed threshold, and the simple causal
    /// baselines, on the NAB corpus and every stressed variant: NAB standard per variant,
    /// per category and per file, the worst variant and the pooled score.
    Anomaly(super::bench_anomaly::BenchAnomalyArgs),
    /// Evaluate a policy (and its mechanisms turned off one at a time) against the HPA and
    /// threshold baselines: shared NAB series, stressed variants, synthetic sweeps.
    Control(super::bench_control::BenchControlArgs),
}

/// A profile ladder given on the command line, least to most reducing, already checked.
#[derive(Clone, Debug)]
pub struct Ladder(pub Vec<ProfileSpec>);

/// A positive duration like `15s` or `1m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim_start().starts_with('-') {
        return Err(format!(
            "{s}: a duration cannot be negative (write e.g. 15s, 1m)"
        ));
    }
    let d = humantime::parse_duration(s).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => {
            format!("{s}: the number is too large for a duration (write e.g. 15s, 1m)")
        }
        e => format!("{e} (write e.g. 15s, 1m)"),
    })?;
    if d.is_zero() {
        return Err("must be > 0".into());
    }
    Ok(d)
}

/// A budget: a whole number of series from 1 to 1e12 (`100000`, `1e5`).
pub fn parse_budget(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(b) if (1.0..=1e12).contains(&b) && b.fract() == 0.0 => Ok(b),
        _ => Err(format!(
            "{s:?} is not a budget: give a whole number of series from 1 to 1e12, e.g. 100000"
        )),
    }
}

/// Largest multiple of the budget a trace may be rescaled to, as in scenario files.
const MAX_RESCALE: f64 = 1000.0;

/// `MIN:MAX` with 0 <= MIN <= MAX <= 1000, both finite.
pub fn parse_rescale(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s.split_once(':').ok_or("expected MIN:MAX, e.g. 0.4:2.2")?;
    let a: f64 = a
        .trim()
        .parse()
        .map_err(|_| format!("{a:?} is not a number (expected MIN:MAX, e.g. 0.4:2.2)"))?;
    let b: f64 = b
        .trim()
        .parse()
        .map_err(|_| format!("{b:?} is not a number (expected MIN:MAX, e.g. 0.4:2.2)"))?;
    if !(a.is_finite() && b.is_finite() && 0.0 <= a && a <= b) {
        return Err(format!("{s}: need 0 <= MIN <= MAX"));
    }
    if b > MAX_RESCALE {
        return Err(format!(
            "{s}: MAX is a multiple of the budget, at most {MAX_RESCALE} (e.g. 0.4:2.2)"
        ));
    }
    Ok((a, b))
}

/// `NAME=RETENTION,...`, least to most reducing, checked by the ladder rules shared with
/// policies and scenarios; every problem is reported, the profiles' before the count.
pub fn parse_ladder(s: &str) -> Result<Ladder, String> {
    let mut out: Vec<ProfileSpec> = Vec::new();
    for part in s.split(',') {
        let (name, r) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected NAME=RETENTION, e.g. conservative=0.9"))?;
        let retention: f64 = r
            .trim()
            .parse()
            .map_err(|_| format!("{r:?} is not a number"))?;
        out.push(ProfileSpec {
            name: name.trim().to_string(),
            retention,
        });
    }
    let mut problems = check_ladder(&out);
    if problems.is_empty() {
        return Ok(Ladder(out));
    }
    problems.sort_by_key(|p| p.index().is_none());
    let name = |i: usize| out[i].name.as_str();
    let messages: Vec<String> = problems
        .iter()
        .map(|p| match *p {
            LadderProblem::TooFewProfiles { .. } => "need at least two profiles".to_string(),
            LadderProblem::EmptyName { index } => format!(
                "profile {} has no name (expected NAME=RETENTION, e.g. conservative=0.9)",
                index + 1
            ),
            LadderProblem::DuplicateName { index, .. } => {
                format!("{}: the name is given twice", name(index))
            }
            LadderProblem::RetentionOutOfRange { index, retention } => {
                format!("{}: retention {retention} must be in (0, 1]", name(index))
            }
            LadderProblem::NotDecreasing { index, .. } => format!(
                "{}: retentions must decrease from least to most reducing",
                name(index)
            ),
        })
        .collect();
    Err(messages.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Err("must be > 0".to_string()));
        assert!(
            parse_duration("-15s")
                .unwrap_err()
                .contains("cannot be negative")
        );
        assert!(
            parse_duration("99999999999999999999s")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .ends_with("(write e.g. 15s, 1m)")
        );
    }

    #[test]
    fn budgets_are_whole_numbers_of_series() {
        assert_eq!(parse_budget("100000"), Ok(100_000.0));
        assert_eq!(parse_budget("1e5"), Ok(100_000.0));
        for bad in ["0", "-5", "1.5", "1e13", "nan", "x"] {
            assert!(
                parse_budget(bad).unwrap_err().contains("whole number"),
                "{bad}"
            );
        }
    }

    #[test]
    fn rescale() {
        assert_eq!(parse_rescale("0.4:2.2"), Ok((0.4, 2.2)));
        assert_eq!(parse_rescale(" 1 : 1 "), Ok((1.0, 1.0)));
        assert_eq!(
            parse_rescale("3:1"),
            Err("3:1: need 0 <= MIN <= MAX".to_string())
        );
        assert!(
            parse_rescale("0.4")
                .unwrap_err()
                .starts_with("expected MIN:MAX")
        );
        assert!(
            parse_rescale("x:1")
                .unwrap_err()
                .starts_with("\"x\" is not a number")
        );
        assert!(parse_rescale("0:inf").is_err());
        assert!(
            parse_rescale("0:1e300")
                .unwrap_err()
                .contains("at most 1000")
        );
    }

    #[test]
    fn a_good_ladder() {
        let l = parse_ladder("conservative=0.9, balanced = 0.6,aggressive=0.35").unwrap();
        let rungs: Vec<(&str, f64)> = l.0.iter().map(|p| (p.name.as_str(), p.retention)).collect();
        assert_eq!(
            rungs,
            [
                ("conservative", 0.9),
                ("balanced", 0.6),
                ("aggressive", 0.35)
            ]
        );
    }

    #[test]
    fn ladder_problems_in_the_words_of_the_flag() {
        let err = |s: &str| parse_ladder(s).unwrap_err();
        assert_eq!(err("a=0.5"), "need at least two profiles");
        assert_eq!(
            err("a=0.5,b=0.6"),
            "b: retentions must decrease from least to most reducing"
        );
        assert_eq!(err("a=0.9,b=0"), "b: retention 0 must be in (0, 1]");
        assert_eq!(err("a=0.9,a=0.5"), "a: the name is given twice");
        assert_eq!(
            err("=0.9,b=0.5"),
            "profile 1 has no name (expected NAME=RETENTION, e.g. conservative=0.9)"
        );
        // Every problem, the profiles' first.
        assert_eq!(
            err("a=1.5"),
            "a: retention 1.5 must be in (0, 1]; need at least two profiles"
        );
        // Syntax comes before the rules.
        assert_eq!(
            err("a=0.5,b"),
            "\"b\": expected NAME=RETENTION, e.g. conservative=0.9"
        );
        assert_eq!(err("a=0.5,b=x"), "\"x\" is not a number");
    }
}
