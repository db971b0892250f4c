//! Hash maps looked up on every request (tenants, keys, models, limiter and
//! spend state): foldhash, seeded at random per process, instead of the
//! standard library's SipHash, which cost more than the lookups themselves.
//! Keys are tenant ids, aliases, model names and SHA-256 digests.

/// A `HashMap` with the fast hasher.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
