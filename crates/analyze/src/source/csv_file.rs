//! CSV with a header, streamed by the `csv` crate; columns matched to the
//! field paths once per file.

use std::io::{BufReader, Read};

use super::ctx::{is_data_error, Ctx, ReadResult};
use crate::agg::{Aggregator, Quality};
use crate::fields::Slots;

pub(super) fn read_csv(file: usize, r: impl Read, ctx: &Ctx<'_>, w: &mut Aggregator, endpoint: &str) -> ReadResult {
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
