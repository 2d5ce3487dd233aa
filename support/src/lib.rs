//! Small helpers that both the harness and the stack use, kept in one place: neither crate
//! depends on the other in every build (the stack links the harness only with its `replay`
//! feature), so what they share lives here. It depends on serde only.
//!
//! - [`error`]: an error and its sources as one line.
//! - [`file_stamp`]: what tells one version of a file from another, for caches of file readings.
//! - [`sync`]: locks that ignore poisoning.
//! - [`transport`]: the kind of a transport failure, as recordings spell it.

pub mod error;
pub mod file_stamp;
pub mod sync;
pub mod transport;
