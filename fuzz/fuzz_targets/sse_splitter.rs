#![no_main]
// The check is fuzz_checks::sse_splitter::check (fuzz/src/sse_splitter.rs), shared with the stable seed test.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::sse_splitter::check(data));
