//! Behaviour of the recorder against fake upstreams, one module per area: modes, streams, errors,
//! secrets, misses and the index. (The integration suite exercises it against a real llama.cpp
//! server.)

mod common;
mod errors;
mod index;
mod large;
mod misses;
mod modes;
mod secrets;
mod streams;
