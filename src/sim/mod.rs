//! The offline simulator: trace readers, plant model, virtual-time runner, baselines,
//! reports and plots. It drives `core::Engine::step` exactly as the daemon does.

pub mod record;
