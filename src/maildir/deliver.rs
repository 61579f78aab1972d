//! Durable, batched delivery: tmp/ → write → mtime → fsync (or one syncfs
//! per batch, see [`super::fs_sync`]) → rename → (per batch) directory
//! fsync. The state may record a file only after
//! [`Batch::commit`] returned, because only then is its directory entry on
//! disk too (SPEC §2 fetch).

use super::fs_sync::FsSync;
use super::name::{self, SourceKey};
use super::sync_dir;
use crate::error::{Error, Result};
use crate::types::Flags;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Per-process delivery counter (the `Q<n>` of the unique name): keeps names
/// unique within one microsecond.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The `P<pid>` of the unique name, read once (getpid is a system call).
static PID: std::sync::LazyLock<u32> = std::sync::LazyLock::new(std::process::id);

/// Above this many pending files a deferred batch closes handles and reopens
/// at commit, so large batches cannot run out of file descriptors.
const MAX_OPEN_PENDING: usize = 256;

/// Default number of concurrent fsyncs at commit; see
/// [`Batch::fsync_parallelism`].
const DEFAULT_FSYNC_THREADS: usize = 8;

/// How message line endings are written. Dovecot stores LF; keeping CRLF is
/// for readers that want the server's bytes verbatim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineEndings {
    /// Bytes exactly as received.
    AsIs,
    /// CRLF becomes LF; a CR not followed by LF is kept.
    #[default]
    Lf,
}

impl LineEndings {
    /// The storage that can be undone exactly: `Lf` only when every CR in
    /// `msg` starts a CRLF and every LF ends one, so writing LF on disk and
    /// CRLF back on the wire restores the very bytes (push, verify --deep);
    /// anything irregular is kept as it came.
    pub fn lossless_for(msg: &[u8]) -> LineEndings {
        if crate::bytes::crlf_only(msg) {
            LineEndings::Lf
        } else {
            LineEndings::AsIs
        }
    }
}

/// When file data is forced to disk. Both are equally durable by the time
/// [`Batch::commit`] returns; they differ in speed and in where an
/// interrupted batch leaves its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// fsync each file as it is finished, then rename it into cur/ or new/:
    /// after a crash a finished file is already in place, complete, and
    /// recognised by its name.
    PerFile,
    /// Leave files in tmp/ until commit, then make them durable (one syncfs
    /// where that is as good, else an fsync each, several in parallel so the
    /// file system can merge journal commits), rename them,
    /// and fsync the directories. After a crash nothing of an uncommitted
    /// batch is visible; [`super::Maildir::clean_tmp`] removes the remains.
    #[default]
    Deferred,
}

/// A message file this batch wrote. `path` exists once [`Batch::commit`]
/// returned (with [`SyncMode::PerFile`] already after `finish`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Final location in cur/ or new/.
    pub path: PathBuf,
    /// The unique part of the name: stable across flag changes, so this is
    /// what the state should record as the location.
    pub unique: String,
    /// Bytes on disk (`S=`).
    pub size: u64,
    /// Size with LF counted as CRLF (`W=`): comparable to RFC822.SIZE.
    pub vsize: u64,
    /// The identity written into the name.
    pub key: SourceKey,
}

struct Pending {
    tmp: PathBuf,
    file: Option<File>,
    stored: StoredFile,
}

/// A set of deliveries into one folder sharing one directory fsync.
pub struct Batch {
    dir: PathBuf,
    host: String,
    account_tag: String,
    line_endings: LineEndings,
    sync: SyncMode,
    pending: Vec<Pending>,
    done: Vec<StoredFile>,
    dirty_cur: bool,
    dirty_new: bool,
    fsync_threads: usize,
    /// Tests that check naming, not durability, skip fsync to stay fast.
    skip_fsync: bool,
    /// Reused CRLF→LF output buffer, so a message costs no allocation.
    scratch: Vec<u8>,
    /// Deferred mode on a file system where one syncfs replaces the
    /// per-file fsyncs; opened before the batch's first file.
    fs_sync: Option<FsSync>,
    fs_sync_checked: bool,
    /// Tests of the per-file path on file systems that support syncfs.
    never_fs_sync: bool,
    /// The message being written has only CRLF line endings (see
    /// [`Batch::set_line_endings_for`]).
    input_crlf_only: bool,
    /// Keyword letters for the next message's name (see
    /// [`Batch::set_keyword_letters`]).
    keyword_letters: String,
}

impl Batch {
    pub(crate) fn new(dir: PathBuf, host: String, account: &str) -> Batch {
        Batch {
            dir,
            host,
            account_tag: name::account_tag(account),
            line_endings: LineEndings::default(),
            sync: SyncMode::default(),
            pending: Vec::new(),
            done: Vec::new(),
            dirty_cur: false,
            dirty_new: false,
            fsync_threads: DEFAULT_FSYNC_THREADS,
            skip_fsync: false,
            scratch: Vec::new(),
            fs_sync: None,
            fs_sync_checked: false,
            never_fs_sync: false,
            input_crlf_only: false,
            keyword_letters: String::new(),
        }
    }

    /// Chooses line-ending handling (default [`LineEndings::Lf`], as Dovecot).
    pub fn line_endings(mut self, le: LineEndings) -> Batch {
        self.line_endings = le;
        self
    }

    /// Changes line-ending handling for the next messages (per message,
    /// with [`LineEndings::lossless_for`]).
    pub fn set_line_endings(&mut self, le: LineEndings) {
        self.line_endings = le;
        self.input_crlf_only = false;
    }

    /// [`LineEndings::lossless_for`] `msg`, remembering why: when every
    /// line of the next message ends in CRLF, its `W=` size is simply its
    /// length, and the pass that counts bare LFs in the output is skipped
    /// (a few percent of a large fetch's CPU).
    pub fn set_line_endings_for(&mut self, msg: &[u8]) {
        self.line_endings = LineEndings::lossless_for(msg);
        // Lf is chosen exactly when every line ends in CRLF.
        self.input_crlf_only = self.line_endings == LineEndings::Lf;
    }

    /// Dovecot keyword letters (`a`–`z`, from
    /// [`super::FolderKeywords::letters`]) for the next message begun: its
    /// name carries them after the standard flags.
    pub fn set_keyword_letters(&mut self, letters: &str) {
        self.keyword_letters = letters.chars().filter(char::is_ascii_lowercase).collect();
    }

    /// Chooses the fsync strategy (default [`SyncMode::Deferred`], faster).
    pub fn sync_mode(mut self, mode: SyncMode) -> Batch {
        self.sync = mode;
        self
    }

    /// How many files [`SyncMode::Deferred`] fsyncs at once at commit
    /// (default 8). Concurrent fsyncs share journal commits, so this is
    /// what makes batching pay on disks with slow cache flushes.
    pub fn fsync_parallelism(mut self, n: usize) -> Batch {
        self.fsync_threads = n.max(1);
        self
    }

    #[cfg(test)]
    pub(crate) fn without_fsync(mut self) -> Batch {
        self.skip_fsync = true;
        self
    }

    /// Forces one fsync per file even where a syncfs would do.
    #[cfg(test)]
    pub(crate) fn without_fs_sync(mut self) -> Batch {
        self.never_fs_sync = true;
        self
    }

    /// True when the next commit syncs the file system once instead of
    /// fsyncing each file.
    #[cfg(test)]
    pub(crate) fn uses_fs_sync(&self) -> bool {
        self.fs_sync.is_some()
    }

    /// The folder directory this batch writes into.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of files written but not yet committed.
    pub fn len(&self) -> usize {
        self.pending.len() + self.done.len()
    }

    /// True when nothing awaits commit.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores one message held in memory; see [`Batch::begin`] for the
    /// meaning of the arguments.
    pub fn put(
        &mut self,
        msg: &[u8],
        key: &SourceKey,
        flags: &Flags,
        mtime: Option<SystemTime>,
        into_new: bool,
    ) -> Result<StoredFile> {
        let mut p = self.begin(key, flags, mtime, into_new)?;
        // In pieces, so converting line endings needs a buffer of one
        // piece, not a second copy of a 30 MB message.
        for piece in msg.chunks(PUT_PIECE) {
            p.write_all(piece)?;
        }
        p.finish()
    }

    /// Starts a streamed delivery so huge messages never sit in memory.
    /// `mtime` is the arrival date (INTERNALDATE), which Dovecot shows as
    /// the message date. `into_new` puts the file in new/ (unseen by any
    /// client yet: POP3); otherwise cur/. Flags go in the `:2,` info either
    /// way; a new/ file without flags gets no info part, as the spec has it.
    pub fn begin(
        &mut self,
        key: &SourceKey,
        flags: &Flags,
        mtime: Option<SystemTime>,
        into_new: bool,
    ) -> Result<PendingFile<'_>> {
        let keyword_letters = std::mem::take(&mut self.keyword_letters);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let unique = format!(
            "{}.M{}P{}Q{}.{}",
            now.as_secs(),
            now.subsec_micros(),
            *PID,
            COUNTER.fetch_add(1, Ordering::Relaxed),
            self.host
        );
        let tmp = self.dir.join("tmp").join(&unique);
        if !self.fs_sync_checked && self.sync == SyncMode::Deferred && !self.never_fs_sync {
            self.fs_sync_checked = true;
            self.fs_sync = FsSync::open(&self.dir.join("tmp"));
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        let mut info = flags.to_maildir();
        info.push_str(&super::merge_letters("", &keyword_letters, ""));
        Ok(PendingFile {
            batch: self,
            out: Some(BufWriter::with_capacity(64 * 1024, file)),
            tmp,
            unique,
            key: key.clone(),
            info,
            mtime,
            into_new,
            pending_cr: false,
            last_out_cr: false,
            size: 0,
            vsize: 0,
            handed_off: false,
        })
    }

    /// Makes every file of the batch durable — data, mtime and directory
    /// entry — and returns them; only now may the caller record them in the
    /// state. On error nothing returned may be recorded; a rerun finds the
    /// files that did make it by their names.
    pub fn commit(&mut self) -> Result<Vec<StoredFile>> {
        // A committing batch writes no more: its CRLF→LF buffer (the size
        // of its largest message) would otherwise live on while up to three
        // commits are in flight beside the batch being written.
        self.scratch = Vec::new();
        if !self.pending.is_empty() {
            if !self.skip_fsync {
                self.sync_pending()?;
            }
            for p in std::mem::take(&mut self.pending) {
                fs::rename(&p.tmp, &p.stored.path).map_err(|e| Error::io(&p.stored.path, e))?;
                self.done.push(p.stored);
            }
        }
        if self.skip_fsync {
            (self.dirty_cur, self.dirty_new) = (false, false);
        }
        if self.dirty_cur {
            sync_dir(&self.dir.join("cur"))?;
            self.dirty_cur = false;
        }
        if self.dirty_new {
            sync_dir(&self.dir.join("new"))?;
            self.dirty_new = false;
        }
        Ok(std::mem::take(&mut self.done))
    }

    /// Makes the pending tmp files durable: one syncfs where that is as
    /// good (see [`super::fs_sync`]), otherwise an fsync of each on a few
    /// threads (each fsync waits for a journal commit; concurrent ones
    /// share it).
    fn sync_pending(&mut self) -> Result<()> {
        self.fs_sync_checked = false;
        if let Some(fs) = self.fs_sync.take() {
            for p in &mut self.pending {
                p.file = None;
            }
            return fs.sync().map_err(|e| Error::io(self.dir.join("tmp"), e));
        }
        let per = self.pending.len().div_ceil(self.fsync_threads).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .pending
                .chunks_mut(per)
                .map(|chunk| {
                    s.spawn(move || -> Result<()> {
                        for p in chunk {
                            let f = match p.file.take() {
                                Some(f) => f,
                                None => File::open(&p.tmp).map_err(|e| Error::io(&p.tmp, e))?,
                            };
                            f.sync_all().map_err(|e| Error::io(&p.tmp, e))?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::State("fsync thread panicked".into())))
            })
        })
    }
}

impl Drop for Batch {
    /// An uncommitted deferred batch leaves only tmp/ files: remove them now
    /// rather than waiting 36 h for [`super::Maildir::clean_tmp`].
    fn drop(&mut self) {
        for p in self.pending.drain(..) {
            let _ = fs::remove_file(&p.tmp);
        }
    }
}

/// What [`Batch::put`] hands to [`PendingFile::write_all`] at a time.
const PUT_PIECE: usize = 256 * 1024;

/// A message being written to tmp/. Dropping it without
/// [`PendingFile::finish`] removes the partial file.
pub struct PendingFile<'b> {
    batch: &'b mut Batch,
    out: Option<BufWriter<File>>,
    tmp: PathBuf,
    unique: String,
    key: SourceKey,
    info: String,
    mtime: Option<SystemTime>,
    into_new: bool,
    /// Lf mode: the previous chunk ended in CR; decided by the next byte.
    pending_cr: bool,
    /// The last byte written was CR (for counting bare LFs in `W=`).
    last_out_cr: bool,
    size: u64,
    vsize: u64,
    /// The tmp file now belongs to the batch or has been renamed.
    handed_off: bool,
}

impl PendingFile<'_> {
    /// Appends a chunk; chunk boundaries may fall anywhere, also between
    /// the CR and LF of a line ending.
    pub fn write_all(&mut self, chunk: &[u8]) -> Result<()> {
        if self.batch.line_endings == LineEndings::AsIs || chunk.is_empty() {
            return self.emit(chunk);
        }
        let mut scratch = std::mem::take(&mut self.batch.scratch);
        scratch.clear();
        if self.pending_cr {
            self.pending_cr = false;
            if chunk[0] != b'\n' {
                scratch.push(b'\r');
            }
        }
        // A final CR waits for the next chunk's first byte.
        let (body, cr) = match chunk.split_last() {
            Some((b'\r', body)) => (body, true),
            _ => (chunk, false),
        };
        crate::bytes::crlf_to_lf(body, &mut scratch);
        self.pending_cr = cr;
        // CRLF-only input: every input byte is one byte of the CRLF size,
        // so the chunks' lengths add up to `W=`.
        let vsize = self.batch.input_crlf_only.then_some(chunk.len() as u64);
        let r = self.emit_counted(&scratch, vsize);
        self.batch.scratch = scratch;
        r
    }

    fn emit(&mut self, seg: &[u8]) -> Result<()> {
        self.emit_counted(seg, None)
    }

    /// Writes `seg`; `vsize` is its share of `W=` when the caller knows it,
    /// else it is counted from the bytes.
    fn emit_counted(&mut self, seg: &[u8], vsize: Option<u64>) -> Result<()> {
        if seg.is_empty() {
            self.vsize += vsize.unwrap_or(0);
            return Ok(());
        }
        let vsize = vsize
            .unwrap_or_else(|| seg.len() as u64 + crate::bytes::bare_lf(seg, self.last_out_cr));
        self.last_out_cr = seg.last() == Some(&b'\r');
        self.size += seg.len() as u64;
        self.vsize += vsize;
        let out = self.out.as_mut().expect("open until finish");
        out.write_all(seg).map_err(|e| Error::io(&self.tmp, e))
    }

    /// Completes the file: sets its mtime, and per the batch's [`SyncMode`]
    /// either fsyncs and renames it now or queues it for commit.
    pub fn finish(mut self) -> Result<StoredFile> {
        // What `set_line_endings_for` learnt was about this message only.
        self.batch.input_crlf_only = false;
        if self.pending_cr {
            self.pending_cr = false;
            self.emit(b"\r")?;
        }
        let out = self.out.take().expect("open until finish");
        let file = out
            .into_inner()
            .map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        if let Some(t) = self.mtime {
            file.set_modified(t).map_err(|e| Error::io(&self.tmp, e))?;
        }
        let acct = &self.batch.account_tag;
        let mut fname = format!(
            "{},S={},W={},X={}-{}",
            self.unique,
            self.size,
            self.vsize,
            acct,
            self.key.tag()
        );
        if !self.into_new || !self.info.is_empty() {
            fname.push_str(":2,");
            fname.push_str(&self.info);
        }
        let sub = if self.into_new { "new" } else { "cur" };
        let stored = StoredFile {
            path: self.batch.dir.join(sub).join(&fname),
            unique: std::mem::take(&mut self.unique),
            size: self.size,
            vsize: self.vsize,
            key: self.key.clone(),
        };
        if self.into_new {
            self.batch.dirty_new = true;
        } else {
            self.batch.dirty_cur = true;
        }
        let tmp = self.tmp.clone();
        match self.batch.sync {
            SyncMode::PerFile => {
                // sync_all, not sync_data: the mtime is the arrival date and
                // must survive a crash too.
                if !self.batch.skip_fsync {
                    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
                }
                drop(file);
                fs::rename(&tmp, &stored.path).map_err(|e| Error::io(&stored.path, e))?;
                self.handed_off = true;
                self.batch.done.push(stored.clone());
            }
            SyncMode::Deferred => {
                let keep = self.batch.pending.len() < MAX_OPEN_PENDING;
                self.handed_off = true;
                self.batch.pending.push(Pending {
                    tmp,
                    file: keep.then_some(file),
                    stored: stored.clone(),
                });
            }
        }
        Ok(stored)
    }
}

impl Drop for PendingFile<'_> {
    fn drop(&mut self) {
        self.batch.input_crlf_only = false;
        if !self.handed_off {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}
