//! PID wrapper (being written).
