//! cargo-fuzz entry for `govgate::fuzzing::routing` (seeds: fuzz/corpus/routing/).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = govgate::fuzzing::routing(data);
});
