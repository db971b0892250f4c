//! Work sized by a body: collecting a body up to a limit, and work
//! proportional to a large body kept off the event loop. Shared by the
//! client's request ([`crate::request`]) and the upstream's answer
//! ([`crate::providers`]); imports neither.

use bytes::Bytes;
use futures::{Stream, StreamExt};

/// Bodies up to this size are read and validated before the cheap limits
/// are taken (cheap, and bad input is then answered 400 before a 429), and
/// parsed inline on the event loop; larger ones, or of undeclared length,
/// only after the cheap limits, and parsed on the bounded blocking pool
/// ([`bounded`]).
pub const INLINE_BODY_BYTES: usize = 64 * 1024;

/// Large bodies parsed or translated at once, process-wide: one less than
/// the cores (at least one), so the event loops always keep a core.
static HEAVY: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map(std::num::NonZeroUsize::get).unwrap_or(2);
    tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))
});

/// Runs `f` — work proportional to a body of `len` bytes — inline when the
/// body is small, else on the blocking pool, at most one less than the
/// cores at once (waiting for a turn). `None` if the task failed.
pub async fn bounded<T: Send + 'static>(len: usize, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    if len <= INLINE_BODY_BYTES {
        return Some(f());
    }
    let _turn = HEAVY.acquire().await.ok()?;
    tokio::task::spawn_blocking(f).await.ok()
}

/// Why [`collect_limited`] stopped.
#[derive(Debug)]
pub enum CollectError<E> {
    /// More than the limit arrived (the rest is left unread).
    TooLarge,
    Read(E),
}

/// Collects a body, at most `limit` bytes. A body that arrives as one chunk
/// (most do) is returned without a copy. Serves the client's request body
/// and the upstream's answer alike.
pub async fn collect_limited<S, E>(stream: &mut S, limit: u64) -> Result<Bytes, CollectError<E>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    collect_limited_sized(stream, limit, 0).await
}

/// [`collect_limited`] with the whole body's size when known (`size_hint`
/// bytes reserved when a second chunk arrives).
pub(crate) async fn collect_limited_sized<S, E>(
    stream: &mut S,
    limit: u64,
    size_hint: usize,
) -> Result<Bytes, CollectError<E>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut first: Option<Bytes> = None;
    let mut more: Option<bytes::BytesMut> = None;
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(CollectError::Read)?;
        total += chunk.len() as u64;
        if total > limit {
            return Err(CollectError::TooLarge);
        }
        match (&first, &mut more) {
            (None, _) => first = Some(chunk),
            (Some(f), None) => {
                let mut buf = bytes::BytesMut::with_capacity((f.len() + chunk.len()).max(size_hint));
                buf.extend_from_slice(f);
                buf.extend_from_slice(&chunk);
                more = Some(buf);
            }
            (Some(_), Some(buf)) => buf.extend_from_slice(&chunk),
        }
    }
    Ok(match more {
        Some(buf) => buf.freeze(),
        None => first.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(
        parts: Vec<Result<&'static [u8], &'static str>>,
    ) -> impl Stream<Item = Result<Bytes, &'static str>> + Unpin {
        futures::stream::iter(parts.into_iter().map(|p| p.map(Bytes::from_static)))
    }

    #[tokio::test]
    async fn collect_limited_keeps_one_chunk_joins_many_and_stops_at_the_limit() {
        static ONE: &[u8] = b"{\"a\":1}";
        let got = collect_limited(&mut chunks(vec![Ok(ONE)]), 7).await;
        assert!(matches!(&got, Ok(b) if b.as_ptr() == ONE.as_ptr() && b.len() == 7), "{got:?}");
        let got = collect_limited(&mut chunks(vec![Ok(b"ab"), Ok(b""), Ok(b"cd"), Ok(b"e")]), 5).await;
        assert!(matches!(&got, Ok(b) if &b[..] == b"abcde"), "{got:?}");
        let got = collect_limited(&mut chunks(vec![Ok(b"ab"), Ok(b"cd")]), 3).await;
        assert!(matches!(got, Err(CollectError::TooLarge)), "{got:?}");
        let got = collect_limited(&mut chunks(vec![Ok(b"ab"), Err("reset")]), 10).await;
        assert!(matches!(got, Err(CollectError::Read("reset"))), "{got:?}");
        let got = collect_limited(&mut chunks(vec![]), 0).await;
        assert!(matches!(&got, Ok(b) if b.is_empty()), "{got:?}");
    }
}
