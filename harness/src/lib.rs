//! A record/replay integration-test framework for services that reach their providers over HTTP.
//!
//! - [`recorder`]: the `reqwest-middleware` layer that records provider traffic and replays it
//!   offline (request key, recordings store, modes, streams, replay-miss diagnostics).
//! - [`context`]: the test identity that keys recordings and makes generated ids deterministic.

pub mod context;
pub mod recorder;
