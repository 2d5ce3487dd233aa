#![no_main]
// The check is fuzz_checks::blob_loader::check (fuzz/src/blob_loader.rs), shared with the stable seed test.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::blob_loader::check(data));
