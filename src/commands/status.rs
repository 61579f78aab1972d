//! `mailferry status [JOB]...`: what the state knows, without touching the
//! network: per account and folder what is stored and deleted, when it was
//! last synced, and how the recent runs ended. With `--remote`, also what
//! each job's server holds now that the state has no record of.

use std::collections::HashMap;

use serde_json::json;

use crate::config::{Account, Config, Filter, JobKind, rfc3339};
use crate::endpoint::{Endpoint, Protocol, ServerUrl};
use crate::error::{Error, Result};
use crate::imap::{ListedFolder, Session, UidSet};
use crate::plan::{self, MsgKey, SourceMsg};
use crate::report::{Reporter, human_bytes};
use crate::state::State;
use crate::types::{FolderName, Uid, UidValidity};

/// Prints the state's view; `jobs` narrows it to the config's named jobs.
/// With `remote`, the servers of the config's jobs (or the named ones) are
/// asked too; one that fails gets its error line, the others still print,
/// and the first failure decides the exit code.
pub async fn run(config: &Config, jobs: &[String], remote: bool, rep: &Reporter) -> Result<()> {
    // Resolve the jobs first: a usage error (no config) comes before output.
    let remote_jobs = if remote {
        Some(config.file_jobs(jobs)?)
    } else {
        None
    };
    let path = &config.settings.state_path;
    let st = if path.exists() {
        let st = State::open(path)?;
        local(config, jobs, &st, rep)?;
        Some(st)
    } else {
        if rep.json() {
            rep.emit_value(
                &json!({"event": "status", "state": path.display().to_string(), "exists": false}),
            );
        } else {
            println!("{}: no state yet (nothing has run with it)", path.display());
        }
        None
    };
    match remote_jobs {
        Some(js) => remote_status(config, &js, st.as_ref(), rep).await,
        None => Ok(()),
    }
}

/// The state's own view: folders, prune history, recent runs.
fn local(config: &Config, jobs: &[String], st: &State, rep: &Reporter) -> Result<()> {
    let keys: Option<Vec<String>> = if jobs.is_empty() {
        None
    } else {
        Some(config.file_jobs(jobs)?.iter().filter_map(job_key).collect())
    };
    let mut last_account = String::new();
    for f in st.folder_report()? {
        if keys.as_ref().is_some_and(|k| !k.contains(&f.account)) {
            continue;
        }
        let (account, target) = f
            .account
            .split_once(' ')
            .unwrap_or((f.account.as_str(), ""));
        if rep.json() {
            rep.emit_value(&json!({"event": "status", "account": account, "target": target,
                "folder": f.folder.as_str(), "stored": f.stored, "deleted": f.deleted, "bytes": f.bytes,
                "last_synced": f.last_seen_at.map(rfc3339), "gone_since": f.gone_since.map(rfc3339)}));
            continue;
        }
        if f.account != last_account {
            println!("{account} → {target}");
            println!(
                "  {:<28} {:>8} {:>8} {:>10}  last synced",
                "folder", "stored", "deleted", "size"
            );
            last_account = f.account.clone();
        }
        let gone = f
            .gone_since
            .map(|t| format!("  (gone from the server since {})", rfc3339(t)))
            .unwrap_or_default();
        println!(
            "  {:<28} {:>8} {:>8} {:>10}  {}{gone}",
            f.folder.as_str(),
            f.stored,
            f.deleted,
            human_bytes(f.bytes),
            f.last_seen_at
                .map(rfc3339)
                .unwrap_or_else(|| "never".into())
        );
    }
    let prune_keys: Option<Vec<String>> = if jobs.is_empty() {
        None
    } else {
        Some(
            config
                .file_jobs(jobs)?
                .iter()
                .filter_map(prune_key)
                .collect(),
        )
    };
    let mut header = false;
    for d in st.deletion_report()? {
        if prune_keys.as_ref().is_some_and(|k| !k.contains(&d.account)) {
            continue;
        }
        if rep.json() {
            rep.emit_value(&json!({"event": "prune_history", "account": d.account,
                "folder": d.folder.as_str(), "deleted": d.deleted, "bytes": d.bytes,
                "pending": d.pending, "last_deleted": d.last_at.map(rfc3339)}));
            continue;
        }
        if !header {
            println!("pruned:");
            header = true;
        }
        let pending = if d.pending > 0 {
            format!("  ({} unconfirmed: the next prune settles them)", d.pending)
        } else {
            String::new()
        };
        println!(
            "  {} {:<28} {:>8} {:>10}  {}{pending}",
            d.account,
            d.folder.as_str(),
            d.deleted,
            human_bytes(d.bytes),
            d.last_at.map(rfc3339).unwrap_or_else(|| "never".into())
        );
    }
    let names: Vec<Option<&str>> = if jobs.is_empty() {
        vec![None]
    } else {
        jobs.iter().map(|j| Some(j.as_str())).collect()
    };
    let mut header = false;
    for job in names {
        for r in st.recent_runs(job, if job.is_some() { 5 } else { 10 })? {
            let (result, copied, failed, error) = match &r.outcome {
                Some(o) => (o.result.as_str(), o.copied, o.failed, o.error.clone()),
                None => ("unfinished", 0, 0, None),
            };
            if rep.json() {
                rep.emit_value(&json!({"event": "run", "command": r.command, "job": r.job,
                    "started": rfc3339(r.started_at), "finished": r.finished_at.map(rfc3339),
                    "result": result, "copied": copied, "failed": failed, "error": error}));
            } else {
                if !header {
                    println!("recent runs:");
                    header = true;
                }
                let err = error.map(|e| format!("  {e}")).unwrap_or_default();
                println!(
                    "  {}  {:<8} {:<16} {:<11} copied {copied}, failed {failed}{err}",
                    rfc3339(r.started_at),
                    r.command,
                    r.job.as_deref().unwrap_or("-"),
                    result
                );
            }
        }
    }
    Ok(())
}

/// The folder-row key a job's runs write under.
fn job_key(job: &crate::config::Job) -> Option<String> {
    match &job.kind {
        JobKind::Fetch(f) => match &f.from.endpoint {
            Endpoint::Server(u) => Some(crate::exec::sync_key(
                &u.account_key(),
                &crate::exec::maildir_target(&f.to),
            )),
            Endpoint::Maildir(_) => None,
        },
        _ => None,
    }
}

/// The account key a prune job's deletions are logged under.
fn prune_key(job: &crate::config::Job) -> Option<String> {
    match &job.kind {
        JobKind::Prune(p) => Some(match &p.on.endpoint {
            Endpoint::Server(u) => u.account_key(),
            Endpoint::Maildir(m) => crate::exec::maildir_target(m),
        }),
        _ => None,
    }
}

/// A job's server source, as `--remote` needs it: where to connect, which
/// folders the job takes, and the folder rows its runs record under.
struct Source<'a> {
    job: &'a str,
    from: &'a Account,
    url: &'a ServerUrl,
    filter: &'a Filter,
    /// Folder-row key of the state (`"source target"`).
    sync_key: String,
    /// The record target (POP3 UIDLs are looked up per target).
    target: String,
}

/// The jobs whose source is a server: fetch, and push from IMAP.
fn source_of(job: &crate::config::Job) -> Option<Source<'_>> {
    let (from, filter, target) = match &job.kind {
        JobKind::Fetch(f) => (&f.from, &f.filter, crate::exec::maildir_target(&f.to)),
        JobKind::Push(p) => match &p.to.endpoint {
            Endpoint::Server(t) => (&p.from, &p.filter, t.account_key()),
            Endpoint::Maildir(_) => return None,
        },
        JobKind::Prune(_) | JobKind::Verify(_) => return None,
    };
    let Endpoint::Server(url) = &from.endpoint else {
        return None;
    };
    Some(Source {
        job: &job.name,
        from,
        url,
        filter,
        sync_key: crate::exec::sync_key(&url.account_key(), &target),
        target,
    })
}

/// One folder as the server has it now, against the state.
#[derive(Debug)]
struct RemoteFolder {
    folder: FolderName,
    /// Messages on the server.
    messages: u32,
    uidvalidity: Option<UidValidity>,
    uidnext: Option<Uid>,
    /// The UIDVALIDITY the state's records belong to.
    state_uidvalidity: Option<UidValidity>,
    /// On the server, not in the state, and taken by the job's filters:
    /// what the next run copies. `None` when it cannot be told.
    pending: Option<u64>,
    /// On the server, not in the state, but skipped by the job's
    /// `--max-size`/`--since`.
    skipped: u64,
    /// Why `pending` is unknown, or what failed for this folder.
    note: Option<String>,
}

impl RemoteFolder {
    fn new(folder: FolderName) -> RemoteFolder {
        RemoteFolder {
            folder,
            messages: 0,
            uidvalidity: None,
            uidnext: None,
            state_uidvalidity: None,
            pending: None,
            skipped: 0,
            note: None,
        }
    }

    fn uidvalidity_changed(&self) -> bool {
        matches!((self.state_uidvalidity, self.uidvalidity), (Some(a), Some(b)) if a != b)
    }
}

/// Asks each job's server; prints per job as it goes.
async fn remote_status(
    config: &Config,
    jobs: &[crate::config::Job],
    st: Option<&State>,
    rep: &Reporter,
) -> Result<()> {
    let mut first_err = None;
    let sources: Vec<Source<'_>> = jobs.iter().filter_map(source_of).collect();
    if sources.is_empty() && !rep.json() {
        println!("--remote: no fetch or push job with a server source");
    }
    for src in &sources {
        match remote_job(config, src, st).await {
            Ok(rows) => print_remote(src, &rows, rep),
            Err(e) => {
                if rep.json() {
                    rep.emit_value(&json!({"event": "remote_error", "job": src.job,
                        "account": src.url.account_key(), "error": e.to_string(),
                        "exit_code": e.exit_code() as i32}));
                } else {
                    println!(
                        "{} ({}) on the server:\n  FAILED  {e}",
                        src.job,
                        src.from.describe()
                    );
                }
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(Error::Reported(Box::new(e))),
        None => Ok(()),
    }
}

fn print_remote(src: &Source<'_>, rows: &[RemoteFolder], rep: &Reporter) {
    if rep.json() {
        for r in rows {
            rep.emit_value(&json!({"event": "remote", "job": src.job,
                "account": src.url.account_key(), "folder": r.folder.as_str(),
                "messages": r.messages, "pending": r.pending, "skipped": r.skipped,
                "uidvalidity": r.uidvalidity.map(|v| v.0), "uidnext": r.uidnext.map(|v| v.0),
                "state_uidvalidity": r.state_uidvalidity.map(|v| v.0),
                "uidvalidity_changed": r.uidvalidity_changed(), "note": r.note}));
        }
        return;
    }
    println!("{} ({}) on the server:", src.job, src.from.describe());
    println!(
        "  {:<28} {:>8} {:>8} {:>8}",
        "folder", "messages", "pending", "skipped"
    );
    for r in rows {
        let pending = r.pending.map_or_else(|| "?".to_string(), |n| n.to_string());
        let note = r
            .note
            .as_ref()
            .map(|n| format!("  {n}"))
            .unwrap_or_default();
        println!(
            "  {:<28} {:>8} {:>8} {:>8}{note}",
            r.folder.as_str(),
            r.messages,
            pending,
            r.skipped
        );
    }
}

/// Connects to one job's server and counts what the state lacks.
async fn remote_job(
    config: &Config,
    src: &Source<'_>,
    st: Option<&State>,
) -> Result<Vec<RemoteFolder>> {
    let cfg = src.from.server_config("source", config.settings.timeouts)?;
    match src.url.protocol {
        Protocol::Imap => {
            let (mut s, _) =
                crate::exec::fresh_login(async || crate::imap::connect(&cfg).await).await?;
            let rows = imap_folders(&mut s, src, st).await;
            s.logout(config.settings.timeouts.command).await;
            rows
        }
        Protocol::Pop3 => {
            let (mut c, _) =
                crate::exec::fresh_login(async || crate::pop3::connect(&cfg).await).await?;
            let (sizes, uidls) = c.list_and_uidl().await?;
            // Read-only: a failed QUIT loses nothing already counted.
            let _ = c.quit().await;
            pop3_inbox(src, st, sizes, uidls)
        }
    }
}

/// IMAP: one LIST and one pipelined STATUS; then, per folder with
/// messages the state knows of (or when the job filters by size or date),
/// EXAMINE and `UID SEARCH NOT UID <recorded>`, whose reply is only the
/// missing UIDs. A folder new to the state needs nothing but its STATUS.
async fn imap_folders(
    s: &mut Session,
    src: &Source<'_>,
    st: Option<&State>,
) -> Result<Vec<RemoteFolder>> {
    let listed = s.list_folders().await?;
    let ns = s.namespace().await?;
    // Named below the namespace, as fetch keys them in the state.
    let folders: Vec<ListedFolder> = crate::exec::below_namespace(listed, &ns)
        .into_iter()
        .filter(|f| {
            f.selectable
                && src.filter.wants_folder(&f.name)
                && crate::exec::url_allows(src.url.folder.as_ref(), &f.name)
        })
        .collect();
    let wires: Vec<&str> = folders.iter().map(|f| f.wire.as_str()).collect();
    let statuses = if wires.is_empty() {
        Vec::new()
    } else {
        s.status_many(&wires).await?
    };
    let mut rows = Vec::with_capacity(folders.len());
    for (f, status) in folders.iter().zip(statuses) {
        let mut row = RemoteFolder::new(f.name.clone());
        let r = match status {
            Ok(status) => imap_folder(s, f, status, src, st, &mut row).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => {}
            // The session is gone: the job's error line says so.
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => row.note = Some(format!("failed: {e}")),
        }
        rows.push(row);
    }
    Ok(rows)
}

async fn imap_folder(
    s: &mut Session,
    f: &ListedFolder,
    status: crate::imap::FolderStatus,
    src: &Source<'_>,
    st: Option<&State>,
    row: &mut RemoteFolder,
) -> Result<()> {
    row.messages = status.messages;
    row.uidvalidity = status.uidvalidity;
    row.uidnext = status.uidnext;
    let sf = match st {
        Some(st) => st.find_folder(&src.sync_key, &f.name)?,
        None => None,
    };
    row.state_uidvalidity = sf.as_ref().and_then(|f| f.uidvalidity);
    if row.uidvalidity_changed() {
        row.note = Some(mismatch_note(row));
        return Ok(());
    }
    let known = match (st, &sf, row.state_uidvalidity) {
        (Some(st), Some(sf), Some(uv)) => UidSet::from_uids(st.recorded_uids(sf.id, uv)?),
        _ => UidSet::default(),
    };
    let filters_messages = src.filter.max_size.is_some() || src.filter.since.is_some();
    if status.messages == 0 || (known.is_empty() && !filters_messages) {
        row.pending = Some(u64::from(status.messages));
        return Ok(());
    }
    let sel = s.examine(&f.wire).await?;
    row.messages = sel.exists;
    row.uidvalidity = Some(sel.uidvalidity);
    row.uidnext = sel.uidnext.or(row.uidnext);
    if row.uidvalidity_changed() {
        row.note = Some(mismatch_note(row));
        return Ok(());
    }
    let missing = s.uid_search_not(&known).await?;
    if !filters_messages || missing.is_empty() {
        row.pending = Some(missing.len() as u64);
        return Ok(());
    }
    let meta = s
        .uid_fetch_meta(Some(&UidSet::from_uids(missing)), None)
        .await?;
    let source: Vec<SourceMsg> = meta
        .messages
        .iter()
        .map(|m| SourceMsg {
            key: MsgKey::Uid(m.uid),
            size: m.size,
            date: m.internal_date,
            flags: None,
        })
        .collect();
    count_plan(row, &source, src.filter);
    Ok(())
}

fn mismatch_note(row: &RemoteFolder) -> String {
    format!(
        "UIDVALIDITY changed (state {}, server {}): the next fetch matches the stored copies by Message-ID",
        row.state_uidvalidity.map_or(0, |v| v.0),
        row.uidvalidity.map_or(0, |v| v.0)
    )
}

/// Splits messages the state lacks into pending and skipped by the same
/// planner the fetch uses, so the two never disagree.
fn count_plan(row: &mut RemoteFolder, source: &[SourceMsg], filter: &Filter) {
    let p = plan::plan_copy(source, false, &HashMap::new(), &HashMap::new(), filter);
    row.pending = Some(p.copy.len() as u64);
    row.skipped = p.skipped.len() as u64;
}

/// POP3: UIDLs the state has no record of, against LIST's sizes.
fn pop3_inbox(
    src: &Source<'_>,
    st: Option<&State>,
    sizes: Vec<(u32, u64)>,
    uidls: Option<Vec<(u32, crate::types::Uidl)>>,
) -> Result<Vec<RemoteFolder>> {
    let mut row = RemoteFolder::new(FolderName::inbox());
    row.messages = sizes.len() as u32;
    let Some(uidls) = uidls else {
        row.note = Some(
            "the server has no UIDL: pending is not counted (it would take a TOP per message)"
                .into(),
        );
        return Ok(vec![row]);
    };
    let known = match st {
        Some(st) => match st.find_folder(&src.sync_key, &row.folder)? {
            Some(f) => st.known_uidls(f.id, &src.target)?,
            None => HashMap::new(),
        },
        None => HashMap::new(),
    };
    let sizes: HashMap<u32, u64> = sizes.into_iter().collect();
    let mut seen = std::collections::HashSet::new();
    let source: Vec<SourceMsg> = uidls
        .into_iter()
        .filter(|(n, u)| sizes.contains_key(n) && seen.insert(u.clone()) && !known.contains_key(u))
        .map(|(n, u)| SourceMsg {
            key: MsgKey::Uidl(u),
            size: sizes[&n],
            date: 0,
            flags: None,
        })
        .collect();
    count_plan(&mut row, &source, src.filter);
    Ok(vec![row])
}
