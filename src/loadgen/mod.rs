//! `phoenix loadgen`: the workload exporter of the integration tests and benchmarks. An
//! HTTP exporter of the project's own, in the spirit of the original Phoenix load
//! simulator: Prometheus scrapes it, the daemon queries Prometheus. It is not a stand-in for
//! a collector or any other real component (DESIGN.md, "Real components in tests").
//!
//! Each pipeline's input level follows a constant, a schedule or a recorded trace
//! (`levels`), until a test sets it through `PUT /api/v1/level`. In signals mode `/metrics`
//! has two gauges per pipeline, input and output = input × the retention of the profile the
//! daemon's control file names (`control`): a pipeline obeying the file, so the closed loop
//! can run with Prometheus as the only real database. In series mode it has `level` real
//! series per pipeline, for Prometheus relabelling to act as the collector. `render` is the
//! text exposition format, `server` the routes.

pub mod control;
pub mod levels;
pub mod render;
pub mod server;

pub use control::{Control, ControlError, ControlReader};
pub use levels::{
    Levels, LevelsFromTraceError, MAX_LEVEL, PipelinesError, ScheduleError, Steps, TraceLevelError,
    UnknownPipeline, numbered_pipelines,
};
pub use server::{LoadgenConfig, Mode, ServeError, router, serve};
