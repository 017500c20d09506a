//! A real KServe V2 gRPC model server for tests (hyper HTTP/2 in plain
//! text, messages framed by hand), and a gRPC client over HTTP/2.
//!
//! The server records every call's path, headers and body, and the body it
//! answered. `ModelInfer` answers output `score` with the data of the
//! request's input `score`, as raw FP32 little-endian bytes; a request whose
//! `id` is `pause` gets its message and then waits before its trailers
//! until the stream is dropped; one whose `id` is `fail` gets the model's
//! own error, a trailers-only `INVALID_ARGUMENT`.

use bytes::Bytes;
use govgate::kserve_grpc::messages::{
    ModelInferRequest, ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse,
    ModelReadyResponse, model_infer_response::InferOutputTensor,
    model_metadata_response::TensorMetadata,
};
use govgate::kserve_grpc::{frame, unframe};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One call as the server received it, and what it answered.
#[derive(Debug, Clone)]
pub struct GrpcSeen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The answer's body as sent (one framed message).
    pub answered: Bytes,
}

#[derive(Default)]
pub struct GrpcState {
    pub seen: Mutex<Vec<GrpcSeen>>,
    /// Set when a paused answer's stream was dropped.
    pub paused_dropped: AtomicBool,
}

pub struct GrpcUpstream {
    pub addr: SocketAddr,
    pub state: Arc<GrpcState>,
    _task: tokio::task::JoinHandle<()>,
}

impl GrpcUpstream {
    pub async fn start() -> GrpcUpstream {
        let state = Arc::new(GrpcState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let state = served.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(&state, request).await) }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        GrpcUpstream {
            addr,
            state,
            _task: task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<GrpcSeen> {
        self.state.seen.lock().unwrap().clone()
    }
}

type AnswerBody = BoxBody<Bytes, Infallible>;

struct DropFlag(Arc<GrpcState>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.paused_dropped.store(true, Ordering::SeqCst);
    }
}

async fn answer(state: &Arc<GrpcState>, request: Request<Incoming>) -> Response<AnswerBody> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let path = parts.uri.path().to_owned();
    let message = unframe(&body).expect("one framed message");
    let mut pause = false;
    let reply = match path.rsplit('/').next().unwrap() {
        "ModelInfer" => {
            let request = ModelInferRequest::decode(message).unwrap();
            pause = request.id == "pause";
            if request.id == "fail" {
                state.seen.lock().unwrap().push(GrpcSeen {
                    path,
                    headers: parts.headers,
                    body,
                    answered: Bytes::new(),
                });
                return Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", "3")
                    .header("grpc-message", "the model refuses: shape [1] expected")
                    .body(BoxBody::new(Full::new(Bytes::new())))
                    .unwrap();
            }
            let score = request.inputs.iter().find(|input| input.name == "score");
            let values: Vec<f32> = score
                .and_then(|input| input.contents.as_ref())
                .map(|contents| contents.fp32_contents.clone())
                .unwrap_or_default();
            ModelInferResponse {
                model_name: request.model_name,
                model_version: "served-by-test".into(),
                id: request.id,
                outputs: vec![InferOutputTensor {
                    name: "score".into(),
                    datatype: "FP32".into(),
                    shape: vec![values.len() as i64],
                    ..Default::default()
                }],
                raw_output_contents: vec![values.iter().flat_map(|v| v.to_le_bytes()).collect()],
                ..Default::default()
            }
            .encode_to_vec()
        }
        "ModelMetadata" => {
            let request = ModelMetadataRequest::decode(message).unwrap();
            ModelMetadataResponse {
                name: request.name,
                versions: vec!["1".into()],
                platform: "test".into(),
                inputs: vec![TensorMetadata {
                    name: "score".into(),
                    datatype: "FP32".into(),
                    shape: vec![-1],
                }],
                outputs: Vec::new(),
            }
            .encode_to_vec()
        }
        "ModelReady" => ModelReadyResponse { ready: true }.encode_to_vec(),
        other => panic!("the test server has no method {other}"),
    };
    let answered = frame(&reply);
    state.seen.lock().unwrap().push(GrpcSeen {
        path,
        headers: parts.headers,
        body,
        answered: answered.clone(),
    });
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert("x-upstream-trailer", HeaderValue::from_static("kept"));
    let data = futures_util::stream::iter([Ok::<_, Infallible>(Frame::data(answered))]);
    let flag = pause.then(|| DropFlag(state.clone()));
    let end = futures_util::stream::once(async move {
        if let Some(flag) = flag {
            // Never released: only the client's leaving ends this stream.
            std::future::pending::<()>().await;
            drop(flag);
        }
        Ok(Frame::trailers(trailers))
    });
    let body = StreamBody::new(futures_util::StreamExt::chain(data, end));
    Response::builder()
        .header("content-type", "application/grpc")
        .body(BoxBody::new(body))
        .unwrap()
}

/// What a gRPC client got.
#[derive(Debug)]
pub struct GrpcReply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl GrpcReply {
    /// A gRPC header of the answer: in the trailers, or in the head of a
    /// trailers-only answer.
    pub fn grpc(&self, name: &str) -> String {
        self.trailers
            .as_ref()
            .and_then(|trailers| trailers.get(name))
            .or_else(|| self.headers.get(name))
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    pub fn decision_id(&self) -> String {
        self.headers["govgate-decision-id"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// The answer's one message.
    pub fn message(&self) -> &[u8] {
        unframe(&self.body).expect("one framed message")
    }
}

/// An HTTP/2 (h2c, prior knowledge) connection to `base`'s host.
pub async fn connect(base: &str) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let authority = base.split_once("://").unwrap().1.trim_end_matches('/');
    let tcp = tokio::net::TcpStream::connect(authority).await.unwrap();
    let (send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2c handshake");
    tokio::spawn(connection);
    send
}

/// The request of a unary call of `method` with the framed `body`.
pub fn call_request(base: &str, method: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::post(format!("{base}/inference.GRPCInferenceService/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(body))
        .unwrap()
}

/// One unary call of `method` with `message` on a fresh connection.
pub async fn call(base: &str, method: &str, message: &impl Message) -> GrpcReply {
    call_framed(base, method, frame(&message.encode_to_vec())).await
}

/// One unary call with a body as given (framed by the caller).
pub async fn call_framed(base: &str, method: &str, body: Bytes) -> GrpcReply {
    let mut send = connect(base).await;
    send.ready().await.unwrap();
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        send.send_request(call_request(base, method, body)),
    )
    .await
    .expect("answer in time")
    .expect("answer");
    let (parts, body) = response.into_parts();
    let collected = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("body in time")
        .expect("body");
    let trailers = collected.trailers().cloned();
    GrpcReply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    }
}
