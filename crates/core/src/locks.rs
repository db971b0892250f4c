//! Locking a `Mutex` whether or not a panic poisoned it: every state the
//! gateway keeps behind one stays consistent between its statements (no
//! half-done update is left to see), so the data is used as it is.

use std::sync::{Mutex, MutexGuard};

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
