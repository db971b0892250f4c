//! How an answer's body ends (`Content-Length`, chunked, the connection's
//! end) and the reader that takes it out of the buffer piece by piece.

use bytes::{Buf, Bytes, BytesMut};

/// The longest chunk-size line accepted.
pub(super) const MAX_CHUNK_LINE: usize = 4 * 1024;
/// The most trailer bytes accepted after the last chunk.
pub(super) const MAX_TRAILER_BYTES: usize = 64 * 1024;

/// How an answer's body ends, and how much of it is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunk),
    /// The body ends with the connection.
    UntilClose,
    /// The body has been read to its end.
    Done,
}

/// Where a chunked body's reader stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data, before its line end.
    DataEnd,
    /// After the last chunk, inside the trailer section; bytes of it seen.
    Trailers(usize),
}

/// What the buffer yields next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    Data(Bytes),
    /// More must be read first.
    NeedMore,
    /// The body is complete.
    End,
}

/// The position just past the next line end in `buf`, and the line without it.
fn line(buf: &[u8]) -> Option<(usize, &[u8])> {
    let end = memchr::memchr(b'\n', buf)?;
    let text = &buf[..end];
    Some((end + 1, text.strip_suffix(b"\r").unwrap_or(text)))
}

/// A chunk-size line's size (hex digits, optionally followed by extensions).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|&b| b == b';').next()?.trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| Some(n * 16 + u64::from(char::from(d).to_digit(16)?)))
}

impl Framing {
    /// Takes the next piece of the body out of `buf`.
    pub(super) fn step(&mut self, buf: &mut BytesMut) -> Result<Step, &'static str> {
        loop {
            match self {
                Framing::Done | Framing::Length(0) => {
                    *self = Framing::Done;
                    return Ok(Step::End);
                }
                Framing::Length(left) | Framing::Chunked(Chunk::Data(left)) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                    *left -= take as u64;
                    if *self == Framing::Chunked(Chunk::Data(0)) {
                        *self = Framing::Chunked(Chunk::DataEnd);
                    }
                    return Ok(Step::Data(buf.split_to(take).freeze()));
                }
                Framing::UntilClose => {
                    return Ok(if buf.is_empty() { Step::NeedMore } else { Step::Data(buf.split().freeze()) });
                }
                Framing::Chunked(Chunk::Size) => {
                    let Some((used, text)) = line(buf) else {
                        return if buf.len() > MAX_CHUNK_LINE {
                            Err("a chunk size line is too long")
                        } else {
                            Ok(Step::NeedMore)
                        };
                    };
                    let size = chunk_size(text).ok_or("a chunk size is invalid")?;
                    buf.advance(used);
                    *self = Framing::Chunked(if size == 0 { Chunk::Trailers(0) } else { Chunk::Data(size) });
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    let Some((used, text)) = line(buf) else {
                        return if buf.len() >= 2 {
                            Err("a chunk does not end where its size says")
                        } else {
                            Ok(Step::NeedMore)
                        };
                    };
                    if !text.is_empty() {
                        return Err("a chunk does not end where its size says");
                    }
                    buf.advance(used);
                    *self = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers(seen)) => {
                    let Some((used, text)) = line(buf) else {
                        return if *seen + buf.len() > MAX_TRAILER_BYTES {
                            Err("the trailer section is too long")
                        } else {
                            Ok(Step::NeedMore)
                        };
                    };
                    let end = text.is_empty();
                    *seen += used;
                    buf.advance(used);
                    if end {
                        *self = Framing::Done;
                    } else if *seen > MAX_TRAILER_BYTES {
                        return Err("the trailer section is too long");
                    }
                }
            }
        }
    }
}
