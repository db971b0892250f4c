//! One input: its bytes counted, gzip detected by content, the format
//! detected (or given), then read by one of the readers.

use std::fmt;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::csv_file::read_csv;
use super::ctx::Ctx;
use super::detect::{detect, read_head, Mode};
use super::document::read_document;
use super::lines::read_lines;
use crate::agg::{Aggregator, Quality};

/// One input: a name for the report and a byte stream (gzip or not).
pub struct Input {
    pub name: String,
    pub reader: Box<dyn Read + Send>,
    /// Size in bytes, when known (for progress).
    pub size: Option<u64>,
}

impl Input {
    pub fn open(path: &std::path::Path) -> io::Result<Input> {
        let f = std::fs::File::open(path)?;
        let size = f.metadata().ok().map(|m| m.len());
        Ok(Input { name: path.display().to_string(), reader: Box::new(f), size })
    }

    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Input {
        let size = Some(bytes.len() as u64);
        Input { name: name.to_string(), reader: Box::new(Cursor::new(bytes)), size }
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Input").field("name", &self.name).field("size", &self.size).finish()
    }
}

/// What was read from one input (a type of the report, in [`sheepdog_types::analysis`]).
pub use sheepdog_types::analysis::InputSummary;

struct Counting<R> {
    inner: R,
    n: Arc<AtomicU64>,
    progress: Option<Arc<AtomicU64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(p) = &self.progress {
            p.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// Reads one input into the workers' aggregates.
pub fn read_input(file: usize, input: Input, ctx: &Ctx<'_>, workers: &mut [Aggregator]) -> io::Result<InputSummary> {
    let bytes = Arc::new(AtomicU64::new(0));
    let counting = Counting { inner: input.reader, n: bytes.clone(), progress: ctx.progress.clone() };
    let mut raw = BufReader::with_capacity(256 * 1024, counting);
    let gzip = raw.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let mut stream: Box<dyn Read + Send> =
        if gzip { Box::new(flate2::bufread::MultiGzDecoder::new(raw)) } else { Box::new(raw) };
    let mut summary = InputSummary { name: input.name, gzip, ..InputSummary::default() };
    let mut head = match read_head(&mut stream) {
        Ok(h) => h,
        Err(e) => {
            summary.format = "unreadable".into();
            summary.error = Some(format!("cannot read: {e}"));
            summary.bytes = bytes.load(Ordering::Relaxed);
            return Ok(summary);
        }
    };
    if head.starts_with(&[0xef, 0xbb, 0xbf]) {
        head.drain(..3);
    }
    let Some((format, mode)) = detect(&head, ctx.forced) else {
        summary.format = "empty".into();
        summary.detected = ctx.forced.is_none();
        summary.bytes = bytes.load(Ordering::Relaxed);
        summary.blank_lines = memchr::memchr_iter(b'\n', &head).count() as u64;
        return Ok(summary);
    };
    summary.format = format.as_str().into();
    summary.detected = ctx.forced.is_none();
    let reader = Cursor::new(head).chain(stream);
    let endpoint = format.default_endpoint();
    let (quality, error) = match mode {
        Mode::Lines => read_lines(file, reader, ctx, workers, endpoint)?,
        Mode::Csv => match workers.first_mut() {
            Some(w) => read_csv(file, reader, ctx, w, endpoint)?,
            None => (Quality::default(), None),
        },
        Mode::Document => match workers.first_mut() {
            Some(w) => read_document(file, reader, ctx, w, endpoint)?,
            None => (Quality::default(), None),
        },
    };
    if let Some(w) = workers.first_mut() {
        w.quality.merge(&quality);
    }
    summary.error = error;
    summary.bytes = bytes.load(Ordering::Relaxed);
    Ok(summary)
}
