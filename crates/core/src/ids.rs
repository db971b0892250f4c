//! Random ids for the request path: UUID v4 from the thread-local userspace
//! RNG (`uuid::Uuid::new_v4` asks the kernel for entropy on every call).

pub fn new_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random::<[u8; 16]>()).into_uuid()
}

/// A time-ordered id (UUID v7: Unix milliseconds, then random bits) for rows
/// that are only ever appended, such as usage records. Keys that grow with
/// time land at the right edge of the primary-key B-tree, so a batch of
/// inserts dirties a few pages instead of one random page per row (random v4
/// keys made SQLite rewrite ~one page per record to its WAL).
pub fn new_record_id(now_ms: i64) -> uuid::Uuid {
    let ms = u64::try_from(now_ms).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(ms, &rand::random::<[u8; 10]>()).into_uuid()
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_4() {
        let u = super::new_uuid();
        assert_eq!(u.get_version_num(), 4);
        assert_ne!(u, super::new_uuid());
    }

    #[test]
    fn record_ids_are_version_7_and_ordered_by_time() {
        let a = super::new_record_id(1_700_000_000_000);
        let b = super::new_record_id(1_700_000_000_001);
        assert_eq!(a.get_version_num(), 7);
        assert!(a.to_string() < b.to_string(), "text order follows time");
        assert_ne!(super::new_record_id(5), super::new_record_id(5));
        assert_eq!(super::new_record_id(-1).get_version_num(), 7);
    }
}
