//! Small helpers that both the harness and the stack use, kept in one place: neither crate
//! depends on the other in every build (the stack links the harness only with its `replay`
//! feature), so what they share lives here. It depends on nothing.
//!
//! - [`error`]: an error and its sources as one line.
//! - [`sync`]: locks that ignore poisoning.

pub mod error;
pub mod sync;
