//! The pure control core: observations in, decisions and events out.
//!
//! Sans-I/O like quinn-proto: no clock, no files, no sockets, no async runtime, no metrics
//! calls, no randomness except from a seed passed in. Time is an argument. The daemon and
//! the simulator drive the same `Engine::step`, so recorded observations replay to the
//! same decisions.

pub mod anomaly;
pub mod config;
pub mod engine;
pub mod event;
pub mod observation;
pub mod pid;
pub mod predict;
pub mod time;

pub use config::EngineConfig;
pub use engine::{Engine, EngineState, RestoreNote, STATE_VERSION};
pub use event::{Action, Decision, Event, Kept, Step};
pub use observation::{ApplyOutcome, ApplyReport, Command, Observation, Sample};
pub use time::Timestamp;
