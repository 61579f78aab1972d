//! The executor: runs the planner's actions over real endpoints and records
//! each finished action in the state, only after it is durable on the
//! target. One module per job shape; they share the Maildir writer.

mod governor;
mod imap_fetch;
mod message;
mod on_disk;
mod pool;
mod pop3_fetch;
mod prune;
mod push;
mod source;
mod stamp;
mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::{JobKind, Settings};
use crate::endpoint::Protocol;
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::report::Reporter;
use crate::state::State;

pub use governor::fresh_login;
pub(crate) use imap_fetch::{below_namespace, url_allows};
pub use message::{MessageHeaders, normalize_message_id, wire_bytes};

/// What every job run needs besides its own arguments.
pub struct Ctx<'a> {
    pub settings: &'a Settings,
    pub reporter: &'a Reporter,
    pub interrupt: Interrupt,
    /// "Now" in unix seconds, fixed for the run so retention is consistent.
    pub now: i64,
}

/// The planner's view of a recorded message (IMAP and POP3 fetch alike):
/// Message-ID and date are not needed to plan a copy, so they stay empty.
pub(crate) fn known_from(
    key: crate::plan::MsgKey,
    k: &crate::state::KnownMsg,
    flags: Option<crate::types::Flags>,
) -> crate::plan::Known {
    crate::plan::Known {
        id: k.id,
        key,
        flags,
        stored_at: k.first_stored_at,
        location: String::new(),
        size: k.size.unwrap_or(0),
        date: 0,
        message_id: None,
        deleted: k.deleted_at.is_some(),
    }
}

/// The state's folder-row key of a fetch: per (account, target), so two
/// backups of one account keep separate sync points.
pub fn sync_key(account: &str, target: &str) -> String {
    format!("{account} {target}")
}

/// The state's name for a Maildir target.
pub fn maildir_target(root: &Path) -> String {
    let abs = std::fs::canonicalize(root).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(root))
            .unwrap_or_else(|_| root.to_path_buf())
    });
    format!("maildir:{}", abs.display())
}

/// Says which messages the filters skipped, and why (JSON or `-v` only:
/// a skip by `--max-size` is the user's choice, not news for cron).
pub(crate) fn report_skipped(
    rep: &Reporter,
    verbose: u8,
    folder: &str,
    skipped: &[(crate::plan::MsgKey, crate::plan::SkipReason)],
) {
    if rep.json() || verbose > 0 {
        for (k, why) in skipped {
            rep.warning(Some(folder), &format!("{k} skipped: {why}"));
        }
    }
}

/// The run's clock: the system time, or `MAILFERRY_NOW` (unix seconds) so
/// tests can move time forward for `--delete-after DAYS`.
pub fn now() -> i64 {
    if let Some(t) = std::env::var("MAILFERRY_NOW")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return t;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Runs one job: takes the state lock (exit 75 if held), opens the state,
/// dispatches, and records the run in the state's history. `verify` only
/// reads the servers, so it runs without the lock: checking a backup must
/// not fail because the cron fetch is running.
pub async fn run_job(job: &crate::config::Job, command: &str, ctx: &Ctx<'_>) -> Result<()> {
    let _lock = match job.kind {
        JobKind::Verify(_) => None,
        _ => Some(State::lock(&ctx.settings.state_path)?),
    };
    let state = open_state(&ctx.settings.state_path, ctx.settings.dry_run)?;
    let run_id = if ctx.settings.dry_run {
        None
    } else {
        Some(
            state
                .st
                .lock()
                .unwrap()
                .begin_run(command, Some(&job.name), ctx.now)?,
        )
    };
    ctx.reporter
        .begin_job(matches!(job.kind, JobKind::Verify(_)));
    let before = ctx.reporter.summary();
    let result = match &job.kind {
        JobKind::Fetch(f) => match &f.from.endpoint {
            crate::endpoint::Endpoint::Server(u) if u.protocol == Protocol::Imap => {
                imap_fetch::run(f, ctx, &state.st).await
            }
            crate::endpoint::Endpoint::Server(_) => pop3_fetch::run(f, ctx, &state.st).await,
            crate::endpoint::Endpoint::Maildir(_) => {
                unreachable!("config refuses a Maildir source for fetch")
            }
        },
        JobKind::Push(p) => push::run(p, ctx, &state.st).await,
        JobKind::Prune(p) => prune::run(p, ctx, &state.st).await,
        JobKind::Verify(v) => verify::run(v, ctx).await,
    };
    if let Some(id) = run_id {
        let after = ctx.reporter.summary();
        let failed = after.failed - before.failed;
        let outcome = crate::state::RunOutcome {
            result: match (&result, failed) {
                (Ok(()), 0) => "ok".into(),
                (Ok(()), _) => "partial".into(),
                (Err(Error::Interrupted), _) => "interrupted".into(),
                (Err(_), _) => "error".into(),
            },
            copied: after.copied - before.copied,
            failed,
            error: result.as_ref().err().map(|e| e.to_string()),
        };
        // Recording history must not hide the run's own error.
        let _ = state.st.lock().unwrap().finish_run(id, &outcome, now());
    }
    drop(state);
    result
}

/// The state for one run. A dry run on a state that does not exist yet
/// works on a throwaway copy, so `plan` never creates files.
struct OpenState {
    st: Arc<Mutex<State>>,
    scratch: Option<PathBuf>,
}

impl Drop for OpenState {
    fn drop(&mut self) {
        if let Some(p) = &self.scratch {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
            }
        }
    }
}

fn open_state(path: &Path, dry_run: bool) -> Result<OpenState> {
    if dry_run && !path.exists() {
        // Unique per open: `migrate --dry-run` plans many accounts at once.
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("mailferry-plan-{}-{seq}.db", std::process::id()));
        let st = State::open(&p)?;
        return Ok(OpenState {
            st: Arc::new(Mutex::new(st)),
            scratch: Some(p),
        });
    }
    Ok(OpenState {
        st: Arc::new(Mutex::new(State::open(path)?)),
        scratch: None,
    })
}
