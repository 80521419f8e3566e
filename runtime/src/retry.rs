//! How a stage retries a failed attempt: how often, how long it waits, and for which errors.

use std::{fmt, sync::Arc, time::Duration};

use rand::Rng;

/// Decides whether an error is worth another attempt.
type RetryIf<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;

/// A stage's retry policy. The default makes one attempt and never retries.
///
/// ```
/// use std::time::Duration;
/// use flowdeck_runtime::RetryPolicy;
///
/// #[derive(Debug)]
/// enum FetchError { Timeout, NotFound }
///
/// let policy = RetryPolicy::<FetchError>::attempts(4)
///     .backoff(Duration::from_millis(50), Duration::from_secs(2))
///     .retry_if(|e| matches!(e, FetchError::Timeout));
/// assert_eq!(policy.max_attempts(), 4);
/// ```
pub struct RetryPolicy<E> {
    max_attempts: u32,
    base: Duration,
    max_delay: Duration,
    jitter: bool,
    filter: Option<RetryIf<E>>,
}

impl<E> Clone for RetryPolicy<E> {
    fn clone(&self) -> Self {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base: self.base,
            max_delay: self.max_delay,
            jitter: self.jitter,
            filter: self.filter.clone(),
        }
    }
}

impl<E> fmt::Debug for RetryPolicy<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("base", &self.base)
            .field("max_delay", &self.max_delay)
            .field("jitter", &self.jitter)
            .field("filtered", &self.filter.is_some())
            .finish()
    }
}

impl<E> Default for RetryPolicy<E> {
    fn default() -> Self {
        RetryPolicy::attempts(1)
    }
}

impl<E> RetryPolicy<E> {
    /// At most `n` attempts in all (1 means no retry). Backoff defaults to 100 ms doubling
    /// up to 10 s, with jitter.
    pub fn attempts(n: u32) -> Self {
        RetryPolicy {
            max_attempts: n.max(1),
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            jitter: true,
            filter: None,
        }
    }

    /// Exponential backoff: `base`, `2 × base`, `4 × base`, … never more than `max`.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base = base;
        self.max_delay = max.max(base);
        self
    }

    /// Turns jitter off: every wait is exactly the exponential delay. Jitter (on by default)
    /// spreads retries of many items that failed together, so they do not all hit a
    /// recovering service at the same instant.
    pub fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// Only errors for which `f` is true are retried; others fail at once.
    pub fn retry_if(mut self, f: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(f));
        self
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether an attempt that failed with `err` (None: a timeout or panic) gets another.
    /// `Err` carries the message of a panic in the `retry_if` filter: the item then fails
    /// with it instead of being retried.
    pub fn should_retry(&self, attempt: u32, err: Option<&E>) -> Result<bool, String> {
        if attempt >= self.max_attempts {
            return Ok(false);
        }
        match (&self.filter, err) {
            (Some(filter), Some(err)) => crate::guard::call(|| filter(err))
                .map_err(|m| format!("the retry_if filter panicked: {m}")),
            _ => Ok(true),
        }
    }

    /// The wait before attempt `attempt + 1`: exponential in `attempt`, and with jitter a
    /// uniform pick between half and all of it.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(31);
        let delay = self
            .base
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        if self.jitter && !delay.is_zero() {
            delay.mul_f64(rand::rng().random_range(0.5..=1.0))
        } else {
            delay
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_stop_at_the_cap() {
        let p = RetryPolicy::<()>::attempts(10)
            .backoff(Duration::from_millis(10), Duration::from_millis(70))
            .without_jitter();
        let delays: Vec<u128> = (1..=5).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 70, 70]);
    }

    #[test]
    fn jitter_stays_between_half_and_whole() {
        let p = RetryPolicy::<()>::attempts(3)
            .backoff(Duration::from_millis(100), Duration::from_secs(1));
        for _ in 0..200 {
            let d = p.delay(2);
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(200),
                "{d:?}"
            );
        }
    }

    #[test]
    fn filter_and_attempt_limit_decide_retries() {
        let p = RetryPolicy::<i32>::attempts(3).retry_if(|e| *e > 0);
        assert_eq!(p.should_retry(1, Some(&1)), Ok(true));
        assert_eq!(p.should_retry(1, Some(&-1)), Ok(false));
        assert_eq!(p.should_retry(2, None), Ok(true));
        assert_eq!(p.should_retry(3, Some(&1)), Ok(false));
        let p = RetryPolicy::<i32>::attempts(3).retry_if(|e| panic!("no rule for {e}"));
        assert_eq!(
            p.should_retry(1, Some(&5)),
            Err("the retry_if filter panicked: no rule for 5".to_owned())
        );
    }
}
