//! Reading inputs: gzip detection (by content), format detection, and the
//! three readers — JSON lines (parallel: one reader thread cuts 1 MiB chunks
//! at line ends, workers parse them), CSV (streamed by the `csv` crate) and
//! JSON documents (an array, or an object holding arrays, streamed by serde).
//! Nothing reads a whole file into memory.
//!
//! `format`: the input formats; `detect`: format and reading mode from the
//! first bytes; `input`: one input (byte count, gzip, detection, dispatch);
//! `ctx`: what every reader is given; `lines`, `csv_file`, `document`: the
//! three readers.

mod csv_file;
mod ctx;
mod detect;
mod document;
mod format;
mod input;
mod lines;

pub use ctx::Ctx;
pub use format::Format;
pub use input::{read_input, Input, InputSummary};
pub use lines::MAX_LINE;
