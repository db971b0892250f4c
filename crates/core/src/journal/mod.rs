//! The usage journal: every usage record on local disk before its answer is
//! complete, so a replica killed with SIGKILL loses none.
//!
//! Each replica appends JSON lines to its own segment files in
//! `accounting.journal_dir` (`<database tag>-<replica id>-<seq>.journal`,
//! held with an exclusive `flock` while the replica lives; the tag, a hash of
//! the database URL, keeps gateways of different databases sharing a
//! directory from replaying each other's records):
//! - `{"t":"s", …}` when a request is admitted (who, which model, the prompt
//!   estimate and its cost);
//! - `{"t":"p", …}` while a stream runs, at most once a second (the output
//!   streamed so far and its cost);
//! - `{"t":"u", "r": {usage record}}` when it ends, before the answer's last
//!   byte leaves.
//!
//! One `write` per line, no `fsync` on the request path; a background task
//! calls `fdatasync` every second ([`SYNC_EVERY`]), so a power loss costs at
//! most the last second of lines (a process crash costs none: the kernel has
//! them). A segment rotates after [`ROTATE_BYTES`] or [`ROTATE_AFTER`]; the
//! requests still in flight are carried into the new one. A closed segment
//! is deleted once every record in it is in the database.
//!
//! [`take_unheld`] takes the segments no live process holds (a crashed
//! replica's, this machine's earlier runs') for recovery (`accounting`
//! writes what the database lacks: the record id is the key, so replaying
//! twice writes once); a request started but never ended becomes an
//! `interrupted` record, billed for what is known (the prompt estimate and
//! anything streamed).

mod line;
mod recover;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sheepdog_store::UsageRecord;

use crate::fastmap::FastMap;

pub use line::{Progress, Start};
pub use recover::{database_tag, records_of, take_unheld, Unheld};

/// A segment is closed and a new one opened past this size…
pub const ROTATE_BYTES: u64 = 16 << 20;
/// …or this age.
pub const ROTATE_AFTER: Duration = Duration::from_secs(60);
/// How often the current segment is flushed to the disk (off the request path).
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
/// How often a running stream's progress is journaled at most.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

struct Segment {
    seq: u64,
    path: PathBuf,
    /// Written outside the lock (shared by the writers).
    file: Arc<File>,
    bytes: u64,
    opened: Instant,
}

#[derive(Default)]
struct State {
    current: Option<Segment>,
    next_seq: u64,
    /// Requests started and not ended: their start lines (carried over on
    /// rotation).
    in_flight: FastMap<String, Vec<u8>>,
    /// Records written to a segment and not yet in the database: id → segment.
    unwritten: FastMap<String, u64>,
    /// Closed segments and how many of their records the database still lacks.
    closed: BTreeMap<u64, (PathBuf, u64)>,
    /// Write failures (disk full…), logged once per segment.
    failed: bool,
}

/// This replica's journal.
pub struct Journal {
    dir: PathBuf,
    replica: String,
    state: Mutex<State>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens a new segment for `replica` in `dir` (created if missing).
    pub fn open(dir: &Path, replica: &str) -> std::io::Result<Arc<Journal>> {
        std::fs::create_dir_all(dir)?;
        let journal = Journal { dir: dir.to_path_buf(), replica: replica.to_string(), state: Mutex::default() };
        {
            let mut s = journal.lock();
            let segment = journal.new_segment(&mut s)?;
            s.current = Some(segment);
        }
        Ok(Arc::new(journal))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::locks::lock(&self.state)
    }

    fn new_segment(&self, s: &mut State) -> std::io::Result<Segment> {
        let seq = s.next_seq;
        s.next_seq += 1;
        let path = self.dir.join(format!("{}-{seq:06}.journal", self.replica));
        let file = OpenOptions::new().create_new(true).append(true).open(&path)?;
        file.try_lock().map_err(std::io::Error::other)?;
        Ok(Segment { seq, path, file: Arc::new(file), bytes: 0, opened: Instant::now() })
    }

    /// Appends one line (rotating first when due) and answers with the state
    /// locked again once it is written, and the segment it went to. The
    /// write itself happens outside the lock: the file is opened `O_APPEND`,
    /// so one `write` lands whole whatever the other threads write, and no
    /// thread waits behind another's system call. A line that went to a
    /// segment that rotated away meanwhile is written again to the current
    /// one (recovery keeps one record per id). A failure is logged, not
    /// returned: the record still goes to the database through the queue.
    fn append(&self, line: &[u8]) -> Option<(std::sync::MutexGuard<'_, State>, u64)> {
        let mut target = {
            let mut s = self.lock();
            self.rotate_if_due(&mut s);
            s.current.as_ref().map(|c| (c.file.clone(), c.seq))
        };
        for _ in 0..3 {
            let (file, seq) = target.take()?;
            let written = (&*file).write_all(line);
            let mut s = self.lock();
            if let Err(e) = written {
                if !std::mem::replace(&mut s.failed, true) {
                    tracing::error!(error = %e, "usage journal write failed");
                }
                return None;
            }
            match s.current.as_mut() {
                Some(c) if c.seq == seq => {
                    c.bytes += line.len() as u64;
                    return Some((s, seq));
                }
                Some(c) => target = Some((c.file.clone(), c.seq)),
                None => return None,
            }
        }
        None
    }

    fn rotate_if_due(&self, s: &mut State) {
        let due = s.current.as_ref().is_some_and(|c| c.bytes >= ROTATE_BYTES || c.opened.elapsed() >= ROTATE_AFTER);
        if !due {
            return;
        }
        let mut fresh = match self.new_segment(s) {
            Ok(seg) => seg,
            Err(e) => {
                tracing::error!(error = %e, "usage journal: cannot open a new segment; appending to the old one");
                return;
            }
        };
        // Requests still running are carried over: the old segment then holds
        // nothing the new one does not.
        for line in s.in_flight.values() {
            if (&*fresh.file).write_all(line).is_ok() {
                fresh.bytes += line.len() as u64;
            }
        }
        if let Some(old) = s.current.replace(fresh) {
            let left = s.unwritten.values().filter(|seq| **seq == old.seq).count() as u64;
            s.closed.insert(old.seq, (old.path, left));
            s.failed = false;
        }
        delete_done(&mut s.closed);
    }

    /// A request was admitted.
    pub fn start(&self, start: &Start<'_>) {
        let line = line::start(start);
        if let Some((mut s, _)) = self.append(&line) {
            s.in_flight.insert(start.id.to_string(), line);
        }
    }

    /// A stream's usage so far.
    pub fn progress(&self, id: &str, p: Progress) {
        let line = line::progress(id, p);
        self.append(&line);
    }

    /// A request ended with this record (before its answer completes).
    pub fn finish(&self, record: &UsageRecord) {
        let line = line::usage(record);
        match self.append(&line) {
            Some((mut s, seq)) => {
                s.in_flight.remove(&record.id);
                s.unwritten.insert(record.id.clone(), seq);
            }
            None => {
                self.lock().in_flight.remove(&record.id);
            }
        }
    }

    /// These records are in the database: closed segments whose records all
    /// are get deleted.
    pub fn written<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut s = self.lock();
        let mut any_closed = false;
        for id in ids {
            if let Some(seq) = s.unwritten.remove(id) {
                if let Some((_, left)) = s.closed.get_mut(&seq) {
                    *left = left.saturating_sub(1);
                    any_closed = true;
                }
            }
        }
        if any_closed {
            delete_done(&mut s.closed);
        }
    }

    /// Flushes the current segment to the disk (`fdatasync`), off the request
    /// path: called every [`SYNC_EVERY`].
    pub fn sync(&self) {
        let file = self.lock().current.as_ref().map(|c| c.file.clone());
        if let Some(f) = file {
            if let Err(e) = f.sync_data() {
                tracing::warn!(error = %e, "usage journal sync failed");
            }
        }
    }

    /// Syncs every [`SYNC_EVERY`] until `stop`.
    pub fn spawn_sync(self: &Arc<Self>, stop: crate::shutdown::Shutdown) -> tokio::task::JoinHandle<()> {
        let journal = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.wait() => return,
                    () = tokio::time::sleep(SYNC_EVERY) => {}
                }
                let j = journal.clone();
                let _ = tokio::task::spawn_blocking(move || j.sync()).await;
            }
        })
    }

    /// Clean stop: every record is in the database (the writer drained), so
    /// the segments go.
    pub fn close(&self) {
        let mut s = self.lock();
        if !s.unwritten.is_empty() || !s.in_flight.is_empty() {
            return; // kept for recovery
        }
        if let Some(c) = s.current.take() {
            let _ = std::fs::remove_file(&c.path);
        }
        for (_, (path, _)) in std::mem::take(&mut s.closed) {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn delete_done(closed: &mut BTreeMap<u64, (PathBuf, u64)>) {
    closed.retain(|_, (path, left)| {
        if *left > 0 {
            return true;
        }
        if let Err(e) = std::fs::remove_file(&*path) {
            tracing::warn!(error = %e, path = %path.display(), "usage journal segment not deleted");
        }
        false
    });
}

#[cfg(test)]
mod tests;
