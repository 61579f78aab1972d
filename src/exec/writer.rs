//! The Maildir writer shared by every fetch: receives downloaded messages
//! over a channel, writes them in batches (tmp → fsync → rename → dir
//! fsync), and only then records the batch in the state in one
//! transaction. Runs on a blocking thread so fsyncs never stall the
//! network tasks, and the next messages download while a batch syncs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::message::MessageHeaders;
use crate::error::Result;
use crate::maildir::{FolderKeywords, Maildir, SourceKey};
use crate::report::FolderProgress;
use crate::state::{MsgKey as StateKey, NewRecord, State};
use crate::types::{Flags, FolderName};

/// A message to store.
pub struct Incoming {
    /// Identity written into the file name (kill-safety without the state).
    pub source: SourceKey,
    /// Identity recorded in the state.
    pub key: StateKey,
    pub body: Vec<u8>,
    pub flags: Flags,
    /// Arrival date (INTERNALDATE), unix seconds; POP3 passes `None` and the
    /// Date: header is used.
    pub date: Option<i64>,
    /// Size as the source reports it (RFC822.SIZE, POP3 LIST).
    pub size: u64,
    /// The body's share of the memory budget, given back once it is written.
    pub lease: crate::flow::Lease,
}

/// Where and how to write.
pub struct WriterSetup {
    pub maildir: Maildir,
    pub folder: FolderName,
    pub folder_id: i64,
    /// Account key, hashed into file names.
    pub account: String,
    /// The state's name for this Maildir (`maildir:/abs/path`).
    pub target: String,
    /// POP3 delivers into new/ (unseen by any client); IMAP into cur/.
    pub into_new: bool,
    pub state: Arc<Mutex<State>>,
    pub now: i64,
    pub progress: Arc<FolderProgress>,
    /// The folder's Dovecot keyword table, so names carry the keywords
    /// (IMAP); `None` stores none (POP3 has no keywords).
    pub keywords: Option<Arc<FolderKeywords>>,
}

/// What a writer stored.
#[derive(Debug, Default)]
pub struct Written {
    pub copied: u64,
    pub bytes: u64,
}

/// A batch is committed (made durable, then recorded) at this many
/// messages or bytes, whichever comes first: few directory fsyncs and state
/// transactions, little work lost to a kill.
const BATCH_MESSAGES: usize = 256;
const BATCH_BYTES: usize = 32 << 20;
/// Batches being made durable at once, per writer.
const MAX_INFLIGHT: usize = 3;

/// Starts the writer; it ends when every sender is dropped and returns what
/// it stored. An error (disk full, permissions) stops it: the senders see a
/// closed channel.
///
/// Commits are pipelined: while one batch is made durable and recorded on a
/// committer thread, the next is being written, so downloading never waits
/// for fsync. The order per batch is unchanged (files durable, then the
/// state), and at most [`MAX_INFLIGHT`] batches are in flight: with one
/// folder (POP3) that is what keeps enough fsyncs going at once for the
/// file system to merge their journal commits.
pub fn spawn(
    setup: WriterSetup,
    mut rx: mpsc::Receiver<Incoming>,
) -> tokio::task::JoinHandle<Result<Written>> {
    tokio::task::spawn_blocking(move || {
        let mut batch = setup.maildir.batch(&setup.folder, &setup.account)?;
        let mut records: Vec<NewRecord> = Vec::new();
        let mut pending_bytes = 0usize;
        let mut out = Written::default();
        let mut inflight: std::collections::VecDeque<std::thread::JoinHandle<Result<u64>>> =
            Default::default();
        let join = |h: std::thread::JoinHandle<Result<u64>>| -> Result<u64> {
            h.join().unwrap_or_else(|_| {
                Err(crate::Error::State("Maildir commit thread panicked".into()))
            })
        };
        while let Some(m) = rx.blocking_recv() {
            let headers = MessageHeaders::parse(&m.body);
            let date = m.date.or(headers.date);
            let mtime = date
                .filter(|&d| d > 0)
                .map(|d| UNIX_EPOCH + Duration::from_secs(d as u64));
            batch.set_line_endings_for(&m.body);
            if let Some(k) = &setup.keywords
                && !m.flags.keywords.is_empty()
            {
                // The state keeps every keyword, also one without a letter.
                batch.set_keyword_letters(&k.letters(&m.flags.keywords)?);
            }
            let digest = crate::net::sha256(&m.body);
            let stored = batch.put(
                &m.body,
                &m.source,
                &m.flags,
                mtime.or(Some(SystemTime::now())),
                setup.into_new,
            )?;
            // Written (in the page cache): the bytes may be read again.
            drop(m.lease);
            setup.progress.inc(m.body.len() as u64);
            out.bytes += m.body.len() as u64;
            pending_bytes += m.body.len();
            records.push(NewRecord {
                key: m.key,
                message_id: headers.message_id,
                size: Some(m.size),
                digest: Some(digest.to_vec()),
                internal_date: date,
                flags: m.flags,
                target: setup.target.clone(),
                location: Some(stored.unique),
            });
            if records.len() >= BATCH_MESSAGES || pending_bytes >= BATCH_BYTES {
                if inflight.len() >= MAX_INFLIGHT {
                    out.copied += join(inflight.pop_front().unwrap())?;
                }
                let full = std::mem::replace(
                    &mut batch,
                    setup.maildir.batch(&setup.folder, &setup.account)?,
                );
                inflight.push_back(commit_in_background(
                    full,
                    std::mem::take(&mut records),
                    &setup,
                ));
                pending_bytes = 0;
            }
        }
        for h in inflight {
            out.copied += join(h)?;
        }
        out.copied += commit(
            &mut batch,
            &records,
            &setup.state,
            setup.folder_id,
            setup.now,
        )?;
        Ok(out)
    })
}

/// Makes a batch durable, then records it: the one order that keeps the
/// state from ever claiming a message the disk does not have.
fn commit(
    batch: &mut crate::maildir::Batch,
    records: &[NewRecord],
    state: &Arc<Mutex<State>>,
    folder_id: i64,
    now: i64,
) -> Result<u64> {
    if records.is_empty() {
        return Ok(0);
    }
    batch.commit()?;
    state
        .lock()
        .unwrap()
        .record_batch(folder_id, records, now)?;
    Ok(records.len() as u64)
}

fn commit_in_background(
    mut batch: crate::maildir::Batch,
    records: Vec<NewRecord>,
    setup: &WriterSetup,
) -> std::thread::JoinHandle<Result<u64>> {
    let (state, folder_id, now) = (setup.state.clone(), setup.folder_id, setup.now);
    std::thread::spawn(move || commit(&mut batch, &records, &state, folder_id, now))
}

/// The state record for a file a killed run wrote but never recorded,
/// read back from disk (header, digest of the server's bytes) instead of
/// downloaded again. `date` is the source's arrival date if it has one;
/// otherwise the Date: header is used, as when the file was written.
pub fn adopted_record(
    path: &std::path::Path,
    key: StateKey,
    size: u64,
    date: Option<i64>,
    flags: Flags,
    target: &str,
) -> Result<NewRecord> {
    let bytes = std::fs::read(path).map_err(|e| crate::Error::io(path, e))?;
    let wire = super::wire_bytes(&bytes);
    let h = MessageHeaders::parse(&wire);
    // The unique part, as the writer records it: it survives flag renames.
    let unique = path.file_name().map(|n| {
        let n = n.to_string_lossy();
        n.split([',', ':']).next().unwrap_or(&n).to_string()
    });
    Ok(NewRecord {
        key,
        message_id: h.message_id,
        size: Some(size),
        digest: Some(crate::net::sha256(&wire).to_vec()),
        internal_date: date.or(h.date),
        flags,
        target: target.to_string(),
        location: unique,
    })
}
