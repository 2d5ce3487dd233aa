#![no_main]
// The check is fuzz_checks::canonical::check (fuzz/src/canonical.rs), shared with the stable seed test.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::canonical::check(data));
