//! A rollout's measurements over every replica (`[redis] url` set). Each
//! replica adds what it measured since the last second to the deployment's
//! figures in Redis and reads them back in the same script call
//! (`rollout.lua`): the 10-second buckets of the live series (requests,
//! errors, latency histograms, cost, shadow pairs) and the totals. The
//! console's series and the guard's window are then the deployment's; the
//! guard judges every replica's traffic, and one replica (the first to claim
//! the rollback in Redis) stores the automatic rollback.
//!
//! While Redis is unreachable the deltas are kept (merged, bounded like the
//! series itself) and each replica's own guard decides, as with one replica.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use sheepdog_store::rollouts::{EventRow, RolloutRow};

use super::guard::{judge, Side, Trip};
use super::series::{Bucket, Delta, Histogram, ShadowTotals, SideBucket, Totals, View, BUCKETS, BUCKET_MS};
use super::{Live, Phase, Rollouts};
use crate::shared::link::SharedError;
use crate::shared::SharedState;

static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("rollout.lua")));

/// How long a bucket stays in Redis after its last write.
const BUCKET_KEEP_MS: i64 = BUCKETS as i64 * BUCKET_MS + 60_000;
/// How long the totals stay after their last write.
const TOTALS_KEEP_MS: i64 = 30 * 24 * 3_600_000;
/// A finished rollout's figures are still read this long after its last
/// change (the console's charts cover 15 minutes).
const READ_AFTER_MS: i64 = BUCKETS as i64 * BUCKET_MS;

/// A hash to add to: its key, how long it is kept (ms), its fields.
type Write = (String, i64, Vec<(String, i64)>);

fn encode_side(tag: &str, s: &SideBucket, out: &mut Vec<(String, i64)>) {
    let mut push = |field: String, v: i64| {
        if v != 0 {
            out.push((field, v));
        }
    };
    push(format!("{tag}r"), s.requests as i64);
    push(format!("{tag}e"), s.errors as i64);
    push(format!("{tag}c"), s.cost_nanos);
    push(format!("{tag}p"), s.priced as i64);
    let (counts, min, max) = s.latency.parts();
    for (slot, n) in counts {
        push(format!("{tag}h{slot}"), i64::from(*n));
    }
    if s.latency.count() > 0 {
        out.push((format!("<{tag}"), min as i64));
        out.push((format!(">{tag}"), max as i64));
    }
}

/// A bucket as hash fields: counts added, `<` fields kept at their minimum,
/// `>` at their maximum.
pub fn encode_bucket(b: &Bucket) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    encode_side("f", &b.from, &mut out);
    encode_side("t", &b.to, &mut out);
    for (f, v) in [("pa", b.pairs), ("di", b.differing)] {
        if v != 0 {
            out.push((f.to_string(), v as i64));
        }
    }
    out
}

fn num<T: std::str::FromStr + Default>(fields: &BTreeMap<String, String>, name: &str) -> T {
    fields.get(name).and_then(|v| v.parse().ok()).unwrap_or_default()
}

fn decode_side(tag: &str, fields: &BTreeMap<String, String>) -> SideBucket {
    let prefix = format!("{tag}h");
    let counts: BTreeMap<u16, u32> =
        fields.iter().filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.parse().ok()?, v.parse().ok()?))).collect();
    SideBucket {
        requests: num(fields, &format!("{tag}r")),
        errors: num(fields, &format!("{tag}e")),
        cost_nanos: num(fields, &format!("{tag}c")),
        priced: num(fields, &format!("{tag}p")),
        latency: Histogram::from_parts(counts, num(fields, &format!("<{tag}")), num(fields, &format!(">{tag}"))),
    }
}

pub fn decode_bucket(start_ms: i64, fields: &BTreeMap<String, String>) -> Bucket {
    Bucket {
        start_ms,
        from: decode_side("f", fields),
        to: decode_side("t", fields),
        pairs: num(fields, "pa"),
        differing: num(fields, "di"),
    }
}

const TOTAL_FIELDS: [&str; 12] = ["fr", "fe", "fc", "tr", "te", "tc", "sp", "sd", "sm", "se", "sc", "ss"];

fn totals_values(from: &Totals, to: &Totals, sh: &ShadowTotals) -> [i64; 12] {
    let u = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    [
        u(from.requests),
        u(from.errors),
        from.cost_nanos,
        u(to.requests),
        u(to.errors),
        to.cost_nanos,
        u(sh.pairs),
        u(sh.differing),
        u(sh.tool_mismatches),
        u(sh.to_errors),
        sh.shadow_cost_nanos,
        u(sh.skipped),
    ]
}

fn decode_totals(fields: &BTreeMap<String, String>) -> (Totals, Totals, ShadowTotals) {
    let v: Vec<i64> = TOTAL_FIELDS.iter().map(|f| num(fields, f)).collect();
    let u = |i: usize| u64::try_from(v[i]).unwrap_or(0);
    (
        Totals { requests: u(0), errors: u(1), cost_nanos: v[2] },
        Totals { requests: u(3), errors: u(4), cost_nanos: v[5] },
        ShadowTotals {
            pairs: u(6),
            differing: u(7),
            tool_mismatches: u(8),
            to_errors: u(9),
            shadow_cost_nanos: v[10],
            skipped: u(11),
        },
    )
}

/// Adds `delta` to the deployment's figures of rollout `id` and reads them
/// back (one script call).
pub async fn exchange(
    shared: &SharedState,
    id: &str,
    created_ms: i64,
    delta: &Delta,
    now_ms: i64,
) -> Result<View, SharedError> {
    let key = |suffix: &str| format!("{}ro:{id}:{suffix}", shared.prefix());
    let mut writes: Vec<Write> = Vec::new();
    let totals = totals_values(&delta.from, &delta.to, &delta.shadow);
    if totals.iter().any(|v| *v != 0) {
        let fields = TOTAL_FIELDS.iter().zip(totals).filter(|(_, v)| *v != 0).map(|(f, v)| (f.to_string(), v));
        writes.push((key("totals"), TOTALS_KEEP_MS, fields.collect()));
    }
    for b in delta.series.buckets() {
        writes.push((key(&b.start_ms.to_string()), BUCKET_KEEP_MS, encode_bucket(b)));
    }
    let last = now_ms - now_ms.rem_euclid(BUCKET_MS);
    let first = (created_ms - created_ms.rem_euclid(BUCKET_MS)).clamp(last - (BUCKETS as i64 - 1) * BUCKET_MS, last);
    let starts: Vec<i64> = (0..).map(|i| first + i * BUCKET_MS).take_while(|s| *s <= last).collect();
    let mut inv = SCRIPT.prepare_invoke();
    inv.arg(writes.len());
    for (k, keep, fields) in &writes {
        inv.key(k).arg(*keep).arg(fields.len());
        for (f, v) in fields {
            inv.arg(f).arg(*v);
        }
    }
    inv.key(key("totals"));
    for s in &starts {
        inv.key(key(&s.to_string()));
    }
    let reply: Vec<Vec<String>> =
        shared.link().call(|mut conn| async move { inv.invoke_async(&mut conn).await }).await?;
    let as_map = |flat: &[String]| -> BTreeMap<String, String> {
        flat.chunks_exact(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect()
    };
    let (from, to, shadow) = decode_totals(&as_map(reply.first().map(Vec::as_slice).unwrap_or_default()));
    let buckets = starts
        .iter()
        .zip(reply.iter().skip(1))
        .filter(|(_, flat)| !flat.is_empty())
        .map(|(s, flat)| decode_bucket(*s, &as_map(flat)))
        .collect();
    Ok(View { at_ms: now_ms, buckets, from, to, shadow })
}

impl Live {
    /// What to share now: this replica's unshared measurements, when the
    /// rollout is running, has something to share, or changed recently.
    fn take_pending(&self, now_ms: i64) -> Option<(Delta, i64)> {
        let mut s = self.lock();
        let active = Phase::parse(&s.row.phase).is_some_and(Phase::is_active);
        let recent =
            sheepdog_types::time::parse_rfc3339_ms(&s.row.updated_at).is_some_and(|t| now_ms - t < READ_AFTER_MS);
        let p = s.pending.as_mut()?;
        if !active && !recent && p.is_empty() {
            return None;
        }
        let delta = std::mem::take(p);
        Some((delta, s.created_ms))
    }

    /// A delta that could not be shared, kept for the next try.
    fn give_back(&self, delta: Delta) {
        if let Some(p) = self.lock().pending.as_mut() {
            p.absorb(delta);
        }
    }

    fn set_view(&self, view: View) {
        self.lock().view = Some(view);
    }

    /// The guard's verdict on the deployment's traffic.
    fn global_trip(&self, now_ms: i64) -> Option<Trip> {
        let s = self.lock();
        if !Phase::parse(&s.row.phase).is_some_and(Phase::is_active) {
            return None;
        }
        let v = Live::global_view(&s, now_ms)?;
        let w = s.guard.window_secs;
        judge(&v.window_stats(Side::To, now_ms, w), &v.window_stats(Side::From, now_ms, w), &s.guard)
    }
}

/// Shares every rollout's measurements and applies the deployment's guard;
/// returns the automatic rollbacks this replica must store (the others
/// only apply them in memory: one replica claims each rollback in Redis).
pub async fn share_all(rollouts: &Rollouts, shared: &SharedState, now_ms: i64) -> Vec<(RolloutRow, EventRow, Trip)> {
    let mut out = Vec::new();
    for live in rollouts.all() {
        let Some((delta, created_ms)) = live.take_pending(now_ms) else { continue };
        match exchange(shared, &live.id, created_ms, &delta, now_ms).await {
            Ok(view) => live.set_view(view),
            Err(e) => {
                tracing::debug!(error = %e, rollout = %live.id, "rollout figures not shared; kept for the next try");
                live.give_back(delta);
                continue;
            }
        }
        let Some(trip) = live.global_trip(now_ms) else { continue };
        let (row, ev) = {
            let mut s = live.lock();
            Rollouts::roll_back(&mut s, "guard", format!("automatic rollback: {}", trip.reason), now_ms)
        };
        if claim_rollback(shared, &live.id).await {
            out.push((row, ev, trip));
        }
    }
    out
}

/// Whether this replica is the one to store the rollback (true as well when
/// Redis cannot say: a repeated event is better than a lost one).
async fn claim_rollback(shared: &SharedState, id: &str) -> bool {
    let key = format!("{}ro:{id}:rollback", shared.prefix());
    let r: Result<Option<String>, _> = shared
        .link()
        .call(|mut conn| async move {
            redis::cmd("SET").arg(&key).arg(1).arg("NX").arg("PX").arg(TOTALS_KEEP_MS).query_async(&mut conn).await
        })
        .await;
    !matches!(r, Ok(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_reads_back_as_itself_and_buckets_add_up() {
        let mut d = Delta::default();
        d.series.request(10_000, Side::From, 12, false, Some(300));
        d.series.request(10_001, Side::From, 900, false, Some(200));
        d.series.request(10_002, Side::To, 0, true, None);
        d.series.shadow_pair(10_003, true, 700);
        let b = d.series.buckets().next().unwrap().clone();
        let fields: BTreeMap<String, String> = encode_bucket(&b).into_iter().map(|(k, v)| (k, v.to_string())).collect();
        assert_eq!(decode_bucket(b.start_ms, &fields), b);
        // Two replicas' buckets: what Redis adds up equals one that saw both.
        let mut sum = b.clone();
        sum.add(&b);
        let mut twice = BTreeMap::<String, i64>::new();
        for (k, v) in encode_bucket(&b).into_iter().chain(encode_bucket(&b)) {
            let e = twice.entry(k.clone()).or_insert(if k.starts_with('<') { i64::MAX } else { 0 });
            *e = match k.chars().next() {
                Some('<') => (*e).min(v),
                Some('>') => (*e).max(v),
                _ => *e + v,
            };
        }
        let fields = twice.into_iter().map(|(k, v)| (k, v.to_string())).collect();
        assert_eq!(decode_bucket(b.start_ms, &fields), sum);
        assert_eq!(sum.from.latency.quantile(0.99), Some(900));
        assert_eq!((sum.from.requests, sum.to.errors, sum.pairs, sum.to.cost_nanos), (4, 2, 2, 1_400));
    }

    #[test]
    fn totals_read_back_as_themselves() {
        let from = Totals { requests: 5, errors: 1, cost_nanos: 123 };
        let to = Totals { requests: 7, errors: 0, cost_nanos: 9 };
        let sh = ShadowTotals {
            pairs: 3,
            differing: 1,
            tool_mismatches: 1,
            to_errors: 0,
            shadow_cost_nanos: 44,
            skipped: 2,
        };
        let fields =
            TOTAL_FIELDS.iter().zip(totals_values(&from, &to, &sh)).map(|(f, v)| (f.to_string(), v.to_string()));
        assert_eq!(decode_totals(&fields.collect()), (from, to, sh));
    }

    #[test]
    fn the_guard_window_is_rounded_out_to_whole_buckets_and_unshared_figures_count() {
        let mut everyone = Delta::default();
        everyone.series.request(0, Side::To, 10, true, None);
        everyone.series.request(55_000, Side::To, 20, false, None);
        let view = View { at_ms: 60_000, buckets: everyone.series.buckets().cloned().collect(), ..View::default() };
        let mut mine = Delta::default();
        mine.series.request(59_000, Side::To, 30, false, None);
        mine.to.add(&Totals { requests: 1, errors: 0, cost_nanos: 5 });
        let v = view.with(&mine);
        // 10 s back from 60 s: the bucket starting at 50 s.
        let w = v.window_stats(Side::To, 60_000, 10);
        assert_eq!((w.count, w.errors, w.p50_ms, w.p99_ms), (2, 0, 20, 30));
        let w = v.window_stats(Side::To, 60_000, 60);
        assert_eq!((w.count, w.errors), (3, 1));
        assert_eq!(v.to, Totals { requests: 1, errors: 0, cost_nanos: 5 });
        // A delta put back is added, not lost.
        let mut kept = Delta::default();
        kept.absorb(mine);
        assert_eq!(kept.series.buckets().map(|b| b.to.requests).sum::<u64>(), 1);
    }
}
