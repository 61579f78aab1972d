//! `push` to IMAP (SPEC §2, §3) from IMAP, a Maildir or POP3: every
//! selected folder to its mapped target folder (created and subscribed as
//! needed), with flags, keywords the target keeps, INTERNALDATE and the
//! exact bytes. The three kinds of source differ only in how a folder is
//! listed and a message read ([`super::source`]); the rest is one pipeline.
//!
//! Per folder: list the source, plan against the state (what was appended
//! before, under this source UIDVALIDITY and target UIDVALIDITY), and
//! before appending into a target folder that already holds mail, match
//! the planned messages against it by Message-ID + size (content digest
//! where the Message-ID is missing or shared): what is there is recorded
//! as stored, never appended twice. So a kill between APPEND and the
//! state commit, a lost state file, or a UIDVALIDITY change on either side
//! costs a header listing, not a duplicate. Bodies stream from the source
//! into MULTIAPPEND groups on the target over a bounded channel.
//!
//! A rerun costs what changed, not the mailbox: one LIST and at most one
//! pipelined STATUS on each side, and a folder whose source did not change
//! since it was last pushed to completion ([`Probe`]: IMAP's STATUS with
//! CONDSTORE, a Maildir folder's change stamp, POP3's listing against the
//! state) and whose target folder still has the records' UIDVALIDITY is
//! not opened on either side. A changed IMAP folder is listed with
//! CHANGEDSINCE (new messages and flag changes only), and the target is
//! searched for unrecorded copies only above the UIDs the state knows. A
//! lost state, a UIDVALIDITY change on either side, a target folder
//! without this folder's copies (another `--map`) or a filter that holds
//! messages back gets the full listing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::governor::Governor;
use super::message::{MessageHeaders, normalize_message_id};
use super::source::{Body, Probe, Since, Source, SourceSpec, ids, state_key};
use super::{Ctx, pool};
use crate::config::PushJob;
use crate::endpoint::{Endpoint, Protocol, ServerConfig};
use crate::error::{Error, Result};
use crate::imap::{
    self, AppendMsg, FetchedMessage, FolderStatus, ListedFolder, Session, StoreMode,
};
use crate::maildir::Maildir;
use crate::plan::{self, FolderInfo, FolderMap, Known, MapRule, MsgKey, RekeyRecord, SourceMsg};
use crate::report::Summary;
use crate::state::{NewRecord, State};
use crate::types::{Flags, FolderName, ModSeq, Uid, UidValidity};

/// Messages per APPEND round (the append layer groups them further).
const BATCH_MSGS: usize = 200;
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// One folder to push.
#[derive(Debug, Clone)]
pub(super) struct Work {
    pub src: ListedFolder,
    pub target: FolderName,
    /// The target folder's wire name; `None` in a dry run when it does not
    /// exist yet.
    pub target_wire: Option<String>,
    /// The target folder no longer has the UIDVALIDITY of the copies the
    /// state records (recreated, or reset): the source is listed in full,
    /// whatever changed, so every copy is looked for again.
    pub target_reset: bool,
}

struct Shared<'a> {
    job: &'a PushJob,
    ctx: &'a Ctx<'a>,
    spec: SourceSpec,
    tcfg: ServerConfig,
    state: Arc<Mutex<State>>,
    /// Source folder rows: per (source account, target account).
    sync_key: String,
    /// Target account key; a record's target is `<key>/<folder>`.
    target_account: String,
    queue: Mutex<VecDeque<Work>>,
    started: Instant,
    sent: AtomicU64,
    /// Pacing, connection caps, and the budgets of both accounts.
    gov: Governor,
}

/// How to open the source, its account key for the state, and the folder
/// its URL names (`imaps://host/Archive`).
pub(super) fn source_spec(
    from: &crate::config::Account,
    ctx: &Ctx<'_>,
) -> Result<(SourceSpec, String, Option<FolderName>)> {
    Ok(match &from.endpoint {
        Endpoint::Maildir(p) => (
            SourceSpec::Maildir(Maildir::open_existing(p).map_err(|e| match e {
                Error::Usage(m) => Error::Usage(format!("--from: {m}")),
                e => e,
            })?),
            super::maildir_target(p),
            None,
        ),
        Endpoint::Server(u) => {
            let cfg = from.server_config("--from", ctx.settings.timeouts)?;
            let spec = match u.protocol {
                Protocol::Imap => SourceSpec::Imap(cfg),
                _ => SourceSpec::Pop3(cfg),
            };
            (spec, u.account_key(), u.folder.clone())
        }
    })
}

pub async fn run(job: &PushJob, ctx: &Ctx<'_>, state: &Arc<Mutex<State>>) -> Result<()> {
    let (spec, source_key, url_folder) = source_spec(&job.from, ctx)?;
    let turl = job.to.server_url("--to")?.clone();
    if turl.protocol != Protocol::Imap {
        return Err(Error::Usage("--to of push must be an IMAP URL".into()));
    }
    let rules: Vec<MapRule> = job
        .maps
        .iter()
        .map(|m| MapRule::parse(m))
        .collect::<std::result::Result<_, _>>()
        .map_err(Error::Usage)?;
    let tcfg = job.to.server_config("--to", ctx.settings.timeouts)?;
    let gov = Governor::new(
        state.clone(),
        &job.from,
        Some(&job.to),
        ctx.settings.dry_run,
    );
    gov.watch(&tcfg);
    if let super::source::SourceSpec::Imap(c) = &spec {
        gov.watch(c);
    }
    let mut sctl = gov.first(ctx, async || spec.connect().await).await?;
    let (mut tctl, _) = gov.first(ctx, async || imap::connect(&tcfg).await).await?;
    let (folders, maps, twires) = folder_map(
        &mut sctl,
        &mut tctl,
        job,
        url_folder.as_ref(),
        &rules,
        ctx.reporter,
    )
    .await?;
    let dry = ctx.settings.dry_run;
    for f in &folders {
        if let Some(w) = &f.warning {
            ctx.reporter.warning(Some(f.name.as_str()), w);
        }
    }
    report_map(ctx, &maps);

    // The no-op fast path: a folder is passed over, without a SELECT on
    // either side, when its source did not change since it was last
    // pushed to completion (the probe: one pipelined STATUS for IMAP with
    // CONDSTORE, a Maildir's change stamps, POP3's one listing against the
    // state) and its target folder still holds what the state says was
    // put there (one pipelined STATUS on the target: the records'
    // UIDVALIDITY). A target folder that is gone is filled again.
    let sync_key = format!("{source_key} {}", turl.account_key());
    let target_key = |m: &FolderMap| format!("{}/{}", turl.account_key(), m.target);
    let probes = sctl.probe(&folders, ctx.reporter).await?;
    let rows: Vec<Option<i64>> = {
        let st = state.lock().unwrap();
        folders
            .iter()
            .zip(&maps)
            .zip(&probes)
            .map(|((f, m), p)| match twires.contains_key(&m.target) {
                true => unchanged(&st, &sync_key, &f.name, p, &target_key(m)),
                false => Ok(None),
            })
            .collect::<Result<_>>()?
    };
    let mut skip: Vec<bool> = vec![false; folders.len()];
    let mut reset: Vec<bool> = vec![false; folders.len()];
    let ask: Vec<usize> = (0..folders.len()).filter(|&i| rows[i].is_some()).collect();
    if !ask.is_empty() {
        let tw: Vec<&str> = ask
            .iter()
            .map(|&i| twires[&maps[i].target].as_str())
            .collect();
        let ts = tctl.status_many(&tw).await?;
        let st = state.lock().unwrap();
        for (&i, t) in ask.iter().zip(&ts) {
            if let (
                Some(row),
                Ok(FolderStatus {
                    uidvalidity: Some(uv),
                    ..
                }),
            ) = (rows[i], t)
            {
                let (copies, all_there) = st.copies_under(row, &target_key(&maps[i]), *uv)?;
                // No copies in this target folder although the source has
                // mail: it was pushed elsewhere before (another --map).
                skip[i] = all_there && (copies > 0 || probes[i].empty());
                reset[i] = !all_there;
            }
        }
    }

    // Create (and subscribe) missing target folders, each once, parents
    // before children: a server that makes the parent of a new child
    // itself (Cyrus) would otherwise have it already, without its role.
    let mut wires: HashMap<FolderName, String> = twires;
    if !dry {
        let mut todo: Vec<&FolderMap> = maps.iter().filter(|m| !m.exists).collect();
        todo.sort_by(|a, b| a.target.as_str().cmp(b.target.as_str()));
        for m in todo {
            if wires.contains_key(&m.target) {
                continue;
            }
            let (w, role) = tctl.create_with_role(&m.target, m.role).await?;
            if let Some(why) = role_refused(m, &role) {
                ctx.reporter.warning(Some(m.target.as_str()), &why);
            }
            if let Err(e) = tctl.subscribe(&m.target).await {
                ctx.reporter.warning(
                    Some(m.target.as_str()),
                    &format!("created, but SUBSCRIBE failed: {e}"),
                );
            }
            wires.insert(m.target.clone(), w);
        }
    }
    if !dry && previous_run_unfinished(&state.lock().unwrap())? {
        // A run killed right after sending an APPEND leaves it in the
        // target's buffers, and the server still carries it out once the
        // client is gone (Dovecot: tens of milliseconds, more when busy).
        // Looked at before that, the folder would not show those copies,
        // and they would be appended again. What the killed run had not
        // yet sent never arrives: its connections close with a reset
        // (`net::tcp_connect`), so the wait covers only the server's own
        // processing, not a slow uplink draining.
        if ctx.settings.verbose > 0 && !ctx.reporter.json() {
            ctx.reporter.line(&format!(
                "the previous run did not finish: waiting {} s for the target to complete what it had sent",
                AFTER_A_KILLED_RUN.as_secs()
            ));
        }
        tokio::time::sleep(AFTER_A_KILLED_RUN).await;
    }
    let work: VecDeque<Work> = folders
        .into_iter()
        .zip(&maps)
        .zip(skip.into_iter().zip(reset))
        .filter(|(_, (skip, _))| !skip)
        .map(|((src, m), (_, target_reset))| Work {
            src,
            target_wire: wires.get(&m.target).cloned(),
            target: m.target.clone(),
            target_reset,
        })
        .collect();
    let sh = Shared {
        job,
        ctx,
        sync_key,
        target_account: turl.account_key(),
        spec,
        tcfg,
        state: state.clone(),
        queue: Mutex::new(work),
        started: Instant::now(),
        sent: AtomicU64::new(0),
        gov,
    };
    let n = (job.from.max_connections(ctx.settings.connections) as usize)
        .min(job.to.max_connections(ctx.settings.connections) as usize)
        .min(sh.queue.lock().unwrap().len())
        .min(sh.spec.max_connections().unwrap_or(usize::MAX))
        .max(1);
    let connect = async || -> Result<(Source, Session)> {
        let s = sh.spec.connect().await?;
        let t = imap::connect(&sh.tcfg).await?.0;
        Ok((s, t))
    };
    let conns = pool::open((sctl, tctl), n, ctx, &sh.gov, connect).await;
    let results = futures_util::future::join_all(conns.into_iter().map(|c| {
        pool::drain(
            c,
            &sh.queue,
            ctx,
            &sh.gov,
            |w: &Work| w.src.name.to_string(),
            connect,
            async |c: &mut (Source, Session), w: &Work| {
                push_folder(&mut c.0, &mut c.1, w, &sh).await
            },
        )
    }))
    .await;
    let limit = ctx.settings.timeouts.command;
    let mut first_err = None;
    for r in results {
        match r {
            Ok(Some((s, t))) => {
                s.logout(limit).await;
                t.logout(limit).await;
            }
            Ok(None) => {}
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// The warning for a created folder that did not get the role it was
/// created for (the push goes on: the role is a convenience for clients).
fn role_refused(m: &FolderMap, outcome: &imap::RoleOutcome) -> Option<String> {
    let role = m.role?.attr();
    match outcome {
        imap::RoleOutcome::Refused(reply) => Some(format!(
            "created without the special-use {role}: the server refused it ({reply})"
        )),
        imap::RoleOutcome::Existed => Some(format!(
            "already existed, so it was not made the {role} folder"
        )),
        _ => None,
    }
}

/// The state's folder row of a source folder that did not change since it
/// was last pushed to completion, by its probe; `None` if it did or cannot
/// tell. IMAP: STATUS equal to the recorded UIDVALIDITY, UIDNEXT and
/// HIGHESTMODSEQ. A Maildir: the change stamp recorded (in the
/// HIGHESTMODSEQ column of a row without UIDVALIDITY). POP3, which has no
/// sync point: every listed UIDL recorded as stored in `target`.
fn unchanged(
    st: &State,
    sync_key: &str,
    name: &FolderName,
    probe: &Probe,
    target: &str,
) -> Result<Option<i64>> {
    let Some(rec) = st.find_folder(sync_key, name)? else {
        return Ok(None);
    };
    let same = match probe {
        Probe::Unknown => false,
        Probe::Status(fs) => {
            rec.uidvalidity.is_some()
                && rec.uidvalidity == fs.uidvalidity
                && rec.uidnext.is_some()
                && rec.uidnext == fs.uidnext
                && rec.highestmodseq.is_some()
                && rec.highestmodseq == fs.highestmodseq
        }
        Probe::Stamp { stamp, .. } => {
            rec.uidvalidity.is_none() && rec.highestmodseq == Some(ModSeq(*stamp))
        }
        Probe::Uidls(uidls) => {
            let known = st.known_uidls(rec.id, target)?;
            uidls.iter().all(|u| known.contains_key(u))
        }
    };
    Ok(same.then_some(rec.id))
}

/// Lists both sides and maps the selected source folders. Returns the
/// source folders, their mappings (same order) and the target's wire
/// names of existing folders.
pub(super) async fn folder_map(
    s: &mut Source,
    t: &mut Session,
    job: &PushJob,
    url_folder: Option<&FolderName>,
    rules: &[MapRule],
    rep: &crate::report::Reporter,
) -> Result<(
    Vec<ListedFolder>,
    Vec<FolderMap>,
    HashMap<FolderName, String>,
)> {
    let (sl, sprefix) = s.list_folders(rep).await?;
    let tl = t.list_folders().await?;
    let tns = t.namespace().await?;
    let folders: Vec<ListedFolder> = sl
        .into_iter()
        .filter(|f| {
            f.selectable
                && job.filter.wants_folder(&f.name)
                && super::url_allows(url_folder, &f.name)
        })
        .collect();
    let info = |v: &[ListedFolder]| -> Vec<FolderInfo> {
        v.iter()
            .filter(|f| f.selectable)
            .map(|f| FolderInfo {
                name: f.name.clone(),
                special_use: f.special_use,
            })
            .collect()
    };
    let prefix = |ns: &imap::Namespace| imap::decode_folder(&ns.prefix, ns.delimiter).0.to_string();
    let maps = plan::map_folders(&info(&folders), &sprefix, &info(&tl), &prefix(&tns), rules);
    let wires = tl
        .into_iter()
        .filter(|f| f.selectable)
        .map(|f| (f.name, f.wire))
        .collect();
    Ok((folders, maps, wires))
}

/// The folder map, before anything is copied: `folder_map` JSON events, or
/// a line per folder in a dry run / with `-v`.
fn report_map(ctx: &Ctx<'_>, maps: &[FolderMap]) {
    let rep = ctx.reporter;
    for m in maps {
        if rep.json() {
            let mut v = serde_json::json!({
                "event": "folder_map",
                "folder": m.source.as_str(),
                "target": m.target.as_str(),
                "reason": m.reason.to_string(),
                "create": !m.exists,
            });
            if let Some(r) = m.role {
                v["special_use"] = r.attr().into();
            }
            rep.emit_value(&v);
        } else if ctx.settings.dry_run || ctx.settings.verbose > 0 {
            let created = match (m.exists, m.role) {
                (true, _) => String::new(),
                (false, None) => ", created".into(),
                (false, Some(r)) => format!(", created as {}", r.attr()),
            };
            rep.line(&format!(
                "{} → {} ({}{created})",
                m.source, m.target, m.reason
            ));
        }
    }
}

fn known_of(key: MsgKey, m: &crate::state::StoredMsg) -> Known {
    Known {
        id: m.id,
        key,
        flags: Some(m.flags.clone()),
        stored_at: m.first_stored_at,
        location: m.location.clone().unwrap_or_default(),
        size: m.size.unwrap_or(0),
        date: m.internal_date.unwrap_or(0),
        message_id: m.message_id.clone(),
        deleted: m.deleted_at.is_some(),
    }
}

/// `UIDVALIDITY:UID` of the target copy, as recorded in `location`.
fn location(tuv: UidValidity, tuid: Uid) -> String {
    format!("{}:{}", tuv.0, tuid.0)
}

fn parse_location(s: &str) -> Option<(UidValidity, Uid)> {
    let (a, b) = s.split_once(':')?;
    Some((UidValidity(a.parse().ok()?), Uid(b.parse().ok()?)))
}

/// The planner's key of a state row of this source (IMAP: under this
/// UIDVALIDITY only; else the UIDL column: POP3 UIDL, Maildir unique part).
fn row_key(uv: Option<UidValidity>, m: &crate::state::StoredMsg) -> Option<MsgKey> {
    match uv {
        Some(uv) => (m.uidvalidity == Some(uv)).then_some(MsgKey::Uid(m.uid?)),
        None => Some(MsgKey::Uidl(m.uidl.clone()?)),
    }
}

async fn push_folder(s: &mut Source, t: &mut Session, w: &Work, sh: &Shared<'_>) -> Result<()> {
    let rep = sh.ctx.reporter;
    let dry = sh.ctx.settings.dry_run;
    let name = w.src.name.as_str();
    // Changes only since the last complete push, where the source keeps
    // modification sequences, no filter could have held a message back
    // that a later run must still see, and this target folder has the
    // copies: the sync point is the source folder's, and after a --map
    // sent them elsewhere or a reset of the target folder the unchanged
    // messages are not all there.
    let target = format!("{}/{}", sh.target_account, w.target);
    let since = {
        let st = sh.state.lock().unwrap();
        let f = st.find_folder(&sh.sync_key, &w.src.name)?;
        let f = match f {
            Some(f) if st.has_copies(f.id, &target)? => Some(f),
            _ => None,
        };
        f.and_then(|f| {
            Some(Since {
                uidvalidity: f.uidvalidity?,
                highestmodseq: f.highestmodseq?,
            })
        })
        .filter(|_| {
            sh.job.filter.max_size.is_none() && sh.job.filter.since.is_none() && !w.target_reset
        })
    };
    let mut opened = s.open_since(&w.src, since, rep).await?;
    if opened.changes_only && opened.listing.is_empty() {
        // Only expunges (or changes undone since): the target needs nothing.
        let progress = rep.folder_start(name, 0, 0);
        if !dry {
            let mut st = sh.state.lock().unwrap();
            let id = st.folder(&sh.sync_key, &w.src.name)?.id;
            st.set_folder_sync(
                id,
                opened.uidvalidity,
                opened.uidnext,
                opened.highestmodseq,
                sh.ctx.now,
            )?;
        }
        progress.finish();
        rep.folder_done(name, &Summary::default());
        return Ok(());
    }
    let tsel = match &w.target_wire {
        Some(tw) if dry => Some(t.examine(tw).await?),
        Some(tw) => Some(t.select(tw).await?),
        None => None,
    };
    let tuv = tsel.as_ref().map(|x| x.uidvalidity);
    let folder_id = {
        let mut st = sh.state.lock().unwrap();
        if dry {
            st.find_folder(&sh.sync_key, &w.src.name)?.map(|f| f.id)
        } else {
            Some(st.folder(&sh.sync_key, &w.src.name)?.id)
        }
    };
    // Trusted records: this source key (under this source UIDVALIDITY for
    // IMAP), and a target copy under the target's current UIDVALIDITY.
    // Anything else is planned again and settled by the target listing.
    let rows: Vec<crate::state::StoredMsg> = match folder_id {
        Some(id) => sh
            .state
            .lock()
            .unwrap()
            .messages(id)?
            .into_iter()
            .filter(|m| m.target == target)
            .collect(),
        None => Vec::new(),
    };
    // The target's UIDVALIDITY changed since the records were made: only
    // a full listing re-identifies every copy there.
    if opened.changes_only
        && rows.iter().any(|m| {
            m.location
                .as_deref()
                .and_then(parse_location)
                .is_some_and(|(v, _)| Some(v) != tuv)
        })
    {
        opened = s.open(&w.src, rep).await?;
    }
    let uv = opened.uidvalidity;
    let known: HashMap<MsgKey, Known> = rows
        .iter()
        .filter(|m| {
            m.location
                .as_deref()
                .and_then(parse_location)
                .is_some_and(|(v, _)| Some(v) == tuv)
        })
        .filter_map(|m| row_key(uv, m).map(|k| (k.clone(), known_of(k, m))))
        .collect();
    let mut plan = plan::plan_copy(
        &opened.listing,
        !opened.changes_only,
        &known,
        &HashMap::new(),
        &sh.job.filter,
    );
    let mut sum = Summary {
        skipped: plan.skipped.len() as u64,
        ..Default::default()
    };
    if rep.json() || sh.ctx.settings.verbose > 0 {
        for (k, why) in &plan.skipped {
            rep.warning(Some(name), &format!("{k} skipped: {why}"));
        }
    }

    // Already on the target (a killed run, a lost state, a UIDVALIDITY
    // change, or another tool): adopt instead of appending again.
    let mut adopted: Vec<(MsgKey, Uid)> = Vec::new();
    if !plan.copy.is_empty()
        && let (Some(tsel), Some(tuv)) = (&tsel, tuv)
        && tsel.exists > 0
    {
        let claimed: HashSet<Uid> = known
            .values()
            .filter_map(|k| parse_location(&k.location).map(|(_, u)| u))
            .collect();
        // Listing changes only, the folder was complete at the sync point:
        // a copy the state does not know (a run killed between APPEND and
        // commit) was appended after every recorded one, so only the
        // target's UIDs above them need a look.
        let after = if opened.changes_only {
            claimed.iter().max().map(|u| Uid(u.0.saturating_add(1)))
        } else {
            None
        };
        adopted = reconcile(s, t, &plan.copy, &claimed, after).await?;
        if !adopted.is_empty() {
            let by_key: HashMap<&MsgKey, &SourceMsg> =
                plan.copy.iter().map(|m| (&m.key, m)).collect();
            if !dry {
                adopt(
                    t,
                    &adopted,
                    &by_key,
                    uv,
                    tuv,
                    &target,
                    folder_id.unwrap(),
                    sh,
                )
                .await?;
            }
            let done: HashSet<MsgKey> = adopted.iter().map(|(s, _)| s.clone()).collect();
            plan.copy.retain(|m| !done.contains(&m.key));
            rep.warning(
                Some(name),
                &format!(
                    "{} message(s) already in {} (same Message-ID and size, or content): recorded, not appended again",
                    adopted.len(),
                    w.target
                ),
            );
        }
    }
    sum.matched += adopted.len() as u64;
    // Over the target's APPENDLIMIT (RFC 7889): refused before the body is
    // even read. Reported (and the folder left incomplete, so the next run
    // looks again) until the limit or the message changes.
    if let Some(max) = t.capabilities().appendlimit {
        plan.copy.retain(|m| {
            if m.size <= max {
                return true;
            }
            let (u, l) = ids(&m.key);
            rep.message_error(
                name,
                u,
                l,
                &format!(
                    "{} bytes, over the target's APPENDLIMIT of {max} bytes: not sent; raise the limit on the target server or keep this message elsewhere",
                    m.size
                ),
            );
            sum.failed += 1;
            false
        });
    }
    let progress = Arc::new(rep.folder_start(name, plan.copy.len() as u64, plan.copy_bytes()));
    if dry {
        sum.copied += plan.copy.len() as u64;
        sum.bytes = plan.copy_bytes();
        sum.flags_updated = plan.set_flags.len() as u64;
        progress.finish();
        rep.folder_done(name, &sum);
        return Ok(());
    }
    let folder_id = folder_id.expect("a real run has a folder row");
    let tuv = tuv.expect("a real run has the target selected");
    let permanent = tsel.map(|x| x.permanent_flags).unwrap_or_default();
    let mut interrupted = false;
    let mut stop = None;
    if !plan.copy.is_empty() {
        let c = copy(
            s, t, w, uv, folder_id, &target, &plan.copy, &permanent, &progress, sh,
        )
        .await?;
        sum.copied += c.copied;
        sum.bytes += c.bytes;
        sum.failed += c.failed;
        interrupted = c.interrupted;
        stop = c.stop;
    }
    if let Some(stop) = stop {
        // A daily budget: what fitted is recorded; no sync point.
        progress.finish();
        rep.folder_done(name, &sum);
        return Err(stop);
    }
    if !interrupted && !plan.set_flags.is_empty() {
        sum.flags_updated = carry_flags(t, &plan.set_flags, tuv, &permanent, sh).await?;
    }
    // The sync point the next run's no-op path compares with, only when
    // the folder is complete: nothing failed, and no filter held back a
    // message that a later run without it must see.
    if !interrupted && sum.failed == 0 && sum.skipped == 0 {
        sh.state.lock().unwrap().set_folder_sync(
            folder_id,
            uv,
            opened.uidnext,
            opened.highestmodseq.or(opened.stamp.map(ModSeq)),
            sh.ctx.now,
        )?;
    }
    progress.finish();
    rep.folder_done(name, &sum);
    if interrupted {
        return Err(Error::Interrupted);
    }
    Ok(())
}

/// How long a push waits, after a run that never finished, before it looks
/// at the target (see [`previous_run_unfinished`]).
const AFTER_A_KILLED_RUN: Duration = Duration::from_secs(1);

/// True when the run before this one (already recorded as started) has no
/// end: it was killed, or crashed. Runs hold the state lock, so it is not
/// running any more.
fn previous_run_unfinished(st: &State) -> Result<bool> {
    let runs = st.recent_runs(None, 2)?;
    Ok(runs.get(1).is_some_and(|r| r.finished_at.is_none()))
}

/// Pairs planned source messages with unclaimed target messages (all, or
/// those from UID `after` up): unique
/// Message-ID + size, else equal content digest (both sides downloaded to
/// hash, only for the candidates). Returns (source key, target UID).
async fn reconcile(
    s: &mut Source,
    t: &mut Session,
    copy: &[SourceMsg],
    claimed: &HashSet<Uid>,
    after: Option<Uid>,
) -> Result<Vec<(MsgKey, Uid)>> {
    let tall = match after {
        Some(from) => t.uid_search_from(from).await?,
        None => t.uid_search_all().await?,
    };
    let tall: Vec<Uid> = tall.into_iter().filter(|u| !claimed.contains(u)).collect();
    if tall.is_empty() {
        return Ok(Vec::new());
    }
    let mut olds: Vec<RekeyRecord> = t
        .fetch_headers(&tall, &["MESSAGE-ID"])
        .await?
        .iter()
        .map(|h| RekeyRecord {
            uid: h.uid,
            message_id: h.message_id.as_deref().and_then(normalize_message_id),
            size: h.size,
            digest: None,
        })
        .collect();
    // The pairing works on UIDs: source messages get their index + 1.
    let keys: Vec<MsgKey> = copy.iter().map(|m| m.key.clone()).collect();
    let heads = s.heads(&keys).await?;
    let index: Vec<MsgKey> = heads.iter().map(|h| h.key.clone()).collect();
    let key_of = |u: Uid| index[u.0 as usize - 1].clone();
    let mut news: Vec<RekeyRecord> = heads
        .into_iter()
        .enumerate()
        .map(|(i, h)| RekeyRecord {
            uid: Uid(i as u32 + 1),
            message_id: h.message_id,
            size: h.size,
            digest: None,
        })
        .collect();
    let mut out = plan::rekey(&olds, &news);
    let paired: HashSet<Uid> = out.pairs.iter().map(|p| p.0).collect();
    let short = if matches!(s, Source::Pop3(_)) {
        listed_short(&olds, &news, &out.new, &paired)
    } else {
        Vec::new()
    };
    if !out.need_digest.is_empty() || !short.is_empty() {
        let need: HashSet<Uid> = out.need_digest.iter().copied().collect();
        let sizes: HashSet<u64> = news
            .iter()
            .filter(|n| need.contains(&n.uid))
            .map(|n| n.size)
            .chain(short.iter().map(|u| news[u.0 as usize - 1].size + 2))
            .collect();
        let tcand: Vec<Uid> = olds
            .iter()
            .filter(|o| sizes.contains(&o.size) && !paired.contains(&o.uid))
            .map(|o| o.uid)
            .collect();
        let td = digests(t, &tcand).await?;
        let want: Vec<MsgKey> = out
            .need_digest
            .iter()
            .chain(&short)
            .map(|u| key_of(*u))
            .collect();
        let sd = s.digests(&want).await?;
        for o in &mut olds {
            o.digest = td.get(&o.uid).copied();
        }
        for n in &mut news {
            n.digest = sd.get(&key_of(n.uid)).copied();
        }
        out = plan::rekey(&olds, &news);
    }
    Ok(out
        .pairs
        .into_iter()
        .map(|(tu, su)| (key_of(su), tu))
        .collect())
}

/// POP3 source messages (`new`, unpaired) whose Message-ID an unclaimed
/// target message has at 2 bytes more: a server ends a message whose last
/// line lacks a line break with CRLF when it sends it (RFC 1939's
/// terminating line needs one) but may count the size without it, as
/// Dovecot's LIST does. Only their content can tell, so they are hashed.
fn listed_short(
    olds: &[RekeyRecord],
    news: &[RekeyRecord],
    new: &[Uid],
    paired: &HashSet<Uid>,
) -> Vec<Uid> {
    let longer: HashSet<(&str, u64)> = olds
        .iter()
        .filter(|o| !paired.contains(&o.uid))
        .filter_map(|o| Some((o.message_id.as_deref()?, o.size)))
        .collect();
    new.iter()
        .copied()
        .filter(|u| {
            let n = &news[u.0 as usize - 1];
            n.message_id
                .as_deref()
                .is_some_and(|m| longer.contains(&(m, n.size + 2)))
        })
        .collect()
}

async fn digests(s: &mut Session, uids: &[Uid]) -> Result<HashMap<Uid, [u8; 32]>> {
    if uids.is_empty() {
        return Ok(HashMap::new());
    }
    let (tx, mut rx) = mpsc::channel::<FetchedMessage>(8);
    let collect = async move {
        let mut d = HashMap::new();
        while let Some(m) = rx.recv().await {
            d.insert(m.uid, crate::net::sha256(&m.body));
        }
        d
    };
    let fetch = async {
        let r = s.fetch_bodies(uids, &tx).await;
        drop(tx);
        r
    };
    let (r, d) = tokio::join!(fetch, collect);
    r?;
    Ok(d)
}

/// Records adopted pairs and gives the target copies the source's flags.
#[allow(clippy::too_many_arguments)]
async fn adopt(
    t: &mut Session,
    pairs: &[(MsgKey, Uid)],
    by_key: &HashMap<&MsgKey, &SourceMsg>,
    uv: Option<UidValidity>,
    tuv: UidValidity,
    target: &str,
    folder_id: i64,
    sh: &Shared<'_>,
) -> Result<()> {
    let mut by_flags: HashMap<Flags, Vec<Uid>> = HashMap::new();
    let recs: Vec<NewRecord> = pairs
        .iter()
        .map(|(sk, tu)| {
            let m = by_key[sk];
            // POP3 has no flags: leave the target copy's as they are.
            if let Some(f) = &m.flags {
                by_flags.entry(f.clone()).or_default().push(*tu);
            }
            let flags = m.flags.clone().unwrap_or_default();
            NewRecord {
                key: state_key(uv, sk),
                message_id: None,
                size: Some(m.size),
                digest: None,
                internal_date: (m.date != 0).then_some(m.date),
                flags,
                target: target.to_string(),
                location: Some(location(tuv, *tu)),
            }
        })
        .collect();
    for (flags, uids) in by_flags {
        t.uid_store_flags(&uids, StoreMode::Replace, &flags).await?;
    }
    sh.state
        .lock()
        .unwrap()
        .record_batch(folder_id, &recs, sh.ctx.now)
}

/// What the state records of an uploaded message, taken before its body
/// moves into the APPEND.
type Head = (MsgKey, u64, Option<i64>, Flags, Option<String>, [u8; 32]);

struct Copied {
    copied: u64,
    bytes: u64,
    failed: u64,
    interrupted: bool,
    /// A daily budget allowed only part: the stop to return.
    stop: Option<Error>,
}

/// Streams the bodies from the source into APPEND batches on the target
/// (bounded channel: fetch and append overlap, memory stays bounded) and
/// records each batch's APPENDUIDs in one transaction.
#[allow(clippy::too_many_arguments)]
async fn copy(
    s: &mut Source,
    t: &mut Session,
    w: &Work,
    uv: Option<UidValidity>,
    folder_id: i64,
    target: &str,
    msgs: &[SourceMsg],
    permanent: &[String],
    progress: &Arc<crate::report::FolderProgress>,
    sh: &Shared<'_>,
) -> Result<Copied> {
    let name = w.src.name.as_str();
    let rep = sh.ctx.reporter;
    let wire = w
        .target_wire
        .as_deref()
        .expect("target exists in a real run");
    // As much as the daily budgets allow, booked before reading.
    let budget = sh
        .gov
        .reserve(&msgs.iter().map(|m| m.size).collect::<Vec<_>>())?;
    let msgs = &msgs[..budget.fits];
    let (tx, mut rx) = mpsc::channel::<Body>(64);
    let keys: Vec<MsgKey> = msgs.iter().map(|m| m.key.clone()).collect();
    let fetch = async {
        let r = s.bodies(&keys, &tx).await;
        drop(tx);
        r
    };
    let upload = async move {
        let mut c = Copied {
            copied: 0,
            bytes: 0,
            failed: 0,
            interrupted: false,
            stop: None,
        };
        let max_batch = batch_limit(sh.job.max_rate);
        while let Some(first) = rx.recv().await {
            if sh.ctx.interrupt.is_set() {
                c.interrupted = true;
                break;
            }
            let mut batch = vec![first];
            let mut bytes = batch[0].body.len();
            while batch.len() < max_batch && bytes < BATCH_BYTES {
                match rx.try_recv() {
                    Ok(m) => {
                        bytes += m.body.len();
                        batch.push(m);
                    }
                    Err(_) => break,
                }
            }
            if let Some(rate) = sh.job.max_rate.filter(|r| *r > 0.0) {
                let due = rate_due(sh.started, sh.sent.load(Ordering::Relaxed), rate);
                tokio::time::sleep_until(due.into()).await;
            }
            sh.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
            let heads: Vec<Head> = batch
                .iter()
                .map(|m| {
                    (
                        m.key.clone(),
                        m.size,
                        m.date,
                        m.flags.clone(),
                        MessageHeaders::parse(&m.body).message_id,
                        crate::net::sha256(&m.body),
                    )
                })
                .collect();
            // The bodies stay in the memory budget until they are sent.
            let leases: Vec<crate::flow::Lease> = batch
                .iter_mut()
                .map(|m| std::mem::take(&mut m.lease))
                .collect();
            let results = t
                .append_batch(
                    wire,
                    Some(permanent),
                    batch.into_iter().map(|m| AppendMsg {
                        body: m.body,
                        flags: m.flags,
                        internal_date: m.date,
                    }),
                )
                .await?;
            drop(leases);
            let mut recs = Vec::new();
            let mut busy: Option<Error> = None;
            for ((key, size, date, flags, mid, digest), r) in heads.into_iter().zip(results) {
                match r {
                    Ok(a) => {
                        if !a.dropped_keywords.is_empty() {
                            rep.warning(
                                Some(name),
                                &format!(
                                    "{key}: keywords {} not kept: the target folder does not allow them (PERMANENTFLAGS)",
                                    a.dropped_keywords.join(" ")
                                ),
                            );
                        }
                        if !a.lost_flags.is_empty() {
                            rep.warning(
                                Some(name),
                                &format!(
                                    "{key}: {} not kept: the target dropped it on APPEND and did not take it by UID STORE either",
                                    a.lost_flags.join(" ")
                                ),
                            );
                        }
                        if a.uid.is_none() {
                            rep.warning(
                                Some(name),
                                &format!("{key}: the target gave no APPENDUID (no UIDPLUS); later flag changes cannot be carried to this copy"),
                            );
                        }
                        c.copied += 1;
                        c.bytes += size;
                        progress.inc(size);
                        recs.push(NewRecord {
                            key: state_key(uv, &key),
                            message_id: mid,
                            size: Some(size),
                            digest: Some(digest.to_vec()),
                            internal_date: date,
                            flags,
                            target: target.to_string(),
                            location: a.uid.map(|(tv, tu)| location(tv, tu)),
                        });
                    }
                    // The target is throttling or briefly unavailable: not
                    // this message's fault. The folder ends with that error
                    // once this batch's successes are recorded, so the pool
                    // retries it after a pause and sends only what is left.
                    Err(e) if e.is_busy() => {
                        busy.get_or_insert(e);
                    }
                    Err(e) => {
                        let (u, l) = ids(&key);
                        rep.message_error(name, u, l, &e.to_string());
                        c.failed += 1;
                    }
                }
            }
            sh.state
                .lock()
                .unwrap()
                .record_batch(folder_id, &recs, sh.ctx.now)?;
            if let Some(e) = busy {
                return Err(e);
            }
        }
        Ok::<Copied, Error>(c)
    };
    let (fetched, uploaded) = tokio::join!(fetch, upload);
    let mut c = uploaded?;
    sh.gov.settle(&budget, c.bytes)?;
    c.stop = budget.stop;
    if c.interrupted {
        return Ok(c);
    }
    let failed = fetched?;
    for (key, why) in &failed {
        let (u, l) = ids(key);
        rep.message_error(name, u, l, why);
        c.failed += 1;
    }
    Ok(c)
}

/// `--max-rate`: messages per APPEND round, at most a second's worth, so
/// one round cannot overshoot the rate by more than that.
fn batch_limit(max_rate: Option<f64>) -> usize {
    match max_rate.filter(|r| *r > 0.0) {
        Some(r) => (r.ceil() as usize).clamp(1, BATCH_MSGS),
        None => BATCH_MSGS,
    }
}

/// `--max-rate`: when the round after `sent` messages (all connections
/// together) may start, so that by any moment t at most `rate·t` plus one
/// round have been sent.
fn rate_due(started: Instant, sent: u64, rate: f64) -> Instant {
    started + Duration::from_secs_f64(sent as f64 / rate)
}

/// Carries the source's new flags to the target copies (UID STORE, only
/// keywords the target keeps); returns how many messages changed.
async fn carry_flags(
    t: &mut Session,
    changes: &[(Known, Flags)],
    tuv: UidValidity,
    permanent: &[String],
    sh: &Shared<'_>,
) -> Result<u64> {
    let any_kw = permanent.iter().any(|p| p == "\\*");
    let mut by_flags: HashMap<Flags, Vec<Uid>> = HashMap::new();
    let mut updates = Vec::new();
    for (k, flags) in changes {
        let Some((v, tu)) = parse_location(&k.location) else {
            continue;
        };
        if v != tuv {
            continue;
        }
        let mut f = flags.clone();
        f.keywords
            .retain(|kw| any_kw || permanent.iter().any(|p| p.eq_ignore_ascii_case(kw)));
        by_flags.entry(f).or_default().push(tu);
        updates.push((k.id, flags.clone()));
    }
    for (flags, uids) in &by_flags {
        t.uid_store_flags(uids, StoreMode::Replace, flags).await?;
    }
    sh.state.lock().unwrap().update_flags_batch(&updates)?;
    Ok(updates.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_without_an_end_before_this_one_was_killed() {
        let t = tempfile::tempdir().unwrap();
        let mut st = State::open(&t.path().join("state.db")).unwrap();
        let done = crate::state::RunOutcome {
            result: "ok".into(),
            copied: 0,
            failed: 0,
            error: None,
        };
        let a = st.begin_run("push", None, 10).unwrap();
        assert!(!previous_run_unfinished(&st).unwrap(), "the first run");
        st.finish_run(a, &done, 11).unwrap();
        st.begin_run("push", None, 12).unwrap(); // killed: never finished
        assert!(
            !previous_run_unfinished(&st).unwrap(),
            "the one before ended"
        );
        st.begin_run("push", None, 13).unwrap();
        assert!(previous_run_unfinished(&st).unwrap());
    }

    #[test]
    fn max_rate_bounds_rounds_and_their_start() {
        assert_eq!(batch_limit(None), BATCH_MSGS);
        assert_eq!(batch_limit(Some(0.2)), 1);
        assert_eq!(batch_limit(Some(25.5)), 26);
        assert_eq!(batch_limit(Some(1e9)), BATCH_MSGS);
        // Simulate a run at 10 msg/s: rounds of the batch limit, each
        // started at its due time. At every start, what was sent before
        // is within the rate.
        let t0 = Instant::now();
        let rate = 10.0;
        let (mut sent, mut at) = (0u64, t0);
        for _ in 0..50 {
            let due = rate_due(t0, sent, rate);
            assert!(due >= at, "rounds never start early");
            at = due;
            let elapsed = (at - t0).as_secs_f64();
            assert!(sent as f64 <= rate * elapsed + 1e-6, "{sent} by {elapsed}s");
            sent += batch_limit(Some(rate)) as u64;
        }
        // 50 rounds of 10: the 500th message goes no earlier than 49 s in.
        assert_eq!(rate_due(t0, 490, rate) - t0, Duration::from_secs(49));
    }
}
