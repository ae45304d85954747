//! The offline simulator: trace readers, plant model, virtual-time runner, baselines,
//! reports and plots. It drives `core::Engine::step` exactly as the daemon does.

pub mod baseline;
pub mod record;
pub mod runner;
pub mod plot;
pub mod report;
pub mod ticks;
pub mod trace;
pub mod synth;
pub mod scenario;
