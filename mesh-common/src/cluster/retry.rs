//! Bounded retries of transient API errors: 429 (waiting out the server's `Retry-After`), 5xx,
//! and transport errors (connection reset or refused, timeouts). Every call kubectl-mesh makes
//! is idempotent (GET, LIST, server-side apply, delete with a UID precondition, access reviews),
//! so a retry never doubles an effect.

use std::{future::Future, time::Duration};

/// Attempts per call, the first included.
pub const ATTEMPTS: u32 = 6;
/// First backoff; doubled per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(4);
/// Longest `Retry-After` honoured; a server asking for more gets this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Whether an error is worth another attempt, and how long to wait first (`None`: give up).
pub fn transient(e: &kube::Error, attempt: u32) -> Option<Duration> {
    let backoff = FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(MAX_BACKOFF);
    match e {
        kube::Error::Api(s) if s.code == 429 => {
            let after = s
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|s| *s > 0)
                .map_or(backoff, |s| Duration::from_secs(u64::from(s)));
            Some(after.min(MAX_RETRY_AFTER))
        }
        kube::Error::Api(s) if matches!(s.code, 500 | 502 | 503 | 504) => Some(backoff),
        kube::Error::Api(_) => None,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => {
            Some(backoff)
        }
        _ => None,
    }
}

/// Runs `call` until it succeeds, fails for good, or [`ATTEMPTS`] are used up.
pub async fn retry<T, F, Fut>(mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) => match transient(&e, attempt) {
                Some(wait) if attempt + 1 < ATTEMPTS => {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::{Status, response::StatusDetails};

    fn status(code: u16, retry_after: u32) -> kube::Error {
        let mut s = Status::failure("x", "y").with_code(code);
        s.details = Some(StatusDetails {
            name: String::new(),
            group: String::new(),
            kind: String::new(),
            uid: String::new(),
            causes: Vec::new(),
            retry_after_seconds: retry_after,
        });
        kube::Error::Api(Box::new(s))
    }

    #[test]
    fn waits_out_retry_after_and_backs_off_on_5xx_but_not_on_4xx() {
        assert_eq!(transient(&status(429, 3), 0), Some(Duration::from_secs(3)));
        assert_eq!(transient(&status(429, 600), 0), Some(MAX_RETRY_AFTER));
        assert_eq!(
            transient(&status(503, 0), 0),
            Some(Duration::from_millis(250))
        );
        assert_eq!(transient(&status(500, 0), 10), Some(MAX_BACKOFF));
        assert_eq!(transient(&status(409, 0), 0), None);
        assert_eq!(transient(&status(404, 0), 0), None);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_bound() {
        let mut calls = 0;
        let r: Result<(), _> = retry(|| {
            calls += 1;
            async { Err(status(503, 0)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, ATTEMPTS);
        let mut n = 0;
        let ok = retry(|| {
            n += 1;
            let fail = n < 3;
            async move { if fail { Err(status(429, 1)) } else { Ok(7) } }
        })
        .await;
        assert_eq!(ok.unwrap(), 7);
    }
}
