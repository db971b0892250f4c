//! A non-streamed answer: the upstream's body as it came, usage recorded.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};

use super::answer::{answer_headers, ok_answer, NativeAnswer};
use super::attempts::{failure_response, Attempts};
use super::closing::{shut_down, until_closing};
use super::estimate::estimate_completion_tokens;
use super::pending::{Outcome, Pending};
use crate::providers::Usage;
use crate::rollout::compare;
use crate::routing::ModelRoute;

pub(super) async fn complete_response(attempts: Attempts<'_>, mut pending: Pending) -> Response {
    let chat = attempts.chat;
    let stage = attempts.state.shutdown_stage().clone();
    let result = until_closing(
        &stage,
        attempts.run(&mut pending, |route: Arc<ModelRoute>| async move {
            route.provider.client.complete(chat, &route.target).await
        }),
    )
    .await;
    let Some(result) = result else {
        return shut_down(&mut pending).await.into_response();
    };
    match result {
        Ok((route, c)) => {
            let usage = c.usage.unwrap_or_else(|| {
                tracing::warn!(provider = %route.provider.name, "upstream answer had no usage; estimating tokens");
                Usage {
                    input_tokens: pending.permit.as_ref().map(|p| p.estimated_prompt_tokens).unwrap_or(0),
                    output_tokens: estimate_completion_tokens(&c.body),
                    cached_tokens: 0,
                }
            });
            pending.served = Some(route.clone());
            pending.usage = Some(usage);
            if pending.shadow.is_some() {
                pending.output = Some(compare::Output::from_completion(&c.body));
            }
            pending.finish(Outcome::Ok, 200, None);
            pending.queue().await;
            let mut resp = ok_answer("application/json", Body::from(c.body));
            if c.native {
                resp.extensions_mut().insert(NativeAnswer);
            }
            answer_headers(&mut resp, &route);
            resp
        }
        Err(failed) => failure_response(failed, &mut pending).await,
    }
}
