//! Reading inputs: gzip detection (by content), format detection, and the
//! three readers — JSON lines (parallel: one reader thread cuts 1 MiB chunks
//! at line ends, workers parse them), CSV (streamed by the `csv` crate) and
//! JSON documents (an array, or an object holding arrays, streamed by serde).
//! Nothing reads a whole file into memory.

use std::fmt;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::agg::{Aggregator, Quality, NO_ENDPOINT};
use crate::events::SpillDir;
use crate::fields::{Plan, Slots, TimestampAt};

/// Input formats (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Format {
    /// JSON lines of request/response records as applications log them.
    #[serde(rename = "jsonl")]
    Jsonl,
    /// LiteLLM's spend logs (`LiteLLM_SpendLogs` rows) as a JSON array or JSON lines.
    #[serde(rename = "litellm-json")]
    LitellmJson,
    /// LiteLLM's spend logs as CSV.
    #[serde(rename = "litellm-csv")]
    LitellmCsv,
    /// Sheepdog's own usage records (`usage_records` columns) as CSV.
    #[serde(rename = "sheepdog-csv")]
    SheepdogCsv,
    /// Sheepdog's own usage records as JSON lines.
    #[serde(rename = "sheepdog-jsonl")]
    SheepdogJsonl,
    /// Any CSV with a header; columns mapped by name or `--csv-map`.
    #[serde(rename = "csv")]
    Csv,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Jsonl,
        Format::LitellmJson,
        Format::LitellmCsv,
        Format::SheepdogCsv,
        Format::SheepdogJsonl,
        Format::Csv,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::LitellmJson => "litellm-json",
            Format::LitellmCsv => "litellm-csv",
            Format::SheepdogCsv => "sheepdog-csv",
            Format::SheepdogJsonl => "sheepdog-jsonl",
            Format::Csv => "csv",
        }
    }

    fn is_csv(self) -> bool {
        matches!(self, Format::LitellmCsv | Format::SheepdogCsv | Format::Csv)
    }

    /// The endpoint of records that do not name one.
    fn default_endpoint(self) -> &'static str {
        match self {
            Format::SheepdogCsv | Format::SheepdogJsonl => "/v1/chat/completions",
            _ => NO_ENDPOINT,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        Format::ALL.into_iter().find(|f| f.as_str() == t || (t == "json" && *f == Format::Jsonl)).ok_or_else(|| {
            format!(
                "unknown format {s:?}: use one of {}",
                Format::ALL.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
            )
        })
    }
}

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

/// What was read from one input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSummary {
    pub name: String,
    /// The format used (detected or given); `empty` for an empty input.
    pub format: String,
    pub detected: bool,
    pub gzip: bool,
    /// Bytes read from the input as given (compressed, if gzip).
    pub bytes: u64,
    pub lines: u64,
    pub records: u64,
    pub malformed: u64,
    pub blank_lines: u64,
    /// A read error that ended this input early (the part before it is analysed).
    pub error: Option<String>,
}

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

/// Everything a reader needs besides the input.
pub struct Ctx<'a> {
    pub plan: &'a Plan,
    pub at: TimestampAt,
    pub spill: &'a SpillDir,
    pub progress: Option<Arc<AtomicU64>>,
    pub forced: Option<Format>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Lines,
    Document,
    Csv,
}

const HEAD: usize = 64 * 1024;
const CHUNK: usize = 1 << 20;
/// Longer lines are reported as malformed and skipped without being buffered.
pub const MAX_LINE: usize = 16 << 20;

fn first_line(b: &[u8]) -> &[u8] {
    let end = memchr::memchr(b'\n', b).unwrap_or(b.len());
    let l = &b[..end];
    l.strip_suffix(b"\r").unwrap_or(l)
}

fn keys_of(line: &[u8]) -> Vec<String> {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(line)
        .map(|m| m.keys().map(|k| k.to_ascii_lowercase()).collect())
        .unwrap_or_default()
}

fn json_format(keys: &[String]) -> Format {
    let has = |k: &str| keys.iter().any(|x| x == k);
    if has("starttime") && (has("spend") || has("call_type")) {
        Format::LitellmJson
    } else if has("created_ms") && has("model_requested") {
        Format::SheepdogJsonl
    } else {
        Format::Jsonl
    }
}

fn csv_format(header: &[u8]) -> Format {
    let h = String::from_utf8_lossy(header).to_ascii_lowercase();
    let cols: Vec<&str> = h.split(',').map(|c| c.trim().trim_matches('"')).collect();
    let has = |k: &str| cols.contains(&k);
    if has("starttime") && (has("spend") || has("call_type")) {
        Format::LitellmCsv
    } else if has("created_ms") && has("model_requested") {
        Format::SheepdogCsv
    } else {
        Format::Csv
    }
}

/// Decides the format and reading mode from the first bytes (BOM and
/// leading whitespace skipped). `None`: the input is empty.
fn detect(head: &[u8], forced: Option<Format>) -> Option<(Format, Mode)> {
    let start = head.iter().position(|b| !b.is_ascii_whitespace())?;
    let b = &head[start..];
    let line = first_line(b);
    let json_mode = |b: &[u8]| -> Mode {
        if b[0] == b'[' {
            return Mode::Document;
        }
        if serde_json::from_slice::<IgnoredAny>(line).is_ok() || memchr::memchr(b'\n', b).is_none() {
            return Mode::Lines;
        }
        // The first line is not a JSON value: a malformed first record of
        // JSON lines (a later line parses) or a pretty-printed document.
        let later_line_parses = b
            .split(|c| *c == b'\n')
            .skip(1)
            .take(8)
            .any(|l| l.first() == Some(&b'{') && serde_json::from_slice::<IgnoredAny>(l).is_ok());
        let t = String::from_utf8_lossy(line);
        let t = t.trim();
        if !later_line_parses && (t == "{" || t.ends_with('{') || t.ends_with('[') || t.ends_with(',')) {
            Mode::Document
        } else {
            Mode::Lines
        }
    };
    if let Some(f) = forced {
        if f.is_csv() {
            return Some((f, Mode::Csv));
        }
        return Some((f, json_mode(b)));
    }
    match b[0] {
        b'[' | b'{' => {
            let mode = json_mode(b);
            if mode == Mode::Lines {
                return Some((json_format(&keys_of(line)), mode));
            }
            // A document: the first record's keys decide between LiteLLM and others.
            let sample = String::from_utf8_lossy(&b[..b.len().min(4096)]).to_ascii_lowercase();
            let f = if sample.contains("\"starttime\"")
                && (sample.contains("\"spend\"") || sample.contains("\"call_type\""))
            {
                Format::LitellmJson
            } else if sample.contains("\"created_ms\"") && sample.contains("\"model_requested\"") {
                Format::SheepdogJsonl
            } else {
                Format::Jsonl
            };
            Some((f, mode))
        }
        _ => {
            // JSON lines whose first line is garbage: a later line is a JSON object.
            let later = b
                .split(|c| *c == b'\n')
                .skip(1)
                .take(8)
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .find(|l| l.first() == Some(&b'{') && serde_json::from_slice::<IgnoredAny>(l).is_ok());
            match later {
                Some(l) => Some((json_format(&keys_of(l)), Mode::Lines)),
                None => Some((csv_format(line), Mode::Csv)),
            }
        }
    }
}

fn read_head(r: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; HEAD];
    let mut n = 0;
    while n < HEAD {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    Ok(head)
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

/// Whether an I/O error is a problem of the data (corrupt or truncated
/// compression, invalid bytes) rather than of the machine (disk full).
fn is_data_error(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof)
}

struct Chunk {
    buf: Vec<u8>,
    first_line: u64,
}

fn process_chunk(w: &mut Aggregator, chunk: &Chunk, file: usize, ctx: &Ctx<'_>, endpoint: &str) -> io::Result<()> {
    let buf = &chunk.buf;
    let mut line_no = chunk.first_line;
    let mut start = 0;
    let process = |w: &mut Aggregator, line: &[u8], line_no: u64| -> io::Result<()> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        w.quality.file(file).lines += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            w.quality.file(file).blank += 1;
            return Ok(());
        }
        let mut slots = Slots::new();
        let mut de = serde_json::Deserializer::from_slice(line);
        let parsed = ctx.plan.extract_json(&mut de, &mut slots).and_then(|obj| de.end().map(|_| obj));
        match parsed {
            Ok(true) => match ctx.plan.resolve(&mut slots, ctx.at) {
                Ok(rec) => w.add(&rec, file, endpoint, ctx.spill)?,
                Err(reason) => w.quality.malformed(file, Some(line_no), None, reason),
            },
            Ok(false) => w.quality.malformed(file, Some(line_no), None, "not a JSON object".into()),
            Err(e) => w.quality.malformed(file, Some(line_no), None, format!("invalid JSON: {e}")),
        }
        Ok(())
    };
    for nl in memchr::memchr_iter(b'\n', buf) {
        process(w, &buf[start..nl], line_no)?;
        line_no += 1;
        start = nl + 1;
    }
    if start < buf.len() {
        process(w, &buf[start..], line_no)?;
    }
    Ok(())
}

type ReadResult = io::Result<(Quality, Option<String>)>;

fn read_lines(file: usize, mut r: impl Read, ctx: &Ctx<'_>, workers: &mut [Aggregator], endpoint: &str) -> ReadResult {
    let mut quality = Quality::default();
    let mut read_error = None;
    let (tx, rx) = mpsc::sync_channel::<Chunk>(workers.len() * 2);
    let rx = Arc::new(Mutex::new(rx));
    let (recycle_tx, recycle_rx) = mpsc::channel::<Vec<u8>>();
    let worker_error: Mutex<Option<io::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for w in workers.iter_mut() {
            let rx = rx.clone();
            let recycle = recycle_tx.clone();
            let worker_error = &worker_error;
            s.spawn(move || loop {
                let next = match rx.lock() {
                    Ok(g) => g.recv(),
                    Err(p) => p.into_inner().recv(),
                };
                let Ok(chunk) = next else { break };
                if let Err(e) = process_chunk(w, &chunk, file, ctx, endpoint) {
                    if let Ok(mut g) = worker_error.lock() {
                        g.get_or_insert(e);
                    }
                    break;
                }
                let _ = recycle.send(chunk.buf);
            });
        }
        drop(rx);
        drop(recycle_tx);
        let mut line_no: u64 = 1;
        let mut carry: Vec<u8> = Vec::new();
        let mut skipping = false;
        loop {
            let mut buf = recycle_rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK));
            buf.clear();
            buf.append(&mut carry);
            // A line that does not fit in MAX_LINE is skipped, never buffered further.
            let target = CHUNK.max(buf.len() * 2).min(MAX_LINE);
            let mut eof = false;
            while buf.len() < target {
                let filled = buf.len();
                buf.resize(target, 0);
                match r.read(&mut buf[filled..]) {
                    Ok(0) => {
                        buf.truncate(filled);
                        eof = true;
                        break;
                    }
                    Ok(n) => buf.truncate(filled + n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(filled),
                    Err(e) => {
                        buf.truncate(filled);
                        read_error = Some(e);
                        eof = true;
                        break;
                    }
                }
            }
            if skipping {
                match memchr::memchr(b'\n', &buf) {
                    Some(i) => {
                        buf.drain(..=i);
                        line_no += 1;
                        skipping = false;
                    }
                    None => {
                        if eof {
                            break;
                        }
                        continue;
                    }
                }
            }
            if !eof {
                match memchr::memrchr(b'\n', &buf) {
                    Some(i) => {
                        carry.extend_from_slice(&buf[i + 1..]);
                        buf.truncate(i + 1);
                    }
                    None if buf.len() >= MAX_LINE => {
                        quality.file(file).lines += 1;
                        quality.malformed(
                            file,
                            Some(line_no),
                            None,
                            format!("line longer than {} MiB", MAX_LINE >> 20),
                        );
                        skipping = true;
                        continue;
                    }
                    None => {
                        carry = buf;
                        continue;
                    }
                }
            }
            if !buf.is_empty() {
                let lines = memchr::memchr_iter(b'\n', &buf).count() as u64;
                if tx.send(Chunk { buf, first_line: line_no }).is_err() {
                    break;
                }
                line_no += lines;
            }
            if eof {
                break;
            }
        }
        drop(tx);
    });
    if let Ok(mut g) = worker_error.lock() {
        if let Some(e) = g.take() {
            return Err(e);
        }
    }
    let error = match read_error {
        Some(e) if is_data_error(&e) => Some(format!(
            "read error after line {}: {e}; the rest of this input was skipped",
            quality_lines(workers, file)
        )),
        Some(e) => return Err(e),
        None => None,
    };
    Ok((quality, error))
}

fn quality_lines(workers: &[Aggregator], file: usize) -> u64 {
    workers.iter().map(|w| w.quality.files.get(file).map(|f| f.lines).unwrap_or(0)).sum()
}

fn read_csv(file: usize, r: impl Read, ctx: &Ctx<'_>, w: &mut Aggregator, endpoint: &str) -> ReadResult {
    let mut quality = Quality::default();
    let mut rdr =
        csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(BufReader::with_capacity(1 << 20, r));
    let headers = match rdr.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => return Ok((quality, Some(format!("cannot read the CSV header: {e}")))),
    };
    let columns: Vec<_> =
        headers.iter().map(|h| std::str::from_utf8(h).ok().and_then(|n| ctx.plan.column(n))).collect();
    if columns.iter().all(Option::is_none) {
        return Ok((
            quality,
            Some(format!(
                "no CSV column is a known field (header: {}); map columns with --csv-map COLUMN=FIELD",
                String::from_utf8_lossy(headers.as_slice()).chars().take(200).collect::<String>()
            )),
        ));
    }
    w.quality.file(file).lines += 1; // the header
    let mut row = csv::ByteRecord::new();
    let mut error = None;
    loop {
        match rdr.read_byte_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {
                let line = row.position().map(|p| p.line());
                w.quality.file(file).lines += 1;
                let mut slots = Slots::new();
                let mut bad = None;
                for (i, cell) in row.iter().enumerate() {
                    if let Some(Some(entry)) = columns.get(i) {
                        match std::str::from_utf8(cell) {
                            Ok(s) => ctx.plan.put_text(*entry, s, &mut slots),
                            Err(_) => bad = Some(format!("column {} is not UTF-8", i + 1)),
                        }
                    }
                }
                if let Some(reason) = bad {
                    quality.malformed(file, line, None, reason);
                    continue;
                }
                match ctx.plan.resolve(&mut slots, ctx.at) {
                    Ok(rec) => w.add(&rec, file, endpoint, ctx.spill)?,
                    Err(reason) => quality.malformed(file, line, None, reason),
                }
            }
            Err(e) => {
                let line = e.position().map(|p| p.line());
                match e.into_kind() {
                    csv::ErrorKind::Io(io) if is_data_error(&io) => {
                        error = Some(format!("read error: {io}; the rest of this input was skipped"));
                        break;
                    }
                    csv::ErrorKind::Io(io) => return Err(io),
                    other => {
                        w.quality.file(file).lines += 1;
                        quality.malformed(file, line, None, format!("invalid CSV: {other:?}"));
                    }
                }
            }
        }
    }
    Ok((quality, error))
}

struct DocState<'a, 'c> {
    file: usize,
    ctx: &'a Ctx<'c>,
    w: &'a mut Aggregator,
    endpoint: &'a str,
    quality: Quality,
    n: u64,
    io: Option<io::Error>,
}

struct RecordSeed<'s, 'a, 'c> {
    st: &'s mut DocState<'a, 'c>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let st = self.st;
        st.n += 1;
        st.w.quality.file(st.file).lines += 1;
        let mut slots = Slots::new();
        let is_obj = st.ctx.plan.extract_json(d, &mut slots)?;
        if !is_obj {
            st.quality.malformed(st.file, None, Some(st.n), "not a JSON object".into());
            return Ok(());
        }
        match st.ctx.plan.resolve(&mut slots, st.ctx.at) {
            Ok(rec) => {
                if let Err(e) = st.w.add(&rec, st.file, st.endpoint, st.ctx.spill) {
                    st.io = Some(e);
                    return Err(serde::de::Error::custom("cannot spill events to disk"));
                }
            }
            Err(reason) => st.quality.malformed(st.file, None, Some(st.n), reason),
        }
        Ok(())
    }
}

/// A JSON document: an array of records, or an object whose array values are arrays of records.
struct DocVisitor<'s, 'a, 'c> {
    st: &'s mut DocState<'a, 'c>,
}

impl<'de> Visitor<'de> for DocVisitor<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of records or an object holding one")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(RecordSeed { st: &mut *self.st })?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(ArrayOrSkip { st: &mut *self.st })?;
        }
        Ok(())
    }
}

struct ArrayOrSkip<'s, 'a, 'c> {
    st: &'s mut DocState<'a, 'c>,
}

impl<'de> DeserializeSeed<'de> for ArrayOrSkip<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ArrayOrSkip<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        DocVisitor { st: self.st }.visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

fn read_document(file: usize, r: impl Read, ctx: &Ctx<'_>, w: &mut Aggregator, endpoint: &str) -> ReadResult {
    let mut st = DocState { file, ctx, w, endpoint, quality: Quality::default(), n: 0, io: None };
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 20, r));
    let res = de.deserialize_any(DocVisitor { st: &mut st }).and_then(|_| de.end());
    if let Some(e) = st.io.take() {
        return Err(e);
    }
    let error = match res {
        Ok(()) => None,
        Err(e) if e.is_io() => {
            let msg = format!("read error after record {}: {e}; the rest of this input was skipped", st.n);
            Some(msg)
        }
        Err(e) => {
            st.quality.malformed(
                file,
                Some(e.line() as u64),
                Some(st.n.max(1)),
                format!("invalid JSON document: {e}; the rest of this input was skipped"),
            );
            None
        }
    };
    Ok((st.quality, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        let d = |s: &str| detect(s.as_bytes(), None).map(|(f, m)| (f.as_str(), m));
        assert_eq!(d(""), None);
        assert_eq!(d("  \n\n"), None);
        assert_eq!(d("{\"timestamp\":1}\n{\"timestamp\":2}\n"), Some(("jsonl", Mode::Lines)));
        assert_eq!(d("{\"startTime\":\"x\",\"spend\":0.1}\n"), Some(("litellm-json", Mode::Lines)));
        assert_eq!(d("[{\"startTime\":\"x\",\"spend\":0.1}]"), Some(("litellm-json", Mode::Document)));
        assert_eq!(d("{\n  \"data\": [\n"), Some(("jsonl", Mode::Document)));
        assert_eq!(d("{\"created_ms\":1,\"model_requested\":\"m\"}\n"), Some(("sheepdog-jsonl", Mode::Lines)));
        assert_eq!(d("request_id,startTime,endTime,spend,model\n"), Some(("litellm-csv", Mode::Csv)));
        assert_eq!(d("id,request_id,tenant_id,model_requested,created_ms\n"), Some(("sheepdog-csv", Mode::Csv)));
        assert_eq!(d("when,who,what\n"), Some(("csv", Mode::Csv)));
        assert_eq!(d("garbage\n{\"timestamp\":2}\n"), Some(("jsonl", Mode::Lines)));
        assert_eq!(d("{broken\n{\"timestamp\":1}\n"), Some(("jsonl", Mode::Lines)));
        assert_eq!(detect(b"{\n \"a\": 1\n}", Some(Format::Jsonl)).map(|x| x.1), Some(Mode::Document));
        assert_eq!(detect(b"{broken\n", Some(Format::Jsonl)).map(|x| x.1), Some(Mode::Lines));
        assert_eq!(detect(b"a,b\n", Some(Format::LitellmCsv)).map(|x| x.1), Some(Mode::Csv));
    }

    #[test]
    fn format_names() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>().unwrap(), f);
        }
        assert!("xml".parse::<Format>().unwrap_err().contains("litellm-csv"));
    }
}
