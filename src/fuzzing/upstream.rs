//! A recording upstream for the request-path targets: a raw HTTP/1.1
//! server on 127.0.0.1 that keeps every request exactly as it arrived on
//! the wire (the request-target's bytes, not a parser's reading of them)
//! and answers each with a small JSON body and the [`MARKER`] header.
//!
//! Raw rather than hyper's server, so that what the targets check is what
//! any server behind the gateway would be handed, and so that no request
//! is refused or normalised on the way in.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// Response header that says the answer came from this upstream.
pub(super) const MARKER: &str = "x-fuzz-upstream";

/// Most bytes of one request head the recorder reads before giving up on
/// the connection (the fuzz inputs are at most 24 KiB).
const MAX_HEAD: usize = 1024 * 1024;

/// One request as the upstream received it.
#[derive(Debug)]
pub(super) struct Received {
    /// The method's bytes.
    pub(super) method: Vec<u8>,
    /// The request-target's bytes (path and query).
    pub(super) target: Vec<u8>,
    /// The body (by its `content-length`).
    pub(super) body: Vec<u8>,
}

/// The running recorder: its address and what it has received since the
/// last [`Recorder::take`].
pub(super) struct Recorder {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Recorder {
    /// Binds 127.0.0.1 on an ephemeral port and serves on `runtime`.
    ///
    /// # Panics
    /// If it cannot bind (the target's setup fails, not the input).
    pub(super) fn start(runtime: &Runtime) -> Self {
        let bound = runtime.block_on(TcpListener::bind("127.0.0.1:0"));
        let (listener, addr) = match bound.and_then(|l| Ok((l.local_addr()?, l))) {
            Ok((addr, listener)) => (listener, addr),
            Err(err) => panic!("recording upstream: {err}"),
        };
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, log.clone()));
            }
        });
        Self { addr, received }
    }

    /// `http://127.0.0.1:<port>`.
    pub(super) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What was received since the last call, in order.
    pub(super) fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.received.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Serves one connection: requests one after another (the gateway's pool
/// keeps connections open) until the gateway closes it.
///
/// # Panics
/// When the gateway sends a request a server could not frame: no request
/// line of three parts, or a body framed other than by one
/// `content-length` (it always knows the whole body's length).
async fn serve(mut stream: TcpStream, log: Arc<Mutex<Vec<Received>>>) {
    let mut buf = Vec::new();
    loop {
        let Some(head_len) = read_head(&mut stream, &mut buf).await else {
            return;
        };
        let head = &buf[..head_len];
        let (method, target, length) = match parse_head(head) {
            Ok(parsed) => parsed,
            Err(why) => panic!(
                "the upstream got a request it cannot frame ({why}): {:?}",
                String::from_utf8_lossy(head)
            ),
        };
        let end = head_len + length;
        while buf.len() < end {
            if !read_more(&mut stream, &mut buf).await {
                return;
            }
        }
        let head_request = method == b"HEAD";
        let body = buf[head_len..end].to_vec();
        buf.drain(..end);
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Received {
                method,
                target,
                body,
            });
        let content = br#"{"upstream":"recorded"}"#;
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{MARKER}: 1\r\n\r\n",
            content.len()
        )
        .into_bytes();
        if !head_request {
            answer.extend_from_slice(content);
        }
        if stream.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// Reads until `buf` holds a whole head; its length (with the blank
/// line), or `None` when the connection ends first.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(at + 4);
        }
        if buf.len() > MAX_HEAD || !read_more(stream, buf).await {
            return None;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0; 16 * 1024];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// Method, request-target and body length of a request head.
fn parse_head(head: &[u8]) -> Result<(Vec<u8>, Vec<u8>, usize), &'static str> {
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let first = lines.next().unwrap_or_default();
    let parts: Vec<&[u8]> = first.split(|b| *b == b' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Err("the request line is not `METHOD target HTTP/1.1`");
    };
    if *version != b"HTTP/1.1" {
        return Err("not HTTP/1.1");
    }
    let mut length = None;
    for line in lines.filter(|line| !line.is_empty()) {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return Err("a header line without a colon");
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err("a transfer-encoding");
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let parsed = std::str::from_utf8(value)
                .ok()
                .and_then(|text| text.parse::<usize>().ok());
            if length.is_some() || parsed.is_none() {
                return Err("a content-length that is repeated or not a number");
            }
            length = parsed;
        }
    }
    Ok((method.to_vec(), target.to_vec(), length.unwrap_or(0)))
}
