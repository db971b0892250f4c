//! JSON lines, in parallel: one reader thread cuts 1 MiB chunks at line
//! ends, the workers parse them.

use std::io::{self, Read};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::ctx::{is_data_error, Ctx, ReadResult};
use crate::agg::{Aggregator, Quality};
use crate::fields::Slots;

const CHUNK: usize = 1 << 20;
/// Longer lines are reported as malformed and skipped without being buffered.
pub const MAX_LINE: usize = 16 << 20;

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

pub(super) fn read_lines(
    file: usize,
    mut r: impl Read,
    ctx: &Ctx<'_>,
    workers: &mut [Aggregator],
    endpoint: &str,
) -> ReadResult {
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
