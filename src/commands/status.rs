//! `mailferry status [JOB]...`: what the state knows, without touching the
//! network: per account and folder what is stored and deleted, when it was
//! last synced, and how the recent runs ended.

use serde_json::json;

use crate::config::{Config, JobKind, rfc3339};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::report::{Reporter, human_bytes};
use crate::state::State;

/// Prints the state's view; `jobs` narrows it to the config's named jobs.
pub fn run(config: &Config, jobs: &[String], remote: bool, rep: &Reporter) -> Result<()> {
    if remote {
        return Err(Error::NotImplemented("status --remote"));
    }
    let path = &config.settings.state_path;
    if !path.exists() {
        if rep.json() {
            rep.emit_value(
                &json!({"event": "status", "state": path.display().to_string(), "exists": false}),
            );
        } else {
            println!("{}: no state yet (nothing has run with it)", path.display());
        }
        return Ok(());
    }
    let st = State::open(path)?;
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
