//! cargo-fuzz entry for `govgate::fuzzing::grpc_message` (seeds: fuzz/corpus/grpc_message/).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = govgate::fuzzing::grpc_message(data);
});
