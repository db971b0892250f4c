use std::sync::Arc;

use super::*;

fn brute_peak(intervals: &[(i64, i64)]) -> i64 {
    let mut best = 0;
    for &(s, _) in intervals {
        let n = intervals.iter().filter(|&&(a, b)| a <= s && s < b).count() as i64;
        best = best.max(n);
    }
    best
}

#[test]
fn spilled_and_in_memory_runs_sweep_exactly() {
    let spill = SpillDir::new(None);
    let mut seed = 7u64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut intervals = Vec::new();
    let mut sinks = vec![EventSink::new(37), EventSink::new(1000)];
    for i in 0..400 {
        let s = rnd(10_000) as i64;
        let d = rnd(500) as i64;
        intervals.push((s, s + d));
        let sink = &mut sinks[i % 2];
        sink.push(Ev::new(s, KIND_START, 0, 1), &spill).unwrap();
        sink.push(Ev::new(s + d, KIND_END, 0, 0), &spill).unwrap();
    }
    let mut runs = Vec::new();
    for sink in sinks {
        runs.extend(sink.finish(Arc::new(vec![0])));
    }
    assert!(runs.len() > 2, "some runs must have spilled");
    let spec = SeriesSpec { start_ms: 0, bucket_ms: 1000, buckets: 10, tenants: vec![0] };
    let s = sweep(runs, 1, &spec, None, &spill).unwrap();
    let nonzero: Vec<_> = intervals.iter().copied().filter(|(a, b)| b > a).collect();
    assert_eq!(s.overall.peak, brute_peak(&nonzero));
    assert_eq!(s.tenants[0].peak, s.overall.peak);
    assert_eq!(s.overall.cur, 0);
    assert_eq!(s.series[2].iter().sum::<u64>(), 400);
    assert_eq!(s.overall_rates.rpm.count(), 1);
}

#[test]
fn back_to_back_requests_do_not_overlap() {
    let spill = SpillDir::new(None);
    let mut sink = EventSink::new(100);
    for (s, e) in [(0, 10), (10, 20), (20, 30)] {
        sink.push(Ev::new(s, KIND_START, 0, 0), &spill).unwrap();
        sink.push(Ev::new(e, KIND_END, 0, 0), &spill).unwrap();
    }
    let spec = SeriesSpec { start_ms: 0, bucket_ms: 0, buckets: 1, tenants: vec![] };
    let s = sweep(sink.finish(Arc::new(vec![0])), 1, &spec, None, &spill).unwrap();
    assert_eq!(s.overall.peak, 1);
    assert_eq!(s.overall.peak_at, Some(0));
}

#[test]
fn concurrency_at_the_overall_peak_and_waits_beyond_capacity() {
    let spill = SpillDir::new(None);
    let mut sink = EventSink::new(1000);
    // tenant 0: [0, 100) ×3 ; tenant 1: [50, 60), [10, 200) ; tenant 2: [55, 300)
    for (t, a, b) in [(0, 0, 100), (0, 0, 100), (0, 0, 100), (1, 50, 60), (1, 10, 200), (2, 55, 300), (2, 150, 160)] {
        sink.push(Ev::new(a, KIND_START, t, 0), &spill).unwrap();
        sink.push(Ev::new(b, KIND_END, t, 0), &spill).unwrap();
    }
    let spec = SeriesSpec { start_ms: 0, bucket_ms: 0, buckets: 1, tenants: vec![] };
    let s = sweep(sink.finish(Arc::new(vec![0, 1, 2])), 3, &spec, Some(4), &spill).unwrap();
    assert_eq!((s.overall.peak, s.overall.peak_at), (6, Some(55)));
    assert_eq!(s.tenants_active_at_peak, 3);
    let at: Vec<i64> = s.tenants.iter().map(|t| t.at_overall_peak).collect();
    assert_eq!(at, vec![3, 2, 1]);
    // Beyond 4 in flight: at 50 (5 in flight, 2 active → share 2) tenant 1 holds 2: not over;
    // at 55 (6 in flight, 3 active → share 1.33) tenant 2 holds 1: not over. Tenant 0 never starts then.
    assert!(s.tenants.iter().all(|t| t.over_share.is_none()));
    let mut sink = EventSink::new(1000);
    for (t, a, b) in [(0, 0, 100), (0, 1, 100), (0, 2, 100), (1, 3, 100)] {
        sink.push(Ev::new(a, KIND_START, t, 0), &spill).unwrap();
        sink.push(Ev::new(b, KIND_END, t, 0), &spill).unwrap();
    }
    let s = sweep(sink.finish(Arc::new(vec![0, 1])), 2, &spec, Some(2), &spill).unwrap();
    // At 2: 3 in flight > 2, one tenant active, share 2, tenant 0 holds 3: it would wait.
    let o = s.tenants[0].over_share.clone().unwrap();
    assert_eq!((o.at, o.held, o.overall, o.active, o.starts), (2, 3, 3, 1, 1));
    assert!(s.tenants[1].over_share.is_none(), "1 held ≤ 2 ÷ 2");
}

#[test]
fn many_runs_are_merged_in_passes() {
    let spill = SpillDir::new(None);
    let mut sink = EventSink::new(2);
    for i in 0..(MAX_MERGE_FAN_IN as i64 * 3) {
        sink.push(Ev::new(i, KIND_START, 0, 0), &spill).unwrap();
        sink.push(Ev::new(i + 5, KIND_END, 0, 0), &spill).unwrap();
    }
    let runs = sink.finish(Arc::new(vec![0]));
    assert!(runs.len() > MAX_MERGE_FAN_IN);
    let spec = SeriesSpec { start_ms: 0, bucket_ms: 0, buckets: 1, tenants: vec![] };
    let s = sweep(runs, 1, &spec, None, &spill).unwrap();
    assert_eq!(s.overall.peak, 5);
    assert_eq!(s.events, MAX_MERGE_FAN_IN as u64 * 6);
}
