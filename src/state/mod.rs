//! What mailferry knows across runs (SPEC §3): which source message is
//! durably stored where, folder sync points, and run history.
//!
//! SQLite (WAL, `synchronous=FULL`) so a batch is recorded atomically and a
//! power cut loses at most the batch in flight — which the next run finds
//! again on the target by its identity. All writes take the time as `at`
//! (unix seconds) so retention logic is testable with a fake clock.

mod budget;
mod schema;

use crate::error::{Error, Result};
use crate::types::{Flags, FolderName, ModSeq, Uid, UidValidity, Uidl};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::collections::HashMap;
use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a statement waits for a concurrent reader (`status` while a run
/// writes) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The open state database.
pub struct State {
    conn: Connection,
    path: PathBuf,
}

/// Held for the whole run; dropping it (or the process dying) releases the
/// lock, because it is a `flock` on an open file.
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
    path: PathBuf,
}

impl LockGuard {
    /// The lock file, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A folder's sync point as the last run left it; `None` until first synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderState {
    /// Row id, the handle for all message calls.
    pub id: i64,
    /// Decoded folder name.
    pub name: FolderName,
    /// UIDVALIDITY the stored UIDs belong to.
    pub uidvalidity: Option<UidValidity>,
    /// UIDNEXT seen last time: UIDs below it were already considered.
    pub uidnext: Option<Uid>,
    /// HIGHESTMODSEQ seen last time: unchanged means no flag changes.
    pub highestmodseq: Option<ModSeq>,
    /// When the folder was last listed on the server.
    pub last_seen_at: Option<i64>,
    /// Since when the server no longer lists it.
    pub gone_since: Option<i64>,
}

/// How a source message is identified (SPEC §3 state keys).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MsgKey {
    /// IMAP: (folder, UIDVALIDITY, UID).
    Imap {
        /// The folder's UIDVALIDITY when the UID was taken.
        uidvalidity: UidValidity,
        /// The message UID.
        uid: Uid,
    },
    /// POP3: (account's INBOX folder row, UIDL).
    Pop3 {
        /// The server's unique id for the message.
        uidl: Uidl,
    },
    /// POP3 without UIDL: identified by [`NewRecord::digest`], which must be set.
    Digest,
}

/// A message just made durable on a target, to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    /// Source identity.
    pub key: MsgKey,
    /// Message-ID header, for reconciliation when keys are void.
    pub message_id: Option<String>,
    /// RFC822.SIZE (POP3: octets from LIST).
    pub size: Option<u64>,
    /// Content or header digest (SHA-256), for reconciliation and dedup.
    pub digest: Option<Vec<u8>>,
    /// INTERNALDATE (or Date: for POP3), unix seconds: retention by age.
    pub internal_date: Option<i64>,
    /// Flags as stored, to detect later changes on either side.
    pub flags: Flags,
    /// Where it was stored: `maildir:/abs/path` or the target URL.
    pub target: String,
    /// Where inside the target: Maildir unique name or target UID.
    pub location: Option<String>,
}

/// A recorded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMsg {
    /// Row id, for flag updates and deletion marks.
    pub id: i64,
    /// Folder row.
    pub folder_id: i64,
    /// IMAP identity, when an IMAP source.
    pub uidvalidity: Option<UidValidity>,
    /// IMAP identity, when an IMAP source.
    pub uid: Option<Uid>,
    /// POP3 identity, when a POP3 source with UIDL.
    pub uidl: Option<Uidl>,
    /// Message-ID header.
    pub message_id: Option<String>,
    /// Size as recorded.
    pub size: Option<u64>,
    /// Digest as recorded.
    pub digest: Option<Vec<u8>>,
    /// Arrival date, unix seconds.
    pub internal_date: Option<i64>,
    /// Flags last carried over.
    pub flags: Flags,
    /// When first made durable on the target: `--delete-after DAYS` counts from here.
    pub first_stored_at: i64,
    /// Where it was stored.
    pub target: String,
    /// Where inside the target.
    pub location: Option<String>,
    /// When it was removed from the source, if it was.
    pub deleted_at: Option<i64>,
    /// Why (e.g. `older-than 365d`).
    pub delete_reason: Option<String>,
    /// When prune removed the stored copy itself (a pruned Maildir file):
    /// from then on this record proves nothing is stored.
    pub target_removed_at: Option<i64>,
}

/// What the planner needs per known message on every run: cheap to load
/// for a whole folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownMsg {
    /// Row id, for flag updates and deletion marks.
    pub id: i64,
    /// Flags last carried over.
    pub flags: Flags,
    /// Size as recorded.
    pub size: Option<u64>,
    /// When first made durable on the target (`--delete-after DAYS`).
    pub first_stored_at: i64,
    /// When it was removed from the source, if it was.
    pub deleted_at: Option<i64>,
}

/// Columns 1.. of a known_* query: id, flags, size, first_stored_at, deleted_at.
fn known_from_row(r: &Row<'_>) -> rusqlite::Result<KnownMsg> {
    let flags = r.get_ref(2)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(KnownMsg {
        id: r.get(1)?,
        flags: flags_parse(flags),
        size: r.get::<_, Option<i64>>(3)?.map(|v| v.max(0) as u64),
        first_stored_at: r.get(4)?,
        deleted_at: r.get(5)?,
    })
}

/// How a run ended, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunOutcome {
    /// `ok`, `partial`, `failed` or `interrupted`.
    pub result: String,
    /// Messages copied.
    pub copied: u64,
    /// Messages that failed.
    pub failed: u64,
    /// The error line for a failed run.
    pub error: Option<String>,
}

/// A past run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// Row id.
    pub id: i64,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds; `None` while running or if the run was killed.
    pub finished_at: Option<i64>,
    /// `fetch`, `push`, …
    pub command: String,
    /// Config job name, if run from `run`.
    pub job: Option<String>,
    /// How it ended; `None` if it never finished.
    pub outcome: Option<RunOutcome>,
}

/// One line of `status`: a folder's totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderReport {
    /// The folder row's account key (for fetch: "account target").
    pub account: String,
    pub folder: FolderName,
    /// Last time a run synced it, unix seconds.
    pub last_seen_at: Option<i64>,
    /// Since when the server no longer lists it.
    pub gone_since: Option<i64>,
    /// Messages recorded as stored (including those since deleted on the source).
    pub stored: u64,
    /// Of those, deleted from the source by retention.
    pub deleted: u64,
    /// Bytes recorded.
    pub bytes: u64,
}

fn state_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::State(format!("{}: {e}", path.display()))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn flags_text(f: &Flags) -> String {
    f.to_imap()
}

/// Like `Flags::from_imap` but without a lowercase copy per atom: this runs
/// once per row when loading 75k known UIDs.
fn flags_parse(s: &str) -> Flags {
    let mut f = Flags::default();
    for a in s.split_ascii_whitespace() {
        if let Some(a) = a.strip_prefix('\\') {
            if a.eq_ignore_ascii_case("seen") {
                f.seen = true;
            } else if a.eq_ignore_ascii_case("answered") {
                f.answered = true;
            } else if a.eq_ignore_ascii_case("flagged") {
                f.flagged = true;
            } else if a.eq_ignore_ascii_case("deleted") {
                f.deleted = true;
            } else if a.eq_ignore_ascii_case("draft") {
                f.draft = true;
            }
        } else {
            f.keywords.push(a.to_string());
        }
    }
    if f.keywords.len() > 1 {
        f.keywords.sort();
        f.keywords.dedup();
    }
    f
}

const MSG_COLS: &str = "id, folder_id, uidvalidity, uid, uidl, message_id, size, digest, internal_date, \
     flags, first_stored_at, target, location, deleted_at, delete_reason, target_removed_at";

fn msg_from_row(r: &Row<'_>) -> rusqlite::Result<StoredMsg> {
    let flags: String = r.get(9)?;
    Ok(StoredMsg {
        id: r.get(0)?,
        folder_id: r.get(1)?,
        uidvalidity: r.get::<_, Option<u32>>(2)?.map(UidValidity),
        uid: r.get::<_, Option<u32>>(3)?.map(Uid),
        uidl: r.get::<_, Option<String>>(4)?.map(Uidl),
        message_id: r.get(5)?,
        size: r.get::<_, Option<i64>>(6)?.map(|v| v.max(0) as u64),
        digest: r.get(7)?,
        internal_date: r.get(8)?,
        flags: flags_parse(&flags),
        first_stored_at: r.get(10)?,
        target: r.get(11)?,
        location: r.get(12)?,
        deleted_at: r.get(13)?,
        delete_reason: r.get(14)?,
        target_removed_at: r.get(15)?,
    })
}

fn folder_from_row(r: &Row<'_>) -> rusqlite::Result<FolderState> {
    Ok(FolderState {
        id: r.get(0)?,
        name: FolderName::new(r.get::<_, String>(1)?),
        uidvalidity: r.get::<_, Option<u32>>(2)?.map(UidValidity),
        uidnext: r.get::<_, Option<u32>>(3)?.map(Uid),
        highestmodseq: r.get::<_, Option<i64>>(4)?.map(|v| ModSeq(v as u64)),
        last_seen_at: r.get(5)?,
        gone_since: r.get(6)?,
    })
}

const FOLDER_COLS: &str = "id, name, uidvalidity, uidnext, highestmodseq, last_seen_at, gone_since";

impl State {
    /// Opens (creating it, mode 0600, and its directories, mode 0700) the
    /// state file and brings its schema up to date. A file written by a
    /// newer mailferry is refused rather than misread.
    pub fn open(path: &Path) -> Result<State> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io(dir, e))?;
        }
        // Created here, not by SQLite, so it is private from the first byte;
        // SQLite gives the -wal and -shm files the same mode.
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let mut conn = Connection::open(path).map_err(|e| state_err(path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| state_err(path, e))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| state_err(path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(state_err(
                path,
                format!(
                    "cannot switch to WAL journal (got {mode}); is it on a network file system?"
                ),
            ));
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(|e| state_err(path, e))?;
        migrate(&mut conn, path)?;
        Ok(State {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Takes the run lock `<state>.lock` without waiting: a second run on the
    /// same state gets [`Error::Locked`] (exit 75) at once. Released on drop
    /// or when the process dies (flock semantics), so no stale locks.
    pub fn lock(state_path: &Path) -> Result<LockGuard> {
        let mut name = state_path.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io(dir, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(LockGuard { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(Error::Locked {
                path: path.display().to_string(),
            }),
            Err(TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<u32> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn account_id(&mut self, account: &str) -> Result<i64> {
        self.conn
            .prepare_cached("INSERT INTO accounts (key) VALUES (?1) ON CONFLICT (key) DO NOTHING")?
            .execute([account])?;
        Ok(self
            .conn
            .prepare_cached("SELECT id FROM accounts WHERE key = ?1")?
            .query_row([account], |r| r.get(0))?)
    }

    /// Gets or creates the folder row for `account` (a canonical endpoint
    /// key, never with a password). POP3 uses a folder named INBOX.
    pub fn folder(&mut self, account: &str, name: &FolderName) -> Result<FolderState> {
        let account_id = self.account_id(account)?;
        self.conn
            .prepare_cached(
                "INSERT INTO folders (account_id, name) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?
            .execute(params![account_id, name.as_str()])?;
        let sql = format!("SELECT {FOLDER_COLS} FROM folders WHERE account_id = ?1 AND name = ?2");
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(params![account_id, name.as_str()], folder_from_row)?)
    }

    /// All folders recorded for an account, by name (for `status`).
    pub fn folders(&self, account: &str) -> Result<Vec<FolderState>> {
        let sql = format!(
            "SELECT {} FROM folders f JOIN accounts a ON a.id = f.account_id WHERE a.key = ?1 ORDER BY f.name",
            FOLDER_COLS
                .split(", ")
                .map(|c| format!("f.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map([account], folder_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records the server's sync point after a folder was fully handled; also
    /// marks it as seen at `at` (and no longer gone).
    pub fn set_folder_sync(
        &mut self,
        folder_id: i64,
        uidvalidity: Option<UidValidity>,
        uidnext: Option<Uid>,
        highestmodseq: Option<ModSeq>,
        at: i64,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE folders SET uidvalidity = ?2, uidnext = ?3, highestmodseq = ?4, last_seen_at = ?5, \
                 gone_since = NULL WHERE id = ?1",
            )?
            .execute(params![
                folder_id,
                uidvalidity.map(|v| v.0),
                uidnext.map(|v| v.0),
                highestmodseq.map(|m| to_i64(m.0)),
                at
            ])?;
        Ok(())
    }

    /// Notes that the server no longer lists a folder (kept, not dropped: its
    /// records still prove what was stored).
    pub fn mark_folder_gone(&mut self, folder_id: i64, at: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE folders SET gone_since = COALESCE(gone_since, ?2) WHERE id = ?1",
            )?
            .execute(params![folder_id, at])?;
        Ok(())
    }

    fn query_msgs(&self, sql_where: &str, p: impl rusqlite::Params) -> Result<Vec<StoredMsg>> {
        let sql = format!("SELECT {MSG_COLS} FROM messages WHERE {sql_where}");
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map(p, msg_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every recorded UID of a folder under one UIDVALIDITY stored in
    /// `target`: what the planner subtracts from the server listing. Lean
    /// rows ([`KnownMsg`]) so 75k UIDs load in milliseconds; fetch the full
    /// record with [`State::messages`] or [`State::by_message_id`] when
    /// reconciling.
    pub fn known_uids(
        &self,
        folder_id: i64,
        uidvalidity: UidValidity,
        target: &str,
    ) -> Result<HashMap<Uid, KnownMsg>> {
        let mut st = self.conn.prepare_cached(
            "SELECT uid, id, flags, size, first_stored_at, deleted_at FROM messages \
             WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid IS NOT NULL AND target = ?3",
        )?;
        let mut out = HashMap::new();
        let mut rows = st.query(params![folder_id, uidvalidity.0, target])?;
        while let Some(r) = rows.next()? {
            out.insert(Uid(r.get(0)?), known_from_row(r)?);
        }
        Ok(out)
    }

    /// Every recorded UID of a folder row under one UIDVALIDITY, whatever
    /// the target: what `status --remote` subtracts from the server's UIDs.
    pub fn recorded_uids(&self, folder_id: i64, uidvalidity: UidValidity) -> Result<Vec<Uid>> {
        let mut st = self.conn.prepare_cached(
            "SELECT uid FROM messages WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid IS NOT NULL",
        )?;
        let rows = st.query_map(params![folder_id, uidvalidity.0], |r| Ok(Uid(r.get(0)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// True if some message of the folder, stored in `target` at or before
    /// `cutoff` and not yet deleted on the server, is due for retention:
    /// one indexed query instead of loading every known UID, so a no-op
    /// rerun with retention on stays constant-time per folder.
    pub fn any_due_for_deletion(
        &self,
        folder_id: i64,
        uidvalidity: UidValidity,
        target: &str,
        cutoff: i64,
    ) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM messages WHERE folder_id = ?1 AND uidvalidity = ?2 \
                 AND uid IS NOT NULL AND target = ?3 AND deleted_at IS NULL AND first_stored_at <= ?4)",
            )?
            .query_row(params![folder_id, uidvalidity.0, target, cutoff], |r| {
                r.get(0)
            })?)
    }

    /// The records of the folder row stored in `target`, and whether every
    /// one has its copy under the target folder's UIDVALIDITY `uv` (a
    /// `location` of `uv:uid`): as far as STATUS can tell, that folder
    /// still holds what the state says was put there. By the two indexed
    /// keys (UID, UIDL), so a no-op push stays cheap on a big state.
    pub fn copies_under(
        &self,
        folder_id: i64,
        target: &str,
        uv: UidValidity,
    ) -> Result<(u64, bool)> {
        let (n, elsewhere): (i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(location IS NULL OR location NOT LIKE ?3), 0) FROM ( \
                 SELECT location FROM messages WHERE folder_id = ?1 AND uid IS NOT NULL AND target = ?2 \
                 UNION ALL \
                 SELECT location FROM messages WHERE folder_id = ?1 AND uid IS NULL \
                 AND uidl IS NOT NULL AND target = ?2)",
            )?
            .query_row(params![folder_id, target, format!("{}:%", uv.0)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        Ok((n as u64, elsewhere == 0))
    }

    /// True when the folder row has a record of a copy stored in `target`.
    pub fn has_copies(&self, folder_id: i64, target: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM messages WHERE folder_id = ?1 AND uid IS NOT NULL \
                 AND target = ?2) OR EXISTS (SELECT 1 FROM messages WHERE folder_id = ?1 \
                 AND uidl IS NOT NULL AND target = ?2)",
            )?
            .query_row(params![folder_id, target], |r| r.get(0))?)
    }

    /// Every recorded UIDL of a (POP3) folder stored in `target`.
    pub fn known_uidls(&self, folder_id: i64, target: &str) -> Result<HashMap<Uidl, KnownMsg>> {
        let mut st = self.conn.prepare_cached(
            "SELECT uidl, id, flags, size, first_stored_at, deleted_at FROM messages \
             WHERE folder_id = ?1 AND uidl IS NOT NULL AND target = ?2",
        )?;
        let mut out = HashMap::new();
        let mut rows = st.query(params![folder_id, target])?;
        while let Some(r) = rows.next()? {
            out.insert(Uidl(r.get(0)?), known_from_row(r)?);
        }
        Ok(out)
    }

    /// Every record of a folder, all targets and keys (for verify/status).
    pub fn messages(&self, folder_id: i64) -> Result<Vec<StoredMsg>> {
        self.query_msgs("folder_id = ?1 ORDER BY id", [folder_id])
    }

    /// Records with this Message-ID in a folder: reconciliation after a
    /// UIDVALIDITY change or a lost target mapping.
    pub fn by_message_id(&self, folder_id: i64, message_id: &str) -> Result<Vec<StoredMsg>> {
        self.query_msgs(
            "folder_id = ?1 AND message_id = ?2 ORDER BY id",
            params![folder_id, message_id],
        )
    }

    /// Records a batch of durably stored messages in one transaction, at
    /// `at`. Recording the same key and target again (a rerun that found
    /// the file by its name) updates it and keeps `first_stored_at`.
    pub fn record_batch(&mut self, folder_id: i64, records: &[NewRecord], at: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            const COLS: &str = "folder_id, uidvalidity, uid, uidl, message_id, size, digest, internal_date, \
                                flags, first_stored_at, target, location";
            const VALS: &str = "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
            const SET: &str = "DO UPDATE SET message_id = COALESCE(excluded.message_id, message_id), \
                 size = COALESCE(excluded.size, size), digest = COALESCE(excluded.digest, digest), \
                 internal_date = COALESCE(excluded.internal_date, internal_date), flags = excluded.flags, \
                 location = excluded.location";
            let mut imap = tx.prepare_cached(&format!(
                "INSERT INTO messages ({COLS}) {VALS} ON CONFLICT (folder_id, uidvalidity, uid, target) \
                 WHERE uid IS NOT NULL {SET}"
            ))?;
            let mut pop = tx.prepare_cached(&format!(
                "INSERT INTO messages ({COLS}) {VALS} ON CONFLICT (folder_id, uidl, target) WHERE uidl IS NOT NULL {SET}"
            ))?;
            let mut dig = tx.prepare_cached(&format!(
                "INSERT INTO messages ({COLS}) {VALS} ON CONFLICT (folder_id, digest, target) \
                 WHERE uid IS NULL AND uidl IS NULL {SET}"
            ))?;
            for r in records {
                let (st, uv, uid, uidl) = match &r.key {
                    MsgKey::Imap { uidvalidity, uid } => {
                        (&mut imap, Some(uidvalidity.0), Some(uid.0), None)
                    }
                    MsgKey::Pop3 { uidl } => (&mut pop, None, None, Some(uidl.0.as_str())),
                    MsgKey::Digest => {
                        if r.digest.is_none() {
                            return Err(Error::State(
                                "a digest-keyed record needs a digest".into(),
                            ));
                        }
                        (&mut dig, None, None, None)
                    }
                };
                st.execute(params![
                    folder_id,
                    uv,
                    uid,
                    uidl,
                    r.message_id,
                    r.size.map(to_i64),
                    r.digest,
                    r.internal_date,
                    flags_text(&r.flags),
                    at,
                    r.target,
                    r.location
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Stores the flags now on both sides, one transaction.
    pub fn update_flags_batch(&mut self, updates: &[(i64, Flags)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached("UPDATE messages SET flags = ?2 WHERE id = ?1")?;
            for (id, f) in updates {
                st.execute(params![id, flags_text(f)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks messages as removed from the source (after the server confirmed
    /// it), with the reason shown in `--json` and `status`.
    pub fn mark_deleted(&mut self, ids: &[i64], reason: &str, at: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "UPDATE messages SET deleted_at = ?2, delete_reason = ?3 WHERE id = ?1 AND deleted_at IS NULL",
            )?;
            for id in ids {
                st.execute(params![id, at, reason])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Moves records from an old UIDVALIDITY to the new one after the caller
    /// matched them (by Message-ID, size, digest) to new UIDs, so nothing is
    /// downloaded again. One transaction; also sets the folder's
    /// UIDVALIDITY. Rows whose new key is already recorded stay under the
    /// old UIDVALIDITY (they are stale). Returns the number moved.
    pub fn rekey_uidvalidity(
        &mut self,
        folder_id: i64,
        old: UidValidity,
        new: UidValidity,
        pairs: &[(Uid, Uid)],
    ) -> Result<usize> {
        if old == new {
            return Err(Error::State(format!(
                "rekey from UIDVALIDITY {old} to itself"
            )));
        }
        let tx = self.conn.transaction()?;
        let mut moved = 0;
        {
            let mut st = tx.prepare_cached(
                "UPDATE OR IGNORE messages SET uidvalidity = ?3, uid = ?5 \
                 WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid = ?4",
            )?;
            for (o, n) in pairs {
                moved += st.execute(params![folder_id, old.0, new.0, o.0, n.0])?;
            }
            tx.prepare_cached("UPDATE folders SET uidvalidity = ?2 WHERE id = ?1")?
                .execute(params![folder_id, new.0])?;
        }
        tx.commit()?;
        Ok(moved)
    }

    /// Starts a run record; returns its id for [`State::finish_run`]. A run
    /// killed before finishing stays visible with no end time.
    pub fn begin_run(&mut self, command: &str, job: Option<&str>, at: i64) -> Result<i64> {
        self.relaxed(|conn| {
            conn.prepare_cached("INSERT INTO runs (started_at, command, job) VALUES (?1, ?2, ?3)")?
                .execute(params![at, command, job])?;
            Ok(conn.last_insert_rowid())
        })
    }

    /// Runs a write that need not survive a power cut on its own (run
    /// history) without an fsync: in WAL mode with `synchronous=NORMAL` the
    /// commit is ordered but not flushed, and the next `FULL` commit (or the
    /// checkpoint at close) makes it durable. Saves an fsync at each end of
    /// every run, which is most of a no-op rerun's disk time.
    fn relaxed<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("PRAGMA synchronous=NORMAL")?;
        let r = f(&self.conn);
        self.conn.execute_batch("PRAGMA synchronous=FULL")?;
        r
    }

    /// Completes a run record.
    pub fn finish_run(&mut self, run_id: i64, outcome: &RunOutcome, at: i64) -> Result<()> {
        self.relaxed(|conn| {
            conn.prepare_cached(
                "UPDATE runs SET finished_at = ?2, result = ?3, copied = ?4, failed = ?5, error = ?6 WHERE id = ?1",
            )?
            .execute(params![
                run_id,
                at,
                outcome.result,
                to_i64(outcome.copied),
                to_i64(outcome.failed),
                outcome.error
            ])?;
            Ok(())
        })
    }

    /// The last `limit` runs, newest first, optionally for one job.
    pub fn recent_runs(&self, job: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, started_at, finished_at, command, job, result, copied, failed, error FROM runs \
             WHERE ?1 IS NULL OR job = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![job, to_i64(limit as u64)], |r| {
            let result: Option<String> = r.get(5)?;
            Ok(RunRecord {
                id: r.get(0)?,
                started_at: r.get(1)?,
                finished_at: r.get(2)?,
                command: r.get(3)?,
                job: r.get(4)?,
                outcome: match result {
                    None => None,
                    Some(result) => Some(RunOutcome {
                        result,
                        copied: r.get::<_, i64>(6)?.max(0) as u64,
                        failed: r.get::<_, i64>(7)?.max(0) as u64,
                        error: r.get(8)?,
                    }),
                },
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Per folder of every account: what is stored and deleted, and when it
    /// was last synced (for `status`, which reads nothing but the state).
    pub fn folder_report(&self) -> Result<Vec<FolderReport>> {
        let mut st = self.conn.prepare_cached(
            "SELECT a.key, f.name, f.last_seen_at, f.gone_since, COUNT(m.id), \
                    COALESCE(SUM(m.deleted_at IS NOT NULL), 0), COALESCE(SUM(m.size), 0) \
             FROM folders f JOIN accounts a ON a.id = f.account_id \
             LEFT JOIN messages m ON m.folder_id = f.id \
             GROUP BY f.id ORDER BY a.key, f.name",
        )?;
        let rows = st.query_map([], |r| {
            Ok(FolderReport {
                account: r.get(0)?,
                folder: FolderName::new(r.get::<_, String>(1)?),
                last_seen_at: r.get(2)?,
                gone_since: r.get(3)?,
                stored: r.get::<_, i64>(4)?.max(0) as u64,
                deleted: r.get::<_, i64>(5)?.max(0) as u64,
                bytes: r.get::<_, i64>(6)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Looks a folder up without creating it.
    pub fn find_folder(&self, account: &str, name: &FolderName) -> Result<Option<FolderState>> {
        let sql = format!(
            "SELECT {} FROM folders f JOIN accounts a ON a.id = f.account_id WHERE a.key = ?1 AND f.name = ?2",
            FOLDER_COLS
                .split(", ")
                .map(|c| format!("f.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(params![account, name.as_str()], folder_from_row)
            .optional()?)
    }
}

/// A deletion prune is about to ask for: logged before the server (or the
/// file system) is asked, so a kill in between leaves a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionIntent {
    /// Account key, or `maildir:/abs` for a local Maildir.
    pub account: String,
    pub folder: FolderName,
    pub uidvalidity: Option<UidValidity>,
    pub uid: Option<Uid>,
    pub uidl: Option<Uidl>,
    /// Maildir unique name.
    pub file: Option<String>,
    pub message_id: Option<String>,
    pub size: u64,
    /// The date the rules judged, unix seconds.
    pub date: i64,
    /// Why, e.g. `older-than 365d`.
    pub reason: String,
    /// How a stored copy was proven (`--only-if-stored-in`), if asked for.
    pub proof: Option<String>,
    /// `expunge`, `trash`, `dele` or `unlink`.
    pub method: String,
    /// The `messages` row this concerns: marked deleted from the source,
    /// or (for `unlink`) its stored copy marked removed.
    pub msg_row: Option<i64>,
}

/// A logged deletion that was never confirmed (the run died, or the
/// server's answer was lost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDeletion {
    pub id: i64,
    pub intent: DeletionIntent,
}

/// One line of the deletion history, for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionSummary {
    pub account: String,
    pub folder: FolderName,
    pub deleted: u64,
    pub bytes: u64,
    pub pending: u64,
    pub last_at: Option<i64>,
}

impl State {
    /// Logs deletions about to be asked for, one transaction; returns their
    /// ids for [`State::finish_deletions`].
    pub fn log_deletions(&mut self, intents: &[DeletionIntent], at: i64) -> Result<Vec<i64>> {
        let tx = self.conn.transaction()?;
        let mut ids = Vec::with_capacity(intents.len());
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO deletions (account, folder, uidvalidity, uid, uidl, file, message_id, size, \
                 date, reason, proof, method, msg_row, planned_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            for d in intents {
                st.execute(params![
                    d.account,
                    d.folder.as_str(),
                    d.uidvalidity.map(|v| v.0),
                    d.uid.map(|u| u.0),
                    d.uidl.as_ref().map(|u| u.0.as_str()),
                    d.file,
                    d.message_id,
                    to_i64(d.size),
                    d.date,
                    d.reason,
                    d.proof,
                    d.method,
                    d.msg_row,
                    at
                ])?;
                ids.push(tx.last_insert_rowid());
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Settles logged deletions, one transaction. `deleted`: the server (or
    /// the file system) confirmed; the concerned `messages` rows are marked
    /// deleted from the source (or, for `unlink`, their copy removed).
    /// Otherwise the message is still there and the log says `kept`.
    pub fn finish_deletions(&mut self, ids: &[i64], deleted: bool, at: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut fin = tx.prepare_cached(
                "UPDATE deletions SET done_at = ?2, outcome = ?3 WHERE id = ?1 AND outcome IS NULL \
                 RETURNING msg_row, method, reason",
            )?;
            let mut src = tx.prepare_cached(
                "UPDATE messages SET deleted_at = ?2, delete_reason = ?3 WHERE id = ?1 AND deleted_at IS NULL",
            )?;
            let mut tgt = tx.prepare_cached(
                "UPDATE messages SET target_removed_at = ?2 WHERE id = ?1 AND target_removed_at IS NULL",
            )?;
            let outcome = if deleted { "deleted" } else { "kept" };
            for id in ids {
                let row: Option<(Option<i64>, String, String)> = fin
                    .query_row(params![id, at, outcome], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()?;
                if let (true, Some((Some(m), method, reason))) = (deleted, row) {
                    if method == "unlink" {
                        tgt.execute(params![m, at])?;
                    } else {
                        src.execute(params![m, at, format!("prune: {reason}")])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletions of this account's folder logged but never settled.
    pub fn pending_deletions(
        &self,
        account: &str,
        folder: &FolderName,
    ) -> Result<Vec<PendingDeletion>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, account, folder, uidvalidity, uid, uidl, file, message_id, size, date, reason, \
             proof, method, msg_row FROM deletions WHERE account = ?1 AND folder = ?2 AND outcome IS NULL ORDER BY id",
        )?;
        let rows = st.query_map(params![account, folder.as_str()], |r| {
            Ok(PendingDeletion {
                id: r.get(0)?,
                intent: DeletionIntent {
                    account: r.get(1)?,
                    folder: FolderName::new(r.get::<_, String>(2)?),
                    uidvalidity: r.get::<_, Option<u32>>(3)?.map(UidValidity),
                    uid: r.get::<_, Option<u32>>(4)?.map(Uid),
                    uidl: r.get::<_, Option<String>>(5)?.map(Uidl),
                    file: r.get(6)?,
                    message_id: r.get(7)?,
                    size: r.get::<_, Option<i64>>(8)?.unwrap_or(0).max(0) as u64,
                    date: r.get::<_, Option<i64>>(9)?.unwrap_or(0),
                    reason: r.get(10)?,
                    proof: r.get(11)?,
                    method: r.get(12)?,
                    msg_row: r.get(13)?,
                },
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every record whose copy is in `target` (a Maildir): its unique name
    /// → row ids, so prune of that Maildir can mark the copies it removes.
    pub fn rows_by_location(&self, target: &str) -> Result<HashMap<String, Vec<i64>>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, location FROM messages WHERE target = ?1 AND location IS NOT NULL \
             AND target_removed_at IS NULL",
        )?;
        let mut out: HashMap<String, Vec<i64>> = HashMap::new();
        let mut rows = st.query(params![target])?;
        while let Some(r) = rows.next()? {
            let loc: String = r.get(1)?;
            let unique = loc.split(',').next().unwrap_or(&loc).to_string();
            out.entry(unique).or_default().push(r.get(0)?);
        }
        Ok(out)
    }

    /// Prune's history per account and folder (for `status`).
    pub fn deletion_report(&self) -> Result<Vec<DeletionSummary>> {
        let mut st = self.conn.prepare_cached(
            "SELECT account, folder, COALESCE(SUM(outcome = 'deleted'), 0), \
             COALESCE(SUM(CASE WHEN outcome = 'deleted' THEN size ELSE 0 END), 0), \
             COALESCE(SUM(outcome IS NULL), 0), MAX(done_at) \
             FROM deletions GROUP BY account, folder ORDER BY account, folder",
        )?;
        let rows = st.query_map([], |r| {
            Ok(DeletionSummary {
                account: r.get(0)?,
                folder: FolderName::new(r.get::<_, String>(1)?),
                deleted: r.get::<_, i64>(2)?.max(0) as u64,
                bytes: r.get::<_, i64>(3)?.max(0) as u64,
                pending: r.get::<_, i64>(4)?.max(0) as u64,
                last_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// Applies the migrations the file lacks, each in its own transaction
/// together with its `user_version` bump, so a crash never leaves half a
/// migration behind.
fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let known = schema::MIGRATIONS.len() as u32;
    let have: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| state_err(path, e))?;
    if have > known {
        return Err(state_err(
            path,
            format!(
                "written by a newer mailferry (schema version {have}, this one knows up to {known}); upgrade mailferry"
            ),
        ));
    }
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(have as usize) {
        let tx = conn.transaction().map_err(|e| state_err(path, e))?;
        tx.execute_batch(sql)
            .map_err(|e| state_err(path, format!("migration to version {}: {e}", i + 1)))?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)
            .map_err(|e| state_err(path, e))?;
        tx.commit().map_err(|e| state_err(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
