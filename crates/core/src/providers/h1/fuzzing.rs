//! Entry points for the fuzz targets (crates/fuzz): the answer-head parser
//! and the body framing, driven over bytes in memory as `request::exchange` and
//! [`Body`](super::Body) drive them over a connection.

use bytes::BytesMut;

use super::framing::{Framing, Step};
use super::head::{parse_head, MAX_HEAD_BYTES};

/// What was read of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub status: u16,
    pub keep_alive: bool,
    /// Headers kept (those of an answer that is not a success).
    pub headers: usize,
    pub body: Vec<u8>,
    /// Whether the body reached its end (false: the input ran out first).
    pub complete: bool,
    /// Bytes left in the buffer after the body's end.
    pub rest: usize,
}

/// Reads an answer (head, then body as its head frames it) out of
/// `input` fed in pieces of `piece` bytes (at least 1). `Ok(None)`: the
/// head is incomplete.
pub fn read_answer(input: &[u8], piece: usize) -> Result<Option<Read>, String> {
    let mut pieces = input.chunks(piece.max(1));
    let mut buf = BytesMut::new();
    let head = loop {
        if let Some(head) = parse_head(&mut buf).map_err(|e| e.to_string())? {
            break head;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err("head too large".into());
        }
        match pieces.next() {
            Some(p) => buf.extend_from_slice(p),
            None => return Ok(None),
        }
    };
    let mut framing = head.framing;
    let mut body = Vec::new();
    let complete = loop {
        match framing.step(&mut buf)? {
            Step::Data(d) => body.extend_from_slice(&d),
            Step::End => break true,
            Step::NeedMore => match pieces.next() {
                Some(p) => buf.extend_from_slice(p),
                None => break framing == Framing::UntilClose,
            },
        }
    };
    let rest = buf.len() + pieces.map(<[u8]>::len).sum::<usize>();
    Ok(Some(Read {
        status: head.status.as_u16(),
        keep_alive: head.keep_alive,
        headers: head.headers.len(),
        body,
        complete,
        rest,
    }))
}
