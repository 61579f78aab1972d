//! The connection pool every IMAP job shares: open up to `--connections`
//! connections, then each takes folders from one queue until it is empty.
//! What follows a failure is the governor's call (`governor.rs`): a
//! dropped connection or a busy server is retried on a fresh connection
//! after the pause it calls for (each retry goes on from what the state
//! recorded, so progress is kept); a server that takes no more
//! connections shrinks the pool (the folder goes back to the queue); a
//! used-up daily budget stops every worker. Any other failure, or the
//! last retry's, is reported for that folder and the rest go on.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::Ctx;
use super::governor::{Governor, Verdict, wait_text};
use crate::error::{Error, Result};
use crate::report::Summary;

/// Opens `n - 1` more connections besides `first`; a server refusing some
/// (connection limit) leaves fewer, with a warning.
pub(super) async fn open<C>(
    first: C,
    n: usize,
    ctx: &Ctx<'_>,
    gov: &Governor,
    connect: impl AsyncFn() -> Result<C>,
) -> Vec<C> {
    let mut conns = vec![first];
    // A refused OAuth2 token gets its one more login here too.
    let extra =
        futures_util::future::join_all((1..n.max(1)).map(|_| super::fresh_login(&connect))).await;
    let mut limit: Option<Error> = None;
    for c in extra {
        match c {
            Ok(c) => conns.push(c),
            Err(e) if e.pacing().is_some_and(|p| p.conn_limit) => {
                limit.get_or_insert(e);
            }
            Err(e) => ctx.reporter.warning(
                None,
                &format!("extra connection refused ({e}); continuing with fewer"),
            ),
        }
    }
    if let Some(e) = limit {
        ctx.reporter.warning(
            None,
            &format!(
                "the server takes no more connections ({e}); continuing with {}",
                conns.len()
            ),
        );
    }
    gov.set_workers(conns.len());
    conns
}

/// One worker: takes items from `queue` until it is empty and runs `work`
/// on each with its connection. Returns the connection for logout, if it
/// still has one (the server may have refused it a new one).
pub(super) async fn drain<C, T>(
    first: C,
    queue: &Mutex<VecDeque<T>>,
    ctx: &Ctx<'_>,
    gov: &Governor,
    folder_of: impl Fn(&T) -> String,
    connect: impl AsyncFn() -> Result<C>,
    work: impl AsyncFn(&mut C, &T) -> Result<()>,
) -> Result<Option<C>> {
    let mut conn = Some(first);
    'items: loop {
        ctx.interrupt.check()?;
        if gov.stopped() {
            break;
        }
        gov.ready(ctx).await?;
        let Some(item) = queue.lock().unwrap().pop_front() else {
            break;
        };
        let folder = folder_of(&item);
        let mut attempt = 0;
        'work: loop {
            let mut err = match &mut conn {
                // The previous folder's failure closed it.
                None => match connect().await {
                    Ok(c) => {
                        conn = Some(c);
                        continue 'work;
                    }
                    Err(Error::Interrupted) => return Err(Error::Interrupted),
                    Err(e) => e,
                },
                Some(c) => match work(c, &item).await {
                    Ok(()) => continue 'items,
                    Err(Error::Interrupted) => return Err(Error::Interrupted),
                    Err(e @ Error::Budget { .. }) => {
                        gov.stop();
                        return Err(e);
                    }
                    Err(e) => e,
                },
            };
            loop {
                attempt += 1;
                match gov.after(&err, attempt) {
                    Verdict::Retry(wait) => {
                        // Closed before its replacement opens, so a worker
                        // never holds two: connection caps count on it.
                        drop(conn.take());
                        ctx.reporter.warning(
                            Some(&folder),
                            &format!(
                                "{err}; retrying the folder on a new connection{} (retry {attempt})",
                                wait_text(wait)
                            ),
                        );
                        gov.pause(wait, ctx).await?;
                        gov.ready(ctx).await?;
                        match connect().await {
                            Ok(c) => {
                                conn = Some(c);
                                continue 'work;
                            }
                            Err(Error::Interrupted) => return Err(Error::Interrupted),
                            Err(e) => err = e,
                        }
                    }
                    Verdict::Retire => {
                        queue.lock().unwrap().push_front(item);
                        ctx.reporter.warning(
                            Some(&folder),
                            &format!(
                                "{err}; one connection fewer from now on (the folder goes to another)"
                            ),
                        );
                        return Ok(conn);
                    }
                    Verdict::Fail => {
                        ctx.reporter
                            .message_error(&folder, None, None, &err.to_string());
                        ctx.reporter.add(&Summary {
                            failed: 1,
                            ..Default::default()
                        });
                        if err.is_transient() || err.is_busy() {
                            drop(conn.take());
                        }
                        continue 'items;
                    }
                }
            }
        }
    }
    Ok(conn)
}
