//! The workers' event buffers: a full buffer is sorted and written to a
//! temporary file (a run); the last ones stay in memory.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::ev::{Ev, TENANT_MASK};

/// Where runs are spilled: a temporary directory made on first use, removed when dropped.
#[derive(Debug)]
pub struct SpillDir {
    base: Option<PathBuf>,
    dir: Mutex<Option<tempfile::TempDir>>,
    counter: AtomicU64,
    pub spilled_events: AtomicU64,
    pub runs_written: AtomicU64,
}

impl SpillDir {
    pub fn new(base: Option<PathBuf>) -> Self {
        SpillDir {
            base,
            dir: Mutex::new(None),
            counter: AtomicU64::new(0),
            spilled_events: AtomicU64::new(0),
            runs_written: AtomicU64::new(0),
        }
    }

    pub(super) fn new_file(&self) -> io::Result<(PathBuf, File)> {
        let mut guard = match self.dir.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if guard.is_none() {
            let d = match &self.base {
                Some(b) => tempfile::Builder::new().prefix("sheepdog-analyze-").tempdir_in(b)?,
                None => tempfile::Builder::new().prefix("sheepdog-analyze-").tempdir()?,
            };
            *guard = Some(d);
        }
        let dir = guard.as_ref().map(|d| d.path().to_path_buf()).unwrap_or_default();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("run-{n:06}.bin"));
        let f = File::create(&path)?;
        self.runs_written.fetch_add(1, Ordering::Relaxed);
        Ok((path, f))
    }
}

/// A sorted run of events.
#[derive(Debug)]
pub enum Run {
    Mem(Vec<Ev>),
    /// On disk; `remap` turns the worker's tenant numbers into global ones.
    File {
        path: PathBuf,
        len: u64,
        remap: Option<Arc<Vec<u32>>>,
    },
}

/// A worker's event buffer.
#[derive(Debug)]
pub struct EventSink {
    buf: Vec<Ev>,
    cap: usize,
    runs: Vec<Run>,
}

fn write_run(evs: &[Ev], spill: &SpillDir) -> io::Result<(PathBuf, u64)> {
    let (path, f) = spill.new_file()?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    for e in evs {
        w.write_all(&e.to_bytes())?;
    }
    w.flush()?;
    spill.spilled_events.fetch_add(evs.len() as u64, Ordering::Relaxed);
    Ok((path, evs.len() as u64))
}

impl EventSink {
    pub fn new(cap: usize) -> Self {
        EventSink { buf: Vec::new(), cap: cap.max(2), runs: Vec::new() }
    }

    pub fn push(&mut self, ev: Ev, spill: &SpillDir) -> io::Result<()> {
        self.buf.push(ev);
        if self.buf.len() >= self.cap {
            self.buf.sort_unstable();
            let (path, len) = write_run(&self.buf, spill)?;
            self.runs.push(Run::File { path, len, remap: None });
            self.buf.clear();
        }
        Ok(())
    }

    /// The worker's runs, tenants renumbered with `remap` (local → global).
    pub fn finish(self, remap: Arc<Vec<u32>>) -> Vec<Run> {
        let EventSink { mut buf, mut runs, .. } = self;
        for r in &mut runs {
            if let Run::File { remap: m, .. } = r {
                *m = Some(remap.clone());
            }
        }
        if !buf.is_empty() {
            for e in &mut buf {
                let t = remap.get(e.tenant() as usize).copied().unwrap_or(0);
                *e = Ev { key: (e.key & !TENANT_MASK) | t, ..*e };
            }
            buf.sort_unstable();
            buf.shrink_to_fit();
            runs.push(Run::Mem(buf));
        }
        runs
    }
}
