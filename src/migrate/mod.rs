//! `migrate`: many account pairs in one run — from a CSV manifest or the
//! config file's push jobs — each one an ordinary `push` job with its own
//! state file and lock, so accounts never block each other and a rerun
//! after a kill continues every account where it stopped. This module is
//! only orchestration; copying is [`crate::exec::run_job`], unchanged.
//!
//! What it adds: sharding between runners ([`shard`]), a connection cap
//! per server host across all accounts ([`hosts`]), `--jobs` accounts at a
//! time, and one rolled-up report ([`report`]) whose exit code is the
//! worst account's.

pub mod hosts;
pub mod manifest;
pub mod report;
pub mod shard;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures_util::StreamExt;

use crate::cli::MigrateArgs;
use crate::config::{Account, Config, Job, JobKind, PushJob, SecretSource, Settings};
use crate::endpoint::{Endpoint, Protocol};
use crate::error::{Error, ExitCode, Result};
use crate::interrupt::Interrupt;
use crate::report::Reporter;
use hosts::HostLimits;
use report::{AccountLine, MigrateSummary, Outcome};
use shard::Shard;

/// One account pair, checked and ready to run.
struct Planned {
    /// Position in the manifest (the report keeps manifest order).
    index: usize,
    id: String,
    source: String,
    target: String,
    job: Job,
    /// Connections per side this account may open.
    pairs: u16,
    /// Host → connections reserved while it runs.
    needs: BTreeMap<String, u32>,
    stem: String,
}

/// What every account task shares.
struct Shared {
    dir: PathBuf,
    base: Settings,
    hosts: HostLimits,
    interrupt: Interrupt,
    skip_done: bool,
    now: i64,
}

/// Runs `mailferry migrate`.
pub async fn run(
    config: &Config,
    args: &MigrateArgs,
    settings: &Settings,
    reporter: &Reporter,
    interrupt: Interrupt,
) -> Result<()> {
    let started = Instant::now();
    let shard = match (&args.shard, args.shards) {
        (Some(s), _) => Some(Shard::parse(s)?),
        (None, Some(n)) => Some(Shard::from_env(
            n,
            std::env::var("JOB_COMPLETION_INDEX").ok().as_deref(),
        )?),
        (None, None) => None,
    };
    // Every row is checked, also those of other shards: a typo fails every
    // runner the same way instead of one shard silently.
    let all = plan_accounts(config, args, settings)?;
    if all.is_empty() {
        return Err(Error::Usage("the manifest has no account rows".into()));
    }
    let planned: Vec<Planned> = all
        .into_iter()
        .filter(|p| shard.is_none_or(|s| s.holds(&p.id)))
        .collect();
    let dir = match &args.state_dir {
        Some(d) => d.clone(),
        None => settings
            .state_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("migrate"),
    };
    if !settings.dry_run {
        create_private_dir(&dir)?;
    }
    let sh = Arc::new(Shared {
        dir,
        base: settings.clone(),
        hosts: HostLimits::new(args.per_host_connections),
        interrupt,
        skip_done: args.skip_done,
        now: crate::exec::now(),
    });
    let total = planned.len();
    let done = AtomicUsize::new(0);
    let chatty = !settings.json
        && !settings.quiet
        && (settings.verbose > 0 || std::io::stderr().is_terminal());
    let mut results: Vec<(usize, AccountLine, Option<Error>)> = Vec::with_capacity(total);
    let mut stream = futures_util::stream::iter(planned.into_iter().map(|p| {
        let sh = sh.clone();
        async move {
            let (index, id, source, target, stem) = (
                p.index,
                p.id.clone(),
                p.source.clone(),
                p.target.clone(),
                p.stem.clone(),
            );
            // Its own thread, so accounts use every core (the push future
            // is not `Send` for `tokio::spawn`: its async closures are
            // higher-ranked); a panic in one account is that account's
            // failure, not the run's.
            let handle = tokio::runtime::Handle::current();
            let sh2 = sh.clone();
            let task = tokio::task::spawn_blocking(move || handle.block_on(run_account(p, sh2)));
            match task.await {
                Ok((line, err)) => (index, line, err),
                Err(e) => {
                    let err = Error::State(format!("internal error: {e}"));
                    let log = sh.dir.join(format!("{stem}.events.jsonl"));
                    let line = blank_line(id, source, target, Outcome::Failed, &err, &log);
                    (index, line, Some(err))
                }
            }
        }
    }))
    .buffer_unordered(args.jobs as usize);
    while let Some((index, line, err)) = stream.next().await {
        let k = done.fetch_add(1, Ordering::Relaxed) + 1;
        reporter.add(&line.summary());
        if settings.json
            && let Ok(v) = serde_json::to_value(&line)
        {
            reporter.emit_value(&v);
        }
        // A failed account is one line on stderr, also with --json (SPEC
        // §4: cron mails stderr); its own reporter leaves that to us.
        if chatty || (line.outcome == Outcome::Failed && !settings.quiet) {
            reporter.line(&format!(
                "[{k}/{total}] {}: {}, {} copied ({}), {} matched in {:.1} s{}",
                line.id,
                line.outcome.as_str(),
                line.copied,
                crate::report::human_bytes(line.bytes),
                line.matched,
                line.seconds,
                line.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
        results.push((index, line, err));
    }
    drop(stream);
    results.sort_by_key(|r| r.0);

    // The worst account decides the exit code.
    let worst = results
        .iter()
        .map(|(_, l, e)| {
            let code = e.as_ref().map_or(
                if l.failed > 0 {
                    ExitCode::Partial
                } else {
                    ExitCode::Ok
                },
                |e| e.exit_code(),
            );
            let code = if l.outcome == Outcome::NotStarted {
                ExitCode::Interrupted
            } else {
                code
            };
            (report::severity(code), code)
        })
        .max_by_key(|(s, _)| *s)
        .map_or(ExitCode::Ok, |(_, c)| c);
    let lines: Vec<AccountLine> = results.iter().map(|(_, l, _)| l.clone()).collect();
    let sum = MigrateSummary::of(
        &lines,
        started.elapsed().as_secs_f64(),
        worst,
        shard.map(|s| format!("{}/{}", s.index, s.count)),
    );
    if settings.json {
        if let Ok(v) = serde_json::to_value(&sum) {
            reporter.emit_value(&v);
        }
    } else if !settings.quiet {
        print!("{}", report::table(&lines, &sum));
    }
    if let Some(path) = &args.report {
        let page = report::html(&lines, &sum, &crate::config::rfc3339(sh.now));
        report::write_html(path, &page)?;
    }
    if worst == ExitCode::Interrupted {
        return Err(Error::Interrupted);
    }
    let worst_err = results
        .into_iter()
        .filter_map(|(_, _, e)| e)
        .max_by_key(|e| report::severity(e.exit_code()));
    match worst_err {
        Some(e) if report::severity(e.exit_code()) >= report::severity(ExitCode::Partial) => {
            Err(Error::Reported(Box::new(e)))
        }
        _ => Ok(()),
    }
}

/// The state directory holds every account's state: only its owner reads it.
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, e))
}

/// Reads the rows (manifest or config push jobs) and turns each into a
/// push job with its connection needs.
fn plan_accounts(config: &Config, args: &MigrateArgs, settings: &Settings) -> Result<Vec<Planned>> {
    let cap = args.per_host_connections;
    let mut out = Vec::new();
    let mut stems = std::collections::HashMap::new();
    let mut add =
        |index: usize, id: String, job: Job, at: &dyn Fn(String) -> Error| -> Result<()> {
            let JobKind::Push(p) = &job.kind else {
                unreachable!("migrate plans push jobs only")
            };
            let (pairs, needs) = connection_needs(p, settings.connections, cap).map_err(at)?;
            let stem = manifest::file_stem(&id);
            if let Some(other) = stems.insert(stem.clone(), id.clone()) {
                return Err(at(format!(
                    "ids {other:?} and {id:?} give the same state file name {stem:?}; rename one"
                )));
            }
            out.push(Planned {
                index,
                source: describe(&p.from),
                target: describe(&p.to),
                id,
                job,
                pairs,
                needs,
                stem,
            });
            Ok(())
        };
    match &args.manifest {
        Some(path) => {
            let file = path.display().to_string();
            for (index, row) in manifest::load(path)?.into_iter().enumerate() {
                let at = |msg: String| Error::Config {
                    file: file.clone(),
                    line: Some(row.line),
                    msg: format!("row {:?}: {msg}", row.id),
                };
                let job = row_job(config, args, &row).map_err(|e| match e {
                    Error::Usage(m) => at(m),
                    e => e,
                })?;
                add(index, row.id.clone(), job, &at)?;
            }
        }
        None => {
            let f = &args.filter;
            if !f.folders.is_empty()
                || !f.excludes.is_empty()
                || f.max_size.is_some()
                || f.since.is_some()
                || !args.maps.is_empty()
                || args.max_rate.is_some()
            {
                return Err(Error::Usage(
                    "--folder, --exclude, --max-size, --since, --map and --max-rate apply to \
                     --manifest rows; the config's push jobs carry their own"
                        .into(),
                ));
            }
            let jobs: Vec<Job> = config
                .file_jobs(&[])?
                .into_iter()
                .filter(|j| matches!(j.kind, JobKind::Push(_)))
                .collect();
            if jobs.is_empty() {
                return Err(Error::Usage(
                    "migrate needs --manifest FILE, or push jobs in the config file".into(),
                ));
            }
            for (index, job) in jobs.into_iter().enumerate() {
                let name = job.name.clone();
                let at = |msg: String| Error::Usage(format!("job {name:?}: {msg}"));
                add(index, name.clone(), job, &at)?;
            }
        }
    }
    Ok(out)
}

/// A manifest row as a push job, the same as `mailferry push` with these
/// arguments would build.
fn row_job(config: &Config, args: &MigrateArgs, row: &manifest::Row) -> Result<Job> {
    let secret = |r: &Option<manifest::SecretRef>, env_var: &'static str| {
        r.as_ref()
            .map_or(SecretSource::Default { env_var }, |r| r.source())
    };
    let from = config.account(
        &row.source,
        secret(&row.source_secret, "MAILFERRY_FROM_PASSWORD"),
    )?;
    let to = config.account(
        &row.target,
        secret(&row.target_secret, "MAILFERRY_TO_PASSWORD"),
    )?;
    if to.server_url("target")?.protocol != Protocol::Imap {
        return Err(Error::Usage("the target must be an IMAP account".into()));
    }
    Ok(Job {
        name: row.id.clone(),
        kind: JobKind::Push(PushJob {
            from,
            to,
            filter: crate::config::filter_of(&args.filter)?,
            maps: args.maps.clone(),
            max_rate: args.max_rate,
        }),
    })
}

/// An account's source or target for the report: its URL key (never a
/// secret) or the Maildir path.
fn describe(a: &Account) -> String {
    match &a.endpoint {
        Endpoint::Server(u) => u.account_key(),
        Endpoint::Maildir(p) => format!("maildir:{}", p.display()),
    }
}

/// How many connection pairs an account may open (its `--connections`,
/// one for a POP3 source, as `push` does) and what that reserves per host.
/// Source and target on one host share its cap.
fn connection_needs(
    p: &PushJob,
    connections: u16,
    cap: u32,
) -> std::result::Result<(u16, BTreeMap<String, u32>), String> {
    let hosts: Vec<String> = [&p.from, &p.to]
        .into_iter()
        .filter_map(|a| match &a.endpoint {
            Endpoint::Server(u) => Some(hosts::host_key(&u.host)),
            Endpoint::Maildir(_) => None,
        })
        .collect();
    let pop3 = matches!(&p.from.endpoint, Endpoint::Server(u) if u.protocol == Protocol::Pop3);
    let mut pairs = if pop3 {
        1
    } else {
        u32::from(connections.max(1))
    };
    let sharing = if hosts.len() == 2 && hosts[0] == hosts[1] {
        2
    } else {
        1
    };
    pairs = pairs.min(cap / sharing);
    if pairs == 0 {
        return Err(format!(
            "source and target are both on {}: --per-host-connections must be at least 2",
            hosts[0]
        ));
    }
    let mut needs = BTreeMap::new();
    for h in hosts {
        *needs.entry(h).or_insert(0) += pairs;
    }
    Ok((pairs as u16, needs))
}

fn blank_line(
    id: String,
    source: String,
    target: String,
    outcome: Outcome,
    err: &Error,
    log: &Path,
) -> AccountLine {
    AccountLine {
        event: "account",
        id,
        source,
        target,
        outcome,
        exit_code: match outcome {
            Outcome::NotStarted => ExitCode::Interrupted as i32,
            Outcome::Skipped => 0,
            _ => err.exit_code() as i32,
        },
        copied: 0,
        matched: 0,
        flags_updated: 0,
        skipped: 0,
        failed: 0,
        bytes: 0,
        seconds: 0.0,
        error: match outcome {
            Outcome::Skipped => None,
            _ => Some(err.to_string()),
        },
        log: log.display().to_string(),
    }
}

/// True when the account's state records that its last migrate run
/// finished ok (`--skip-done`).
fn finished_before(state_path: &Path, id: &str) -> bool {
    if !state_path.exists() {
        return false;
    }
    let Ok(st) = crate::state::State::open(state_path) else {
        return false;
    };
    st.recent_runs(Some(id), 1)
        .ok()
        .and_then(|r| r.into_iter().next())
        .is_some_and(|r| r.command == "migrate" && r.outcome.is_some_and(|o| o.result == "ok"))
}

/// Runs one account's push with its own state, lock, reporter and log.
async fn run_account(p: Planned, sh: Arc<Shared>) -> (AccountLine, Option<Error>) {
    let state_path = sh.dir.join(format!("{}.db", p.stem));
    let log = sh.dir.join(format!("{}.events.jsonl", p.stem));
    let not_started = |p: &Planned| {
        let e = Error::Interrupted;
        let l = blank_line(
            p.id.clone(),
            p.source.clone(),
            p.target.clone(),
            Outcome::NotStarted,
            &e,
            &log,
        );
        (l, Some(e))
    };
    if sh.interrupt.is_set() {
        return not_started(&p);
    }
    if sh.skip_done && !sh.base.dry_run && finished_before(&state_path, &p.id) {
        let l = blank_line(
            p.id.clone(),
            p.source.clone(),
            p.target.clone(),
            Outcome::Skipped,
            &Error::Interrupted,
            &log,
        );
        return (l, None);
    }
    let _reservation = sh.hosts.reserve(&p.needs).await;
    if sh.interrupt.is_set() {
        return not_started(&p);
    }
    let started = Instant::now();
    let settings = Settings {
        state_path,
        connections: p.pairs,
        json: true,
        quiet: true,
        verbose: 0,
        ..sh.base.clone()
    };
    let out: Box<dyn std::io::Write + Send> = if sh.base.dry_run {
        Box::new(std::io::sink())
    } else {
        match std::fs::File::create(&log) {
            Ok(f) => Box::new(std::io::LineWriter::new(f)),
            Err(e) => {
                let e = Error::io(&log, e);
                let l = blank_line(p.id, p.source, p.target, Outcome::Failed, &e, &log);
                return (l, Some(e));
            }
        }
    };
    let rep = Reporter::with_output(&settings, out).fatal_not_on_stderr();
    let ctx = crate::exec::Ctx {
        settings: &settings,
        reporter: &rep,
        interrupt: sh.interrupt.clone(),
        now: sh.now,
    };
    let result = crate::exec::run_job(&p.job, "migrate", &ctx).await;
    let code = rep.finish(result.as_ref().err());
    let s = rep.summary();
    let outcome = match code {
        ExitCode::Ok => Outcome::Ok,
        ExitCode::Partial if result.is_ok() => Outcome::Partial,
        ExitCode::Interrupted => Outcome::Interrupted,
        _ => Outcome::Failed,
    };
    let error = match &result {
        Err(e) => Some(e.to_string()),
        Ok(()) if s.failed > 0 => Some(format!(
            "{} failed (details in {})",
            s.failed,
            log.display()
        )),
        Ok(()) => None,
    };
    let line = AccountLine {
        event: "account",
        id: p.id,
        source: p.source,
        target: p.target,
        outcome,
        exit_code: code as i32,
        copied: s.copied,
        matched: s.matched,
        flags_updated: s.flags_updated,
        skipped: s.skipped,
        failed: s.failed,
        bytes: s.bytes,
        seconds: report::round3(started.elapsed().as_secs_f64()),
        error,
        log: log.display().to_string(),
    };
    (line, result.err())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(from: &str, to: &str) -> PushJob {
        let acct = |u: &str| Account {
            name: None,
            endpoint: Endpoint::parse(u, false).unwrap(),
            secret: SecretSource::Default { env_var: "X" },
            tls: Default::default(),
            connections: None,
            profile: None,
            daily_download: None,
            daily_upload: None,
        };
        PushJob {
            from: acct(from),
            to: acct(to),
            filter: Default::default(),
            maps: Vec::new(),
            max_rate: None,
        }
    }

    #[test]
    fn connection_needs_share_a_host_and_respect_the_cap() {
        let (n, needs) = connection_needs(
            &push("imaps://a@Old.example", "imaps://a@new.example"),
            4,
            16,
        )
        .unwrap();
        assert_eq!(n, 4);
        assert_eq!(needs["old.example"], 4);
        assert_eq!(needs["new.example"], 4);
        let (n, needs) = connection_needs(&push("imaps://a@h", "imaps://b@h:143"), 4, 5).unwrap();
        assert_eq!((n, needs["h"]), (2, 4));
        let (n, _) = connection_needs(&push("pop3s://a@p", "imaps://a@i"), 4, 16).unwrap();
        assert_eq!(n, 1);
        let (_, needs) = connection_needs(&push("/tmp/md", "imaps://a@i"), 3, 16).unwrap();
        assert_eq!(needs.len(), 1);
        assert!(connection_needs(&push("imaps://a@h", "imaps://b@h"), 4, 1).is_err());
    }
}
