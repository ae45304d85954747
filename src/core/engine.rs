//! The engine: one per pipeline, `step(now, &Observation) -> Step`. (Being written.)

use super::config::EngineConfig;
use super::event::Step;
use super::observation::Observation;
use super::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Serialisable decision state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// Profile in force.
    pub current: usize,
}

/// One pipeline's controller.
#[derive(Clone, Debug)]
pub struct Engine {
    cfg: EngineConfig,
    state: EngineState,
}

impl Engine {
    /// A fresh engine at the configured initial profile.
    pub fn new(cfg: EngineConfig) -> Self {
        let state = EngineState { current: cfg.initial_profile };
        Engine { cfg, state }
    }

    /// Decide for this tick.
    pub fn step(&mut self, now: Timestamp, _obs: &Observation) -> Step {
        Step { actions: Default::default(), events: Default::default(), next_wakeup: now.plus(self.cfg.tick) }
    }
}
