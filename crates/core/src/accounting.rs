//! Accounting, on the side of the request path: every request that reached
//! routing yields one usage record, priced in integer nano-USD, queued in
//! memory and written in batches (records + additive hourly buckets with a
//! latency histogram) by one writer task. Nothing queued is lost on graceful
//! shutdown: the writer drains the queue before it exits.
//!
//! Every record is also in the usage journal (`journal/`) from before its
//! answer completes until it is written here, so a crash loses none.
//!
//! While the database is unreachable the writer keeps its batch and retries
//! it (backing off from 100 ms to 5 s) for as long as it takes; new records
//! wait in the queue (`accounting.queue_capacity`, then back-pressure on
//! requests). Nothing is dropped. Only a writer told to stop that still
//! cannot write after [`DRAIN_ATTEMPTS`] more tries logs the records in full
//! (`sheepdog::unwritten_usage`) so they can be replayed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::config::{AccountingConfig, ModelSettings};
use crate::journal::Journal;
use crate::providers::Usage;
use sheepdog_store::{HourlyDelta, Store, UsageRecord};
use sheepdog_types::time::hour_floor;

/// Cost of a usage in nano-USD: uncached input, cached input and output
/// tokens times their per-token prices. Saturates instead of overflowing.
pub fn cost_nanos(model: &ModelSettings, usage: &Usage) -> i64 {
    let cached = usage.cached_tokens.min(usage.input_tokens);
    let uncached = usage.input_tokens - cached;
    let parts = [
        i128::from(uncached) * i128::from(model.input_nanos_per_token),
        i128::from(cached) * i128::from(model.cached_input_nanos_per_token),
        i128::from(usage.output_tokens) * i128::from(model.output_nanos_per_token),
    ];
    let total: i128 = parts.iter().sum();
    i64::try_from(total).unwrap_or(i64::MAX)
}

/// Latency histogram buckets: 1 ms wide below 100 ms, then 5 % wide, so a
/// percentile read from the histogram is within 5 % of the true value.
pub mod histogram {
    const LINEAR: i64 = 100;
    const GROWTH: f64 = 1.05;

    pub fn bucket_of(ms: i64) -> i64 {
        let ms = ms.max(0);
        if ms < LINEAR {
            return ms;
        }
        let steps = ((ms as f64) / (LINEAR as f64)).ln() / GROWTH.ln();
        LINEAR + steps.floor() as i64
    }

    /// The largest latency (ms) that falls in `bucket`.
    pub fn upper_bound(bucket: i64) -> f64 {
        if bucket < LINEAR {
            return bucket as f64;
        }
        (LINEAR as f64) * GROWTH.powi((bucket - LINEAR + 1) as i32)
    }

    /// The `q` quantile (0..1] of a histogram, as the upper bound of the bucket
    /// holding it; 0 for an empty histogram.
    pub fn quantile(hist: &std::collections::BTreeMap<i64, i64>, q: f64) -> f64 {
        let total: i64 = hist.values().sum();
        if total <= 0 {
            return 0.0;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as i64;
        let mut seen = 0;
        for (bucket, count) in hist {
            seen += count;
            if seen >= rank {
                return upper_bound(*bucket);
            }
        }
        hist.keys().next_back().map(|b| upper_bound(*b)).unwrap_or(0.0)
    }
}

/// What the request path hands to accounting.
#[derive(Debug)]
pub enum Event {
    Usage(Box<UsageRecord>),
    /// A request refused by a rate limit (counted in the hourly bucket).
    RateLimitHit {
        tenant_id: String,
        at_ms: i64,
    },
    /// Answered once everything queued before it is written (read-your-writes
    /// for the admin API).
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The request path's handle: cheap to clone; sending never blocks on the
/// database (only on a full in-memory queue, which is back-pressure, not loss).
#[derive(Debug, Clone)]
pub struct Accountant {
    tx: mpsc::Sender<Event>,
    /// Where every record also goes, on local disk, until it is written.
    journal: Option<Arc<Journal>>,
    /// Wakes the writer before its interval is up: a full batch is waiting,
    /// or someone waits for a flush. Without it the writer would wake for
    /// every event while a batch fills (one wake-up per request).
    urgent: Arc<Notify>,
    batch: usize,
    /// Set while the writer's last attempt failed (cleared by a success).
    failing: Arc<AtomicBool>,
    /// Events the writer has taken off the queue and not yet written.
    held: Arc<AtomicUsize>,
}

/// Tries of a batch that still fails once the writer is told to stop.
pub const DRAIN_ATTEMPTS: u32 = 20;

impl Accountant {
    /// Starts the writer task. `stop` makes it drain what is queued and exit.
    pub fn start(store: Store, cfg: &AccountingConfig, journal: Option<Arc<Journal>>) -> (Accountant, Writer) {
        let (tx, rx) = mpsc::channel(cfg.queue_capacity);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let batch = cfg.batch_size;
        let every = Duration::from_millis(cfg.flush_interval_ms.max(1));
        let urgent = Arc::new(Notify::new());
        let failing = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicUsize::new(0));
        let writer = WriterTask {
            store,
            stop: stop_rx,
            stopping: false,
            failing: failing.clone(),
            journal: journal.clone(),
            held: held.clone(),
        };
        let handle = tokio::spawn(writer_loop(writer, rx, urgent.clone(), batch, every));
        (Accountant { tx, journal, urgent, batch, failing, held }, Writer { stop: Some(stop_tx), handle: Some(handle) })
    }

    /// The usage journal, if `accounting.journal_dir` is set.
    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.journal.as_ref()
    }

    /// Queues the event in `slot`, waiting while the queue is full
    /// (back-pressure on the request that produced it). Cancel-safe: the
    /// event leaves `slot` only once queue space is reserved, so a caller
    /// dropped mid-wait still holds it (and queues it with [`record`]).
    pub async fn record_from(&self, slot: &mut Option<Event>) {
        if slot.is_none() {
            return;
        }
        match self.tx.reserve().await {
            Ok(permit) => {
                if let Some(ev) = slot.take() {
                    permit.send(ev);
                    self.nudge_if_full();
                }
            }
            Err(_) => tracing::error!("accounting queue closed; a usage event could not be queued"),
        }
    }

    /// Queues an event from synchronous code (a dropped request). Never drops
    /// it: if the queue is full, the send is finished by a background task.
    pub fn record(&self, event: Event) {
        match self.tx.try_send(event) {
            Ok(()) => self.nudge_if_full(),
            Err(mpsc::error::TrySendError::Full(ev)) => {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    if tx.send(ev).await.is_err() {
                        tracing::error!("accounting queue closed; a usage event could not be queued");
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("accounting queue closed; a usage event could not be queued");
            }
        }
    }

    /// Waits until every event queued before this call is in the database.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Event::Flush(tx)).await.is_ok() {
            self.urgent.notify_one();
            let _ = rx.await;
        }
    }

    /// Like [`flush`](Self::flush), but gives up after `wait`: whether
    /// everything queued before the call is written.
    pub async fn flush_within(&self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.flush()).await.is_ok()
    }

    /// Whether the writer's last attempt to write failed (the database is
    /// unreachable or locked; the records are kept and retried).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// A whole batch is queued: the writer need not wait for its interval.
    fn nudge_if_full(&self) {
        if self.queue_depth() >= self.batch {
            self.urgent.notify_one();
        }
    }

    /// Events not yet in the database: queued, or in the batch being written.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity() + self.held.load(Ordering::Acquire)
    }
}

/// The writer task's handle.
#[derive(Debug)]
pub struct Writer {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    /// Stops accepting new events, writes everything queued, then returns.
    pub async fn drain(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.handle.take() {
            if let Err(e) = h.await {
                tracing::error!(error = %e, "accounting writer task failed");
            }
        }
    }
}

/// What a journal recovery found and wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub segments: usize,
    /// Records written to the database (ended and interrupted).
    pub written: usize,
    pub interrupted: usize,
}

/// Replays the journal segments of this database that no live process holds
/// (see [`crate::journal`]): the records the database lacks are written with
/// their hourly buckets (and pool debits), then the segments are deleted.
/// Idempotent; a database error leaves the segments for the next try.
pub async fn recover_journal(dir: &std::path::Path, tag: &str, store: &Store) -> anyhow::Result<Recovered> {
    let unheld = crate::journal::take_unheld(dir, tag).await?;
    if unheld.segments() == 0 {
        return Ok(Recovered::default());
    }
    let stored = store.stored_usage_ids(&unheld.records).await?;
    let missing = unheld.records.iter().filter(|r| !stored.contains(&r.id)).cloned();
    let (records, hourly) = aggregate(missing.map(|r| Event::Usage(Box::new(r))), &mut Vec::new());
    if !records.is_empty() {
        store.write_usage_batch(&records, &hourly).await?;
    }
    let recovered = Recovered {
        segments: unheld.segments(),
        written: records.len(),
        interrupted: records.iter().filter(|r| r.outcome == "interrupted").count(),
    };
    unheld.done();
    if recovered.written > 0 {
        tracing::info!(
            segments = recovered.segments,
            records = recovered.written,
            interrupted = recovered.interrupted,
            "usage journal recovered"
        );
    }
    Ok(recovered)
}

/// Aggregates one batch into hourly deltas.
pub fn aggregate(
    events: impl IntoIterator<Item = Event>,
    acks: &mut Vec<tokio::sync::oneshot::Sender<()>>,
) -> (Vec<UsageRecord>, BTreeMap<(String, i64), HourlyDelta>) {
    let events = events.into_iter();
    let mut records = Vec::with_capacity(events.size_hint().0);
    let mut hits: Vec<(String, i64)> = Vec::new();
    for ev in events {
        match ev {
            Event::Usage(r) => records.push(*r),
            Event::RateLimitHit { tenant_id, at_ms } => hits.push((tenant_id, at_ms)),
            Event::Flush(ack) => acks.push(ack),
        }
    }
    // Keyed by borrowed tenant ids first: an id is copied once per (tenant,
    // hour) of the batch, not once per record.
    let mut by_hour: BTreeMap<(&str, i64), HourlyDelta> = BTreeMap::new();
    for r in &records {
        let d = by_hour.entry((r.tenant_id.as_str(), hour_floor(r.created_ms))).or_default();
        d.request_count += 1;
        if r.status_code >= 400 {
            d.error_count += 1;
        }
        d.latency_sum_ms += r.latency_ms;
        d.input_tokens += r.input_tokens;
        d.output_tokens += r.output_tokens;
        d.cost_nanos += r.cost_nanos;
        *d.latency.entry(histogram::bucket_of(r.latency_ms)).or_default() += 1;
    }
    for (tenant_id, at_ms) in &hits {
        by_hour.entry((tenant_id.as_str(), hour_floor(*at_ms))).or_default().rate_limit_hits += 1;
    }
    let hourly = by_hour.into_iter().map(|((tenant, hour), d)| ((tenant.to_string(), hour), d)).collect();
    (records, hourly)
}

/// The writer task's own state.
struct WriterTask {
    store: Store,
    stop: tokio::sync::oneshot::Receiver<()>,
    stopping: bool,
    failing: Arc<AtomicBool>,
    journal: Option<Arc<Journal>>,
    /// `buf`'s length, for [`Accountant::queue_depth`].
    held: Arc<AtomicUsize>,
}

async fn writer_loop(
    mut w: WriterTask,
    mut rx: mpsc::Receiver<Event>,
    urgent: Arc<Notify>,
    batch: usize,
    every: Duration,
) {
    let mut buf: Vec<Event> = Vec::with_capacity(batch);
    let has_flush = |events: &[Event]| events.iter().any(|e| matches!(e, Event::Flush(_)));
    loop {
        if !w.stopping {
            tokio::select! {
                biased;
                _ = &mut w.stop => w.stopping = true,
                n = rx.recv_many(&mut buf, batch) => w.stopping = n == 0,
            }
            w.held.store(buf.len(), Ordering::Release);
        }
        // Give the batch a moment to fill before writing — unless someone
        // waits for a flush, a whole batch is queued, or we are stopping. The
        // writer sleeps meanwhile (no wake-up per queued event) and then takes
        // what arrived.
        if !w.stopping && !buf.is_empty() && buf.len() < batch && !has_flush(&buf) {
            let deadline = tokio::time::Instant::now() + every;
            tokio::select! {
                biased;
                _ = &mut w.stop => w.stopping = true,
                _ = urgent.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
            while buf.len() < batch {
                match rx.try_recv() {
                    Ok(ev) => buf.push(ev),
                    Err(_) => break,
                }
            }
            w.held.store(buf.len(), Ordering::Release);
        }
        if w.stopping {
            // Closed: take everything still queued.
            rx.close();
            while let Some(ev) = rx.recv().await {
                buf.push(ev);
            }
            w.held.store(buf.len(), Ordering::Release);
        }
        if !buf.is_empty() {
            // The events move into the batch (no copy of the records); flush
            // requests are answered once it is written.
            let mut acks = Vec::new();
            let (records, hourly) = aggregate(buf.drain(..), &mut acks);
            w.write_with_retry(&records, &hourly).await;
            w.held.store(0, Ordering::Release);
            for ack in acks {
                let _ = ack.send(());
            }
        }
        if w.stopping {
            return;
        }
    }
}

impl WriterTask {
    /// Writes one batch, retrying (100 ms doubling to 5 s) until it is
    /// written: forever while running, [`DRAIN_ATTEMPTS`] more tries once
    /// told to stop.
    async fn write_with_retry(&mut self, records: &[UsageRecord], hourly: &BTreeMap<(String, i64), HourlyDelta>) {
        if records.is_empty() && hourly.is_empty() {
            return;
        }
        let mut delay = Duration::from_millis(100);
        let mut attempt: u64 = 0;
        let mut attempts_stopping: u32 = 0;
        loop {
            attempt += 1;
            let error = match self.store.write_usage_batch(records, hourly).await {
                Ok(()) => None,
                // A retry after a commit whose answer was lost: the batch is in.
                Err(sheepdog_store::StoreError::Conflict(_)) if attempt > 1 && self.already_written(records).await => {
                    None
                }
                Err(e) => Some(e),
            };
            let Some(e) = error else {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(attempt, records = records.len(), "usage written again after database failures");
                }
                if let Some(j) = &self.journal {
                    j.written(records.iter().map(|r| r.id.as_str()));
                }
                return;
            };
            self.failing.store(true, Ordering::Relaxed);
            if attempt == 1 || attempt.is_power_of_two() {
                tracing::error!(error = %e, attempt, records = records.len(),
                    "writing usage failed; keeping the batch and retrying");
            }
            if self.stopping {
                attempts_stopping += 1;
                if attempts_stopping >= DRAIN_ATTEMPTS {
                    break;
                }
                tokio::time::sleep(delay).await;
            } else {
                tokio::select! {
                    biased;
                    _ = &mut self.stop => self.stopping = true,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        // Stopping and still unwritable: the records stay in the journal (the
        // next start replays them) and go to the log in full (never silently
        // lost).
        for r in records {
            tracing::error!(target: "sheepdog::unwritten_usage", record = ?r, "usage record could not be written");
        }
    }

    async fn already_written(&self, records: &[UsageRecord]) -> bool {
        match records.first() {
            Some(r) => self.store.usage_record_exists(&r.id).await.unwrap_or(false),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(i: i64, o: i64, c: i64) -> ModelSettings {
        ModelSettings {
            name: "m".into(),
            provider: "p".into(),
            upstream_model: "m".into(),
            input_nanos_per_token: i,
            output_nanos_per_token: o,
            cached_input_nanos_per_token: c,
            fallbacks: vec![],
            max_output_tokens: None,
            mode: crate::config::ModelMode::Chat,
        }
    }

    #[test]
    fn cost_is_exact() {
        // deepseek-v3.2: $0.10 / $0.42 per 1M tokens = 100 / 420 nano-USD per token.
        let m = model(100, 420, 100);
        assert_eq!(cost_nanos(&m, &Usage { input_tokens: 1000, output_tokens: 500, cached_tokens: 0 }), 310_000);
        let m = model(2000, 8000, 500);
        assert_eq!(
            cost_nanos(&m, &Usage { input_tokens: 10, output_tokens: 1, cached_tokens: 4 }),
            6 * 2000 + 4 * 500 + 8000
        );
        assert_eq!(cost_nanos(&m, &Usage { input_tokens: 1, output_tokens: 0, cached_tokens: 9 }), 500);
        assert_eq!(
            cost_nanos(
                &model(i64::MAX, i64::MAX, 0),
                &Usage { input_tokens: u64::MAX, output_tokens: 1, cached_tokens: 0 }
            ),
            i64::MAX
        );
    }

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = BTreeMap::new();
        for ms in 1..=1000i64 {
            *h.entry(histogram::bucket_of(ms)).or_insert(0) += 1;
        }
        let p99 = histogram::quantile(&h, 0.99);
        assert!((990.0..=990.0 * 1.05).contains(&p99), "{p99}");
        let p50 = histogram::quantile(&h, 0.5);
        assert!((500.0..=525.0).contains(&p50), "{p50}");
        assert_eq!(histogram::quantile(&BTreeMap::new(), 0.99), 0.0);
        for ms in [0, 5, 99, 100, 101, 1234, 60_000] {
            assert!(histogram::upper_bound(histogram::bucket_of(ms)) >= ms as f64, "{ms}");
        }
    }
}
