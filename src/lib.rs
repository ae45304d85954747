//! Phoenix: keeps metrics cardinality under a budget by choosing a reduction profile per
//! OpenTelemetry Collector pipeline.
//!
//! `core` decides (pure, deterministic), `policy` turns SRE-edited YAML into validated
//! engine configuration, `sim` replays traces through the same core offline. `fsutil`
//! holds the atomic file write that everything writing files shares. `bench` is
//! benchmark tooling (the NAB scorer), outside the control path. `loadgen` is the workload
//! exporter that integration tests and benchmarks have Prometheus scrape. `cli` is the
//! `phoenix` command line (argument parsing and wiring only); `src/main.rs` just runs it.
//! `render` turns a collector's base config and the profiles in force into the config
//! the actuator writes (pure); `actuator` holds the collector backends' I/O steps (validate,
//! write, reload, verify, roll back) that the daemon's actuator actor sequences.

pub mod actuator;
pub mod bench;
pub mod cli;
pub mod core;
pub mod daemon;
pub mod fsutil;
pub mod journal;
pub mod loadgen;
pub mod policy;
pub mod render;
pub mod sim;
