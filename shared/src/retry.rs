//! Retrying a request: what one failed attempt means ([`Attempt`]), what a token endpoint's
//! answer means ([`answer_of`]), and the bounded loop around them ([`with_retries`]); shared by
//! the ACR token service, the managed identity endpoints and the CI OIDC endpoints.

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

/// What a token endpoint's `response` means: `Ok(body)` for HTTP 200; else the error `describe`
/// makes of the status, headers and body, worth another try (after the server's `Retry-After`)
/// when the status is one of `heals`. A body that cannot be read is `unreadable`'s error, fatal.
pub(crate) async fn answer_of(
    response: reqwest::Response,
    heals: &[u16],
    unreadable: impl FnOnce(String) -> Error,
    describe: impl FnOnce(u16, &reqwest::header::HeaderMap, &[u8]) -> Error,
) -> Result<Vec<u8>, Attempt> {
    let status = response.status().as_u16();
    let wait = retry_after(response.headers());
    let headers = response.headers().clone();
    let body = crate::http::read_body(response)
        .await
        .map_err(|e| Attempt::Fatal(unreadable(e.to_string())))?;
    if status == 200 {
        return Ok(body);
    }
    let error = describe(status, &headers, &body);
    if heals.contains(&status) {
        Err(Attempt::Transient {
            error,
            retry_after: wait,
        })
    } else {
        Err(Attempt::Fatal(error))
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
