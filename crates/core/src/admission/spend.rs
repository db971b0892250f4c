//! Spend reservations: monthly tenant budgets and credit-pool balances, in
//! integer nano-USD. Before a call the worst-case cost is reserved; after it
//! the reservation is replaced by the actual cost (or released on failure).
//! A hard limit is checked against settled + reserved + worst case, so
//! concurrent requests can never overspend it together.

use std::sync::Mutex;

/// One account: what was spent (settled) and what is held for requests in
/// flight, for one period (a calendar month for budgets; 0 for pools).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub period: i64,
    pub settled: i64,
    pub reserved: i64,
    /// Credits added (pools only): the balance is `credited - settled`.
    pub credited: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    pub available: i64,
    pub needed: i64,
}

#[derive(Debug, Default)]
pub struct SpendBook {
    accounts: Mutex<crate::fastmap::FastMap<String, Account>>,
}

impl SpendBook {
    fn with<R>(&self, key: &str, period: i64, f: impl FnOnce(&mut Account) -> R) -> R {
        let mut map = crate::locks::lock(&self.accounts);
        // Looked up by `&str` first: the key is allocated only for a new account.
        if let Some(acc) = map.get_mut(key) {
            if acc.period != period {
                // A new month: what was spent belongs to the old one.
                acc.period = period;
                acc.settled = 0;
            }
            return f(acc);
        }
        f(map.entry(key.to_string()).or_insert(Account { period, ..Account::default() }))
    }

    /// Sets what was already spent in `period` (from the database at start).
    pub fn load(&self, key: &str, period: i64, settled: i64, credited: i64) {
        self.with(key, period, |a| {
            a.settled = settled;
            a.credited = credited;
        })
    }

    /// Adds credit (a pool top-up or grant).
    pub fn credit(&self, key: &str, period: i64, amount: i64) {
        self.with(key, period, |a| a.credited = a.credited.saturating_add(amount))
    }

    /// Reserves `amount` if `settled + reserved + amount <= limit` (no limit: always).
    pub fn reserve(&self, key: &str, period: i64, limit: Option<i64>, amount: i64) -> Result<(), Shortfall> {
        self.with(key, period, |a| {
            if let Some(limit) = limit {
                let available = limit.saturating_sub(a.settled).saturating_sub(a.reserved);
                if amount > available {
                    return Err(Shortfall { available: available.max(0), needed: amount });
                }
            }
            a.reserved = a.reserved.saturating_add(amount);
            Ok(())
        })
    }

    /// Replaces a reservation by the actual cost (0 to release).
    pub fn settle(&self, key: &str, period: i64, reserved: i64, actual: i64) {
        self.with(key, period, |a| {
            a.reserved = a.reserved.saturating_sub(reserved).max(0);
            a.settled = a.settled.saturating_add(actual);
        })
    }

    pub fn get(&self, key: &str, period: i64) -> Account {
        self.with(key, period, |a| *a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_settle_release() {
        let b = SpendBook::default();
        b.load("t", 1, 700, 0);
        assert!(b.reserve("t", 1, Some(1000), 200).is_ok());
        assert_eq!(b.reserve("t", 1, Some(1000), 200), Err(Shortfall { available: 100, needed: 200 }));
        b.settle("t", 1, 200, 50);
        assert_eq!(b.get("t", 1), Account { period: 1, settled: 750, reserved: 0, credited: 0 });
        assert!(b.reserve("t", 1, None, 1_000_000).is_ok());
        // A new period starts from zero spend.
        assert_eq!(b.get("t", 2).settled, 0);
    }

    #[test]
    fn concurrent_reservations_never_overspend() {
        let b = std::sync::Arc::new(SpendBook::default());
        let handles: Vec<_> = (0..64)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || b.reserve("t", 0, Some(1000), 100).is_ok())
            })
            .collect();
        let ok = handles.into_iter().map(|h| h.join().unwrap()).filter(|ok| *ok).count();
        assert_eq!(ok, 10);
    }

    #[test]
    fn sums_saturate_instead_of_overflowing() {
        let book = SpendBook::default();
        book.reserve("k", 0, None, i64::MAX).unwrap();
        book.reserve("k", 0, None, i64::MAX).unwrap();
        assert_eq!(book.get("k", 0).reserved, i64::MAX);
        // A hard limit still refuses: nothing is available.
        let short = book.reserve("k", 0, Some(i64::MAX), 1).unwrap_err();
        assert_eq!(short.available, 0);
        book.settle("k", 0, i64::MAX, i64::MAX);
        book.settle("k", 0, i64::MAX, i64::MAX);
        let a = book.get("k", 0);
        assert_eq!((a.reserved, a.settled), (0, i64::MAX));
        assert!(book.reserve("k", 0, Some(i64::MIN), 1).is_err());
    }
}
