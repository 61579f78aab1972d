//! The throttle governor: the one place a run decides how fast it may go.
//!
//! - **Refusals for now.** `NO [THROTTLED]`/`[UNAVAILABLE]` and Microsoft's
//!   "Request is throttled. Suggested Backoff Time: N milliseconds" (in
//!   NO, BAD or BYE) pause *every* connection of the run: for the time
//!   the server asked, else 1 s, 2 s, 4 s…; then the work is retried on a
//!   new connection, going on from what the state recorded.
//! - **Too many connections.** "Too many simultaneous connections",
//!   `[LIMIT]` or such a BYE at login: the pool gets smaller (the worker
//!   that was refused stops and its folder goes back to the queue); the
//!   run never fails for it while one connection works.
//! - **Daily budgets.** Bytes downloaded from and uploaded to an account
//!   in any 24 hours (Gmail: 2,500 MB and 500 MB), kept in the state
//!   across runs in hourly buckets. A transfer reserves its messages'
//!   sizes before it starts and gives back what it did not use; when the
//!   next message would go over, the run copies what fits, records it,
//!   and stops with [`Error::Budget`] (exit 5) saying when to resume.
//! - **Dropped connections and timeouts**: retried at once, then after
//!   1 s and 2 s, as before.
//! - **A refused OAuth2 token** ([`Error::TokenRefused`]: it died early,
//!   or a session ended because it expired and the reconnection still
//!   had it): logged in again at once. The refusal spent the token, so
//!   that login refreshes it, once for every connection of the account
//!   (`oauth/bearer.rs`); a fresh token refused too is
//!   [`Error::OAuth`], which fails. Commands the governor does not run
//!   follow the same rule through [`fresh_login`].
//!
//! Protocol code only reports what the server said ([`Error::pacing`]);
//! the pool (`pool.rs`) and the byte flows of fetch and push ask here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Ctx;
use crate::config::Account;
use crate::error::{Error, Result};
use crate::state::State;

/// Retries of one folder after a dropped connection or a timeout.
const RETRIES: u32 = 3;
/// Retries after "slow down" refusals: their pauses grow, so more fit.
const BUSY_RETRIES: u32 = 6;
/// A suggested backoff longer than this is not waited for: the folder
/// fails and the next run tries again.
const MAX_BACKOFF: Duration = Duration::from_secs(30 * 60);
/// A budget's window, and its bucket.
const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

/// Which way bytes go, as a budget counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Download,
    Upload,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Download => "download",
            Direction::Upload => "upload",
        }
    }
}

/// One daily budget that applies to the run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Budget {
    key: String,
    direction: Direction,
    limit: u64,
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Retry on a new connection after this pause.
    Retry(Duration),
    /// The server takes no more connections: this worker stops and its
    /// work goes back to the queue for the others.
    Retire,
    /// Report the failure; the run goes on with the next item.
    Fail,
}

/// What [`Governor::reserve`] granted.
#[derive(Debug)]
pub(super) struct Reserved {
    /// How many of the messages offered fit, from the start.
    pub fits: usize,
    /// The bytes reserved for them, and the hour they are booked under.
    bytes: u64,
    hour: i64,
    /// Set when not all fit: the stop to return once those are recorded.
    pub stop: Option<Error>,
}

/// Shared by every worker of one run.
pub(super) struct Governor {
    budgets: Vec<Budget>,
    state: Arc<Mutex<State>>,
    dry_run: bool,
    /// No new request before this: a pause the server asked for.
    paused_until: Mutex<Option<Instant>>,
    /// Workers still running; the last one never retires.
    workers: AtomicUsize,
    /// A budget stop: every worker ends after its current item.
    stopped: std::sync::atomic::AtomicBool,
    /// The IMAP sessions' shared pauses (source and target of a push).
    paces: Mutex<Vec<crate::imap::Pace>>,
}

impl Governor {
    /// A governor for a run reading from `from` (download budget) and,
    /// for push, writing to `to` (upload budget).
    pub fn new(
        state: Arc<Mutex<State>>,
        from: &Account,
        to: Option<&Account>,
        dry_run: bool,
    ) -> Governor {
        let mut budgets = Vec::new();
        if let (Some(key), Some(limit)) = (from.budget_key(), from.daily_download) {
            budgets.push(Budget {
                key,
                direction: Direction::Download,
                limit,
            });
        }
        if let Some(to) = to
            && let (Some(key), Some(limit)) = (to.budget_key(), to.daily_upload)
        {
            budgets.push(Budget {
                key,
                direction: Direction::Upload,
                limit,
            });
        }
        Governor {
            budgets,
            state,
            dry_run,
            paused_until: Mutex::new(None),
            workers: AtomicUsize::new(1),
            stopped: Default::default(),
            paces: Mutex::new(Vec::new()),
        }
    }

    /// Makes the sessions opened with `cfg` hold back with the run when a
    /// server asks for a pause (mid-transfer too, not only between folders).
    pub fn watch(&self, cfg: &crate::endpoint::ServerConfig) {
        self.paces.lock().unwrap().push(cfg.pace.clone());
    }

    /// How many workers the pool runs now.
    pub fn set_workers(&self, n: usize) {
        self.workers.store(n.max(1), Ordering::SeqCst);
    }

    /// True once a budget stopped the run: workers take no new item.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Ends the run for every worker (a budget is used up).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Decides what follows error `e`, the `attempt`-th failure (1-based)
    /// of the same item, and starts the run-wide pause it calls for.
    pub fn after(&self, e: &Error, attempt: u32) -> Verdict {
        let others = self.workers.load(Ordering::SeqCst) > 1;
        let v = verdict(e, attempt, others);
        if let Verdict::Retry(wait) = v
            && !wait.is_zero()
            && e.pacing().is_some()
        {
            let until = Instant::now() + wait;
            let mut p = self.paused_until.lock().unwrap();
            if p.is_none_or(|t| t < until) {
                *p = Some(until);
            }
            for pace in self.paces.lock().unwrap().iter() {
                pace.hold_until(until);
            }
        }
        if v == Verdict::Retire {
            self.workers.fetch_sub(1, Ordering::SeqCst);
        }
        v
    }

    /// Waits out a pause the server asked for (any connection's), so no
    /// connection of the run sends before it ends. A signal ends the wait.
    pub async fn ready(&self, ctx: &Ctx<'_>) -> Result<()> {
        loop {
            let until = *self.paused_until.lock().unwrap();
            match until {
                Some(t) if t > Instant::now() => self.pause(t - Instant::now(), ctx).await?,
                _ => return Ok(()),
            }
        }
    }

    /// Sleeps `d`; a signal ends the wait at once, and the sessions'
    /// shared pause with it, so what they have in flight is recorded.
    pub async fn pause(&self, d: Duration, ctx: &Ctx<'_>) -> Result<()> {
        let r = pause(d, ctx).await;
        if r.is_err() {
            for p in self.paces.lock().unwrap().iter() {
                p.release();
            }
        }
        r
    }

    /// The first connection of a run: refused for now (throttled, too
    /// many connections held by other clients) or dropped, it is tried
    /// again as a folder would be; anything else fails the run at once.
    pub async fn first<C>(&self, ctx: &Ctx<'_>, connect: impl AsyncFn() -> Result<C>) -> Result<C> {
        let mut attempt = 0;
        loop {
            self.ready(ctx).await?;
            let e = match connect().await {
                Ok(c) => return Ok(c),
                Err(e) => e,
            };
            attempt += 1;
            // Alone: a connection limit means waiting for other clients.
            let v = match verdict(&e, attempt, false) {
                Verdict::Retire => Verdict::Fail,
                v => v,
            };
            match v {
                Verdict::Retry(wait) => {
                    ctx.reporter
                        .warning(None, &format!("{e}; connecting again{}", in_secs(wait)));
                    self.pause(wait, ctx).await?;
                }
                _ => return Err(e),
            }
        }
    }

    /// Reserves in every budget of the run the bytes of as many of
    /// `sizes` (in order) as fit in the last 24 hours' allowance, and
    /// books them in the state before anything is transferred. `fits ==
    /// sizes.len()` and no stop when there is no budget, in a dry run, or
    /// when everything fits.
    pub fn reserve(&self, sizes: &[u64]) -> Result<Reserved> {
        let now = super::now();
        let hour = now.div_euclid(HOUR);
        let mut r = Reserved {
            fits: sizes.len(),
            bytes: 0,
            hour,
            stop: None,
        };
        if self.budgets.is_empty() || self.dry_run || sizes.is_empty() {
            return Ok(r);
        }
        let mut st = self.state.lock().unwrap();
        for b in &self.budgets {
            let hours = st.budget_hours(&b.key, b.direction.name(), hour - 25)?;
            let (n, resume) = fitting(&hours, b.limit, now, &sizes[..r.fits]);
            if n < r.fits {
                r.fits = n;
                r.stop = Some(Error::Budget {
                    account: b.key.clone(),
                    direction: b.direction.name(),
                    limit: b.limit,
                    resume_at: resume,
                });
            }
        }
        r.bytes = sizes[..r.fits].iter().sum();
        if r.bytes > 0 {
            for b in &self.budgets {
                st.budget_add(&b.key, b.direction.name(), hour, r.bytes as i64)?;
            }
        }
        Ok(r)
    }

    /// After the transfer: books what was really moved (`actual` bytes)
    /// instead of the reservation. Less gives back, more (sizes the
    /// server did not tell) adds.
    pub fn settle(&self, r: &Reserved, actual: u64) -> Result<()> {
        if self.budgets.is_empty() || self.dry_run || actual == r.bytes {
            return Ok(());
        }
        let diff = actual as i64 - r.bytes as i64;
        let mut st = self.state.lock().unwrap();
        for b in &self.budgets {
            st.budget_add(&b.key, b.direction.name(), r.hour, diff)?;
        }
        Ok(())
    }
}

/// The policy, apart from the shared state (unit-tested).
fn verdict(e: &Error, attempt: u32, others: bool) -> Verdict {
    if matches!(e, Error::Interrupted | Error::Budget { .. }) {
        return Verdict::Fail;
    }
    if matches!(e, Error::TokenRefused { .. }) {
        // The next login brings a fresh token; one that is refused too
        // is Error::OAuth. The bound is only a backstop.
        return if attempt <= RETRIES {
            Verdict::Retry(Duration::ZERO)
        } else {
            Verdict::Fail
        };
    }
    if let Some(p) = e.pacing() {
        if p.conn_limit {
            return if others {
                Verdict::Retire
            } else if attempt <= BUSY_RETRIES {
                Verdict::Retry(busy_pause(attempt))
            } else {
                Verdict::Fail
            };
        }
        return match p.backoff {
            Some(d) if d > MAX_BACKOFF => Verdict::Fail,
            _ if attempt > BUSY_RETRIES => Verdict::Fail,
            Some(d) => Verdict::Retry(d),
            None => Verdict::Retry(busy_pause(attempt)),
        };
    }
    if e.is_transient() && attempt <= RETRIES {
        return Verdict::Retry(transient_pause(attempt));
    }
    Verdict::Fail
}

/// Opens a connection for a command the governor does not run (`check`,
/// `verify`, `prune`, `status --remote`, `login`, a POP3 fetch's logins),
/// under the one rule of [`verdict`] they share with it: a refused OAuth2
/// token that can be replaced is followed by one more login, which
/// brings a fresh one. Anything else is the caller's to report.
pub async fn fresh_login<C>(connect: impl AsyncFn() -> Result<C>) -> Result<C> {
    match connect().await {
        Err(Error::TokenRefused { .. }) => connect().await,
        r => r,
    }
}

/// After a dropped connection: at once, then 1 s, 2 s, 4 s…
fn transient_pause(attempt: u32) -> Duration {
    match attempt {
        0 | 1 => Duration::ZERO,
        n => Duration::from_secs(1 << (n - 2).min(6)),
    }
}

/// After "slow down" without a time: 1 s, 2 s, 4 s… up to a minute.
fn busy_pause(attempt: u32) -> Duration {
    Duration::from_secs((1u64 << attempt.saturating_sub(1).min(6)).min(60))
}

/// When a bucket's bytes stop counting: 24 hours after the end of its
/// hour, so no byte is forgotten early.
fn expiry(hour: i64) -> i64 {
    (hour + 1) * HOUR + DAY
}

/// How many of `sizes` fit in `limit` over the rolling day at `now`,
/// given the hours already spent; and, when not all do, from when the
/// first that does not would fit (the oldest hours expiring first). A
/// message bigger than the whole budget needs an empty day.
fn fitting(hours: &[(i64, u64)], limit: u64, now: i64, sizes: &[u64]) -> (usize, i64) {
    let live: Vec<(i64, u64)> = hours
        .iter()
        .copied()
        .filter(|&(h, _)| expiry(h) > now)
        .collect();
    let mut used: u64 = live.iter().map(|(_, b)| b).sum();
    for (i, &s) in sizes.iter().enumerate() {
        let need = s.min(limit);
        if used + need <= limit {
            used += need;
            continue;
        }
        // Spent by this run counts in the current hour, which expires last.
        let mut left = used;
        let mut at = expiry(now.div_euclid(HOUR));
        for &(h, b) in &live {
            left = left.saturating_sub(b);
            if left + need <= limit {
                at = expiry(h);
                break;
            }
        }
        return (i, at);
    }
    (sizes.len(), now)
}

fn in_secs(d: Duration) -> String {
    if d.is_zero() {
        String::new()
    } else if d < Duration::from_secs(10) {
        format!(" in {:.1} s", d.as_secs_f64())
    } else {
        format!(" in {} s", d.as_secs())
    }
}

/// `" in 1.5 s"` for messages.
pub(super) fn wait_text(d: Duration) -> String {
    in_secs(d)
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

    fn p(m: &str) -> Error {
        Error::protocol("s", m)
    }

    #[test]
    fn dropped_connections_retry_at_once_then_after_growing_pauses() {
        let e = Error::connect("s", "reset");
        let v: Vec<Verdict> = (1..=4).map(|a| verdict(&e, a, true)).collect();
        assert_eq!(
            v,
            [
                Verdict::Retry(Duration::ZERO),
                Verdict::Retry(Duration::from_secs(1)),
                Verdict::Retry(Duration::from_secs(2)),
                Verdict::Fail
            ]
        );
        assert_eq!(
            verdict(&p("x: server said NO: [OVERQUOTA] full"), 1, true),
            Verdict::Fail
        );
    }

    #[test]
    fn a_suggested_backoff_is_obeyed_and_a_plain_throttle_backs_off() {
        let o365 = p(
            "APPEND: server said NO: Request is throttled. Suggested Backoff Time: 1500 milliseconds",
        );
        assert_eq!(
            verdict(&o365, 1, true),
            Verdict::Retry(Duration::from_millis(1500))
        );
        assert_eq!(verdict(&o365, BUSY_RETRIES + 1, true), Verdict::Fail);
        let huge = p("NO Request is throttled. Suggested Backoff Time: 99999999 milliseconds");
        assert_eq!(verdict(&huge, 1, true), Verdict::Fail);
        let gmail = p("UID FETCH: server said NO: [THROTTLED] slow down");
        let v: Vec<Verdict> = (1..=3).map(|a| verdict(&gmail, a, true)).collect();
        assert_eq!(v, [1, 2, 4].map(|s| Verdict::Retry(Duration::from_secs(s))));
    }

    #[test]
    fn a_connection_limit_shrinks_the_pool_but_never_below_one() {
        let limit =
            p("LOGIN: server said NO: [ALERT] Too many simultaneous connections. (Failure)");
        assert_eq!(verdict(&limit, 1, true), Verdict::Retire);
        assert_eq!(
            verdict(&limit, 1, false),
            Verdict::Retry(Duration::from_secs(1))
        );
        let bye = Error::connect(
            "s",
            "connection lost during the IMAP greeting (server said BYE: too many connections)",
        );
        assert_eq!(verdict(&bye, 1, true), Verdict::Retire);
    }

    #[test]
    fn a_refused_token_logs_in_again_at_once() {
        let e = Error::TokenRefused {
            server: "s".into(),
            msg: "AUTHENTICATE XOAUTH2: NO [AUTHENTICATIONFAILED]".into(),
        };
        assert_eq!(verdict(&e, 1, true), Verdict::Retry(Duration::ZERO));
        assert_eq!(verdict(&e, 2, false), Verdict::Retry(Duration::ZERO));
        assert_eq!(verdict(&e, RETRIES + 1, true), Verdict::Fail);
        // The fresh one refused too, or a password refused: no retry.
        let oauth = Error::OAuth {
            account: "a".into(),
            msg: "refused a freshly refreshed access token too".into(),
        };
        assert_eq!(verdict(&oauth, 1, true), Verdict::Fail);
        let auth = Error::Auth {
            server: "s".into(),
            msg: "NO".into(),
        };
        assert_eq!(verdict(&auth, 1, true), Verdict::Fail);
    }

    #[test]
    fn budgets_fit_what_they_can_and_say_when_the_rest_fits() {
        let now = 1000 * HOUR + 1800; // half past hour 1000
        // Nothing spent: 3 of 4 fit in 100 bytes.
        assert_eq!(fitting(&[], 100, now, &[40, 40, 20, 1]), (3, expiry(1000)));
        // 60 spent 23 h ago and 30 an hour ago: 10 left; the 60 expire
        // first, at the end of their hour plus a day.
        let hours = [(977, 60), (999, 30)];
        assert_eq!(fitting(&hours, 100, now, &[10, 5]), (1, expiry(977)));
        assert!(expiry(977) > now);
        // Hours older than a day no longer count.
        assert_eq!(fitting(&[(970, 100)], 100, now, &[100]), (1, now));
        // Bigger than the budget: needs the whole day empty.
        assert_eq!(fitting(&[(999, 1)], 100, now, &[500]), (0, expiry(999)));
        assert_eq!(fitting(&[], 100, now, &[500]), (1, now));
    }
}
