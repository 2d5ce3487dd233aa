//! The fuzz targets' checks, one module per target, each a `check(data: &[u8])` that panics when
//! an invariant breaks. The files are also compiled into the stable seed tests
//! (`harness/tests/fuzz_seeds.rs`, `stack/tests/fuzz_seeds.rs`) with `#[path]`, so each check
//! exists once; they use only what those packages depend on (`harness`, `stack`, `serde_json`,
//! `serde_jcs`, `url`).

pub mod blob_loader;
pub mod canonical;
pub mod raw_object;
pub mod run_config;
pub mod sse_splitter;
