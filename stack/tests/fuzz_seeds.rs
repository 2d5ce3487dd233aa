//! The `run_config` and `raw_object` fuzz targets' checks over their checked-in seeds
//! (`fuzz/seeds/<target>/`), on stable: the TOML and `run.yaml` parsers return a config or a
//! `ConfigError` for each, never panic; a passed-through provider answer is accepted exactly when
//! serde_json reads an object, and reads back the same. The checks are the fuzz targets' own code
//! (`fuzz/src/<target>.rs`, see `docs/fuzzing.md`).

#[path = "../../fuzz/src/run_config.rs"]
mod run_config;

#[path = "../../fuzz/src/raw_object.rs"]
mod raw_object;

use std::path::{Path, PathBuf};

/// Runs `check` over every seed of `target` (at least `at_least` of them).
fn check_seeds(target: &str, at_least: usize, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= at_least,
        "{}: only {} seeds",
        dir.display(),
        files.len()
    );
    for file in &files {
        let data = std::fs::read(file).unwrap();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{} fails its fuzz check (panic above)", file.display());
        }
    }
}

#[test]
fn run_config_seeds() {
    check_seeds("run_config", 5, run_config::check);
}

/// The seeds that are real configs parse (a seed that stopped parsing would only exercise the
/// error paths).
#[test]
fn the_real_configs_among_the_seeds_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/run_config");
    for (name, yaml) in [
        ("starter.toml", false),
        ("llamacpp.toml", false),
        ("docs-stack-md.toml", false),
        ("llama-stack-starter-run.yaml", true),
        ("anchors-and-other-apis.yaml", true),
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let parsed = if yaml {
            stack::RunConfig::from_yaml_str_with_env(&text, name, &run_config::fake_env)
        } else {
            stack::RunConfig::from_toml_str_with_env(&text, name, &run_config::fake_env)
        };
        if let Err(e) = parsed {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn raw_object_seeds() {
    check_seeds("raw_object", 10, raw_object::check);
}
