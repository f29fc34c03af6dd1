//! When repeated failed logins lock an account, and for how long.

use time::{Duration, OffsetDateTime};

/// The lockout rule: `max_failures` consecutive failures lock the account for `duration`.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock the account.
    pub max_failures: i32,
    /// How long the account stays locked.
    pub duration: Duration,
}

/// What a failed login does to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterFailure {
    /// The new consecutive-failure count.
    pub failed_login_count: i32,
    /// Set when this failure locks the account.
    pub locked_until: Option<OffsetDateTime>,
}

impl LockoutPolicy {
    /// Whether an account locked until `locked_until` is locked at `now`.
    pub fn is_locked(locked_until: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
        locked_until.is_some_and(|until| until > now)
    }

    /// The account's state after one more failure at `now`. Reaching the limit locks it and
    /// starts the count again, so the next lock needs as many new failures.
    pub fn after_failure(&self, failed_login_count: i32, now: OffsetDateTime) -> AfterFailure {
        let count = failed_login_count.saturating_add(1);
        if count >= self.max_failures {
            AfterFailure {
                failed_login_count: 0,
                locked_until: Some(now + self.duration),
            }
        } else {
            AfterFailure {
                failed_login_count: count,
                locked_until: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_failure_locks_the_account_for_the_configured_time() {
        let policy = LockoutPolicy {
            max_failures: 5,
            duration: Duration::minutes(15),
        };
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(policy.after_failure(3, now).locked_until, None);
        let locked = policy.after_failure(4, now);
        assert_eq!(locked.locked_until, Some(now + Duration::minutes(15)));
        assert!(LockoutPolicy::is_locked(
            locked.locked_until,
            now + Duration::minutes(14)
        ));
        assert!(!LockoutPolicy::is_locked(
            locked.locked_until,
            now + Duration::minutes(16)
        ));
    }
}
