//! `prune` on a POP3 mailbox: LIST + UIDL (or fetch's header-digest
//! identities), the date from each message's `Date:` header (`TOP n 0`;
//! POP3 has no arrival date), plan, then DELE. POP3 deletes only at a
//! confirmed QUIT, so the log is settled as deleted only after `+OK`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::store::{Probe, Store};
use super::{FolderWork, Item};
use crate::config::PruneJob;
use crate::error::{Error, Result};
use crate::exec::Ctx;
use crate::plan::{self, MsgKey, PruneCandidate};
use crate::pop3;
use crate::report::Summary;
use crate::state::State;
use crate::types::{FolderName, Uidl};

/// Runs prune on a POP3 mailbox (one folder: INBOX).
pub async fn run(job: &PruneJob, ctx: &Ctx<'_>, state: &Arc<Mutex<State>>) -> Result<()> {
    let url = job.on.server_url("--on")?.clone();
    let cfg = job.on.server_config("--on", ctx.settings.timeouts)?;
    let account = url.account_key();
    let inbox = FolderName::inbox();
    let name = inbox.as_str();
    if job.to_trash {
        return Err(Error::Usage("--to-trash: POP3 has no Trash folder".into()));
    }
    let mut store = job
        .only_if_stored_in
        .as_ref()
        .map(|a| Store::open(a, ctx.settings.timeouts))
        .transpose()?;
    let rules = job.rules_for(&inbox);
    if rules.only_unread {
        // The planner reads "no flags" as unread, so on POP3 (no flags at
        // all) the rule would select every message: refuse it instead.
        return Err(Error::Usage(
            "--only-unread: POP3 has no read/unread state; use it on an IMAP account".into(),
        ));
    }
    // Dates: from the Date: header, so every message's header is read
    // when a rule needs dates; a message without one counts as new.
    let need_dates =
        rules.older_than_days.is_some() || rules.keep_last.is_some() || rules.max_total.is_some();
    let mut heads: HashMap<u32, super::Facts> = HashMap::new();

    let (mut c, _) = crate::exec::fresh_login(async || pop3::connect(&cfg).await).await?;
    let (sizes, ids) = c.list_and_uidl().await?;
    let sizes: HashMap<u32, u64> = sizes.into_iter().collect();
    let ids = match ids {
        Some(ids) => ids,
        // The identities come from the headers: keep what they say too.
        None => {
            crate::exec::pop3_fetch::header_ids(&mut c, &sizes, |n, head| {
                heads.insert(n, super::header_facts(head));
            })
            .await?
        }
    };
    let mut msgno_of: HashMap<Uidl, u32> = HashMap::new();
    for (n, u) in ids {
        if sizes.contains_key(&n) {
            msgno_of.entry(u).or_insert(n);
        }
    }

    // Settle what a killed run left pending: still listed → kept.
    {
        let mut st = state.lock().unwrap();
        let (mut gone, mut kept) = (Vec::new(), Vec::new());
        for p in st.pending_deletions(&account, &inbox)? {
            match p.intent.uidl.as_ref().filter(|u| msgno_of.contains_key(u)) {
                Some(_) => kept.push(p.id),
                None => gone.push(p.id),
            }
        }
        if !ctx.settings.dry_run {
            st.finish_deletions(&gone, true, ctx.now)?;
            st.finish_deletions(&kept, false, ctx.now)?;
        }
    }

    let mut order: Vec<(&Uidl, u32)> = msgno_of.iter().map(|(u, n)| (u, *n)).collect();
    order.sort_by_key(|(_, n)| *n);
    if need_dates {
        let all: Vec<u32> = order.iter().map(|&(_, n)| n).collect();
        read_heads(&mut c, &all, &mut heads, ctx).await?;
    }
    let cands: Vec<PruneCandidate> = order
        .iter()
        .map(|(u, n)| {
            let date = heads.get(n).and_then(|h| h.date).unwrap_or(ctx.now);
            PruneCandidate {
                key: MsgKey::Uidl((*u).clone()),
                date,
                size: sizes[n],
                flags: None,
                message_id: None,
            }
        })
        .filter(|c| job.filter.wants_message(c.size, c.date))
        .collect();
    let chosen = plan::plan_prune(&cands, rules, job.include_flagged, ctx.now, &|_| true).delete;
    let msgno = |k: &MsgKey| match k {
        MsgKey::Uidl(u) => msgno_of.get(u).copied(),
        MsgKey::Uid(_) => None,
    };
    // Message-ID and subject of what is chosen, for the log and events.
    let chosen_nos: Vec<u32> = chosen
        .iter()
        .map(|(cand, _)| msgno(&cand.key).expect("chosen from the listing"))
        .collect();
    read_heads(&mut c, &chosen_nos, &mut heads, ctx).await?;
    let mut items = Vec::new();
    for ((mut cand, reasons), n) in chosen.into_iter().zip(chosen_nos) {
        let facts = heads.remove(&n).unwrap_or_default();
        cand.message_id = facts.message_id;
        let subject = facts.subject;
        items.push(Item {
            cand,
            reasons,
            subject,
            proof: None,
            msg_row: None,
        });
    }
    let mut work = FolderWork::new(inbox.clone(), order.len() as u64);
    match store.as_mut() {
        None => work.delete = items,
        Some(store) => {
            let known = {
                let st = state.lock().unwrap();
                store.state_proofs(&st, &account, &inbox, None)?
            };
            let mut probes = Vec::new();
            for it in &mut items {
                if let Some(&row) = known.get(&it.cand.key) {
                    it.proof = Some("state".into());
                    it.msg_row = Some(row);
                    continue;
                }
                let digest = match &it.cand.message_id {
                    Some(_) => None,
                    None => {
                        let n = msgno(&it.cand.key).expect("listed");
                        Some(crate::net::sha256(&c.retr(n).await?))
                    }
                };
                probes.push(Probe {
                    key: it.cand.key.clone(),
                    message_id: it.cand.message_id.clone(),
                    size: it.cand.size,
                    digest,
                });
            }
            let found = store.lookup(&inbox, None, &probes).await?;
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
    if let Some(st) = store.take() {
        st.close().await;
    }
    if let Err(e) = super::guard(job, ctx, &[&work]) {
        let _ = c.quit().await;
        return Err(e);
    }
    let store_name = job.only_if_stored_in.as_ref().map(|a| a.describe());
    super::report_plan(ctx, &work, store_name.as_deref());
    let progress = ctx.reporter.folder_start(name, work.delete.len() as u64, 0);
    if ctx.settings.dry_run || work.delete.is_empty() {
        let _ = c.quit().await;
        progress.finish();
        let sum = if ctx.settings.dry_run {
            super::dry_summary(&work)
        } else {
            Summary {
                skipped: work.unproven.len() as u64,
                ..Default::default()
            }
        };
        ctx.reporter.folder_done(name, &sum);
        return Ok(());
    }
    ctx.interrupt.check()?;
    let mut sum = Summary {
        skipped: work.unproven.len() as u64,
        ..Default::default()
    };
    let intents: Vec<_> = work
        .delete
        .iter()
        .map(|it| super::intent(&account, &inbox, it, "dele", None))
        .collect();
    let ids = state.lock().unwrap().log_deletions(&intents, ctx.now)?;
    let id_of: HashMap<u32, i64> = work
        .delete
        .iter()
        .zip(&ids)
        .map(|(it, id)| (msgno(&it.cand.key).expect("listed"), *id))
        .collect();
    let mut msgnos: Vec<u32> = id_of.keys().copied().collect();
    msgnos.sort_unstable();
    let answers = c.dele_many(&msgnos).await?;
    let mut ok = std::collections::HashSet::new();
    let mut refused = Vec::new();
    for (n, r) in answers {
        match r {
            Ok(()) => {
                ok.insert(n);
            }
            Err(st) => {
                let it = work
                    .delete
                    .iter()
                    .find(|i| msgno(&i.cand.key) == Some(n))
                    .expect("asked for");
                let uidl = match &it.cand.key {
                    MsgKey::Uidl(u) => Some(u.0.as_str()),
                    MsgKey::Uid(_) => None,
                };
                ctx.reporter
                    .message_error(name, None, uidl, &format!("DELE {n}: {st}"));
                sum.failed += 1;
                refused.push(id_of[&n]);
            }
        }
    }
    // The deletions exist only once the server confirmed QUIT.
    if let Err(e) = c.quit().await {
        progress.finish();
        ctx.reporter.message_error(
            name,
            None,
            None,
            &format!("{e}; these deletions stay logged as pending and the next run settles them"),
        );
        sum.failed += 1;
        ctx.reporter.folder_done(name, &sum);
        return Ok(());
    }
    let done: Vec<i64> = ok.iter().map(|n| id_of[n]).collect();
    {
        let mut st = state.lock().unwrap();
        st.finish_deletions(&done, true, ctx.now)?;
        st.finish_deletions(&refused, false, ctx.now)?;
    }
    for it in &work.delete {
        if msgno(&it.cand.key).is_some_and(|n| ok.contains(&n)) {
            ctx.reporter.delete(super::delete_event(name, it, false));
            sum.deleted += 1;
            sum.bytes += it.cand.size;
        }
    }
    progress.finish();
    ctx.reporter.folder_done(name, &sum);
    Ok(())
}

/// The header facts of `msgnos` not yet in `heads`, with `TOP n 0`
/// pipelined: one round trip per window, not per message.
async fn read_heads(
    c: &mut pop3::Pop3Client,
    msgnos: &[u32],
    heads: &mut HashMap<u32, super::Facts>,
    ctx: &Ctx<'_>,
) -> Result<()> {
    let missing: Vec<u32> = msgnos
        .iter()
        .copied()
        .filter(|n| !heads.contains_key(n))
        .collect();
    // A message without its header cannot be judged: its error stops it.
    c.top_each(&missing, 0, |n, head| {
        heads.insert(n, super::header_facts(&head));
        !ctx.interrupt.is_set()
    })
    .await?;
    ctx.interrupt.check()
}
