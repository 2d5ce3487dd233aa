#![no_main]
// The check is fuzz_checks::raw_object::check (fuzz/src/raw_object.rs), shared with the stable seed test.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::raw_object::check(data));
