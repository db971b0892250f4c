//! What the readers share: their context, their result, and which read
//! errors end an input rather than the analysis.

use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::format::Format;
use crate::agg::Quality;
use crate::events::SpillDir;
use crate::fields::{Plan, TimestampAt};

/// What a reader returns: the data-quality counters it kept itself, and the
/// read error that ended the input early, if any.
/// Everything a reader needs besides the input.
pub struct Ctx<'a> {
    pub plan: &'a Plan,
    pub at: TimestampAt,
    pub spill: &'a SpillDir,
    pub progress: Option<Arc<AtomicU64>>,
    pub forced: Option<Format>,
}

pub(super) type ReadResult = io::Result<(Quality, Option<String>)>;

/// Whether an I/O error is a problem of the data (corrupt or truncated
/// compression, invalid bytes) rather than of the machine (disk full).
pub(super) fn is_data_error(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof)
}
