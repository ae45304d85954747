//! The rules every profile ladder obeys, wherever it is written: a policy's `profiles`, a
//! scenario's plant `retention` and `phoenix simulate --retention`. One function checks
//! them and returns every problem as a value; each caller words and locates the problems
//! its own way (file:line:column and field path, or a command-line error).

use crate::core::config::ProfileSpec;

/// Fewest profiles a ladder may have: with one there is nothing to switch between.
pub const MIN_PROFILES: usize = 2;

/// One broken ladder rule. Indices count from 0 in the order written, least to most
/// reducing.
#[derive(Clone, Debug, PartialEq)]
pub enum LadderProblem {
    /// Fewer than [`MIN_PROFILES`] profiles.
    TooFewProfiles {
        /// How many there are.
        found: usize,
    },
    /// A profile's name is empty.
    EmptyName {
        /// The profile.
        index: usize,
    },
    /// A profile has the name of an earlier one.
    DuplicateName {
        /// The later profile.
        index: usize,
        /// The first profile with that name.
        first: usize,
    },
    /// A retention is not in (0, 1] (NaN included).
    RetentionOutOfRange {
        /// The profile.
        index: usize,
        /// Its retention.
        retention: f64,
    },
    /// A retention is not strictly below the previous profile's: profiles go from least
    /// to most reducing.
    NotDecreasing {
        /// The profile (never 0).
        index: usize,
        /// Its retention.
        retention: f64,
        /// The retention of profile `index - 1`.
        previous: f64,
    },
}

impl LadderProblem {
    /// The profile the problem is about, or `None` for the ladder as a whole.
    pub fn index(&self) -> Option<usize> {
        match *self {
            LadderProblem::TooFewProfiles { .. } => None,
            LadderProblem::EmptyName { index }
            | LadderProblem::DuplicateName { index, .. }
            | LadderProblem::RetentionOutOfRange { index, .. }
            | LadderProblem::NotDecreasing { index, .. } => Some(index),
        }
    }
}

/// Whether `retention` is a fraction of series a profile can keep: in (0, 1].
fn retention_in_range(retention: f64) -> bool {
    retention > 0.0 && retention <= 1.0
}

/// Every problem of `ladder`, in order: the count first, then per profile its name (empty,
/// or a duplicate of an earlier one) and its retention (out of range, or not below the
/// previous one). Empty means the ladder is valid.
///
/// A profile's order is only checked when its own retention is in range and the previous
/// one is a finite number, so one wrong value is not reported twice. Problems of profile
/// `i` depend only on profiles `0..=i`, so checking a growing prefix finds each problem as
/// soon as the profile causing it is added.
pub fn check_ladder(ladder: &[ProfileSpec]) -> Vec<LadderProblem> {
    let mut problems = Vec::new();
    if ladder.len() < MIN_PROFILES {
        problems.push(LadderProblem::TooFewProfiles {
            found: ladder.len(),
        });
    }
    for (index, p) in ladder.iter().enumerate() {
        if p.name.is_empty() {
            problems.push(LadderProblem::EmptyName { index });
        } else if let Some(first) = ladder[..index].iter().position(|q| q.name == p.name) {
            problems.push(LadderProblem::DuplicateName { index, first });
        }
        if !retention_in_range(p.retention) {
            problems.push(LadderProblem::RetentionOutOfRange {
                index,
                retention: p.retention,
            });
        } else if let Some(prev) = index.checked_sub(1).map(|i| ladder[i].retention)
            && prev.is_finite()
            && p.retention >= prev
        {
            problems.push(LadderProblem::NotDecreasing {
                index,
                retention: p.retention,
                previous: prev,
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use LadderProblem as P;

    fn ladder(rungs: &[(&str, f64)]) -> Vec<ProfileSpec> {
        rungs
            .iter()
            .map(|&(name, retention)| ProfileSpec {
                name: name.to_string(),
                retention,
            })
            .collect()
    }

    #[test]
    fn a_good_ladder_has_no_problems() {
        let l = ladder(&[
            ("conservative", 0.9),
            ("balanced", 0.6),
            ("aggressive", 0.35),
        ]);
        assert!(check_ladder(&l).is_empty());
        assert!(check_ladder(&ladder(&[("all", 1.0), ("some", 1e-9)])).is_empty());
    }

    #[test]
    fn too_few_profiles() {
        assert_eq!(check_ladder(&[]), [P::TooFewProfiles { found: 0 }]);
        assert_eq!(
            check_ladder(&ladder(&[("only", 0.5)])),
            [P::TooFewProfiles { found: 1 }]
        );
    }

    #[test]
    fn names_must_be_non_empty_and_unique() {
        let l = ladder(&[("a", 0.9), ("", 0.8), ("a", 0.7), ("", 0.6), ("a", 0.5)]);
        assert_eq!(
            check_ladder(&l),
            [
                P::EmptyName { index: 1 },
                P::DuplicateName { index: 2, first: 0 },
                P::EmptyName { index: 3 },
                P::DuplicateName { index: 4, first: 0 },
            ]
        );
    }

    #[test]
    fn retention_must_be_in_range() {
        let l = ladder(&[("a", 1.5), ("b", 0.0), ("c", f64::NAN), ("d", -0.1)]);
        let found: Vec<usize> = check_ladder(&l)
            .iter()
            .map(|p| match p {
                P::RetentionOutOfRange { index, .. } => *index,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(found, [0, 1, 2, 3]);
        assert!(retention_in_range(1.0) && !retention_in_range(0.0));
        assert!(!retention_in_range(f64::INFINITY));
    }

    #[test]
    fn retention_must_strictly_decrease() {
        let l = ladder(&[("a", 0.6), ("b", 0.6), ("c", 0.9), ("d", 0.1)]);
        assert_eq!(
            check_ladder(&l),
            [
                P::NotDecreasing {
                    index: 1,
                    retention: 0.6,
                    previous: 0.6
                },
                P::NotDecreasing {
                    index: 2,
                    retention: 0.9,
                    previous: 0.6
                },
            ]
        );
    }

    #[test]
    fn one_wrong_value_is_reported_once() {
        // 1.2 is out of range; 0.9 after it is not also "not decreasing"...
        let l = ladder(&[("a", 1.2), ("b", 0.9)]);
        assert_eq!(
            check_ladder(&l),
            [P::RetentionOutOfRange {
                index: 0,
                retention: 1.2
            }]
        );
        // ...and nothing is compared with a NaN.
        let l = ladder(&[("a", f64::NAN), ("b", 0.9)]);
        assert_eq!(check_ladder(&l).len(), 1);
    }

    #[test]
    fn every_problem_is_reported_in_order() {
        let l = ladder(&[("x", 2.0)]);
        assert_eq!(
            check_ladder(&l),
            [
                P::TooFewProfiles { found: 1 },
                P::RetentionOutOfRange {
                    index: 0,
                    retention: 2.0
                },
            ]
        );
        let l = ladder(&[("a", 0.5), ("a", 0.9)]);
        let problems = check_ladder(&l);
        assert_eq!(
            problems,
            [
                P::DuplicateName { index: 1, first: 0 },
                P::NotDecreasing {
                    index: 1,
                    retention: 0.9,
                    previous: 0.5
                },
            ]
        );
        assert_eq!(problems[0].index(), Some(1));
        assert_eq!(P::TooFewProfiles { found: 0 }.index(), None);
    }

    #[test]
    fn a_prefix_has_the_problems_of_its_profiles() {
        let l = ladder(&[("a", 0.9), ("a", 0.95), ("", 1.5), ("d", 0.1)]);
        let all = check_ladder(&l);
        for n in 1..=l.len() {
            let of_prefix: Vec<LadderProblem> = check_ladder(&l[..n])
                .into_iter()
                .filter(|p| p.index().is_some())
                .collect();
            let expected: Vec<LadderProblem> = all
                .iter()
                .filter(|p| p.index().is_some_and(|i| i < n))
                .cloned()
                .collect();
            assert_eq!(of_prefix, expected, "prefix of {n}");
        }
    }
}
