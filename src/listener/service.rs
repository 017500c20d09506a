//! The service hyper calls for each request of a connection: the axum
//! router, with the peer address and the connection's abort handle in the
//! request's extensions, and the answer's body watched so the IO knows
//! when an exchange is over.

use super::abort::ConnectionAbort;
use super::sniff::Spoken;
use super::timer::{ConnState, StreamGuard};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tower_service::Service as _;

/// One connection's service.
pub(super) struct ConnService {
    router: Router,
    peer: SocketAddr,
    spoken: Spoken,
    abort: ConnectionAbort,
    state: Arc<ConnState>,
    /// The client's verified certificate, on a TLS connection that has one.
    client_certificate: Option<super::ClientCertificate>,
}

impl ConnService {
    pub(super) fn new(
        router: Router,
        peer: SocketAddr,
        spoken: Spoken,
        abort: ConnectionAbort,
        state: Arc<ConnState>,
        client_certificate: Option<super::ClientCertificate>,
    ) -> Self {
        Self {
            router,
            peer,
            spoken,
            abort,
            state,
            client_certificate,
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<ExchangeBody>;
    type Error = Infallible;
    type Future = ExchangeFuture;

    fn call(&self, mut request: Request<Incoming>) -> ExchangeFuture {
        self.state.open_exchange();
        // Only an HTTP/2 connection's idle close counts open streams.
        let stream = (self.spoken == Spoken::Http2).then(|| self.state.start_stream());
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(self.peer));
        extensions.insert(match self.spoken {
            Spoken::Http1 => self.abort.clone(),
            // One stream of many: a cut answer ends with an error, which
            // resets that stream alone (RST_STREAM, never END_STREAM); the
            // connection and its other streams carry on.
            Spoken::Http2 => ConnectionAbort::new(),
        });
        if let Some(certificate) = &self.client_certificate {
            extensions.insert(certificate.clone());
        }
        // Router's `call` takes `&mut self` but changes nothing; a clone is
        // one reference count.
        let future = self.router.clone().call(request);
        ExchangeFuture {
            future,
            state: Some((self.state.clone(), stream)),
        }
    }
}

pin_project! {
    /// The router's future; its answer's body is wrapped in [`ExchangeBody`].
    pub(super) struct ExchangeFuture {
        #[pin]
        future: axum::routing::future::RouteFuture<Infallible>,
        state: Option<(Arc<ConnState>, Option<StreamGuard>)>,
    }
}

impl Future for ExchangeFuture {
    type Output = Result<Response<ExchangeBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = ready!(this.future.poll(cx));
        let (state, stream) = match this.state.take() {
            Some((state, stream)) => (state, stream),
            None => (Arc::default(), None),
        };
        Poll::Ready(Ok(response.map(|inner| ExchangeBody {
            inner,
            state,
            _stream: stream,
        })))
    }
}

/// An answer's body; hyper drops it once it took the last frame (or gave
/// up), which ends the exchange at the next flush of the socket.
pub(super) struct ExchangeBody {
    inner: Body,
    state: Arc<ConnState>,
    /// The request stays in flight until hyper drops its answer's body.
    _stream: Option<StreamGuard>,
}

impl http_body::Body for ExchangeBody {
    type Data = Bytes;
    type Error = axum::Error;

    #[inline]
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ExchangeBody {
    fn drop(&mut self) {
        self.state.end_exchange();
    }
}
