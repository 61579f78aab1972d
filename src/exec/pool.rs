//! The connection pool every IMAP job shares: open up to `--connections`
//! connections, then each takes folders from one queue until it is empty.
//! A folder that fails on a dropped connection, a timeout or a busy server
//! (`NO [UNAVAILABLE]`, `[THROTTLED]`) is retried on a fresh connection:
//! at once, then after 1 s and 2 s (each retry goes on from what the
//! state recorded, so progress is kept). Any other failure, or the last
//! retry's, is reported for that folder and the rest go on.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Ctx;
use crate::error::{Error, Result};
use crate::report::Summary;

/// Opens `n - 1` more connections besides `first`; a server refusing some
/// (connection limit) leaves fewer, with a warning.
pub(super) async fn open<C>(
    first: C,
    n: usize,
    ctx: &Ctx<'_>,
    connect: impl AsyncFn() -> Result<C>,
) -> Vec<C> {
    let mut conns = vec![first];
    let extra = futures_util::future::join_all((1..n.max(1)).map(|_| connect())).await;
    for c in extra {
        match c {
            Ok(c) => conns.push(c),
            Err(e) => ctx.reporter.warning(
                None,
                &format!("extra connection refused ({e}); continuing with fewer"),
            ),
        }
    }
    conns
}

/// One worker: takes items from `queue` until it is empty and runs `work`
/// on each with its connection. Returns the connection for logout.
pub(super) async fn drain<C, T>(
    mut conn: C,
    queue: &Mutex<VecDeque<T>>,
    ctx: &Ctx<'_>,
    folder_of: impl Fn(&T) -> String,
    connect: impl AsyncFn() -> Result<C>,
    work: impl AsyncFn(&mut C, &T) -> Result<()>,
) -> Result<C> {
    loop {
        ctx.interrupt.check()?;
        let Some(item) = queue.lock().unwrap().pop_front() else {
            break;
        };
        let mut attempt = 0;
        loop {
            match work(&mut conn, &item).await {
                Ok(()) => break,
                Err(Error::Interrupted) => return Err(Error::Interrupted),
                Err(e) if retryable(&e) && attempt < RETRIES => {
                    attempt += 1;
                    // Closed before its replacement opens, so a worker never
                    // holds two: `migrate`'s per-host cap counts on it.
                    drop(conn);
                    conn = reconnect(&e, &mut attempt, &folder_of(&item), ctx, &connect).await?;
                }
                Err(e) => {
                    ctx.reporter
                        .message_error(&folder_of(&item), None, None, &e.to_string());
                    ctx.reporter.add(&Summary {
                        failed: 1,
                        ..Default::default()
                    });
                    if retryable(&e) {
                        drop(conn);
                        conn = connect().await?;
                    }
                    break;
                }
            }
        }
    }
    Ok(conn)
}

/// Retries of one folder after a transient failure.
const RETRIES: u32 = 3;

fn retryable(e: &Error) -> bool {
    e.is_transient() || e.is_busy()
}

/// The pause before retry `attempt` (1-based): none, then 1 s, 2 s, 4 s…
fn backoff(attempt: u32) -> Duration {
    match attempt {
        0 | 1 => Duration::ZERO,
        n => Duration::from_secs(1 << (n - 2).min(6)),
    }
}

/// Waits out the backoff and opens a new connection; a connection refused
/// meanwhile uses up further retries of the same budget.
async fn reconnect<C>(
    why: &Error,
    attempt: &mut u32,
    folder: &str,
    ctx: &Ctx<'_>,
    connect: &impl AsyncFn() -> Result<C>,
) -> Result<C> {
    let mut why = why.to_string();
    loop {
        let wait = backoff(*attempt);
        ctx.reporter.warning(
            Some(folder),
            &format!(
                "{why}; retrying the folder on a new connection{} (retry {} of {RETRIES})",
                if wait.is_zero() {
                    String::new()
                } else {
                    format!(" in {} s", wait.as_secs())
                },
                *attempt
            ),
        );
        pause(wait, ctx).await?;
        match connect().await {
            Ok(c) => return Ok(c),
            Err(e) if retryable(&e) && *attempt < RETRIES => {
                *attempt += 1;
                why = e.to_string();
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sleeps, but a signal ends the wait at once.
async fn pause(d: Duration, ctx: &Ctx<'_>) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        ctx.interrupt.check()?;
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_after_an_immediate_retry() {
        let v: Vec<u64> = (1..=4).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(v, [0, 1, 2, 4]);
        assert_eq!(backoff(40), Duration::from_secs(64));
    }

    #[test]
    fn busy_and_dropped_are_retried_refusals_are_not() {
        let busy = Error::protocol(
            "s",
            "APPEND in folder X: server said NO: [THROTTLED] slow down",
        );
        let unavailable =
            Error::protocol("s", "SELECT: server said NO: [UNAVAILABLE] backend down");
        let refused = Error::protocol("s", "APPEND: server said NO: [OVERQUOTA] full");
        assert!(retryable(&busy) && retryable(&unavailable));
        assert!(!retryable(&refused));
        assert!(retryable(&Error::connect("s", "reset")));
    }
}
