#![no_main]
// The check is fuzz_checks::run_config::check (fuzz/src/run_config.rs), shared with the stable seed test.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::run_config::check(data));
