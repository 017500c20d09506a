//! cargo-fuzz entry for `govgate::fuzzing::selector` (seeds: fuzz/corpus/selector/).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = govgate::fuzzing::selector(data);
});
