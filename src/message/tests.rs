//! Tests that build the instance's own messages (the handover protocol,
//! its wire form): only code inside the crate can, so they live here, on
//! the fake cluster (feature `test-util`), rather than under `tests/`.
//!
//! - `forged`: single forged protocol messages a running instance refuses;
//! - `fuzz`: seeded, bounded fuzzing of everything the crate decodes;
//! - `support`: a counter server and the polling helpers both use.

mod forged;
mod fuzz;
mod support;
