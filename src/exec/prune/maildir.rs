//! `prune` on a local Maildir (e.g. the backup `fetch` writes): every
//! folder's files, dated by their mtime — the arrival date, which is what
//! `fetch` sets and what Dovecot reports as INTERNALDATE for a Maildir —
//! then unlink + directory fsync in logged batches. The state's record of
//! a removed file is marked, so the backup no longer counts as proof that
//! the message is stored.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use super::store::{Probe, Store};
use super::{FolderWork, Item};
use crate::config::PruneJob;
use crate::error::{Error, Result};
use crate::exec::Ctx;
use crate::exec::message::wire_bytes;
use crate::maildir::Maildir;
use crate::plan::{self, MsgKey, PruneCandidate};
use crate::report::Summary;
use crate::state::State;
use crate::types::Uidl;

/// Runs prune on the Maildir at `root`.
pub async fn run(
    job: &PruneJob,
    root: &Path,
    ctx: &Ctx<'_>,
    state: &Arc<Mutex<State>>,
) -> Result<()> {
    if !root.join("cur").is_dir() {
        return Err(Error::Usage(format!("no Maildir at {}", root.display())));
    }
    if job.to_trash {
        return Err(Error::Usage(
            "--to-trash is for IMAP; a Maildir prune removes the files".into(),
        ));
    }
    let md = Maildir::open_or_create(root)?;
    let target = crate::exec::maildir_target(root);
    let mut store = job
        .only_if_stored_in
        .as_ref()
        .map(|a| Store::open(a, ctx.settings.timeouts))
        .transpose()?;
    if let Some(Store::Maildir { target: t, .. }) = &store
        && *t == target
    {
        return Err(Error::Usage(
            "--only-if-stored-in names the Maildir being pruned".into(),
        ));
    }
    let listing = md.list_folders_report()?;
    for (dir, why) in &listing.skipped {
        ctx.reporter.warning(
            None,
            &format!("{dir}: not a folder mailferry can read ({why}); left alone"),
        );
    }
    let by_location = state.lock().unwrap().rows_by_location(&target)?;
    let mut plans: Vec<(FolderWork, HashMap<String, PathBuf>)> = Vec::new();
    for folder in listing
        .folders
        .iter()
        .filter(|f| job.filter.wants_folder(f))
    {
        ctx.interrupt.check()?;
        let files = md.scan(folder)?;
        let present: HashSet<&str> = files.iter().map(|l| l.unique.as_str()).collect();
        {
            let mut st = state.lock().unwrap();
            let (mut gone, mut kept) = (Vec::new(), Vec::new());
            for p in st.pending_deletions(&target, folder)? {
                match p.intent.file.as_deref().filter(|f| present.contains(f)) {
                    Some(_) => kept.push(p.id),
                    None => gone.push(p.id),
                }
            }
            if !ctx.settings.dry_run {
                st.finish_deletions(&gone, true, ctx.now)?;
                st.finish_deletions(&kept, false, ctx.now)?;
            }
        }
        let mut paths = HashMap::new();
        let mut cands = Vec::new();
        for l in &files {
            let mtime = match std::fs::metadata(&l.path) {
                Ok(m) => m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&l.path, e)),
            };
            let size = l.vsize.unwrap_or(l.size);
            if !job.filter.wants_message(size, mtime) {
                continue;
            }
            paths.insert(l.unique.clone(), l.path.clone());
            cands.push(PruneCandidate {
                key: MsgKey::Uidl(Uidl(l.unique.clone())),
                date: mtime,
                size,
                flags: Some(l.flags.clone()),
                message_id: None,
            });
        }
        let rules = job.rules_for(folder);
        let chosen =
            plan::plan_prune(&cands, rules, job.include_flagged, ctx.now, &|_| true).delete;
        let mut items = Vec::new();
        let mut digests = HashMap::new();
        for (mut cand, reasons) in chosen {
            let MsgKey::Uidl(u) = &cand.key else { continue };
            let path = &paths[&u.0];
            let bytes = match std::fs::read(path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(path, e)),
            };
            let wire = wire_bytes(&bytes);
            let facts = super::header_facts(&wire);
            cand.message_id = facts.message_id;
            let subject = facts.subject;
            if store.is_some() {
                // The store compares wire sizes (CRLF), as servers count.
                cand.size = wire.len() as u64;
                if cand.message_id.is_none() {
                    digests.insert(cand.key.clone(), crate::net::sha256(&wire));
                }
            }
            let msg_row = by_location.get(&u.0).and_then(|v| v.first().copied());
            items.push(Item {
                cand,
                reasons,
                subject,
                proof: None,
                msg_row,
            });
        }
        let mut work = FolderWork::new(folder.clone(), files.len() as u64);
        match store.as_mut() {
            None => work.delete = items,
            Some(store) => {
                let probes: Vec<Probe> = items
                    .iter()
                    .map(|i| Probe {
                        key: i.cand.key.clone(),
                        message_id: i.cand.message_id.clone(),
                        size: i.cand.size,
                        digest: digests.get(&i.cand.key).copied(),
                    })
                    .collect();
                let found = store.lookup(folder, None, &probes).await?;
                for mut it in items {
                    if found.contains(&it.cand.key) {
                        it.proof = Some("lookup".into());
                        work.delete.push(it);
                    } else {
                        work.unproven.push(it);
                    }
                }
            }
        }
        plans.push((work, paths));
    }
    if let Some(st) = store.take() {
        st.close().await;
    }
    let works: Vec<&FolderWork> = plans.iter().map(|p| &p.0).collect();
    super::guard(job, ctx, &works)?;
    let store_name = job.only_if_stored_in.as_ref().map(|a| a.describe());
    for (w, paths) in &plans {
        super::report_plan(ctx, w, store_name.as_deref());
        let name = w.name.as_str();
        let progress = ctx.reporter.folder_start(name, w.delete.len() as u64, 0);
        if ctx.settings.dry_run {
            progress.finish();
            ctx.reporter.folder_done(name, &super::dry_summary(w));
            continue;
        }
        let mut sum = Summary {
            skipped: w.unproven.len() as u64,
            ..Default::default()
        };
        for batch in w.delete.chunks(super::BATCH) {
            if let Err(e) = ctx.interrupt.check() {
                progress.finish();
                ctx.reporter.folder_done(name, &sum);
                return Err(e);
            }
            let intents: Vec<_> = batch
                .iter()
                .map(|it| super::intent(&target, &w.name, it, "unlink", None))
                .collect();
            let ids = state.lock().unwrap().log_deletions(&intents, ctx.now)?;
            let files: Vec<PathBuf> = batch
                .iter()
                .filter_map(|it| match &it.cand.key {
                    MsgKey::Uidl(u) => paths.get(&u.0).cloned(),
                    MsgKey::Uid(_) => None,
                })
                .collect();
            // A file another client moved (flag rename) meanwhile is not
            // found here; it is kept and the next run plans it again.
            let gone: Vec<bool> = files.iter().map(|p| !p.exists()).collect();
            if let Err(e) = md.remove_many(&files) {
                ctx.reporter.message_error(name, None, None, &e.to_string());
                sum.failed += 1;
                break;
            }
            let (mut done, mut kept) = (Vec::new(), Vec::new());
            for ((it, id), was_gone) in batch.iter().zip(&ids).zip(gone) {
                if was_gone {
                    kept.push(*id);
                } else {
                    done.push(*id);
                    ctx.reporter.delete(super::delete_event(name, it, false));
                    sum.deleted += 1;
                    sum.bytes += it.cand.size;
                }
            }
            let mut st = state.lock().unwrap();
            st.finish_deletions(&done, true, ctx.now)?;
            st.finish_deletions(&kept, false, ctx.now)?;
        }
        progress.finish();
        ctx.reporter.folder_done(name, &sum);
    }
    Ok(())
}
