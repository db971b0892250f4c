//! The usage record of one routed request ([`Pending`]), finished exactly
//! once: on success, on failure, or when the client goes away; the
//! rollout's guard and the shadow call see its outcome.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use super::estimate::content_chars;
use crate::accounting::{cost_nanos, Event};
use crate::admission::Permit;
use crate::auth::Caller;
use crate::journal::{Progress, Start, PROGRESS_EVERY};
use crate::providers::{ChatRequest, Usage};
use crate::rollout::guard::Side;
use crate::rollout::{compare, shadow, Live};
use crate::routing::ModelRoute;
use crate::state::AppState;
use sheepdog_store::UsageRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Ok,
    UpstreamError,
    ClientCancelled,
    /// Cut by the end of the shutdown grace.
    ServerShutdown,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UpstreamError => "upstream_error",
            Outcome::ClientCancelled => "client_cancelled",
            Outcome::ServerShutdown => "server_shutdown",
        }
    }
}

/// What the request said about itself (headers) and when it started.
pub(super) struct RequestMeta {
    pub(super) request_id: String,
    pub(super) cost_center: Option<String>,
    pub(super) started: Instant,
    pub(super) ingress: super::edge::Ingress,
}

/// The usage record of one routed request, finished exactly once. Dropping it
/// unfinished (the client went away) records a `client_cancelled` request
/// with the usage known so far (or estimated from what was streamed).
pub(super) struct Pending {
    pub(super) state: AppState,
    /// The model the client asked for.
    requested: Arc<ModelRoute>,
    /// The route that answered (after any fallback), once one did.
    pub(super) served: Option<Arc<ModelRoute>>,
    pub(super) attempts: u32,
    pub(super) request_id: String,
    tenant_id: String,
    key_id: String,
    cost_center: Option<String>,
    stream: bool,
    started: Instant,
    /// The client format (`Ingress::as_str`), recorded.
    ingress: &'static str,
    created_ms: i64,
    /// The usage record's id (UUID v7), known from the start: the journal
    /// pairs the start with the end by it.
    record_id: String,
    /// When the journal last heard how far the stream got.
    journaled_progress: Option<Instant>,
    first_chunk: Option<Instant>,
    streamed_chars: u64,
    pub(super) usage: Option<Usage>,
    pub(super) permit: Option<Permit>,
    pool_id: Option<String>,
    /// The rollout that chose the route, and the side it chose.
    pub(super) rollout: Option<(Arc<Live>, Side)>,
    /// The shadow call waiting for this (`from`) side's result.
    pub(super) shadow: Option<shadow::Pending>,
    /// What this side answered, kept only while shadowing.
    pub(super) output: Option<compare::Output>,
    tool_args: Vec<(String, String)>,
    /// The finished usage event, until it is queued.
    event: Option<Event>,
    done: bool,
}

impl Pending {
    pub(super) fn new(
        state: AppState,
        caller: &Caller,
        requested: &Arc<ModelRoute>,
        chat: &ChatRequest,
        meta: RequestMeta,
        permit: Permit,
    ) -> Pending {
        let RequestMeta { request_id, cost_center, started, ingress } = meta;
        let ingress = ingress.as_str();
        state.metrics().in_flight(1);
        let created_ms = sheepdog_types::time::now_ms();
        let record_id = crate::ids::new_record_id(created_ms).to_string();
        let pool_id = match caller.tenant.tier {
            sheepdog_types::Tier::Pooled => caller.tenant.pool_id.clone(),
            _ => None,
        };
        if let Some(journal) = state.accountant().journal() {
            let input = permit.estimated_prompt_tokens;
            journal.start(&Start {
                id: Cow::Borrowed(&record_id),
                request_id: Cow::Borrowed(&request_id),
                tenant_id: Cow::Borrowed(&caller.tenant.id),
                key_id: Some(Cow::Borrowed(&caller.key_id)),
                cost_center: cost_center.as_deref().map(Cow::Borrowed),
                model: Cow::Borrowed(&requested.model.name),
                provider: Cow::Borrowed(&requested.provider.name),
                stream: chat.stream,
                created_ms,
                pool_id: pool_id.as_deref().map(Cow::Borrowed),
                input_tokens: input as i64,
                cost_nanos: cost_nanos(&requested.model, &Usage { input_tokens: input, ..Usage::default() }),
                ingress: Cow::Borrowed(ingress),
            });
        }
        Pending {
            state,
            requested: requested.clone(),
            served: None,
            attempts: 0,
            request_id,
            tenant_id: caller.tenant.id.clone(),
            key_id: caller.key_id.clone(),
            cost_center,
            stream: chat.stream,
            started,
            ingress,
            created_ms,
            record_id,
            journaled_progress: None,
            first_chunk: None,
            streamed_chars: 0,
            usage: None,
            pool_id,
            permit: Some(permit),
            rollout: None,
            shadow: None,
            output: None,
            tool_args: Vec::new(),
            event: None,
            done: false,
        }
    }

    pub(super) fn saw_chunk(&mut self, chunk: &[u8]) {
        if self.first_chunk.is_none() {
            self.first_chunk = Some(Instant::now());
        }
        self.streamed_chars += content_chars(chunk);
        if let Some(out) = self.output.as_mut() {
            out.add_chunk(chunk, &mut self.tool_args);
        }
        self.journal_progress();
    }

    /// Tells the journal how far the stream got, at most every
    /// [`PROGRESS_EVERY`]: what an `interrupted` record bills if this
    /// replica dies before the end.
    fn journal_progress(&mut self) {
        let Some(journal) = self.state.accountant().journal() else { return };
        let now = Instant::now();
        let since = self.journaled_progress.unwrap_or(self.started);
        if now.duration_since(since) < PROGRESS_EVERY {
            return;
        }
        self.journaled_progress = Some(now);
        let usage = Usage {
            input_tokens: self.permit.as_ref().map(|p| p.estimated_prompt_tokens).unwrap_or(0),
            output_tokens: self.streamed_chars.div_ceil(4),
            cached_tokens: 0,
        };
        let priced = self.served.as_ref().unwrap_or(&self.requested);
        journal.progress(
            &self.record_id,
            Progress {
                input_tokens: usage.input_tokens as i64,
                output_tokens: usage.output_tokens as i64,
                cost_nanos: cost_nanos(&priced.model, &usage),
            },
        );
    }

    pub(super) fn finish(&mut self, outcome: Outcome, status: u16, error_code: Option<&str>) {
        if self.done {
            return;
        }
        self.done = true;
        self.state.metrics().in_flight(-1);
        let usage = match (self.usage, outcome) {
            (Some(u), _) => u,
            // Cut before the upstream reported usage: bill what we can see.
            (None, Outcome::ClientCancelled | Outcome::UpstreamError | Outcome::ServerShutdown)
                if self.first_chunk.is_some() =>
            {
                Usage {
                    input_tokens: self.permit.as_ref().map(|p| p.estimated_prompt_tokens).unwrap_or(0),
                    output_tokens: self.streamed_chars.div_ceil(4),
                    cached_tokens: 0,
                }
            }
            (None, _) => Usage::default(),
        };
        // Priced at the route that answered (a fallback or rollout side may differ).
        let priced = self.served.clone().unwrap_or_else(|| self.requested.clone());
        let cost = cost_nanos(&priced.model, &usage);
        if let Some(mut permit) = self.permit.take() {
            permit.settle(&usage, cost);
        }
        let latency = self.started.elapsed();
        let ttft_ms = self.first_chunk.map(|t| t.duration_since(self.started).as_millis() as i64);
        let record = UsageRecord {
            id: std::mem::take(&mut self.record_id),
            // `finish` runs once (`done`) and nothing reads these afterwards:
            // they move into the record instead of being copied.
            request_id: std::mem::take(&mut self.request_id),
            tenant_id: std::mem::take(&mut self.tenant_id),
            key_id: Some(std::mem::take(&mut self.key_id)),
            cost_center: self.cost_center.take(),
            model_requested: self.requested.model.name.clone(),
            model_served: self.served.as_ref().map(|r| r.model.name.clone()),
            provider: Some(priced.provider.name.clone()),
            input_tokens: usage.input_tokens as i64,
            output_tokens: usage.output_tokens as i64,
            cached_tokens: usage.cached_tokens as i64,
            cost_nanos: cost,
            latency_ms: latency.as_millis() as i64,
            ttft_ms,
            status_code: i64::from(status),
            outcome: outcome.as_str().to_string(),
            error_code: error_code.map(str::to_string),
            stream: self.stream,
            created_ms: self.created_ms,
            pool_id: self.pool_id.take(),
            ingress: self.ingress.to_string(),
        };
        let metrics = self.state.metrics();
        metrics.request(&priced.model.name, &priced.provider.name, status, latency.as_secs_f64(), self.ingress);
        metrics.tokens(&priced.model.name, usage.input_tokens, usage.output_tokens, usage.cached_tokens, cost);
        // On disk before the answer completes: a crash from here on loses nothing.
        if let Some(journal) = self.state.accountant().journal() {
            journal.finish(&record);
        }
        self.event = Some(Event::Usage(Box::new(record)));

        // The rollout's guard sees this side's outcome; a request the
        // chosen side did not answer (a fallback did) counts as its error.
        if let Some((live, side)) = self.rollout.take() {
            let chosen = match side {
                Side::From => &live.from,
                Side::To => &live.to,
            };
            let answered_by_side = self.served.as_ref().is_some_and(|r| {
                r.provider.name == chosen.provider.name && r.target.upstream_model == chosen.target.upstream_model
            });
            // Neither a client going away nor a shutdown is the side's fault.
            if !matches!(outcome, Outcome::ClientCancelled | Outcome::ServerShutdown) {
                let error = outcome != Outcome::Ok || !answered_by_side;
                crate::rollout::controller::observe(&self.state, &live, side, latency.as_millis() as u64, error, cost);
            }
        }
        if let Some(shadow) = self.shadow.take() {
            let mut output = self.output.take().unwrap_or_default();
            if !self.tool_args.is_empty() {
                output.finish_tools(std::mem::take(&mut self.tool_args));
            }
            shadow.complete(shadow::Side {
                latency_ms: latency.as_millis() as i64,
                ttft_ms,
                error: (outcome != Outcome::Ok).then(|| error_code.unwrap_or("error").to_string()),
                usage,
                output,
            });
        }
    }
}

impl Pending {
    /// Queues the finished usage event (waiting for queue space if needed).
    pub(super) async fn queue(&mut self) {
        let accountant = self.state.accountant().clone();
        accountant.record_from(&mut self.event).await;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            self.finish(Outcome::ClientCancelled, 499, Some("client_cancelled"));
        }
        if let Some(ev) = self.event.take() {
            self.state.accountant().record(ev);
        }
    }
}
