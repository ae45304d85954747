//! The offline simulator: trace readers, plant model, virtual-time runner, baselines,
//! reports and plots. It drives `core::Engine::step` exactly as the daemon does.

pub mod baseline;
pub mod decisions;
pub mod json;
pub mod plot;
pub mod record;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod simulate;
pub mod synth;
pub mod ticks;
pub mod trace;
