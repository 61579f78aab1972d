//! The connection pool every IMAP job shares: open up to `--connections`
//! connections, then each takes folders from one queue until it is empty.
//! A folder that fails on a dropped connection is retried once on a fresh
//! one; any other failure is reported for that folder and the rest go on.

use std::collections::VecDeque;
use std::sync::Mutex;

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
                Err(e) if e.is_transient() && attempt == 0 => {
                    attempt += 1;
                    ctx.reporter.warning(
                        Some(&folder_of(&item)),
                        &format!("{e}; reconnecting to retry the folder"),
                    );
                    conn = connect().await?;
                }
                Err(e) => {
                    ctx.reporter
                        .message_error(&folder_of(&item), None, None, &e.to_string());
                    ctx.reporter.add(&Summary {
                        failed: 1,
                        ..Default::default()
                    });
                    if e.is_transient() {
                        conn = connect().await?;
                    }
                    break;
                }
            }
        }
    }
    Ok(conn)
}
