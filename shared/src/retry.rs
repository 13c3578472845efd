//! Retrying a request: what one failed attempt means ([`Attempt`]) and the bounded loop around
//! it ([`with_retries`]), shared by the ACR token service and the managed identity endpoints.

use crate::error::Error;
use std::time::Duration;

/// The outcome of one failed request.
pub(crate) enum Attempt {
    /// The endpoint does not exist here: try discovery.
    NotThere(String),
    /// Worth another try after a pause (throttling, 5xx, connection trouble).
    Transient {
        error: Error,
        retry_after: Option<Duration>,
    },
    /// Will not heal by retrying (refusals, certificate failures, malformed answers).
    Fatal(Error),
}

impl Attempt {
    /// `error`, transient or fatal as `heals` says, with no server-given pause.
    pub(crate) fn healing_if(heals: bool, error: Error) -> Attempt {
        if heals {
            Attempt::Transient {
                error,
                retry_after: None,
            }
        } else {
            Attempt::Fatal(error)
        }
    }

    /// The error inside (for callers with no discovery step, `NotThere` never happens).
    pub(crate) fn into_inner(self) -> Error {
        match self {
            Attempt::Fatal(e) | Attempt::Transient { error: e, .. } => e,
            Attempt::NotThere(detail) => Error::InvalidConfig(detail),
        }
    }
}

/// Longest `Retry-After` the broker waits for; a longer one ends the attempt with the error.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(20);

/// Runs `op` until it succeeds, fails for good, or four retries have been spent, pausing with
/// exponential backoff and jitter, or as long as the server's `Retry-After` says. The caller's
/// overall deadline bounds the whole.
pub(crate) async fn with_retries<T, F, Fut>(op: F) -> Result<T, Attempt>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Attempt>>,
{
    use backon::Retryable;
    let backoff = backon::ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(4))
        .with_max_times(4);
    op.retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|a| matches!(a, Attempt::Transient { .. }))
        .adjust(|a, backoff| match a {
            Attempt::Transient {
                retry_after: Some(wait),
                ..
            } => (*wait <= MAX_RETRY_AFTER).then_some(*wait),
            _ => backoff,
        })
        .notify(|a, wait| {
            if let Attempt::Transient { error, .. } = a {
                log::info!("{error}; retrying in {} ms", wait.as_millis());
            }
        })
        .await
}

/// `Retry-After` in seconds (the HTTP-date form is not used by Azure's token services).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}
