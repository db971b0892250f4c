//! Sign-in throttling for `POST /admin/v1/auth/verify`: the policy is in
//! [`PAIR`] and [`ADDRESS`], the bound on concurrent password hashes in
//! [`SignIn::try_hash_slot`].
//!
//! - Every attempt is counted *before* its password is hashed, under one
//!   lock, so a burst cannot slip past the count while hashes run.
//! - Per (email, client address) pair: the first [`PAIR`]`.free` attempts go
//!   straight through; after that the pair waits 1 s, 2 s, 4 s, … (capped at
//!   [`PAIR`]`.cap`) before its next attempt is checked at all. A success
//!   clears the pair. Nobody else's failures delay a pair, so the right
//!   password from another address is never refused.
//! - Per client address (IPv6: per /64), looser: [`ADDRESS`]`.free` attempts,
//!   then the same doubling delays. A success takes its own attempt back.
//! - A count is forgotten after [`FORGET_AFTER`] without attempts.
//! - Both tables are LRUs of [`MAX_TRACKED`] entries keyed by a SHA-256 of
//!   the email and address (no emails or addresses kept in memory); the
//!   least recently used entry goes when full, never the whole table.
//! - At most one argon2id hash per core runs at once (each holds 19 MiB);
//!   when all slots are busy the attempt is answered `429` at once, without
//!   queueing on the blocking pool, and is not counted.
//!
//! The state is per gateway process, unless the replicas share state in
//! Redis (`[redis] url`): then the counts live there (the same policy, one
//! script call per attempt; see [`SignIn::begin_shared`]) and every replica
//! sees every attempt. While Redis is unreachable each replica falls back to
//! its own counts (still throttled, per replica).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hashlink::LruCache;
use sha2::{Digest, Sha256};
use sheepdog_core::shared::{SharedState, SignInThrottle, ThrottlePolicy};
use tokio::time::Instant;

/// How an attempt count turns into delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts allowed before any delay.
    pub free: u32,
    /// The first delay; each further attempt doubles it.
    pub base: Duration,
    /// The longest delay.
    pub cap: Duration,
}

/// One email from one client address.
pub const PAIR: Policy = Policy { free: 3, base: Duration::from_secs(1), cap: Duration::from_secs(300) };
/// One client address (all emails).
pub const ADDRESS: Policy = Policy { free: 20, base: Duration::from_secs(1), cap: Duration::from_secs(300) };
/// A count with no attempt for this long starts again from zero.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Entries per table (pairs, addresses); about 100 bytes each.
pub const MAX_TRACKED: usize = 100_000;

type Key = [u8; 16];

#[derive(Debug, Clone, Copy)]
struct Entry {
    count: u32,
    last: Instant,
    next_allowed: Instant,
}

impl Entry {
    fn fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) >= FORGET_AFTER
    }

    fn wait(&self, now: Instant) -> Option<Duration> {
        if self.fresh(now) || self.next_allowed <= now {
            None
        } else {
            Some(self.next_allowed - now)
        }
    }

    fn count(&mut self, policy: Policy, now: Instant) {
        if self.fresh(now) {
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.last = now;
        self.next_allowed = now + delay(policy, self.count);
    }
}

/// The delay after `count` attempts: none up to `free`, then base, 2×base, 4×base, … up to `cap`.
pub fn delay(policy: Policy, count: u32) -> Duration {
    if count < policy.free {
        return Duration::ZERO;
    }
    let doublings = (count - policy.free).min(31);
    policy.base.saturating_mul(1u32 << doublings).min(policy.cap)
}

/// The policies as the shared-state script takes them.
fn throttle<'a>(pair: &'a str, address: &'a str) -> SignInThrottle<'a> {
    let policy = |p: Policy| ThrottlePolicy { free: p.free, base: p.base, cap: p.cap };
    SignInThrottle {
        pair,
        address,
        pair_policy: policy(PAIR),
        address_policy: policy(ADDRESS),
        forget_after: FORGET_AFTER,
    }
}

#[derive(Debug)]
struct Tables {
    pairs: LruCache<Key, Entry>,
    addresses: LruCache<Key, Entry>,
}

/// Who is trying: the keys of the pair and of the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pair: Key,
    address: Key,
}

impl Attempt {
    /// The hex keys of the pair and the address (what Redis holds).
    pub fn hex_keys(&self) -> (String, String) {
        (hex::encode(self.pair), hex::encode(self.address))
    }

    /// `client_ip` is what the console passed (`None`: one shared "unknown" address).
    pub fn new(email: &str, client_ip: Option<IpAddr>) -> Attempt {
        let address = client_ip.map(sheepdog_types::net::throttle_key).unwrap_or_else(|| "unknown".into());
        Attempt { pair: key(&["pair", email, &address]), address: key(&["address", &address]) }
    }
}

fn key(parts: &[&str]) -> Key {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&digest[..16]);
    k
}

/// Sign-in throttle and hash slots (one per admin router).
#[derive(Debug)]
pub struct SignIn {
    tables: Mutex<Tables>,
    slots: Arc<tokio::sync::Semaphore>,
}

impl SignIn {
    /// `hash_slots`: how many password hashes may run at once (at least 1).
    pub fn new(hash_slots: usize, max_tracked: usize) -> SignIn {
        SignIn {
            tables: Mutex::new(Tables {
                pairs: LruCache::new(max_tracked.max(1)),
                addresses: LruCache::new(max_tracked.max(1)),
            }),
            slots: Arc::new(tokio::sync::Semaphore::new(hash_slots.max(1))),
        }
    }

    /// One slot per core.
    pub fn per_core() -> SignIn {
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        SignIn::new(cores, MAX_TRACKED)
    }

    /// A hash slot, or `None` when every slot is busy (answer 429 at once).
    pub fn try_hash_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Checks and counts an attempt: `Err(wait)` when the pair or the
    /// address must wait (nothing is counted then), else the attempt is
    /// counted now, before its password is checked.
    pub fn begin(&self, attempt: &Attempt, now: Instant) -> Result<(), Duration> {
        let mut guard = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let t = &mut *guard;
        let wait = [t.pairs.get(&attempt.pair).copied(), t.addresses.get(&attempt.address).copied()]
            .into_iter()
            .flatten()
            .filter_map(|e| e.wait(now))
            .max();
        if let Some(w) = wait {
            return Err(w);
        }
        for (table, policy, k) in [(&mut t.pairs, PAIR, attempt.pair), (&mut t.addresses, ADDRESS, attempt.address)] {
            match table.get_mut(&k) {
                Some(e) => e.count(policy, now),
                None => {
                    let mut e = Entry { count: 0, last: now, next_allowed: now };
                    e.count(policy, now);
                    table.insert(k, e);
                }
            }
        }
        Ok(())
    }

    /// [`SignIn::begin`] with the counts in the replicas' shared state when
    /// there is one (this process's own counts while it is unreachable).
    pub async fn begin_shared(
        &self,
        shared: Option<&SharedState>,
        attempt: &Attempt,
        now: Instant,
    ) -> Result<(), Duration> {
        if let Some(shared) = shared {
            let (pair, address) = attempt.hex_keys();
            match shared.signin(&throttle(&pair, &address), false).await {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => return Err(wait),
                Err(e) => tracing::warn!(error = %e, "shared sign-in throttle unreachable; counting here"),
            }
        }
        self.begin(attempt, now)
    }

    /// [`SignIn::succeeded`] in the shared state too, when there is one.
    pub async fn succeeded_shared(&self, shared: Option<&SharedState>, attempt: &Attempt) {
        if let Some(shared) = shared {
            let (pair, address) = attempt.hex_keys();
            if let Err(e) = shared.signin(&throttle(&pair, &address), true).await {
                tracing::warn!(error = %e, "shared sign-in throttle unreachable");
            }
        }
        self.succeeded(attempt);
    }

    /// The password was right: the pair starts over and the address gets its attempt back.
    pub fn succeeded(&self, attempt: &Attempt) {
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        t.pairs.remove(&attempt.pair);
        if let Some(e) = t.addresses.get_mut(&attempt.address) {
            e.count = e.count.saturating_sub(1);
            e.next_allowed = e.last + delay(ADDRESS, e.count);
        }
    }

    /// Hash slots free now (tests and metrics).
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// Tracked (pairs, addresses).
    pub fn tracked(&self) -> (usize, usize) {
        let t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        (t.pairs.len(), t.addresses.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let d: Vec<u64> = (1..=14).map(|n| delay(PAIR, n).as_secs()).collect();
        assert_eq!(d, [0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(delay(PAIR, u32::MAX), PAIR.cap);
        assert_eq!(delay(ADDRESS, 19), Duration::ZERO);
        assert_eq!(delay(ADDRESS, 20), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pair_waits_longer_after_each_attempt_and_others_are_not_delayed() {
        let s = SignIn::new(2, 100);
        let mallory = Attempt::new("admin@x", ip("203.0.113.66"));
        for _ in 0..PAIR.free - 1 {
            s.begin(&mallory, Instant::now()).unwrap();
        }
        // The third attempt is counted before hashing: the fourth must wait 1 s.
        s.begin(&mallory, Instant::now()).unwrap();
        assert_eq!(s.begin(&mallory, Instant::now()), Err(Duration::from_secs(1)));
        // The same email from another address is not delayed (the real admin signs in).
        let admin = Attempt::new("admin@x", ip("198.51.100.7"));
        s.begin(&admin, Instant::now()).unwrap();
        s.succeeded(&admin);

        let mut waits = Vec::new();
        for _ in 0..6 {
            let wait = s.begin(&mallory, Instant::now()).unwrap_err();
            waits.push(wait.as_secs());
            tokio::time::advance(wait).await;
            s.begin(&mallory, Instant::now()).unwrap();
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32]);
        // A refused attempt does not add to the count (the wait stays as it was).
        let before = s.begin(&mallory, Instant::now()).unwrap_err();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(s.begin(&mallory, Instant::now()).unwrap_err(), before - Duration::from_secs(1));
        // Forgotten after a quiet period.
        tokio::time::advance(FORGET_AFTER).await;
        s.begin(&mallory, Instant::now()).unwrap();
        s.begin(&mallory, Instant::now()).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn success_clears_the_pair_and_returns_the_address_attempt() {
        let s = SignIn::new(1, 100);
        let a = Attempt::new("a@x", ip("192.0.2.1"));
        s.begin(&a, Instant::now()).unwrap();
        s.begin(&a, Instant::now()).unwrap();
        s.succeeded(&a);
        for _ in 0..PAIR.free {
            s.begin(&a, Instant::now()).unwrap();
        }
        assert!(s.begin(&a, Instant::now()).is_err());
        s.succeeded(&a);
        // The pair is cleared; the address is still well below its bound.
        s.begin(&a, Instant::now()).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_is_bounded_across_emails() {
        let s = SignIn::new(1, 1000);
        let from = ip("192.0.2.9");
        for i in 0..ADDRESS.free - 1 {
            s.begin(&Attempt::new(&format!("user{i}@x"), from), Instant::now()).unwrap();
        }
        s.begin(&Attempt::new("last@x", from), Instant::now()).unwrap();
        let wait = s.begin(&Attempt::new("fresh@x", from), Instant::now()).unwrap_err();
        assert_eq!(wait, ADDRESS.base);
        // Another address is not affected; an IPv6 /64 counts as one address.
        s.begin(&Attempt::new("fresh@x", ip("192.0.2.10")), Instant::now()).unwrap();
        for i in 0..ADDRESS.free {
            let _ = s.begin(&Attempt::new(&format!("u{i}@x"), ip(&format!("2001:db8::{i:x}"))), Instant::now());
        }
        assert!(s.begin(&Attempt::new("v6@x", ip("2001:db8::ffff")), Instant::now()).is_err());
        tokio::time::advance(wait).await;
        s.begin(&Attempt::new("fresh@x", from), Instant::now()).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn tables_are_bounded_least_recently_used_first() {
        let s = SignIn::new(1, 50);
        let victim = Attempt::new("victim@x", ip("192.0.2.200"));
        for _ in 0..PAIR.free {
            s.begin(&victim, Instant::now()).unwrap();
        }
        assert!(s.begin(&victim, Instant::now()).is_err());
        for i in 0..49u32 {
            s.begin(&Attempt::new("x@x", ip(&format!("10.0.{}.{}", i / 250, i % 250))), Instant::now()).unwrap();
        }
        assert_eq!(s.tracked(), (50, 50));
        // Still tracked (a refused attempt keeps it recent), never cleared wholesale.
        assert!(s.begin(&victim, Instant::now()).is_err());
        for i in 0..200u32 {
            s.begin(&Attempt::new("y@x", ip(&format!("10.1.{}.{}", i / 250, i % 250))), Instant::now()).unwrap();
        }
        assert_eq!(s.tracked(), (50, 50));
    }

    #[tokio::test]
    async fn hash_slots_are_bounded_and_released() {
        let s = SignIn::new(2, 10);
        let a = s.try_hash_slot().unwrap();
        let _b = s.try_hash_slot().unwrap();
        assert!(s.try_hash_slot().is_none(), "a third hash must not start");
        drop(a);
        assert!(s.try_hash_slot().is_some());
        assert_eq!(SignIn::per_core().free_slots(), std::thread::available_parallelism().unwrap().get());
    }
}
