//! Demand prediction (being written).
