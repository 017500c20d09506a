//! cargo-fuzz entry for `govgate::fuzzing::jcs` (seeds: fuzz/corpus/jcs/).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = govgate::fuzzing::jcs(data);
});
