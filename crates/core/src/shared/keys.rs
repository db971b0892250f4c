//! The Redis keys of one tenant's (and its pool's) shared state. Every key
//! starts with `[redis] key_prefix`, so deployments can share one Redis.

/// A tenant's keys (and its pool's, if it draws on one).
#[derive(Debug)]
pub struct Keys {
    pub requests: String,
    pub requests_amounts: String,
    pub tokens: String,
    pub tokens_amounts: String,
    pub concurrency: String,
    pub budget: String,
    pub budget_reservations: String,
    pub pool: String,
    pub pool_reservations: String,
}

impl Keys {
    pub fn new(prefix: &str, tenant: &str, pool: Option<&str>) -> Keys {
        let t = |suffix: &str| format!("{prefix}t:{tenant}:{suffix}");
        let pool = pool.unwrap_or("-");
        Keys {
            requests: t("rq"),
            requests_amounts: t("rqa"),
            tokens: t("tk"),
            tokens_amounts: t("tka"),
            concurrency: t("c"),
            budget: t("b"),
            budget_reservations: t("br"),
            pool: format!("{prefix}p:{pool}"),
            pool_reservations: format!("{prefix}p:{pool}:r"),
        }
    }

    /// The admit script's keys, in its order.
    pub fn admit(&self) -> [&str; 9] {
        [
            &self.requests,
            &self.requests_amounts,
            &self.tokens,
            &self.tokens_amounts,
            &self.concurrency,
            &self.budget,
            &self.budget_reservations,
            &self.pool,
            &self.pool_reservations,
        ]
    }
}

/// The key that marks an admitted request not yet settled (admission sets
/// it, its settlement deletes it).
pub fn open_marker(prefix: &str, lease: &str) -> String {
    format!("{prefix}l:{lease}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_starts_with_the_prefix_and_tenants_do_not_share_keys() {
        let a = Keys::new("sd:", "t1", Some("p1"));
        let b = Keys::new("sd:", "t2", None);
        for k in a.admit().iter().chain(b.admit().iter()) {
            assert!(k.starts_with("sd:"), "{k}");
        }
        let a_tenant: Vec<_> = a.admit()[..7].iter().map(|s| s.to_string()).collect();
        assert!(b.admit()[..7].iter().all(|k| !a_tenant.contains(&k.to_string())));
        assert_eq!(a.pool, "sd:p:p1");
    }
}
