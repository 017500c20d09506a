//! Writes the Rust types of `proto/grpc_predict_v2.proto` as prost-build
//! makes them (messages only: the gateway frames gRPC itself) to the file
//! named by the first argument. `tools/proto-gen.sh` runs it and compares
//! the result with the committed `src/proxy/grpc/generated.rs`.

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(proto_dir), Some(out_dir)) = (args.next(), args.next()) else {
        eprintln!("usage: govgate-proto-gen PROTO_DIR OUT_DIR");
        std::process::exit(2);
    };
    let proto = format!("{proto_dir}/grpc_predict_v2.proto");
    prost_build::Config::new()
        .out_dir(&out_dir)
        // Maps as BTreeMap: a stable order when re-encoding a request.
        .btree_map(["."])
        .compile_protos(&[proto], &[proto_dir])
}
