//! `prune` on an IMAP account: EXAMINE and list every selected folder,
//! plan, then (after the guard) SELECT and delete by UID: `UID STORE
//! \Deleted` + `UID EXPUNGE` (UIDPLUS), or `UID MOVE` to the special-use
//! Trash with `--to-trash`. Never a bare EXPUNGE unless
//! `--allow-expunge-all`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::store::{Probe, Store};
use super::{FolderWork, Item};
use crate::config::PruneJob;
use crate::error::{Error, Result};
use crate::exec::Ctx;
use crate::imap::{self, ListedFolder, Session, SpecialUse, StoreMode};
use crate::plan::{self, MsgKey, PruneCandidate};
use crate::report::Summary;
use crate::state::State;
use crate::types::{Flags, Uid, UidValidity};

/// One folder's plan plus what executing it needs.
struct Planned {
    work: FolderWork,
    folder: ListedFolder,
    uidvalidity: UidValidity,
    /// UIDs a killed run flagged `\Deleted` but did not expunge, which no
    /// rule chooses now: their flag is taken back.
    restore: Vec<Uid>,
    /// `expunge`, `expunge-all` or `trash`.
    method: &'static str,
}

/// Runs prune on an IMAP account.
pub async fn run(job: &PruneJob, ctx: &Ctx<'_>, state: &Arc<Mutex<State>>) -> Result<()> {
    let url = job.on.server_url("--on")?.clone();
    let cfg = job.on.server_config("--on", ctx.settings.timeouts)?;
    let account = url.account_key();
    let mut store = job
        .only_if_stored_in
        .as_ref()
        .map(|a| Store::open(a, ctx.settings.timeouts))
        .transpose()?;
    let (mut s, _) = crate::exec::fresh_login(async || imap::connect(&cfg).await).await?;
    let listed = s.list_folders().await?;
    let trash = if job.to_trash {
        Some(
            listed
                .iter()
                .find(|f| f.selectable && f.special_use == Some(SpecialUse::Trash))
                .cloned()
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--to-trash: {} has no folder marked \\Trash (special-use); drop --to-trash to expunge instead",
                        url.account_key()
                    ))
                })?,
        )
    } else {
        None
    };
    let folders: Vec<ListedFolder> = listed
        .into_iter()
        .filter(|f| {
            f.selectable
                && job.filter.wants_folder(&f.name)
                && crate::exec::url_allows(url.folder.as_ref(), &f.name)
        })
        .collect();
    let mut plans = Vec::new();
    let mut failed = 0;
    for f in &folders {
        ctx.interrupt.check()?;
        let r = plan_folder(
            &mut s,
            f,
            job,
            ctx,
            state,
            store.as_mut(),
            &account,
            trash.as_ref(),
        )
        .await;
        match r {
            Ok(p) => plans.push(p),
            Err(Error::Interrupted) => return Err(Error::Interrupted),
            Err(e) if s.is_broken() => return Err(e),
            Err(e) => {
                ctx.reporter
                    .message_error(f.name.as_str(), None, None, &e.to_string());
                failed += 1;
            }
        }
    }
    if let Some(st) = store.take() {
        st.close().await;
    }
    ctx.reporter.add(&Summary {
        failed,
        ..Default::default()
    });
    let works: Vec<&FolderWork> = plans.iter().map(|p| &p.work).collect();
    super::guard(job, ctx, &works)?;
    let store_name = job.only_if_stored_in.as_ref().map(|a| a.describe());
    for p in plans {
        super::report_plan(ctx, &p.work, store_name.as_deref());
        let name = p.work.name.as_str();
        if ctx.settings.dry_run {
            ctx.reporter
                .folder_start(name, p.work.delete.len() as u64, 0);
            ctx.reporter.folder_done(name, &super::dry_summary(&p.work));
            continue;
        }
        if p.work.delete.is_empty() && p.restore.is_empty() {
            ctx.reporter.folder_done(
                name,
                &Summary {
                    skipped: p.work.unproven.len() as u64,
                    ..Default::default()
                },
            );
            continue;
        }
        let mut sum = Summary {
            skipped: p.work.unproven.len() as u64,
            ..Default::default()
        };
        let progress = ctx
            .reporter
            .folder_start(name, p.work.delete.len() as u64, 0);
        let r = execute(&mut s, &p, ctx, state, &account, trash.as_ref(), &mut sum).await;
        progress.finish();
        match r {
            Ok(()) => {}
            Err(Error::Interrupted) => {
                ctx.reporter.folder_done(name, &sum);
                return Err(Error::Interrupted);
            }
            Err(e) => {
                ctx.reporter.message_error(
                    name,
                    None,
                    None,
                    &format!(
                        "{e}; what was not confirmed stays logged and is settled by the next run"
                    ),
                );
                sum.failed += 1;
                if s.is_broken() {
                    ctx.reporter.folder_done(name, &sum);
                    return Err(Error::Reported(Box::new(e)));
                }
            }
        }
        ctx.reporter.folder_done(name, &sum);
    }
    s.logout(ctx.settings.timeouts.command).await;
    Ok(())
}

/// Lists a folder read-only, settles what a killed run left pending, and
/// plans: the rules, then the proof of a stored copy.
#[allow(clippy::too_many_arguments)]
async fn plan_folder(
    s: &mut Session,
    f: &ListedFolder,
    job: &PruneJob,
    ctx: &Ctx<'_>,
    state: &Arc<Mutex<State>>,
    store: Option<&mut Store>,
    account: &str,
    trash: Option<&ListedFolder>,
) -> Result<Planned> {
    let sel = s.examine(&f.wire).await?;
    let uv = sel.uidvalidity;
    let listing = s.uid_fetch_meta(None, None).await?;
    let present: HashMap<Uid, &imap::MessageMeta> =
        listing.messages.iter().map(|m| (m.uid, m)).collect();

    // What a killed run left in flight: gone now → deleted, else kept.
    let mut flagged_by_us = HashSet::new();
    {
        let mut st = state.lock().unwrap();
        let pending = st.pending_deletions(account, &f.name)?;
        let (mut gone, mut kept) = (Vec::new(), Vec::new());
        for p in pending {
            if p.intent.uidvalidity != Some(uv) {
                continue; // cannot tell under a new UIDVALIDITY: stays pending
            }
            match p.intent.uid.and_then(|u| present.get(&u)) {
                Some(m) => {
                    if m.flags.deleted {
                        flagged_by_us.insert(m.uid);
                    }
                    kept.push(p.id);
                }
                None => gone.push(p.id),
            }
        }
        if !ctx.settings.dry_run {
            st.finish_deletions(&gone, true, ctx.now)?;
            st.finish_deletions(&kept, false, ctx.now)?;
        }
    }

    let cands: Vec<PruneCandidate> = listing
        .messages
        .iter()
        .filter(|m| job.filter.wants_message(m.size, m.internal_date))
        .map(|m| PruneCandidate {
            key: MsgKey::Uid(m.uid),
            date: m.internal_date,
            size: m.size,
            flags: Some(m.flags.clone()),
            message_id: None,
        })
        .collect();
    let rules = job.rules_for(&f.name);
    let chosen = plan::plan_prune(&cands, rules, job.include_flagged, ctx.now, &|_| true).delete;

    let uids: Vec<Uid> = chosen.iter().filter_map(|(c, _)| c.key.uid()).collect();
    let heads = s
        .fetch_headers(&uids, &["MESSAGE-ID", "SUBJECT"])
        .await?
        .into_iter()
        .map(|h| (h.uid, h))
        .collect::<HashMap<_, _>>();
    let mut items: Vec<Item> = chosen
        .into_iter()
        .map(|(mut c, reasons)| {
            let h = c.key.uid().and_then(|u| heads.get(&u));
            let facts = h
                .map(|h| super::header_facts(&h.headers))
                .unwrap_or_default();
            c.message_id = facts.message_id;
            Item {
                cand: c,
                reasons,
                subject: facts.subject,
                proof: None,
                msg_row: None,
            }
        })
        .collect();

    let mut work = FolderWork::new(f.name.clone(), listing.messages.len() as u64);
    match store {
        None => work.delete = items,
        Some(store) => {
            let known = {
                let st = state.lock().unwrap();
                store.state_proofs(&st, account, &f.name, Some(uv))?
            };
            for it in &mut items {
                if let Some(&row) = known.get(&it.cand.key) {
                    it.proof = Some("state".into());
                    it.msg_row = Some(row);
                }
            }
            let need_digest: Vec<Uid> = items
                .iter()
                .filter(|i| i.proof.is_none() && i.cand.message_id.is_none())
                .filter_map(|i| i.cand.key.uid())
                .collect();
            let digests = super::store::digests(s, &need_digest).await?;
            let probes: Vec<Probe> = items
                .iter()
                .filter(|i| i.proof.is_none())
                .map(|i| Probe {
                    key: i.cand.key.clone(),
                    message_id: i.cand.message_id.clone(),
                    size: i.cand.size,
                    digest: i.cand.key.uid().and_then(|u| digests.get(&u).copied()),
                })
                .collect();
            let found = store.lookup(&f.name, f.special_use, &probes).await?;
            for mut it in items {
                if it.proof.is_none() && found.contains(&it.cand.key) {
                    it.proof = Some("lookup".into());
                }
                if it.proof.is_some() {
                    work.delete.push(it);
                } else {
                    work.unproven.push(it);
                }
            }
        }
    }
    let chosen_now: HashSet<Uid> = work
        .delete
        .iter()
        .filter_map(|i| i.cand.key.uid())
        .collect();
    let restore: Vec<Uid> = flagged_by_us
        .into_iter()
        .filter(|u| !chosen_now.contains(u))
        .collect();

    let method = match trash {
        Some(t) if t.name != f.name => {
            let c = s.capabilities();
            if !c.move_ && !c.uidplus {
                return Err(Error::protocol(
                    s.server(),
                    "--to-trash: the server has neither MOVE nor UIDPLUS, so messages cannot be moved by UID; nothing deleted",
                ));
            }
            "trash"
        }
        _ if s.capabilities().uidplus => "expunge",
        _ if job.allow_expunge_all => "expunge-all",
        _ if work.delete.is_empty() => "expunge",
        _ => {
            return Err(Error::protocol(
                s.server(),
                "the server lacks UIDPLUS, so prune would need a bare EXPUNGE that also removes other clients' \\Deleted mail; nothing deleted (pass --allow-expunge-all to accept that, or --to-trash)",
            ));
        }
    };
    Ok(Planned {
        work,
        folder: f.clone(),
        uidvalidity: uv,
        restore,
        method,
    })
}

/// Deletes a folder's plan in logged batches.
#[allow(clippy::too_many_arguments)]
async fn execute(
    s: &mut Session,
    p: &Planned,
    ctx: &Ctx<'_>,
    state: &Arc<Mutex<State>>,
    account: &str,
    trash: Option<&ListedFolder>,
    sum: &mut Summary,
) -> Result<()> {
    let name = p.work.name.as_str();
    let sel = s.select(&p.folder.wire).await?;
    if sel.uidvalidity != p.uidvalidity {
        return Err(Error::protocol(
            s.server(),
            format!(
                "{name}: UIDVALIDITY changed while planning ({} → {}); nothing deleted, rerun to plan again",
                p.uidvalidity, sel.uidvalidity
            ),
        ));
    }
    let deleted = Flags {
        deleted: true,
        ..Default::default()
    };
    if !p.restore.is_empty() {
        s.uid_store_flags(&p.restore, StoreMode::Remove, &deleted)
            .await?;
    }
    let log_method = if p.method == "trash" {
        "trash"
    } else {
        "expunge"
    };
    for batch in p.work.delete.chunks(super::BATCH) {
        ctx.interrupt.check()?;
        let intents: Vec<_> = batch
            .iter()
            .map(|it| super::intent(account, &p.work.name, it, log_method, Some(p.uidvalidity)))
            .collect();
        let ids = state.lock().unwrap().log_deletions(&intents, ctx.now)?;
        let uids: Vec<Uid> = batch.iter().filter_map(|i| i.cand.key.uid()).collect();
        match p.method {
            "trash" => {
                let t = trash.expect("trash method has a Trash folder");
                s.uid_move(&uids, &t.wire).await?;
            }
            "expunge-all" => {
                s.uid_store_flags(&uids, StoreMode::Add, &deleted).await?;
                s.expunge_all_dangerous().await?;
            }
            _ => s.uid_expunge(&uids).await?,
        }
        state
            .lock()
            .unwrap()
            .finish_deletions(&ids, true, ctx.now)?;
        for it in batch {
            ctx.reporter.delete(super::delete_event(name, it, false));
        }
        sum.deleted += batch.len() as u64;
        sum.bytes += batch.iter().map(|i| i.cand.size).sum::<u64>();
    }
    Ok(())
}
