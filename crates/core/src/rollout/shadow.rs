//! Shadow traffic: the client is served by `from`; the same request goes to
//! `to` off the request path (bounded concurrency per rollout — when every
//! slot is busy the pair is skipped, never delaying the client). When both
//! sides are done, the pair is compared and stored, and the `to` side feeds
//! the guard. The shadow call's cost is recorded as shadow spend on the
//! rollout, never billed to the tenant.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::oneshot;

use super::compare::{self, Output};
use super::guard;
use super::Live;
use crate::accounting::cost_nanos;
use crate::providers::{ChatRequest, StreamEvent, Usage};
use crate::state::AppState;
use sheepdog_store::rollouts::SampleRow;

/// One side's result.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub error: Option<String>,
    pub usage: Usage,
    pub output: Output,
}

/// Handed to the `from` side's request; completing it lets the pair be compared.
#[derive(Debug)]
pub struct Pending {
    tx: oneshot::Sender<Side>,
}

impl Pending {
    pub fn complete(self, from: Side) {
        let _ = self.tx.send(from);
    }
}

/// The longest a shadow pair waits for the `from` side.
const PAIR_TIMEOUT: Duration = Duration::from_secs(900);

/// Starts the shadow call if a slot is free; returns the handle for the `from` side.
pub fn start(
    state: &AppState,
    live: &Arc<Live>,
    tenant_id: &str,
    request_id: &str,
    chat: &ChatRequest,
) -> Option<Pending> {
    let Ok(slot) = live.shadow_slots.clone().try_acquire_owned() else {
        state.rollouts().shadow_skipped(live);
        return None;
    };
    let (tx, rx) = oneshot::channel();
    let (state, live, chat) = (state.clone(), live.clone(), chat.clone());
    let (tenant_id, request_id) = (tenant_id.to_string(), request_id.to_string());
    tokio::spawn(async move {
        let to = call_to(&live, &chat).await;
        drop(slot);
        let to_cost = cost_nanos(&live.to.model, &to.usage);
        // The `to` side feeds the guard at once; the pair waits for `from`.
        super::controller::observe(&state, &live, guard::Side::To, to.latency_ms.max(0) as u64, to.error.is_some(), 0);
        let from: Side = match tokio::time::timeout(PAIR_TIMEOUT, rx).await {
            Ok(Ok(from)) => from,
            _ => return,
        };
        let c = compare::compare(&from.output, &to.output);
        let differing = !c.exact;
        let now = sheepdog_types::time::now_ms();
        state.rollouts().observe_shadow(
            &live,
            to.error.is_some(),
            differing,
            c.same_tools == Some(false),
            to_cost,
            now,
        );
        let clip = |s: &str| s.chars().take(2000).collect::<String>();
        let sample = SampleRow {
            id: uuid::Uuid::new_v4().to_string(),
            rollout_id: live.id.clone(),
            at_ms: now,
            tenant_id: Some(tenant_id),
            request_id: Some(request_id),
            from_latency_ms: Some(from.latency_ms),
            to_latency_ms: Some(to.latency_ms),
            from_ttft_ms: from.ttft_ms,
            to_ttft_ms: to.ttft_ms,
            from_error: from.error.clone(),
            to_error: to.error.clone(),
            from_input_tokens: Some(from.usage.input_tokens as i64),
            from_output_tokens: Some(from.usage.output_tokens as i64),
            to_input_tokens: Some(to.usage.input_tokens as i64),
            to_output_tokens: Some(to.usage.output_tokens as i64),
            to_cost_nanos: to_cost,
            exact_match: c.exact,
            similarity_pct: (c.similarity * 100.0).round() as i64,
            same_tools: c.same_tools,
            from_text: differing.then(|| clip(&describe(&from.output))),
            to_text: differing.then(|| clip(&describe(&to.output))),
        };
        if let Err(e) = state.store().insert_rollout_sample(&sample).await {
            tracing::warn!(error = %e, rollout = %live.id, "could not store a shadow sample");
        }
    });
    Some(Pending { tx })
}

fn describe(o: &Output) -> String {
    if o.tool_calls.is_empty() {
        o.text.clone()
    } else {
        let calls: Vec<String> = o.tool_calls.iter().map(|(n, a)| format!("{n}({a})")).collect();
        format!("{} [tools: {}]", o.text, calls.join(", "))
    }
}

/// Calls `to` the way the client called `from` (streamed or not).
async fn call_to(live: &Live, chat: &ChatRequest) -> Side {
    let started = Instant::now();
    let route = &live.to;
    let mut side = Side::default();
    if chat.stream {
        match route.provider.client.stream(chat, &route.target).await {
            Ok(mut events) => {
                let mut args = Vec::new();
                while let Some(ev) = events.next().await {
                    match ev {
                        Ok(StreamEvent::Chunk(c)) => {
                            side.ttft_ms.get_or_insert(started.elapsed().as_millis() as i64);
                            side.output.add_chunk(&c, &mut args);
                        }
                        Ok(StreamEvent::Usage { usage, .. }) => side.usage = usage,
                        // Passed-through events also come as chunks, read above.
                        Ok(StreamEvent::Raw(_)) => {}
                        Err(e) => {
                            side.error = Some(e.message);
                            break;
                        }
                    }
                }
                side.output.finish_tools(args);
            }
            Err(e) => side.error = Some(e.message),
        }
    } else {
        match route.provider.client.complete(chat, &route.target).await {
            Ok(c) => {
                side.usage = c.usage.unwrap_or_default();
                side.output = Output::from_completion(&c.body);
            }
            Err(e) => side.error = Some(e.message),
        }
    }
    side.latency_ms = started.elapsed().as_millis() as i64;
    side
}
