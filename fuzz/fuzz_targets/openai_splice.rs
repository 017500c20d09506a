//! cargo-fuzz entry for `govgate::fuzzing::openai_splice` (seeds: fuzz/corpus/openai_splice/).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = govgate::fuzzing::openai_splice(data);
});
