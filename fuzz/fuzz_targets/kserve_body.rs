//! cargo-fuzz entry for `govgate::fuzzing::kserve_body` (seeds: fuzz/corpus/kserve_body/).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = govgate::fuzzing::kserve_body(data);
});
