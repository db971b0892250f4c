//! The k-way merge of sorted runs (on disk and in memory) in (time, kind)
//! order, in passes when there are more than [`MAX_MERGE_FAN_IN`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::sync::Arc;

use super::ev::{Ev, EV_BYTES, TENANT_MASK};
use super::spill::{Run, SpillDir};

/// Runs merged at once at most; beyond, runs are merged in passes.
pub const MAX_MERGE_FAN_IN: usize = 128;

enum Source {
    Mem(std::vec::IntoIter<Ev>),
    File { r: BufReader<File>, left: u64, remap: Option<Arc<Vec<u32>>> },
}

impl Source {
    fn next(&mut self) -> io::Result<Option<Ev>> {
        match self {
            Source::Mem(it) => Ok(it.next()),
            Source::File { r, left, remap } => {
                if *left == 0 {
                    return Ok(None);
                }
                let mut b = [0u8; EV_BYTES];
                r.read_exact(&mut b)?;
                *left -= 1;
                let mut e = Ev::from_bytes(&b);
                if let Some(m) = remap {
                    let t = m.get(e.tenant() as usize).copied().unwrap_or(0);
                    e.key = (e.key & !TENANT_MASK) | t;
                }
                Ok(Some(e))
            }
        }
    }
}

/// A k-way merge of sorted runs in (time, kind) order.
pub struct Merger {
    sources: Vec<Source>,
    heads: Vec<Option<Ev>>,
    heap: BinaryHeap<Reverse<((i64, u32), usize)>>,
}

impl Merger {
    pub fn new(runs: Vec<Run>) -> io::Result<Merger> {
        let mut sources = Vec::new();
        for r in runs {
            sources.push(match r {
                Run::Mem(v) => Source::Mem(v.into_iter()),
                Run::File { path, len, remap } => {
                    Source::File { r: BufReader::with_capacity(64 * 1024, File::open(&path)?), left: len, remap }
                }
            });
        }
        let mut m = Merger { heads: vec![None; sources.len()], sources, heap: BinaryHeap::new() };
        for i in 0..m.sources.len() {
            m.refill(i)?;
        }
        Ok(m)
    }

    fn refill(&mut self, i: usize) -> io::Result<()> {
        let next = self.sources[i].next()?;
        if let Some(e) = next {
            self.heap.push(Reverse((e.order(), i)));
        }
        self.heads[i] = next;
        Ok(())
    }

    pub fn next_event(&mut self) -> io::Result<Option<Ev>> {
        let Some(Reverse((_, i))) = self.heap.pop() else {
            return Ok(None);
        };
        let e = self.heads[i];
        self.refill(i)?;
        Ok(e)
    }
}

/// Merges runs in passes until at most [`MAX_MERGE_FAN_IN`] remain (bounded open files and buffers).
pub fn reduce_runs(mut runs: Vec<Run>, spill: &SpillDir) -> io::Result<Vec<Run>> {
    while runs.len() > MAX_MERGE_FAN_IN {
        let rest = runs.split_off(MAX_MERGE_FAN_IN);
        let mut m = Merger::new(runs)?;
        let (path, f) = spill.new_file()?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let mut len = 0u64;
        while let Some(e) = m.next_event()? {
            w.write_all(&e.to_bytes())?;
            len += 1;
        }
        w.flush()?;
        runs = rest;
        runs.push(Run::File { path, len, remap: None });
    }
    Ok(runs)
}
