//! The daemon (`phoenix run`): a ractor supervision tree of thin adapters around the pure
//! core. The sampler turns Prometheus results into `Observation`s, the controller steps one
//! `Engine` per pipeline, the actuator makes the decisions real on the collector, and
//! every event goes to the metrics, the log, the journal and the status API.
//!
//! - `config`: the daemon config file (with `PHOENIX__SECTION__KEY` environment
//!   overrides), validated at start with every problem at once.
//! - `observe`: query results → per-pipeline samples (Ok, Empty, Stale, Error).
//! - `controller`, `sampler`, `actuator`, `supervisor`: the actors.
//! - `sink`, `status`, `metrics`, `series`: events → metrics, log lines, the board, the
//!   journal (`series`: the per-pipeline series of `/metrics`).
//! - `http`: the HTTP API; `page`: the read-only status page it serves at `/`.
//! - `run`: wiring and the signal handling of `phoenix run`.

pub mod actuator;
pub mod config;
pub mod controller;
pub mod detector;
pub mod http;
pub mod metrics;
pub mod observe;
pub mod page;
pub mod policy_watcher;
pub mod run;
pub mod sampler;
pub mod series;
pub mod sink;
pub mod status;
pub mod supervisor;
