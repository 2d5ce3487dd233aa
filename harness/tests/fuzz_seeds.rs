//! The fuzz targets' checks over their checked-in seeds (`fuzz/seeds/<target>/`), on stable, so
//! every input a fuzzer ever needed (crashes included, once fixed) is checked by `cargo test`.
//! The checks are the fuzz targets' own code (`fuzz/src/<target>.rs`, see `docs/fuzzing.md`); the
//! run-config target's seeds are run by `stack/tests/fuzz_seeds.rs`.

#[path = "../../fuzz/src/blob_loader.rs"]
mod blob_loader;
#[path = "../../fuzz/src/canonical.rs"]
mod canonical;
#[path = "../../fuzz/src/sse_splitter.rs"]
mod sse_splitter;

use std::path::{Path, PathBuf};

/// Runs `check` on every file of `dir`, naming the file that fails; returns how many ran.
fn run_files(dir: &Path, check: fn(&[u8])) -> usize {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!("{} fails its fuzz check: {message}", file.display());
        }
    }
    files.len()
}

fn seeds(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let n = run_files(&dir, check);
    assert!(n >= 5, "{}: only {n} seeds", dir.display());
}

#[test]
fn canonical_seeds() {
    seeds("canonical", canonical::check);
}

#[test]
fn sse_splitter_seeds() {
    seeds("sse_splitter", sse_splitter::check);
}

#[test]
fn blob_loader_seeds() {
    seeds("blob_loader", blob_loader::check);
}

/// Every recording in the repository loads, round-trips and reads the same for replay.
#[test]
fn blob_loader_on_every_recording() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recordings/responses");
    if dir.is_dir() {
        run_files(&dir, blob_loader::check);
    }
}
