//! The daemon (`phoenix run`): a ractor supervision tree of thin adapters around the pure
//! core. The sampler turns Prometheus results into `Observation`s, the controller steps one
//! `Engine` per pipeline, the actuator makes the decisions real on the collector, and
//! every event goes to the metrics, the log, the journal and the status API.
//!
//! - `config`: the daemon config file (with `PHOENIX__SECTION__KEY` environment
//!   overrides), validated at start with every problem at once.

pub mod config;
