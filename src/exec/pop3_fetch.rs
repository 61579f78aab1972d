//! `fetch` from POP3 into a Maildir (SPEC §2 fetch, §3, §4).
//!
//! One session lists and decides: LIST + UIDL in one round trip (or, on a
//! server without UIDL, a digest of each message's `TOP n 0` headers and
//! size), plan against the state, adopt files a killed run wrote but never
//! recorded, pipelined RETR into the shared Maildir writer (INBOX `new/`);
//! a big download is handed out in chunks to up to 4 sessions
//! (`--connections`), each RETRieving by its own message numbers. Only the
//! first session ever deletes: retention: DELE only what
//! the state shows durably stored, and mark it deleted only once QUIT
//! returned `+OK` (POP3 deletes at QUIT; a dropped session deletes nothing).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::Ctx;
use super::writer::{self, Incoming, WriterSetup};
use crate::config::{FetchJob, Retention, rfc3339};
use crate::endpoint::ServerConfig;
use crate::error::{Error, Result};
use crate::flow::Lease;
use crate::maildir::{Maildir, SourceKey, account_tag};
use crate::plan::{self, Known, LocalFile, MsgKey, SourceMsg};
use crate::pop3::{self, Pop3Client};
use crate::report::{Event, FolderProgress, Summary};
use crate::state::{MsgKey as StateKey, State};
use crate::types::{Flags, FolderName, Uidl};

/// What the run shares.
struct Shared<'a> {
    job: &'a FetchJob,
    ctx: &'a Ctx<'a>,
    cfg: ServerConfig,
    state: Arc<Mutex<State>>,
    /// None only in a dry run against a Maildir that does not exist yet.
    maildir: Option<Maildir>,
    /// The account's key, hashed into file names.
    account: String,
    /// Folder row key: `"{account} {target}"`, as for IMAP.
    sync_key: String,
    target: String,
    inbox: FolderName,
    /// The account's daily download budget (Gmail's covers POP3 too).
    gov: super::governor::Governor,
}

/// One message of this session's listing (also push's POP3 source).
#[derive(Debug, Clone)]
pub(super) struct Listed {
    pub msgno: u32,
    pub uidl: Uidl,
    pub size: u64,
}

/// Runs the job. Connect and login failures are fatal (exit 3/4); a session
/// lost mid-way is reopened once and the mailbox planned again from the
/// state, then reported as a failure (exit 1).
pub async fn run(job: &FetchJob, ctx: &Ctx<'_>, state: &Arc<Mutex<State>>) -> Result<()> {
    let url = job.from.server_url("--from")?.clone();
    let cfg = job.from.server_config("--from", ctx.settings.timeouts)?;
    let dry = ctx.settings.dry_run;
    let maildir = if dry && !job.to.join("cur").is_dir() {
        None
    } else {
        Some(Maildir::open_or_create(&job.to)?)
    };
    let target = super::maildir_target(&job.to);
    let account = url.account_key();
    let sh = Shared {
        job,
        ctx,
        cfg,
        state: state.clone(),
        maildir,
        sync_key: super::sync_key(&account, &target),
        account,
        target,
        inbox: FolderName::inbox(),
        gov: super::governor::Governor::new(state.clone(), &job.from, None, dry),
    };
    let (mut c, _info) = super::fresh_login(async || pop3::connect(&sh.cfg).await).await?;
    // The state's view loads on another thread while the server lists:
    // with 10,000 known messages that is ~10 ms, a sixth of a no-op run.
    // Not before login: on two cores, loading beside the TLS handshake
    // only slowed the handshake down.
    let mut preloaded = Some(spawn_view(&sh));
    let mut attempt = 0;
    loop {
        match sync(c, &sh, preloaded.take()).await {
            Ok(()) => return Ok(()),
            Err(Error::Interrupted) => return Err(Error::Interrupted),
            Err(e @ Error::Budget { .. }) => return Err(e),
            Err(e) if e.is_transient() && attempt == 0 => {
                attempt += 1;
                ctx.reporter.warning(
                    Some(sh.inbox.as_str()),
                    &format!(
                        "{e}; reconnecting to retry (nothing was deleted: POP3 deletes only at a confirmed QUIT)"
                    ),
                );
                c = super::fresh_login(async || pop3::connect(&sh.cfg).await)
                    .await?
                    .0;
            }
            Err(e) => {
                ctx.reporter
                    .message_error(sh.inbox.as_str(), None, None, &e.to_string());
                ctx.reporter.add(&Summary {
                    failed: 1,
                    ..Default::default()
                });
                return Ok(());
            }
        }
    }
}

/// What the state knows of the mailbox before a session plans.
struct View {
    /// None only in a dry run that has never seen this mailbox.
    folder_id: Option<i64>,
    known: HashMap<MsgKey, Known>,
}

/// Loads the [`View`] on a blocking thread. Nothing else writes the state
/// until the session has listed and planned (the run holds its lock), so
/// loading early reads what loading then would.
fn spawn_view(sh: &Shared<'_>) -> tokio::task::JoinHandle<Result<View>> {
    let state = sh.state.clone();
    let (sync_key, inbox, target) = (sh.sync_key.clone(), sh.inbox.clone(), sh.target.clone());
    let dry = sh.ctx.settings.dry_run;
    tokio::task::spawn_blocking(move || view(&state, &sync_key, &inbox, &target, dry))
}

fn view(
    state: &Mutex<State>,
    sync_key: &str,
    inbox: &FolderName,
    target: &str,
    dry: bool,
) -> Result<View> {
    let mut st = state.lock().unwrap();
    let folder_id = if dry {
        // A dry run never adds rows, not even a folder.
        st.find_folder(sync_key, inbox)?.map(|f| f.id)
    } else {
        Some(st.folder(sync_key, inbox)?.id)
    };
    let known = match folder_id {
        Some(id) => known_in(&st, id, target)?,
        None => HashMap::new(),
    };
    Ok(View { folder_id, known })
}

/// List → plan → copy → retention over one session; `preloaded` is the
/// first attempt's [`View`] (a retry loads it again: the failed attempt
/// may have recorded messages).
async fn sync(
    mut c: Pop3Client,
    sh: &Shared<'_>,
    preloaded: Option<tokio::task::JoinHandle<Result<View>>>,
) -> Result<()> {
    let rep = sh.ctx.reporter;
    let dry = sh.ctx.settings.dry_run;
    let name = sh.inbox.as_str();
    sh.ctx.interrupt.check()?;

    // UIDL first: when the state knows every message and nothing is to be
    // deleted, the run is over without a LIST (a no-op rerun is CAPA+UIDL
    // in one write, then QUIT).
    let ids = c.uidl_all().await?;
    let View { folder_id, known } = match preloaded {
        Some(h) => h
            .await
            .map_err(|e| Error::State(format!("loading the state failed: {e}")))??,
        None => view(&sh.state, &sh.sync_key, &sh.inbox, &sh.target, dry)?,
    };
    if !dry
        && sh.job.retention == Retention::Keep
        && let Some(ids) = &ids
        && ids
            .iter()
            .all(|(_, u)| known.contains_key(&MsgKey::Uidl(u.clone())))
    {
        rep.folder_start(name, 0, 0).finish();
        rep.folder_done(name, &Summary::default());
        let _ = c.quit().await;
        return Ok(());
    }
    let listing = list_with(&mut c, ids, sh.ctx.reporter).await?;
    let source: Vec<SourceMsg> = listing
        .iter()
        .map(|m| SourceMsg {
            key: MsgKey::Uidl(m.uidl.clone()),
            size: m.size,
            date: 0,
            flags: None,
        })
        .collect();
    let mut plan = plan::plan_copy(&source, true, &known, &HashMap::new(), &sh.job.filter);
    if !plan.copy.is_empty()
        && let Some(md) = &sh.maildir
    {
        let local = orphans(md, &sh.inbox, &sh.account, &plan.copy)?;
        if !local.is_empty() {
            plan = plan::plan_copy(&source, true, &known, &local, &sh.job.filter);
        }
    }
    let mut sum = Summary {
        skipped: plan.skipped.len() as u64,
        ..Default::default()
    };
    super::report_skipped(rep, sh.ctx.settings.verbose, name, &plan.skipped);
    let progress = Arc::new(rep.folder_start(name, plan.copy.len() as u64, plan.copy_bytes()));
    // What the server lists, for retention (not built for a plain fetch).
    let present = || -> HashSet<MsgKey> { source.iter().map(|m| m.key.clone()).collect() };

    if dry {
        sum.copied = plan.copy.len() as u64;
        sum.matched = plan.adopt.len() as u64;
        sum.bytes = plan.copy_bytes();
        let mut dels = plan::source_deletions(
            known.values(),
            sh.job.retention,
            sh.ctx.now,
            Some(&present()),
        );
        if sh.job.retention == Retention::AfterFetch {
            // What this run would store is deleted once stored.
            let newly = plan.copy.iter().chain(plan.adopt.iter().map(|(m, _)| m));
            dels.extend(newly.map(|m| plan::Deletion {
                key: m.key.clone(),
                reason: "delete-after-fetch".into(),
                size: m.size,
                date: 0,
                message_id: None,
            }));
            dels.sort_by(|a, b| a.key.cmp(&b.key));
        }
        let details = details(sh, folder_id)?;
        for d in &dels {
            rep.delete(delete_event(name, d, &details, true));
        }
        sum.deleted = dels.len() as u64;
        progress.finish();
        rep.folder_done(name, &sum);
        let _ = c.quit().await;
        return Ok(());
    }
    let md = sh.maildir.as_ref().expect("a real run has a Maildir");
    let folder_id = folder_id.expect("a real run has a folder row");

    if !plan.adopt.is_empty() {
        adopt(&plan.adopt, folder_id, sh)?;
        sum.matched += plan.adopt.len() as u64;
    }
    if !plan.copy.is_empty() {
        let by_uidl: HashMap<&Uidl, &Listed> = listing.iter().map(|m| (&m.uidl, m)).collect();
        let mut todo: Vec<Listed> = plan
            .copy
            .iter()
            .filter_map(|m| match &m.key {
                MsgKey::Uidl(u) => by_uidl.get(u).map(|l| (*l).clone()),
                MsgKey::Uid(_) => None,
            })
            .collect();
        // As much as the daily download budget allows, booked first.
        let budget = sh
            .gov
            .reserve(&todo.iter().map(|m| m.size).collect::<Vec<_>>())?;
        todo.truncate(budget.fits);
        let mut out = copy(&mut c, md, folder_id, &todo, &progress, sh).await;
        sh.gov.settle(&budget, out.bytes)?;
        if out.result.is_ok() && !out.interrupted {
            out.result = budget.stop.map_or(Ok(()), Err);
        }
        sum.copied += out.copied;
        sum.bytes += out.bytes;
        for (uidl, why) in &out.failed {
            rep.message_error(name, None, Some(uidl), why);
            sum.failed += 1;
        }
        let stop = match out.result {
            Err(e) => Some(e),
            Ok(()) if out.interrupted => Some(Error::Interrupted),
            Ok(()) => None,
        };
        if let Some(e) = stop {
            // No QUIT: the session is dropped, so no DELE of it can count.
            progress.finish();
            rep.folder_done(name, &sum);
            return Err(e);
        }
    }
    progress.finish();

    if sh.job.retention == Retention::Keep {
        let _ = c.quit().await;
        rep.folder_done(name, &sum);
        return Ok(());
    }
    let r = retention(c, &listing, folder_id, &present(), sh, &mut sum).await;
    rep.folder_done(name, &sum);
    r
}

/// LIST and UIDL (or the header-digest fallback), one entry per identity.
pub(super) async fn list(c: &mut Pop3Client, rep: &crate::report::Reporter) -> Result<Vec<Listed>> {
    let (sizes, ids) = c.list_and_uidl().await?;
    merge_listing(c, sizes, ids, rep).await
}

/// LIST to go with a UIDL listing already read (`None`: the server has no
/// UIDL).
async fn list_with(
    c: &mut Pop3Client,
    ids: Option<Vec<(u32, Uidl)>>,
    rep: &crate::report::Reporter,
) -> Result<Vec<Listed>> {
    let sizes = c.list_all().await?;
    merge_listing(c, sizes, ids, rep).await
}

/// One entry per identity from LIST and UIDL (or, without UIDL, the
/// header-digest fallback).
async fn merge_listing(
    c: &mut Pop3Client,
    sizes: Vec<(u32, u64)>,
    ids: Option<Vec<(u32, Uidl)>>,
    rep: &crate::report::Reporter,
) -> Result<Vec<Listed>> {
    let sizes: HashMap<u32, u64> = sizes.into_iter().collect();
    let ids = match ids {
        Some(ids) => ids,
        None => {
            rep.warning(
                Some("INBOX"),
                "the server does not support UIDL: messages are identified by a digest of their headers (TOP n 0) and size instead",
            );
            header_ids(c, &sizes, |_, _| {}).await?
        }
    };
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(ids.len());
    for (msgno, uidl) in ids {
        // A server listing one UIDL twice: the first is the message.
        if !seen.insert(uidl.clone()) {
            continue;
        }
        let Some(&size) = sizes.get(&msgno) else {
            continue; // deleted by another session between LIST and UIDL
        };
        out.push(Listed { msgno, uidl, size });
    }
    Ok(out)
}

/// Identities for a server without UIDL: `mf-hdr-<sha256(TOP n 0 ‖ size)>`,
/// with `-2`, `-3`, … for further messages with identical headers and size
/// (indistinguishable copies are counted, not merged). The TOPs are
/// pipelined where the server allows; `on_head` sees each header, so a
/// caller that needs them too (prune's dates) does not ask again.
pub(super) async fn header_ids(
    c: &mut Pop3Client,
    sizes: &HashMap<u32, u64>,
    mut on_head: impl FnMut(u32, &[u8]),
) -> Result<Vec<(u32, Uidl)>> {
    let mut msgnos: Vec<u32> = sizes.keys().copied().collect();
    msgnos.sort_unstable();
    let mut count: HashMap<String, u32> = HashMap::new();
    let mut out = Vec::with_capacity(msgnos.len());
    // A message without its identity cannot be planned: its error stops it.
    c.top_each(&msgnos, 0, |n, mut head| {
        on_head(n, &head);
        head.extend_from_slice(&sizes[&n].to_be_bytes());
        let d = crate::net::sha256(&head);
        let mut id = String::from("mf-hdr-");
        for b in &d[..16] {
            let _ = write!(id, "{b:02x}");
        }
        let k = count.entry(id.clone()).or_insert(0);
        *k += 1;
        if *k > 1 {
            let _ = write!(id, "-{k}");
        }
        out.push((n, Uidl(id)));
        true
    })
    .await?;
    Ok(out)
}

/// Every message the state records for `folder_id` in `target`.
fn known_in(st: &State, folder_id: i64, target: &str) -> Result<HashMap<MsgKey, Known>> {
    Ok(st
        .known_uidls(folder_id, target)?
        .into_iter()
        .map(|(u, k)| {
            let key = MsgKey::Uidl(u);
            (key.clone(), super::known_from(key, &k, None))
        })
        .collect())
}

/// Message-ID and date of recorded messages, for `delete` events.
fn details(
    sh: &Shared<'_>,
    folder_id: Option<i64>,
) -> Result<HashMap<Uidl, (Option<String>, i64)>> {
    let Some(id) = folder_id else {
        return Ok(HashMap::new());
    };
    Ok(sh
        .state
        .lock()
        .unwrap()
        .messages(id)?
        .into_iter()
        .filter(|m| m.target == sh.target)
        .filter_map(|m| Some((m.uidl?, (m.message_id, m.internal_date.unwrap_or(0)))))
        .collect())
}

fn delete_event(
    folder: &str,
    d: &plan::Deletion,
    details: &HashMap<Uidl, (Option<String>, i64)>,
    dry_run: bool,
) -> Event {
    let uidl = match &d.key {
        MsgKey::Uidl(u) => Some(u),
        MsgKey::Uid(_) => None,
    };
    let (message_id, date) = uidl
        .and_then(|u| details.get(u).cloned())
        .unwrap_or((d.message_id.clone(), d.date));
    Event::Delete {
        folder: folder.into(),
        uid: None,
        uidl: uidl.map(|u| u.0.clone()),
        message_id,
        date: rfc3339(date),
        size: d.size,
        reason: d.reason.clone(),
        dry_run,
        subject: None,
    }
}

/// Files in INBOX that carry this account's tag and the identity of a
/// message about to be downloaded: written by a run that died before
/// recording them.
fn orphans(
    md: &Maildir,
    folder: &FolderName,
    account: &str,
    wanted: &[SourceMsg],
) -> Result<HashMap<MsgKey, LocalFile>> {
    if !md.folder_dir(folder)?.join("cur").is_dir() {
        return Ok(HashMap::new());
    }
    let tag = account_tag(account);
    let on_disk: HashMap<SourceKey, crate::maildir::LocalMessage> = md
        .scan(folder)?
        .into_iter()
        .filter(|l| l.account.as_deref() == Some(tag.as_str()))
        .filter_map(|l| Some((l.source.clone()?.normalized(), l)))
        .collect();
    let mut out = HashMap::new();
    if on_disk.is_empty() {
        return Ok(out);
    }
    for m in wanted {
        let MsgKey::Uidl(uidl) = &m.key else { continue };
        let sk = SourceKey::Pop3 { uidl: uidl.clone() }.normalized();
        if let Some(l) = on_disk.get(&sk) {
            out.insert(
                m.key.clone(),
                LocalFile {
                    key: m.key.clone(),
                    location: l.path.display().to_string(),
                    size: l.vsize.unwrap_or(l.size),
                },
            );
        }
    }
    Ok(out)
}

/// Records files a killed run wrote but never recorded, reading their
/// header and digest from disk instead of downloading again.
fn adopt(items: &[(SourceMsg, LocalFile)], folder_id: i64, sh: &Shared<'_>) -> Result<()> {
    let mut recs = Vec::new();
    for (m, lf) in items {
        let MsgKey::Uidl(uidl) = &m.key else { continue };
        let key = StateKey::Pop3 { uidl: uidl.clone() };
        let path = PathBuf::from(&lf.location);
        recs.push(writer::adopted_record(
            &path,
            key,
            m.size,
            None,
            Flags::default(),
            &sh.target,
        )?);
    }
    sh.state
        .lock()
        .unwrap()
        .record_batch(folder_id, &recs, sh.ctx.now)
}

/// What a download stored, what failed per message, and how it ended.
struct Copied {
    copied: u64,
    bytes: u64,
    failed: Vec<(String, String)>,
    interrupted: bool,
    /// The session's or the writer's failure (the writer's first: disk
    /// full closes the channel, which is then only a symptom).
    result: Result<()>,
}

async fn copy(
    c: &mut Pop3Client,
    md: &Maildir,
    folder_id: i64,
    todo: &[Listed],
    progress: &Arc<FolderProgress>,
    sh: &Shared<'_>,
) -> Copied {
    let (tx, rx) = mpsc::channel::<Incoming>(32);
    let writer = writer::spawn(
        WriterSetup {
            maildir: md.clone(),
            folder: sh.inbox.clone(),
            folder_id,
            account: sh.account.clone(),
            target: sh.target.clone(),
            into_new: true,
            state: sh.state.clone(),
            now: sh.ctx.now,
            progress: progress.clone(),
            keywords: None,
        },
        rx,
    );
    let sink = Sink {
        tx,
        by_no: todo.iter().map(|m| (m.msgno, m)).collect(),
        interrupt: &sh.ctx.interrupt,
        stopped: AtomicBool::new(false),
        interrupted: AtomicBool::new(false),
        failed: Mutex::new(Vec::new()),
    };
    let extras = extra_wanted(sh, todo);
    let queue = Chunks::new(todo, extras > 0);
    // The extra sessions log in while the first one already downloads;
    // each takes chunks once it is ready. Messages an extra session does
    // not list come back to the first one at the end.
    let theirs = (0..extras).map(|_| extra_share(sh, &queue, &sink));
    let (mut fetched, others) = tokio::join!(
        first_share(c, &queue, &sink),
        futures_util::future::join_all(theirs)
    );
    // What a lost extra session put back after the others had finished.
    let mut leftover: Vec<u32> = others.into_iter().flatten().chain(queue.drain()).collect();
    // Not after a signal or a writer failure: nothing more would be stored.
    if fetched.is_ok() && !leftover.is_empty() && !sink.stopped() {
        leftover.sort_unstable();
        fetched = c
            .retr_each(&leftover, async |n, r, l| sink.deliver(n, r, l).await)
            .await;
    }
    let Sink {
        tx,
        interrupted,
        failed,
        ..
    } = sink;
    // The writer ends once its last sender is gone.
    drop(tx);
    // A signal that stopped shares before they sent anything is one too.
    let interrupted = interrupted.into_inner() || sh.ctx.interrupt.is_set();
    let failed = failed.into_inner().unwrap();
    let written = writer
        .await
        .map_err(|e| Error::State(format!("writer thread failed: {e}")))
        .and_then(|r| r);
    match written {
        Ok(w) => Copied {
            copied: w.copied,
            bytes: w.bytes,
            failed,
            interrupted,
            result: if interrupted { Ok(()) } else { fetched },
        },
        Err(e) => Copied {
            copied: 0,
            bytes: 0,
            failed,
            interrupted,
            result: Err(e),
        },
    }
}

/// Extra sessions worth opening for `todo`: none for a small download
/// (a TLS handshake and a UIDL each cost more than they save), else up to
/// `--connections` in all, at most 4.
fn extra_wanted(sh: &Shared<'_>, todo: &[Listed]) -> usize {
    const PER_SESSION: usize = 200;
    let cap = (sh.ctx.settings.connections as usize).clamp(1, 4) - 1;
    (todo.len() / PER_SESSION).min(cap)
}

/// A chunk closes at this many bytes or [`CHUNK_MESSAGES`] messages.
/// Small enough that the sessions finish within about a tenth of a second
/// of each other, large enough that the pipeline drains (one server round
/// trip per chunk) cost nothing next to the transfer.
const CHUNK_BYTES: u64 = 1 << 20;
const CHUNK_MESSAGES: usize = 128;

/// A download in chunks of message numbers (in order), handed to whichever
/// session asks next. With fixed equal shares the last session finished up
/// to a second after the first, the others' cores idle meanwhile; this way
/// a session that logged in late or runs slower simply takes fewer.
struct Chunks<'a> {
    queue: Mutex<std::collections::VecDeque<Vec<&'a Listed>>>,
    /// Wakes sessions still logging in once the last chunk is taken.
    emptied: tokio::sync::Notify,
}

impl<'a> Chunks<'a> {
    /// One chunk of everything when only one session downloads.
    fn new(todo: &'a [Listed], split: bool) -> Chunks<'a> {
        let mut out = std::collections::VecDeque::new();
        let (mut cur, mut bytes) = (Vec::new(), 0u64);
        for m in todo {
            cur.push(m);
            bytes += m.size;
            if split && (bytes >= CHUNK_BYTES || cur.len() >= CHUNK_MESSAGES) {
                out.push_back(std::mem::take(&mut cur));
                bytes = 0;
            }
        }
        if !cur.is_empty() {
            out.push_back(cur);
        }
        Chunks {
            queue: Mutex::new(out),
            emptied: tokio::sync::Notify::new(),
        }
    }

    fn take(&self) -> Option<Vec<&'a Listed>> {
        let mut q = self.queue.lock().unwrap();
        let chunk = q.pop_front();
        if q.is_empty() {
            self.emptied.notify_waiters();
        }
        chunk
    }

    /// Resolves once no chunk is left for a session that is still logging
    /// in. One put back later goes to the sessions already downloading
    /// (or, at the end, to the first), so giving up then loses nothing.
    async fn emptied(&self) {
        loop {
            let wake = self.emptied.notified();
            tokio::pin!(wake);
            // Registered before the check, so a take in between still wakes it.
            wake.as_mut().enable();
            if self.queue.lock().unwrap().is_empty() {
                return;
            }
            wake.await;
        }
    }

    /// Messages a lost session had not delivered go first to the next
    /// session that asks.
    fn put_back(&self, msgs: Vec<&'a Listed>) {
        if !msgs.is_empty() {
            self.queue.lock().unwrap().push_front(msgs);
        }
    }

    fn drain(&self) -> Vec<u32> {
        let q = &mut *self.queue.lock().unwrap();
        q.drain(..).flatten().map(|m| m.msgno).collect()
    }
}

/// Where every session hands its messages: straight into the writer's
/// channel (no task in between), and the place a signal stops the
/// download: what is already queued is still written and recorded.
struct Sink<'a> {
    tx: mpsc::Sender<Incoming>,
    /// The first session's message numbers, which every session reports in.
    by_no: HashMap<u32, &'a Listed>,
    interrupt: &'a crate::interrupt::Interrupt,
    /// A signal arrived or the writer failed: no session asks for more.
    stopped: AtomicBool,
    interrupted: AtomicBool,
    /// Per-message failures (`-ERR`, over the size cap): UIDL, error.
    failed: Mutex<Vec<(String, String)>>,
}

impl Sink<'_> {
    /// Passes on message `msgno` (first session's number); false once
    /// nothing more is wanted.
    async fn deliver(&self, msgno: u32, result: Result<Vec<u8>>, lease: Lease) -> bool {
        if self.interrupt.is_set() {
            self.interrupted.store(true, Ordering::Relaxed);
            self.stopped.store(true, Ordering::Relaxed);
            return false;
        }
        let Some(m) = self.by_no.get(&msgno) else {
            return true;
        };
        match result {
            Ok(body) => {
                let inc = Incoming {
                    source: SourceKey::Pop3 {
                        uidl: m.uidl.clone(),
                    },
                    key: StateKey::Pop3 {
                        uidl: m.uidl.clone(),
                    },
                    body,
                    flags: Flags::default(),
                    date: None,
                    size: m.size,
                    lease,
                };
                if self.tx.send(inc).await.is_err() {
                    self.stopped.store(true, Ordering::Relaxed);
                    return false;
                }
            }
            Err(e) => self
                .failed
                .lock()
                .unwrap()
                .push((m.uidl.0.clone(), e.to_string())),
        }
        true
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed) || self.interrupt.is_set()
    }
}

/// The first session's part of a download: chunks until none are left or
/// the writer has stopped. Its lost connection is the attempt's `Err`.
async fn first_share(c: &mut Pop3Client, queue: &Chunks<'_>, sink: &Sink<'_>) -> Result<()> {
    while !sink.stopped()
        && let Some(chunk) = queue.take()
    {
        let msgnos: Vec<u32> = chunk.iter().map(|m| m.msgno).collect();
        c.retr_each(&msgnos, async |n, r, l| sink.deliver(n, r, l).await)
            .await?;
    }
    Ok(())
}

/// One extra session's part of a big download: each is its own server
/// process (Dovecot does not lock a POP3 mailbox unless told to), so the
/// server's reading and TLS run in parallel, not one message after
/// another. Message numbers are per session, so each chunk is looked up by
/// UIDL in this session's listing and mapped back. Returns the messages
/// (first session's numbers) this session does not list, for the first
/// session to fetch at the end. A session that cannot be opened — a server
/// that locks the maildrop (RFC 1939 allows it), lacks UIDL or refuses the
/// connection — takes nothing; one lost halfway puts back what it had not
/// delivered: a dropped extra connection costs a warning and a little
/// time, not the run. Nothing is ever deleted here, so QUIT is a courtesy.
async fn extra_share(sh: &Shared<'_>, queue: &Chunks<'_>, sink: &Sink<'_>) -> Vec<u32> {
    if sink.stopped() {
        return Vec::new();
    }
    // A session still logging in when the others have taken every chunk
    // is dropped there: waiting for its login would only delay the end of
    // a small download.
    let opened = tokio::select! {
        s = extra_session(sh) => s,
        () = queue.emptied() => None,
    };
    let Some((mut session, numbers)) = opened else {
        return Vec::new();
    };
    let mut rest = Vec::new();
    while !sink.stopped()
        && let Some(chunk) = queue.take()
    {
        let (mut list, mut back) = (Vec::new(), HashMap::new());
        for m in chunk {
            match numbers.get(&m.uidl) {
                Some(&n) => {
                    list.push(n);
                    back.insert(n, m);
                }
                None => rest.push(m.msgno),
            }
        }
        // Hands the messages on under the first session's numbers; what
        // is left in `back` was never delivered.
        let fetched = session
            .retr_each(&list, async |n, result, lease| match back.remove(&n) {
                Some(m) => sink.deliver(m.msgno, result, lease).await,
                None => true,
            })
            .await;
        if let Err(e) = fetched {
            sh.ctx.reporter.warning(
                Some(sh.inbox.as_str()),
                &format!(
                    "{e}; an extra session was lost, the other sessions fetch the {} messages it had not delivered",
                    back.len()
                ),
            );
            let mut undelivered: Vec<&Listed> = back.into_values().collect();
            undelivered.sort_unstable_by_key(|m| m.msgno);
            queue.put_back(undelivered);
            return rest;
        }
    }
    let _ = session.quit().await;
    rest
}

/// Opens one more session and maps its UIDLs to its message numbers.
async fn extra_session(sh: &Shared<'_>) -> Option<(Pop3Client, HashMap<Uidl, u32>)> {
    let (mut c, _) = super::fresh_login(async || pop3::connect(&sh.cfg).await)
        .await
        .ok()?;
    let ids = c.uidl_all().await.ok()??;
    let mut numbers = HashMap::with_capacity(ids.len());
    for (n, u) in ids {
        // A UIDL listed twice is its first message, as in `list`.
        numbers.entry(u).or_insert(n);
    }
    Some((c, numbers))
}

/// DELE what the retention rule selects among messages the state shows
/// durably stored and this session lists, then QUIT; only a `+OK` to QUIT
/// marks them deleted in the state and reports them.
async fn retention(
    mut c: Pop3Client,
    listing: &[Listed],
    folder_id: i64,
    present: &HashSet<MsgKey>,
    sh: &Shared<'_>,
    sum: &mut Summary,
) -> Result<()> {
    let rep = sh.ctx.reporter;
    let name = sh.inbox.as_str();
    let known = known_in(&sh.state.lock().unwrap(), folder_id, &sh.target)?;
    let dels = plan::source_deletions(known.values(), sh.job.retention, sh.ctx.now, Some(present));
    if dels.is_empty() {
        let _ = c.quit().await;
        return Ok(());
    }
    sh.ctx.interrupt.check()?;
    let msgno_of: HashMap<&Uidl, u32> = listing.iter().map(|m| (&m.uidl, m.msgno)).collect();
    let mut by_msgno: HashMap<u32, &plan::Deletion> = HashMap::new();
    for d in &dels {
        if let MsgKey::Uidl(u) = &d.key
            && let Some(&n) = msgno_of.get(u)
        {
            by_msgno.insert(n, d);
        }
    }
    let mut msgnos: Vec<u32> = by_msgno.keys().copied().collect();
    msgnos.sort_unstable();
    let answers = c.dele_many(&msgnos).await?;
    let mut marked: Vec<&plan::Deletion> = Vec::new();
    for (n, r) in answers {
        let d = by_msgno[&n];
        match r {
            Ok(()) => marked.push(d),
            Err(st) => {
                let uidl = match &d.key {
                    MsgKey::Uidl(u) => Some(u.0.as_str()),
                    MsgKey::Uid(_) => None,
                };
                rep.message_error(name, None, uidl, &format!("DELE {n}: {st}"));
                sum.failed += 1;
            }
        }
    }
    // The deletions exist only once the server confirmed QUIT.
    if let Err(e) = c.quit().await {
        rep.message_error(
            name,
            None,
            None,
            &format!("{e}; the state keeps these messages as not deleted"),
        );
        sum.failed += 1;
        return Ok(());
    }
    let ids: Vec<i64> = marked
        .iter()
        .filter_map(|d| known.get(&d.key).map(|k| k.id))
        .collect();
    let details = details(sh, Some(folder_id))?;
    sh.state
        .lock()
        .unwrap()
        .mark_deleted(&ids, &dels[0].reason, sh.ctx.now)?;
    for d in &marked {
        rep.delete(delete_event(name, d, &details, false));
    }
    sum.deleted = marked.len() as u64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(sizes: &[u64]) -> Vec<Listed> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| Listed {
                msgno: i as u32 + 1,
                uidl: Uidl(format!("u{i}")),
                size,
            })
            .collect()
    }

    fn numbers(chunk: &[&Listed]) -> Vec<u32> {
        chunk.iter().map(|m| m.msgno).collect()
    }

    #[test]
    fn chunks_cover_the_download_in_order_within_their_limits() {
        let mut sizes = vec![10_000; 300];
        sizes[5] = 5 << 20;
        let todo = listed(&sizes);
        let q = Chunks::new(&todo, true);
        let mut seen = Vec::new();
        while let Some(c) = q.take() {
            let bytes: u64 = c.iter().map(|m| m.size).sum();
            assert!(c.len() <= CHUNK_MESSAGES);
            // Only the message that crosses the limit goes beyond it.
            assert!(bytes - c.last().unwrap().size < CHUNK_BYTES);
            seen.extend(numbers(&c));
        }
        assert_eq!(seen, (1..=300).collect::<Vec<u32>>());
        assert!(q.drain().is_empty());
    }

    #[test]
    fn one_session_takes_everything_at_once_and_put_back_goes_first() {
        let todo = listed(&[3 << 20; 4]);
        let q = Chunks::new(&todo, false);
        let all = q.take().unwrap();
        assert_eq!(numbers(&all), [1, 2, 3, 4]);
        assert!(q.take().is_none());

        let q = Chunks::new(&todo, true);
        let first = q.take().unwrap();
        assert_eq!(numbers(&first), [1]);
        q.put_back(first);
        q.put_back(Vec::new());
        assert_eq!(q.drain(), [1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_session_still_logging_in_is_released_once_the_last_chunk_is_taken() {
        use futures_util::FutureExt;
        let todo = listed(&[3 << 20; 2]);
        let q = Chunks::new(&todo, true);
        let waiting = q.emptied();
        tokio::pin!(waiting);
        assert!(waiting.as_mut().now_or_never().is_none(), "two chunks left");
        q.take().unwrap();
        assert!(waiting.as_mut().now_or_never().is_none(), "one chunk left");
        q.take().unwrap();
        assert!(waiting.now_or_never().is_some());
        assert!(q.emptied().now_or_never().is_some());
    }
}
