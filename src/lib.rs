//! Phoenix: keeps metrics cardinality under a budget by choosing a reduction profile per
//! OpenTelemetry Collector pipeline.
//!
//! `core` decides (pure, deterministic), `policy` turns SRE-edited YAML into validated
//! engine configuration, `sim` replays traces through the same core offline. `fsutil`
//! holds the atomic file write that everything writing files shares. `bench` is
//! benchmark tooling (the NAB scorer), outside the control path.

pub mod bench;
pub mod core;
pub mod fsutil;
pub mod policy;
pub mod sim;
