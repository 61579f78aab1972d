//! `fetch` from IMAP into a Maildir (SPEC §2, §3).
//!
//! Per run: one LIST and one pipelined STATUS for all folders; a folder
//! whose UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ match the state is not even
//! selected, so a no-op rerun costs two round trips whatever the mailbox
//! size. Folders with work are spread over `--connections` sessions; each
//! streams its new messages to a Maildir writer on its own thread.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::Ctx;
use super::governor::Governor;
use super::message::normalize_message_id;
use super::on_disk;
use super::writer::{self, Incoming, WriterSetup};
use crate::config::{FetchJob, Retention, rfc3339};
use crate::endpoint::ServerConfig;
use crate::error::{Error, Result};
use crate::imap::{self, FetchedMessage, FolderStatus, ListedFolder, Session, StoreMode};
use crate::maildir::{FolderKeywords, Maildir, SourceKey, account_tag};
use crate::plan::{self, Known, LocalFile, MsgKey, RekeyRecord, SourceMsg};
use crate::report::{Event, Summary};
use crate::state::{KnownMsg, MsgKey as StateKey, State};
use crate::types::{Flags, FolderName, Uid, UidValidity};

/// What every folder worker shares.
struct Shared<'a> {
    job: &'a FetchJob,
    ctx: &'a Ctx<'a>,
    cfg: ServerConfig,
    state: Arc<Mutex<State>>,
    /// None only in a dry run against a Maildir that does not exist yet.
    maildir: Option<Maildir>,
    /// The account's key, hashed into file names.
    account: String,
    /// Folder rows are per (account, target): two backups of one account
    /// keep separate sync points.
    sync_key: String,
    target: String,
    queue: Mutex<VecDeque<ListedFolder>>,
    /// Pacing, connection caps and the account's download budget.
    gov: Governor,
}

/// Runs the job. Errors before any folder starts (connect, auth, LIST) are
/// fatal; a folder's own failure is reported and the others go on.
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
    let gov = Governor::new(state.clone(), &job.from, None, dry);
    gov.watch(&cfg);
    let (mut ctl, _info) = gov.first(ctx, async || imap::connect(&cfg).await).await?;
    let listed = ctl.list_folders().await?;
    let ns = ctl.namespace().await?;
    let listed = below_namespace(listed, &ns);
    let wanted = |n: &FolderName| job.filter.wants_folder(n) && url_allows(url.folder.as_ref(), n);
    let folders: Vec<ListedFolder> = listed
        .into_iter()
        .filter(|f| f.selectable && wanted(&f.name))
        .collect();
    let sh = Shared {
        job,
        ctx,
        cfg,
        state: state.clone(),
        maildir,
        sync_key: super::sync_key(&account, &target),
        account,
        target,
        queue: Mutex::new(VecDeque::new()),
        gov,
    };
    for f in &folders {
        if let Some(w) = &f.warning {
            ctx.reporter.warning(Some(f.name.as_str()), w);
        }
    }
    report_gone_folders(&sh, &folders, &wanted)?;

    // The no-op fast path: one pipelined STATUS for every folder.
    let wires: Vec<&str> = folders.iter().map(|f| f.wire.as_str()).collect();
    let statuses: Vec<Option<FolderStatus>> = if ctl.capabilities().condstore && !wires.is_empty() {
        ctl.status_many(&wires)
            .await?
            .into_iter()
            .map(|r| r.ok())
            .collect()
    } else {
        vec![None; folders.len()]
    };
    let mut work: Vec<(u32, ListedFolder)> = Vec::new();
    for (f, st) in folders.iter().zip(&statuses) {
        if let Some(st) = st
            && unchanged(&sh, f, st)?
        {
            keep_folder(&sh, f);
            continue;
        }
        work.push((st.map(|s| s.messages).unwrap_or(0), f.clone()));
    }
    // Biggest folders first, so the pool finishes together.
    work.sort_by_key(|w| std::cmp::Reverse(w.0));
    *sh.queue.lock().unwrap() = work.into_iter().map(|(_, f)| f).collect();
    let n = (job.from.max_connections(ctx.settings.connections) as usize)
        .min(sh.queue.lock().unwrap().len())
        .max(1);
    let connect = async || Ok(imap::connect(&sh.cfg).await?.0);
    let sessions = super::pool::open(ctl, n, ctx, &sh.gov, connect).await;
    let results = futures_util::future::join_all(sessions.into_iter().map(|s| {
        super::pool::drain(
            s,
            &sh.queue,
            ctx,
            &sh.gov,
            |f: &ListedFolder| f.name.to_string(),
            connect,
            async |s: &mut Session, f: &ListedFolder| sync_folder(s, f, &sh).await,
        )
    }))
    .await;
    for r in results {
        if let Some(s) = r? {
            s.logout(ctx.settings.timeouts.command).await;
        }
    }
    Ok(())
}

/// True when the folder's STATUS matches the state's sync point and no
/// retention is due: nothing to do, not even a SELECT.
fn unchanged(sh: &Shared<'_>, f: &ListedFolder, st: &FolderStatus) -> Result<bool> {
    let state = sh.state.lock().unwrap();
    let Some(fs) = state.find_folder(&sh.sync_key, &f.name)? else {
        return Ok(false);
    };
    let same = fs.uidvalidity.is_some()
        && fs.uidvalidity == st.uidvalidity
        && fs.uidnext == st.uidnext
        && fs.highestmodseq.is_some()
        && fs.highestmodseq == st.highestmodseq;
    if !same {
        return Ok(false);
    }
    Ok(match plan::deletion_cutoff(sh.job.retention, sh.ctx.now) {
        None => true,
        Some(cutoff) => {
            !state.any_due_for_deletion(fs.id, fs.uidvalidity.unwrap(), &sh.target, cutoff)?
        }
    })
}

/// On the no-op fast path, a folder still exists in the backup (created
/// empty if it is missing: a folder that was empty when an older version
/// skipped it, or one removed locally). One stat when it is there.
fn keep_folder(sh: &Shared<'_>, f: &ListedFolder) {
    let Some(md) = sh.maildir.as_ref().filter(|_| !sh.ctx.settings.dry_run) else {
        return;
    };
    if md.folder_dir(&f.name).is_ok_and(|d| d.join("cur").is_dir()) {
        return;
    }
    if let Err(e) = md.create_folder(&f.name) {
        sh.ctx
            .reporter
            .message_error(f.name.as_str(), None, None, &e.to_string());
        sh.ctx.reporter.add(&Summary {
            failed: 1,
            ..Default::default()
        });
    }
}

/// Folders the state synced before that the server no longer lists:
/// reported, and the local copy is never touched.
fn report_gone_folders(
    sh: &Shared<'_>,
    folders: &[ListedFolder],
    wanted: &dyn Fn(&FolderName) -> bool,
) -> Result<()> {
    let listed: HashSet<&FolderName> = folders.iter().map(|f| &f.name).collect();
    let mut state = sh.state.lock().unwrap();
    for kf in state.folders(&sh.sync_key)? {
        if kf.uidvalidity.is_some()
            && kf.gone_since.is_none()
            && wanted(&kf.name)
            && !listed.contains(&kf.name)
        {
            sh.ctx.reporter.warning(
                Some(kf.name.as_str()),
                "no longer on the server (deleted or renamed there); the local copy is kept",
            );
            if !sh.ctx.settings.dry_run {
                state.mark_folder_gone(kf.id, sh.ctx.now)?;
            }
        }
    }
    Ok(())
}

fn known_of(uid: Uid, k: &KnownMsg) -> Known {
    super::known_from(MsgKey::Uid(uid), k, Some(k.flags.clone()))
}

async fn sync_folder(s: &mut Session, f: &ListedFolder, sh: &Shared<'_>) -> Result<()> {
    let rep = sh.ctx.reporter;
    let dry = sh.ctx.settings.dry_run;
    let name = f.name.as_str();
    let deleting = sh.job.retention != Retention::Keep && !dry;
    let sel = if deleting {
        s.select(&f.wire).await?
    } else {
        s.examine(&f.wire).await?
    };
    let fs = sh.state.lock().unwrap().folder(&sh.sync_key, &f.name)?;
    let uv = sel.uidvalidity;

    let mut extra_known: HashMap<MsgKey, Known> = HashMap::new();
    let mut rekeyed = false;
    if let Some(old) = fs.uidvalidity.filter(|&v| v != uv) {
        extra_known = recover_uidvalidity(s, f, fs.id, old, uv, sh).await?;
        rekeyed = true;
    }
    // Changes only, when the server keeps modification sequences and the
    // filters cannot hide a message from a later run.
    let delta_from = if s.capabilities().condstore
        && !sel.nomodseq
        && !rekeyed
        && fs.uidvalidity == Some(uv)
        && sh.job.filter.max_size.is_none()
        && sh.job.filter.since.is_none()
    {
        fs.highestmodseq
    } else {
        None
    };
    let listing = s.uid_fetch_meta(None, delta_from).await?;
    let mut known: HashMap<MsgKey, Known> = {
        let st = sh.state.lock().unwrap();
        st.known_uids(fs.id, uv, &sh.target)?
            .iter()
            .map(|(u, k)| (MsgKey::Uid(*u), known_of(*u, k)))
            .collect()
    };
    known.extend(extra_known);
    let source: Vec<SourceMsg> = listing
        .messages
        .iter()
        .map(|m| SourceMsg {
            key: MsgKey::Uid(m.uid),
            size: m.size,
            date: m.internal_date,
            flags: Some(m.flags.clone()),
        })
        .collect();
    let complete = delta_from.is_none();
    let mut plan = plan::plan_copy(&source, complete, &known, &HashMap::new(), &sh.job.filter);
    let mut found = on_disk::Found::default();
    if !plan.copy.is_empty()
        && let Some(md) = &sh.maildir
    {
        let scope = on_disk::Scope {
            md,
            folder: &f.name,
            account: &sh.account,
            uidvalidity: uv,
            target: &sh.target,
            state: &sh.state,
            known: &known,
        };
        found = on_disk::find(s, &scope, &plan.copy).await?;
        if !found.local.is_empty() {
            plan = plan::plan_copy(&source, complete, &known, &found.local, &sh.job.filter);
        }
    }
    report_found(rep, sh, name, &found);
    let mut sum = Summary {
        skipped: plan.skipped.len() as u64,
        ..Default::default()
    };
    super::report_skipped(rep, sh.ctx.settings.verbose, name, &plan.skipped);
    let progress = Arc::new(rep.folder_start(name, plan.copy.len() as u64, plan.copy_bytes()));
    let present: Option<HashSet<MsgKey>> =
        complete.then(|| source.iter().map(|m| m.key.clone()).collect());

    if dry {
        sum.copied = plan.copy.len() as u64;
        sum.matched = plan.adopt.len() as u64;
        sum.bytes = plan.copy_bytes();
        sum.flags_updated = plan.set_flags.len() as u64;
        let mut dels = plan::source_deletions(
            known.values(),
            sh.job.retention,
            sh.ctx.now,
            present.as_ref(),
        );
        if sh.job.retention == Retention::AfterFetch {
            dels.extend(plan.copy.iter().map(|m| plan::Deletion {
                key: m.key.clone(),
                reason: "delete-after-fetch".into(),
                size: m.size,
                date: m.date,
                message_id: None,
            }));
        }
        for d in &dels {
            rep.delete(delete_event(name, d, true));
        }
        sum.deleted = dels.len() as u64;
        progress.finish();
        rep.folder_done(name, &sum);
        return Ok(());
    }
    let md = sh.maildir.as_ref().expect("a real run has a Maildir");
    // Every selected folder exists in the backup, also an empty one.
    md.create_folder(&f.name)?;
    let keywords = Arc::new(md.keywords(&f.name)?);

    if !plan.adopt.is_empty() {
        adopt(md, &f.name, &keywords, &plan.adopt, fs.id, uv, sh)?;
        sum.matched += plan.adopt.len() as u64;
    }
    if !plan.copy.is_empty() {
        let r = copy(
            s, md, &keywords, &f.name, fs.id, uv, &plan.copy, &progress, sh,
        )
        .await;
        let (written, report) = r?;
        sum.copied += written.copied;
        sum.bytes += written.bytes;
        for (uid, why) in &report.failed {
            rep.message_error(name, Some(uid.0), None, why);
            sum.failed += 1;
        }
        if written.interrupted {
            progress.finish();
            rep.folder_done(name, &sum);
            return Err(Error::Interrupted);
        }
        if let Some(stop) = written.stop {
            // A daily budget: what fitted is recorded; no sync point.
            progress.finish();
            rep.folder_done(name, &sum);
            return Err(stop);
        }
    }
    if !plan.set_flags.is_empty() {
        sum.flags_updated = carry_flags(md, &keywords, &f.name, fs.id, uv, &plan.set_flags, sh)?;
    }
    for kw in keywords.unstored() {
        rep.warning(
            Some(name),
            &format!(
                "keyword {kw} is not in the Maildir's file names: the folder's dovecot-keywords already names {} keywords, the most Maildir letters allow; it is kept in the state",
                crate::maildir::MAX_KEYWORDS
            ),
        );
    }
    if sh.job.retention != Retention::Keep {
        match retention(s, fs.id, uv, present.as_ref(), name, sh).await {
            Ok(n) => sum.deleted = n,
            Err(e) => {
                rep.message_error(name, None, None, &e.to_string());
                sum.failed += 1;
            }
        }
    }
    if sum.failed == 0 {
        // A message `--max-size`/`--since` held back must be seen by a
        // later run without the filter: no sync point then, only the
        // UIDVALIDITY, so the STATUS fast path does not pass the folder by.
        let (uidnext, modseq) = if sum.skipped == 0 {
            (sel.uidnext, sel.highestmodseq)
        } else {
            (None, None)
        };
        sh.state
            .lock()
            .unwrap()
            .set_folder_sync(fs.id, Some(uv), uidnext, modseq, sh.ctx.now)?;
    }
    progress.finish();
    rep.folder_done(name, &sum);
    Ok(())
}

/// Says which messages the Maildir already had: always when they were
/// matched by content (the state did not know them: lost, or a copied
/// Maildir), with `--json` or `-v` when all were found by name (a killed
/// run's files, or a lost state with the UIDVALIDITY unchanged).
fn report_found(rep: &crate::report::Reporter, sh: &Shared<'_>, folder: &str, f: &on_disk::Found) {
    let loud = f.by_content() > 0;
    if !loud && (f.by_name == 0 || !(rep.json() || sh.ctx.settings.verbose > 0)) {
        return;
    }
    let mut how = Vec::new();
    if loud {
        how.push(format!("{} by Message-ID and size", f.by_message_id));
        how.push(format!("{} by content digest", f.by_digest));
    }
    if f.by_name > 0 {
        how.push(format!("{} by the identity in their file names", f.by_name));
    }
    rep.warning(
        Some(folder),
        &format!(
            "{} messages not in the state were already in the Maildir and are recorded, not downloaded again: {}",
            f.by_content() + f.by_name,
            how.join(", ")
        ),
    );
}

/// Records files already in the Maildir for messages about to be
/// downloaded (see [`on_disk`]), reading their header and digest from disk
/// instead of downloading again. The file takes the server's flags and
/// keywords first: a copy made long ago may have older ones.
fn adopt(
    md: &Maildir,
    folder: &FolderName,
    keywords: &FolderKeywords,
    items: &[(SourceMsg, LocalFile)],
    folder_id: i64,
    uv: UidValidity,
    sh: &Shared<'_>,
) -> Result<()> {
    let mut renamed = false;
    let mut recs = Vec::with_capacity(items.len());
    for (m, lf) in items {
        let key = StateKey::Imap {
            uidvalidity: uv,
            uid: m.key.uid().expect("IMAP key"),
        };
        let flags = m.flags.clone().unwrap_or_default();
        let add = keywords.letters(&flags.keywords)?;
        let remove: String = keywords
            .table()
            .named_letters()
            .chars()
            .filter(|c| !add.contains(*c))
            .collect();
        let old = Path::new(&lf.location);
        let path = md.set_flags_and_keywords(old, &flags, &add, &remove)?;
        renamed |= path != old;
        recs.push(writer::adopted_record(
            &path,
            key,
            m.size,
            Some(m.date),
            flags,
            &sh.target,
        )?);
    }
    if renamed {
        md.sync_folder(folder)?;
    }
    sh.state
        .lock()
        .unwrap()
        .record_batch(folder_id, &recs, sh.ctx.now)
}

/// What a body download stored, and whether it stopped for a signal or
/// a used-up daily budget.
struct Copied {
    copied: u64,
    bytes: u64,
    interrupted: bool,
    stop: Option<Error>,
}

#[allow(clippy::too_many_arguments)]
async fn copy(
    s: &mut Session,
    md: &Maildir,
    keywords: &Arc<FolderKeywords>,
    folder: &FolderName,
    folder_id: i64,
    uv: UidValidity,
    msgs: &[SourceMsg],
    progress: &Arc<crate::report::FolderProgress>,
    sh: &Shared<'_>,
) -> Result<(Copied, imap::FetchReport)> {
    // As much as the daily download budget allows, booked before asking.
    let budget = sh
        .gov
        .reserve(&msgs.iter().map(|m| m.size).collect::<Vec<_>>())?;
    let msgs = &msgs[..budget.fits];
    if msgs.is_empty() && budget.stop.is_some() {
        let none = Copied {
            copied: 0,
            bytes: 0,
            interrupted: false,
            stop: budget.stop,
        };
        return Ok((none, imap::FetchReport::default()));
    }
    let (tx, rx) = mpsc::channel::<Incoming>(32);
    let writer = writer::spawn(
        WriterSetup {
            maildir: md.clone(),
            folder: folder.clone(),
            folder_id,
            account: sh.account.clone(),
            target: sh.target.clone(),
            into_new: false,
            state: sh.state.clone(),
            now: sh.ctx.now,
            progress: progress.clone(),
            keywords: Some(keywords.clone()),
        },
        rx,
    );
    let (ftx, mut frx) = mpsc::channel::<FetchedMessage>(8);
    let interrupt = sh.ctx.interrupt.clone();
    // Fetched → Incoming, and the place a signal stops the stream: what is
    // already queued is still written and recorded.
    let conv = tokio::spawn(async move {
        let mut interrupted = false;
        while let Some(m) = frx.recv().await {
            if interrupt.is_set() {
                interrupted = true;
                break;
            }
            let inc = Incoming {
                source: SourceKey::Imap {
                    uidvalidity: uv,
                    uid: m.uid,
                },
                key: StateKey::Imap {
                    uidvalidity: uv,
                    uid: m.uid,
                },
                size: m.size,
                date: Some(m.internal_date),
                flags: m.flags,
                body: m.body,
                lease: m.lease,
            };
            if tx.send(inc).await.is_err() {
                break;
            }
        }
        interrupted
    });
    let uids: Vec<Uid> = msgs.iter().filter_map(|m| m.key.uid()).collect();
    let fetched = s.fetch_bodies(&uids, &ftx).await;
    drop(ftx);
    let interrupted = conv.await.unwrap_or(false);
    // The writer's error is the root cause when both failed (disk full
    // closes the channel, which the fetch then reports).
    let written = writer
        .await
        .map_err(|e| Error::State(format!("writer thread failed: {e}")))??;
    let moved = fetched.as_ref().map_or(written.bytes, |r| r.bytes);
    sh.gov.settle(&budget, moved)?;
    let copied = Copied {
        copied: written.copied,
        bytes: written.bytes,
        interrupted,
        stop: budget.stop,
    };
    if interrupted {
        return Ok((copied, imap::FetchReport::default()));
    }
    Ok((copied, fetched?))
}

/// Carries the server's new flags and keywords to the stored files;
/// returns how many. A keyword the server removed loses its letter; one a
/// local client set that the server never had keeps it.
fn carry_flags(
    md: &Maildir,
    keywords: &FolderKeywords,
    folder: &FolderName,
    folder_id: i64,
    uv: UidValidity,
    changes: &[(Known, Flags)],
    sh: &Shared<'_>,
) -> Result<u64> {
    let files = md.scan(folder)?;
    let tag = account_tag(&sh.account);
    let by_key: HashMap<Uid, &Path> = files
        .iter()
        .filter(|l| l.account.as_deref() == Some(tag.as_str()))
        .filter_map(|l| match &l.source {
            Some(SourceKey::Imap { uidvalidity, uid }) if *uidvalidity == uv => {
                Some((*uid, l.path.as_path()))
            }
            _ => None,
        })
        .collect();
    // After a UIDVALIDITY change the names carry the old identity: fall
    // back to the location the state recorded.
    let by_unique: HashMap<&str, &Path> = files
        .iter()
        .map(|l| (l.unique.as_str(), l.path.as_path()))
        .collect();
    let mut locations: Option<HashMap<i64, String>> = None;
    let mut updates = Vec::new();
    for (k, flags) in changes {
        let uid = k.key.uid().expect("IMAP key");
        let path = match by_key.get(&uid) {
            Some(p) => Some(p.to_path_buf()),
            None => {
                let locs = match &mut locations {
                    Some(l) => l,
                    None => locations.insert(
                        sh.state
                            .lock()
                            .unwrap()
                            .messages(folder_id)?
                            .into_iter()
                            .filter_map(|m| Some((m.id, m.location?)))
                            .collect(),
                    ),
                };
                locs.get(&k.id)
                    .and_then(|u| by_unique.get(u.as_str()))
                    .map(|p| p.to_path_buf())
            }
        };
        // A file the user deleted locally stays deleted; the state still
        // learns the flags so the change is not retried every run.
        if let Some(p) = path {
            let add = keywords.letters(&flags.keywords)?;
            let remove: String = k
                .flags
                .iter()
                .flat_map(|before| &before.keywords)
                .filter(|kw| !flags.keywords.iter().any(|n| n.eq_ignore_ascii_case(kw)))
                .filter_map(|kw| keywords.letter(kw))
                .collect();
            md.set_flags_and_keywords(&p, flags, &add, &remove)?;
        }
        updates.push((k.id, flags.clone()));
    }
    md.sync_folder(folder)?;
    sh.state.lock().unwrap().update_flags_batch(&updates)?;
    Ok(updates.len() as u64)
}

/// Deletes on the server what the retention rule selects among messages the
/// state shows durably stored; records and reports each deletion.
async fn retention(
    s: &mut Session,
    folder_id: i64,
    uv: UidValidity,
    present: Option<&HashSet<MsgKey>>,
    name: &str,
    sh: &Shared<'_>,
) -> Result<u64> {
    let dels = {
        let st = sh.state.lock().unwrap();
        let known: Vec<Known> = st
            .known_uids(folder_id, uv, &sh.target)?
            .iter()
            .map(|(u, k)| known_of(*u, k))
            .collect();
        plan::source_deletions(&known, sh.job.retention, sh.ctx.now, present)
    };
    if dels.is_empty() {
        return Ok(0);
    }
    let uids: Vec<Uid> = dels.iter().filter_map(|d| d.key.uid()).collect();
    if s.capabilities().uidplus {
        s.uid_expunge(&uids).await?;
    } else if sh.job.allow_expunge_all {
        s.uid_store_flags(
            &uids,
            StoreMode::Add,
            &Flags {
                deleted: true,
                ..Default::default()
            },
        )
        .await?;
        s.expunge_all_dangerous().await?;
    } else {
        return Err(Error::protocol(
            s.server(),
            "the server lacks UIDPLUS, so retention would need a bare EXPUNGE that also removes other clients' \\Deleted mail; nothing deleted (pass --allow-expunge-all to accept that)",
        ));
    }
    let mut st = sh.state.lock().unwrap();
    let rows: HashMap<i64, crate::state::StoredMsg> = st
        .messages(folder_id)?
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    let by_uid: HashMap<Uid, i64> = rows
        .values()
        .filter(|m| m.uidvalidity == Some(uv) && m.target == sh.target)
        .filter_map(|m| Some((m.uid?, m.id)))
        .collect();
    let mut ids = Vec::new();
    for d in &dels {
        let Some(uid) = d.key.uid() else { continue };
        let Some(&id) = by_uid.get(&uid) else {
            continue;
        };
        ids.push(id);
        let row = &rows[&id];
        let full = plan::Deletion {
            message_id: row.message_id.clone(),
            date: row.internal_date.unwrap_or(0),
            ..d.clone()
        };
        sh.ctx.reporter.delete(delete_event(name, &full, false));
    }
    st.mark_deleted(&ids, &dels[0].reason, sh.ctx.now)?;
    Ok(ids.len() as u64)
}

fn delete_event(folder: &str, d: &plan::Deletion, dry_run: bool) -> Event {
    Event::Delete {
        folder: folder.into(),
        uid: d.key.uid().map(|u| u.0),
        uidl: None,
        message_id: d.message_id.clone(),
        date: rfc3339(d.date),
        size: d.size,
        reason: d.reason.clone(),
        dry_run,
        subject: None,
    }
}

/// The folder's UIDVALIDITY changed: pair the server's messages with the
/// stored ones by Message-ID + size (digest where needed) and re-key the
/// state, so nothing is downloaded twice. Returns, for a dry run, the pairs
/// as known messages (the state is not changed then).
async fn recover_uidvalidity(
    s: &mut Session,
    f: &ListedFolder,
    folder_id: i64,
    old: UidValidity,
    new: UidValidity,
    sh: &Shared<'_>,
) -> Result<HashMap<MsgKey, Known>> {
    let name = f.name.as_str();
    let rows: Vec<crate::state::StoredMsg> = sh
        .state
        .lock()
        .unwrap()
        .messages(folder_id)?
        .into_iter()
        .filter(|m| m.uidvalidity == Some(old) && m.target == sh.target && m.uid.is_some())
        .collect();
    let olds: Vec<RekeyRecord> = rows
        .iter()
        .map(|m| RekeyRecord {
            uid: m.uid.unwrap(),
            message_id: m.message_id.as_deref().and_then(normalize_message_id),
            size: m.size.unwrap_or(0),
            digest: m
                .digest
                .as_deref()
                .and_then(|d| <[u8; 32]>::try_from(d).ok()),
        })
        .collect();
    let all = s.uid_search_all().await?;
    let headers = s.fetch_headers(&all, &["MESSAGE-ID"]).await?;
    let mut news: Vec<RekeyRecord> = headers
        .iter()
        .map(|h| RekeyRecord {
            uid: h.uid,
            message_id: h.message_id.as_deref().and_then(normalize_message_id),
            size: h.size,
            digest: None,
        })
        .collect();
    let mut out = plan::rekey(&olds, &news);
    let mut hashed = 0;
    if !out.need_digest.is_empty() {
        hashed = out.need_digest.len();
        let digests = on_disk::server_digests(s, &out.need_digest).await?;
        for n in &mut news {
            n.digest = digests.get(&n.uid).copied();
        }
        out = plan::rekey(&olds, &news);
    }
    sh.ctx.reporter.warning(
        Some(name),
        &format!(
            "UIDVALIDITY changed ({old} → {new}): {} stored messages re-identified, {} by Message-ID and size, {hashed} by content digest (read to hash, not stored again); {} new, {} no longer on the server",
            out.pairs.len(),
            out.pairs.len().saturating_sub(hashed),
            out.new.len(),
            out.lost.len()
        ),
    );
    let mut known = HashMap::new();
    if sh.ctx.settings.dry_run {
        let by_uid: HashMap<Uid, &crate::state::StoredMsg> =
            rows.iter().map(|m| (m.uid.unwrap(), m)).collect();
        for (o, n) in &out.pairs {
            let m = by_uid[o];
            let k = KnownMsg {
                id: m.id,
                flags: m.flags.clone(),
                size: m.size,
                first_stored_at: m.first_stored_at,
                deleted_at: m.deleted_at,
            };
            known.insert(MsgKey::Uid(*n), known_of(*n, &k));
        }
    } else {
        let mut st = sh.state.lock().unwrap();
        st.rekey_uidvalidity(folder_id, old, new, &out.pairs)?;
        // A fresh sync point: the next listing is complete.
        st.set_folder_sync(folder_id, Some(new), None, None, sh.ctx.now)?;
    }
    Ok(known)
}

/// The folders named below the personal namespace (SPEC §2: a Maildir
/// folder is `.Archive`, not `.INBOX.Archive`, whatever the server's
/// prefix); the wire name is kept for SELECT.
pub(crate) fn below_namespace(
    listed: Vec<ListedFolder>,
    ns: &imap::Namespace,
) -> Vec<ListedFolder> {
    let prefix = imap::decode_folder(&ns.prefix, ns.delimiter).0.to_string();
    listed
        .into_iter()
        .map(|mut f| {
            f.name = plan::strip_namespace(&f.name, &prefix);
            f
        })
        .collect()
}

/// `imaps://host/Archive` fetches Archive and the folders below it.
pub(crate) fn url_allows(folder: Option<&FolderName>, name: &FolderName) -> bool {
    match folder {
        None => true,
        Some(f) => {
            name == f
                || name
                    .as_str()
                    .strip_prefix(f.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        }
    }
}
