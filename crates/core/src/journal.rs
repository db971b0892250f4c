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

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sheepdog_store::UsageRecord;

use crate::fastmap::FastMap;

/// A segment is closed and a new one opened past this size…
pub const ROTATE_BYTES: u64 = 16 << 20;
/// …or this age.
pub const ROTATE_AFTER: Duration = Duration::from_secs(60);
/// How often the current segment is flushed to the disk (off the request path).
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
/// How often a running stream's progress is journaled at most.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// A request admitted: enough to bill it if it never ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    pub id: String,
    pub request_id: String,
    pub tenant_id: String,
    pub key_id: Option<String>,
    pub cost_center: Option<String>,
    pub model: String,
    pub provider: String,
    pub stream: bool,
    pub created_ms: i64,
    pub pool_id: Option<String>,
    /// The prompt estimate and its cost (nano-USD).
    pub input_tokens: i64,
    pub cost_nanos: i64,
}

/// How far a stream got: its usage so far, priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_nanos: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t")]
enum Line {
    #[serde(rename = "s")]
    Start(Start),
    #[serde(rename = "p")]
    Progress { id: String, p: Progress },
    #[serde(rename = "u")]
    Usage { r: UsageRecord },
}

struct Segment {
    seq: u64,
    path: PathBuf,
    file: File,
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
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn new_segment(&self, s: &mut State) -> std::io::Result<Segment> {
        let seq = s.next_seq;
        s.next_seq += 1;
        let path = self.dir.join(format!("{}-{seq:06}.journal", self.replica));
        let file = OpenOptions::new().create_new(true).append(true).open(&path)?;
        file.try_lock().map_err(std::io::Error::other)?;
        Ok(Segment { seq, path, file, bytes: 0, opened: Instant::now() })
    }

    /// Appends one line (rotating first when due). A failure is logged, not
    /// returned: the record still goes to the database through the queue.
    fn append(&self, s: &mut State, line: &[u8]) -> Option<u64> {
        self.rotate_if_due(s);
        let seg = s.current.as_mut()?;
        match seg.file.write_all(line) {
            Ok(()) => {
                seg.bytes += line.len() as u64;
                Some(seg.seq)
            }
            Err(e) => {
                if !std::mem::replace(&mut s.failed, true) {
                    tracing::error!(error = %e, path = %seg.path.display(), "usage journal write failed");
                }
                None
            }
        }
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
            if fresh.file.write_all(line).is_ok() {
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
    pub fn start(&self, start: &Start) {
        let Some(line) = encode(&Line::Start(start.clone())) else { return };
        let mut s = self.lock();
        if self.append(&mut s, &line).is_some() {
            s.in_flight.insert(start.id.clone(), line);
        }
    }

    /// A stream's usage so far.
    pub fn progress(&self, id: &str, p: Progress) {
        let Some(line) = encode(&Line::Progress { id: id.to_string(), p }) else { return };
        let mut s = self.lock();
        self.append(&mut s, &line);
    }

    /// A request ended with this record (before its answer completes).
    pub fn finish(&self, record: &UsageRecord) {
        let Some(line) = encode(&Line::Usage { r: record.clone() }) else { return };
        let mut s = self.lock();
        s.in_flight.remove(&record.id);
        if let Some(seq) = self.append(&mut s, &line) {
            s.unwritten.insert(record.id.clone(), seq);
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
        let file = self.lock().current.as_ref().and_then(|c| c.file.try_clone().ok());
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

fn encode(line: &Line) -> Option<Vec<u8>> {
    let mut v = serde_json::to_vec(line).ok()?;
    v.push(b'\n');
    Some(v)
}

/// The records a set of journal lines stands for: every ended request's
/// record, and an `interrupted` one for each request started and not ended.
pub fn records_of(lines: impl IntoIterator<Item = String>) -> Vec<UsageRecord> {
    let mut starts: HashMap<String, Start> = HashMap::new();
    let mut progress: HashMap<String, Progress> = HashMap::new();
    let mut ended: BTreeMap<String, UsageRecord> = BTreeMap::new();
    for text in lines {
        // A line cut by the crash (the last one) is not JSON: skipped.
        match serde_json::from_str::<Line>(&text) {
            Ok(Line::Start(s)) => {
                starts.insert(s.id.clone(), s);
            }
            Ok(Line::Progress { id, p }) => {
                progress.insert(id, p);
            }
            Ok(Line::Usage { r }) => {
                ended.insert(r.id.clone(), r);
            }
            Err(_) => {}
        }
    }
    for (id, s) in starts {
        if ended.contains_key(&id) {
            continue;
        }
        let p = progress.get(&id).copied().unwrap_or(Progress {
            input_tokens: s.input_tokens,
            output_tokens: 0,
            cost_nanos: s.cost_nanos,
        });
        ended.insert(
            id.clone(),
            UsageRecord {
                id,
                request_id: s.request_id,
                tenant_id: s.tenant_id,
                key_id: s.key_id,
                cost_center: s.cost_center,
                model_requested: s.model,
                model_served: None,
                provider: Some(s.provider),
                input_tokens: p.input_tokens,
                output_tokens: p.output_tokens,
                cached_tokens: 0,
                cost_nanos: p.cost_nanos,
                latency_ms: 0,
                ttft_ms: None,
                status_code: 500,
                outcome: "interrupted".into(),
                error_code: Some("interrupted".into()),
                stream: s.stream,
                created_ms: s.created_ms,
                pool_id: s.pool_id,
            },
        );
    }
    ended.into_values().collect()
}

/// The tag of a database's segments: 16 hex digits of the SHA-256 of its URL.
pub fn database_tag(url: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(url.as_bytes())[..8])
}

/// The segments of a database no live process holds, taken for recovery
/// (locked by us until [`Unheld::done`]), and the records they stand for.
#[derive(Debug)]
pub struct Unheld {
    files: Vec<(PathBuf, File)>,
    pub records: Vec<UsageRecord>,
}

impl Unheld {
    pub fn segments(&self) -> usize {
        self.files.len()
    }

    /// The records are in the database: the segments go (deleted while
    /// still locked).
    pub fn done(self) {
        for (path, _) in &self.files {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(error = %e, path = %path.display(), "recovered journal segment not deleted");
            }
        }
    }
}

/// Takes every segment of the database tagged `tag` in `dir` that no live
/// process holds (a crashed replica's, this machine's earlier runs'). The
/// caller writes the records that are not in the database yet, then calls
/// [`Unheld::done`]; dropped instead, the segments stay for the next try.
pub async fn take_unheld(dir: &Path, tag: &str) -> std::io::Result<Unheld> {
    let dir = dir.to_path_buf();
    let prefix = format!("{tag}-");
    let (files, lines) =
        tokio::task::spawn_blocking(move || read_unheld(&dir, &prefix)).await.map_err(std::io::Error::other)??;
    Ok(Unheld { records: if files.is_empty() { Vec::new() } else { records_of(lines) }, files })
}

/// Segments taken for recovery: each path with its (locked) handle.
type Held = Vec<(PathBuf, File)>;

/// The lines of every segment no live process holds (locked by us while we
/// read and write them).
fn read_unheld(dir: &Path, prefix: &str) -> std::io::Result<(Held, Vec<String>)> {
    let mut files = Vec::new();
    let mut lines = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((files, lines)),
        Err(e) => return Err(e),
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "journal"))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
        .collect();
    paths.sort();
    for path in paths {
        let Ok(file) = File::open(&path) else { continue };
        if file.try_lock().is_err() {
            continue; // a live replica's
        }
        for line in BufReader::new(&file).lines() {
            match line {
                Ok(l) => lines.push(l),
                Err(_) => break, // cut mid-line (or not text): the rest is unreadable
            }
        }
        files.push((path, file));
    }
    Ok((files, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(id: &str) -> Start {
        Start {
            id: id.into(),
            request_id: format!("req-{id}"),
            tenant_id: "t".into(),
            key_id: Some("k".into()),
            cost_center: Some("cc".into()),
            model: "gpt-4.1".into(),
            provider: "openai".into(),
            stream: true,
            created_ms: 1_780_000_000_000,
            pool_id: None,
            input_tokens: 100,
            cost_nanos: 200_000,
        }
    }

    fn ended(id: &str) -> UsageRecord {
        let s = start(id);
        UsageRecord {
            id: s.id,
            request_id: s.request_id,
            tenant_id: s.tenant_id,
            key_id: s.key_id,
            cost_center: s.cost_center,
            model_requested: s.model.clone(),
            model_served: Some(s.model),
            provider: Some(s.provider),
            input_tokens: 90,
            output_tokens: 10,
            cached_tokens: 0,
            cost_nanos: 260_000,
            latency_ms: 12,
            ttft_ms: Some(3),
            status_code: 200,
            outcome: "ok".into(),
            error_code: None,
            stream: true,
            created_ms: s.created_ms,
            pool_id: None,
        }
    }

    /// A fresh directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tempdir() -> TempDir {
        let d = std::env::temp_dir().join(format!("sheepdog-journal-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    fn lines(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            out.extend(std::fs::read_to_string(p).unwrap().lines().map(str::to_string));
        }
        out
    }

    #[test]
    fn ended_requests_keep_their_record_and_unended_ones_are_interrupted() {
        let dir = tempdir();
        let j = Journal::open(dir.path(), "r1").unwrap();
        j.start(&start("a"));
        j.finish(&ended("a"));
        j.start(&start("b")); // killed mid-stream, after some output
        j.progress("b", Progress { input_tokens: 100, output_tokens: 7, cost_nanos: 256_000 });
        j.start(&start("c")); // killed before any output
        let mut text = lines(dir.path());
        text.push("{\"t\":\"u\",\"r\":{\"id\":\"cut".into()); // the crash cut the last line
        let records = records_of(text);
        let by_id: HashMap<_, _> = records.iter().map(|r| (r.id.as_str(), r)).collect();
        assert_eq!(records.len(), 3);
        assert_eq!(*by_id["a"], ended("a"));
        let b = by_id["b"];
        assert_eq!(
            (b.outcome.as_str(), b.status_code, b.error_code.as_deref()),
            ("interrupted", 500, Some("interrupted"))
        );
        assert_eq!((b.input_tokens, b.output_tokens, b.cost_nanos), (100, 7, 256_000));
        assert_eq!((b.tenant_id.as_str(), b.key_id.as_deref(), b.cost_center.as_deref()), ("t", Some("k"), Some("cc")));
        let c = by_id["c"];
        assert_eq!(
            (c.input_tokens, c.output_tokens, c.cost_nanos),
            (100, 0, 200_000),
            "billed for the prompt estimate"
        );
    }

    #[test]
    fn a_live_replicas_segment_is_not_taken_and_a_clean_stop_leaves_nothing() {
        let dir = tempdir();
        let j = Journal::open(dir.path(), "r1").unwrap();
        j.start(&start("a"));
        // Another process (another open file description) cannot take it.
        let (held, _) = read_unheld(dir.path(), "r1").unwrap();
        assert!(held.is_empty(), "a held segment is not recovered");
        j.finish(&ended("a"));
        j.close();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "a record not yet in the database keeps it");
        j.written(["a"]);
        j.close();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_closed_segment_goes_once_its_records_are_written_and_running_requests_are_carried_over() {
        let dir = tempdir();
        let j = Journal::open(dir.path(), "r1").unwrap();
        j.start(&start("long"));
        j.start(&start("a"));
        j.finish(&ended("a"));
        {
            // Rotate now (as if the segment were a minute old).
            let mut s = j.lock();
            if let Some(c) = s.current.as_mut() {
                c.opened -= ROTATE_AFTER;
            }
        }
        j.start(&start("b"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        j.written(["a"]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the old segment went");
        // The new segment alone still knows the long request.
        let records = records_of(lines(dir.path()));
        let ids: Vec<_> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["b", "long"]);
    }
}
