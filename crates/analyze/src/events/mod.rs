//! Exact peak concurrency and per-minute rates in bounded memory: an
//! external merge sort of request start/end events, then one sweep.
//!
//! Each request with a duration becomes two 16-byte events (start with its
//! tokens, end); one without a duration becomes one "point" event (counted in
//! rates, not in concurrency). Events are buffered per worker up to a fixed
//! number (`max_events_in_memory` in total); a full buffer is sorted and
//! written to a temporary file (a *run*). At the end the runs (on disk and
//! the last ones in memory) are merged with a heap and swept in time order:
//! ends sort before starts at the same millisecond, so intervals are
//! half-open `[start, end)` and back-to-back requests do not overlap. Memory
//! is the event buffer plus 64 KiB per run being merged; more than
//! [`MAX_MERGE_FAN_IN`] runs are first merged into bigger runs on disk.
//!
//! `ev`: the 16-byte event; `spill`: the workers' buffers and the runs
//! written to disk; `merge`: the k-way merge of runs; `sweep`: concurrency,
//! fair-share waits, per-minute rates and the time series.

mod ev;
mod merge;
mod spill;
mod sweep;

pub use ev::{Ev, KIND_END, KIND_POINT, KIND_START, TENANT_MASK};
pub use merge::{reduce_runs, Merger, MAX_MERGE_FAN_IN};
pub use spill::{EventSink, Run, SpillDir};
pub use sweep::{sweep, Conc, OverShare, Rates, SeriesSpec, Sweep};

#[cfg(test)]
mod tests;
