//! The PID correction: the `pid` crate, wrapped for a switched plant.
//!
//! The wrapper adds what the crate leaves to its caller: gains given per second and scaled
//! by each tick's real length, conditional integration (the integral is frozen while the
//! output is saturated or the ladder cannot move further in the direction the error asks
//! for, so it never winds up), and bumpless switching (after a profile switch the
//! derivative memory is rebased so the step in output caused by the switch itself is not
//! read as a disturbance, while the integral is carried over).

use super::config::PidConfig;
use pid::Pid;
use serde::{Deserialize, Serialize};

/// The terms of one update, in budget fractions (positive = more reduction needed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Terms {
    /// Proportional term.
    pub p: f64,
    /// Integral term.
    pub i: f64,
    /// Derivative term.
    pub d: f64,
    /// Clamped sum.
    pub output: f64,
}

/// Which way the ladder can still move, for conditional integration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    /// A more reducing profile exists.
    pub can_escalate: bool,
    /// A less reducing profile exists.
    pub can_relax: bool,
}

/// PID on the normalised error `output/budget − target`.
///
/// The persisted state is the controller's own (integral and last measurement), not the
/// `pid` crate's internal struct: the crate computes each update from a controller primed
/// with that state, so a crate upgrade cannot change what a saved state means.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PidCorrection {
    /// Accumulated integral term (budget fractions).
    integral: f64,
    /// The last measurement `y`, the derivative's reference; `None` before the first
    /// update and right after a switch (bumpless transfer).
    last_y: Option<f64>,
    /// Terms of the last update.
    last: Terms,
}

impl PidCorrection {
    /// A controller with zero integral.
    pub fn new() -> Self {
        PidCorrection {
            integral: 0.0,
            last_y: None,
            last: Terms::default(),
        }
    }

    /// Terms of the last update.
    pub fn last(&self) -> Terms {
        self.last
    }

    /// One update with measurement `y = output/budget`, after `dt_secs` seconds.
    pub fn update(
        &mut self,
        cfg: &PidConfig,
        y: f64,
        target: f64,
        dt_secs: f64,
        room: Room,
    ) -> Terms {
        let dt = dt_secs.max(1e-3);
        let error = y - target;
        let pushing_wall = (error > 0.0 && !room.can_escalate) || (error < 0.0 && !room.can_relax);
        let saturated =
            self.last.output.abs() >= cfg.output_limit && error * self.last.output > 0.0;
        let freeze = pushing_wall || saturated;
        // The crate's controller runs on the negated measurement so that its error
        // (setpoint − measurement) is `y − target`: positive means "above target, reduce
        // more". It has no setter for its integral or its previous measurement, so a
        // fresh controller is primed with ours: one update with ki = 1 and an error equal
        // to the integral reproduces it exactly and leaves the previous measurement as
        // the derivative's reference. Finite limits: the state is persisted as JSON.
        let reference = self.last_y.unwrap_or(y);
        let mut pid = Pid::new(self.integral - reference, f64::MAX);
        pid.i(1.0, f64::MAX);
        pid.next_control_output(-reference);
        pid.setpoint = -target;
        pid.output_limit = cfg.output_limit;
        pid.kp = cfg.kp;
        pid.p_limit = cfg.output_limit;
        pid.ki = if freeze { 0.0 } else { cfg.ki * dt };
        pid.i_limit = cfg.i_limit;
        pid.kd = cfg.kd / dt;
        pid.d_limit = cfg.output_limit;
        let out = pid.next_control_output(-y);
        self.integral = out.i;
        self.last_y = Some(y);
        self.last = Terms {
            p: out.p,
            i: out.i,
            d: out.d,
            output: out.output,
        };
        self.last
    }

    /// Bumpless transfer after a switch: keep the integral, forget the last measurement so
    /// the switch's own step in output does not kick the derivative.
    pub fn rebase(&mut self) {
        self.last_y = None;
        self.last.d = 0.0;
    }
}

impl Default for PidCorrection {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: Room = Room {
        can_escalate: true,
        can_relax: true,
    };

    fn cfg() -> PidConfig {
        PidConfig {
            kp: 0.5,
            ki: 0.01,
            kd: 0.0,
            i_limit: 0.2,
            output_limit: 0.3,
        }
    }

    #[test]
    fn integral_scales_with_tick_length() {
        let mut a = PidCorrection::new();
        let mut b = PidCorrection::new();
        a.update(&cfg(), 1.0, 0.9, 15.0, ROOM);
        b.update(&cfg(), 1.0, 0.9, 30.0, ROOM);
        assert!((b.last().i - 2.0 * a.last().i).abs() < 1e-12);
        assert!((a.last().i - 0.1 * 0.01 * 15.0).abs() < 1e-12);
    }

    #[test]
    fn integral_frozen_at_the_end_of_the_ladder() {
        let mut pid = PidCorrection::new();
        let top = Room {
            can_escalate: false,
            can_relax: true,
        };
        for _ in 0..100 {
            pid.update(&cfg(), 1.5, 0.9, 15.0, top);
        }
        assert_eq!(pid.last().i, 0.0);
        let bottom = Room {
            can_escalate: true,
            can_relax: false,
        };
        pid.update(&cfg(), 0.2, 0.9, 15.0, bottom);
        assert_eq!(pid.last().i, 0.0);
    }

    #[test]
    fn rebase_keeps_integral_and_drops_derivative_kick() {
        let c = PidConfig { kd: 10.0, ..cfg() };
        let mut pid = PidCorrection::new();
        for _ in 0..5 {
            pid.update(&c, 1.0, 0.9, 15.0, ROOM);
        }
        let i = pid.last().i;
        pid.rebase();
        let t = pid.update(&c, 0.6, 0.9, 15.0, ROOM);
        assert!(t.d.abs() < 1e-12, "derivative kick {}", t.d);
        assert!((t.i - (i + (0.6 - 0.9) * 0.01 * 15.0)).abs() < 1e-9);
    }

    #[test]
    fn output_is_clamped() {
        let mut pid = PidCorrection::new();
        let t = pid.update(&PidConfig { kp: 100.0, ..cfg() }, 5.0, 0.9, 15.0, ROOM);
        assert!(t.output <= 0.3 + 1e-12);
    }
}
