//! Phoenix: keeps metrics cardinality under a budget by choosing a reduction profile per
//! OpenTelemetry Collector pipeline.
//!
//! `core` decides (pure, deterministic), `policy` turns SRE-edited YAML into validated
//! engine configuration, `sim` replays traces through the same core offline.

pub mod core;
pub mod journal;
pub mod policy;
pub mod sim;
