//! A fast KServe V2 gRPC model server for `benches/grpc_load.sh`: answers
//! every `ModelInfer` with one fixed `ModelInferResponse` and
//! `grpc-status: 0`, and any other request with `200 {"ok":true}` (the
//! bench's readiness check), over HTTP/1.1 and h2c on one port, on one
//! thread. `--write-request FILE` writes the framed `ModelInferRequest`
//! the bench sends (model `credit`, 4 rows of 8 FP32 features) and exits.
//!
//!     cargo run --release --example grpc_upstream -- --listen 127.0.0.1:50051
//!     cargo run --release --example grpc_upstream -- --write-request req.bin

use bytes::Bytes;
use govgate::kserve_grpc::frame;
use govgate::kserve_grpc::messages::{
    InferTensorContents, ModelInferRequest, ModelInferResponse,
    model_infer_request::InferInputTensor, model_infer_response::InferOutputTensor,
};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use std::convert::Infallible;

fn request() -> ModelInferRequest {
    ModelInferRequest {
        model_name: "credit".into(),
        id: "bench".into(),
        inputs: vec![InferInputTensor {
            name: "features".into(),
            datatype: "FP32".into(),
            shape: vec![4, 8],
            contents: Some(InferTensorContents {
                fp32_contents: (0..32).map(|i| i as f32 / 10.0).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn answer() -> Bytes {
    let scores: [f32; 4] = [0.91, 0.12, 0.55, 0.37];
    let response = ModelInferResponse {
        model_name: "credit".into(),
        model_version: "1".into(),
        id: "bench".into(),
        outputs: vec![InferOutputTensor {
            name: "score".into(),
            datatype: "FP32".into(),
            shape: vec![4],
            ..Default::default()
        }],
        raw_output_contents: vec![scores.iter().flat_map(|v| v.to_le_bytes()).collect()],
        ..Default::default()
    };
    frame(&response.encode_to_vec())
}

type AnswerBody = BoxBody<Bytes, Infallible>;

async fn serve(request: Request<Incoming>, answer: Bytes) -> Response<AnswerBody> {
    let grpc = request.uri().path().ends_with("/ModelInfer");
    // Read the whole request, as a model server does.
    let _ = request.into_body().collect().await;
    if !grpc {
        let ok = Full::new(Bytes::from_static(br#"{"ok":true}"#));
        return Response::new(BoxBody::new(ok));
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = [
        Ok::<_, Infallible>(Frame::data(answer)),
        Ok(Frame::trailers(trailers)),
    ];
    let mut response = Response::new(BoxBody::new(StreamBody::new(futures_util::stream::iter(
        frames,
    ))));
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    response
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["--write-request", path] => std::fs::write(path, frame(&request().encode_to_vec())),
        ["--listen", addr] => run(addr),
        _ => {
            eprintln!("usage: grpc_upstream --listen ADDR | --write-request FILE");
            std::process::exit(2);
        }
    }
}

fn run(addr: &str) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let answer = answer();
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let answer = answer.clone();
                    async move { Ok::<_, Infallible>(serve(request, answer).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    })
}
