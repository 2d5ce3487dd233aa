//! Small helpers that both the harness and the stack use, kept in one place: neither crate
//! depends on the other in every build (the stack links the harness only with its `replay`
//! feature), so what they share lives here. It depends on serde only.
//!
//! - [`error`]: an error and its sources as one line.
//! - [`sync`]: locks that ignore poisoning.
//! - [`transport`]: the kind of a transport failure, as recordings spell it.

pub mod error;
pub mod sync;
pub mod transport;
