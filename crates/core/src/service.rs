//! The service hyper calls for each gateway request: the chat completion
//! hot path first, the router for everything else.

use axum::extract::State;
use axum::response::Response;
use axum::Router;

use crate::proxy;
use crate::routes::router;
use crate::state::AppState;

/// What serves the gateway listener: `POST /v1/chat/completions` goes
/// straight to its handler; everything else through [`crate::routes::router`]. The hot path
/// skips two routing passes (the `/v1` router is nested), the request
/// extensions they add and their future wrappers — about 5 % of a proxied
/// request's instructions. Answers are the same either way (the router routes
/// the same path to the same handler).
#[derive(Clone)]
pub struct GatewayService {
    state: AppState,
    router: Router,
}

impl GatewayService {
    /// `admin` is the admin API's router, nested under `/admin/v1`.
    pub fn new(state: AppState, admin: Router<AppState>) -> GatewayService {
        GatewayService { router: router(state.clone(), admin), state }
    }
}

/// hyper serves each gateway connection with this service directly (see
/// [`crate::workers`]): the request body becomes axum's `Body`; nothing is
/// cloned per request but what the handler keeps.
impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for GatewayService {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, std::convert::Infallible>>;

    fn call(&self, request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let request = request.map(axum::body::Body::new);
        if request.method() == axum::http::Method::POST && request.uri().path() == "/v1/chat/completions" {
            let state = self.state.clone();
            return Box::pin(async move { Ok(proxy::chat_completions(State(state), request).await) });
        }
        let mut router = self.router.clone();
        Box::pin(async move { tower::Service::call(&mut router, request).await })
    }
}
