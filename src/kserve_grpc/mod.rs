//! KServe V2 over gRPC (`inference.GRPCInferenceService`, the Open
//! Inference Protocol's gRPC form): its messages, the gRPC framing of one
//! unary message, the REST form of a request's or answer's tensors (what
//! the policies and KPIs read), and gRPC status codes. Pure: no I/O.
//!
//! SPEC: proto/grpc_predict_v2.proto (KServe, Apache-2.0) for the
//! messages; gRPC over HTTP/2 ("PROTOCOL-HTTP2.md" of grpc/grpc) for the
//! framing and the status trailers; the KServe V2 REST protocol
//! ("predict-api/v2/required_api.md") for the JSON form.

mod json;
mod status;
mod wire;

pub use json::{infer_request_json, infer_response_json};
pub use status::{Code, encode_message};
pub use wire::{FrameError, MESSAGE_PREFIX, frame, replace_model_name, unframe};

/// The protobuf messages of `inference.GRPCInferenceService`, as
/// prost-build generates them from `proto/grpc_predict_v2.proto`
/// (`tools/proto-gen.sh` regenerates and compares).
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::doc_lazy_continuation,
    reason = "generated code, kept byte for byte as prost-build writes it"
)]
pub mod messages {
    include!("generated.rs");
}

/// The gRPC service's path prefix: `/inference.GRPCInferenceService/<Method>`.
pub const SERVICE_PATH: &str = "/inference.GRPCInferenceService/";

/// The methods of the service, by the name in the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `ServerLive`: is the server up.
    ServerLive,
    /// `ServerReady`: can it serve.
    ServerReady,
    /// `ServerMetadata`: name, version, extensions.
    ServerMetadata,
    /// `ModelReady`: can a model (version) serve.
    ModelReady,
    /// `ModelMetadata`: a model's tensors.
    ModelMetadata,
    /// `ModelInfer`: one inference.
    ModelInfer,
}

impl Method {
    /// The method a path's last segment names, if the service has it.
    pub fn from_name(name: &str) -> Option<Method> {
        Some(match name {
            "ServerLive" => Method::ServerLive,
            "ServerReady" => Method::ServerReady,
            "ServerMetadata" => Method::ServerMetadata,
            "ModelReady" => Method::ModelReady,
            "ModelMetadata" => Method::ModelMetadata,
            "ModelInfer" => Method::ModelInfer,
            _ => return None,
        })
    }
}

/// Whether a `content-type` is gRPC's: `application/grpc`, alone or with
/// a `+format` or parameters.
pub fn is_grpc_content_type(value: &str) -> bool {
    // SPEC: Content-Type → "content-type" "application/grpc" [("+proto" / "+json" / {custom})]
    let Some(rest) = value.strip_prefix("application/grpc") else {
        return false;
    };
    rest.is_empty() || rest.starts_with('+') || rest.starts_with(';')
}
