//! Benchmark tooling, not part of the simulator or the daemon: the NAB (Numenta Anomaly
//! Benchmark) scorer and corpus loader, and NAB's published baseline detectors used to
//! check that scorer. The `phoenix anomaly bench|score` commands and the tests use it to
//! measure the core's detectors; nothing on the control path depends on it.

pub mod anomaly_protocol;
pub mod control;
pub mod nab;
pub mod nab_baselines;
pub mod variants;
