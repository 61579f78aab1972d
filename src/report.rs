//! What the user sees (SPEC §4): progress bars on a terminal, one JSON
//! object per line with `--json`, silence on success under cron, one clear
//! line per error, and a summary whose counts decide the exit code.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::config::Settings;
use crate::error::ExitCode;

/// Counts of one run; with `--dry-run`, what would happen.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Messages really transferred (what `bytes` counts).
    pub copied: u64,
    /// Messages found already stored on the target and recorded instead
    /// of copied again (push's reconciliation, fetch's adoption of files
    /// a killed run wrote); for `verify`, the source messages present on
    /// the target.
    pub matched: u64,
    pub flags_updated: u64,
    pub deleted: u64,
    pub skipped: u64,
    pub failed: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// `verify` only: target messages with no source counterpart. Each is
    /// a `warning` event already, so not part of the JSON summary.
    #[serde(skip)]
    pub extra: u64,
}

impl Summary {
    /// Adds another summary's counts (seconds excluded).
    pub fn add(&mut self, o: &Summary) {
        self.copied += o.copied;
        self.matched += o.matched;
        self.extra += o.extra;
        self.flags_updated += o.flags_updated;
        self.deleted += o.deleted;
        self.skipped += o.skipped;
        self.failed += o.failed;
        self.bytes += o.bytes;
    }
}

/// One line of `--json` output. Field names are part of the contract.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    FolderStart {
        folder: String,
        messages: u64,
        bytes: u64,
    },
    FolderDone {
        folder: String,
        copied: u64,
        matched: u64,
        flags_updated: u64,
        deleted: u64,
        skipped: u64,
        failed: u64,
    },
    MessageError {
        folder: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        uidl: Option<String>,
        error: String,
    },
    Warning {
        #[serde(skip_serializing_if = "Option::is_none")]
        folder: Option<String>,
        message: String,
    },
    Delete {
        folder: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        uidl: Option<String>,
        message_id: Option<String>,
        date: String,
        size: u64,
        reason: String,
        dry_run: bool,
        /// Subject (decoded), where prune read the header.
        #[serde(skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
    },
    /// A fatal error; the summary follows.
    Error {
        message: String,
        exit_code: i32,
        /// The `mailferry run` job that failed (the others go on).
        #[serde(skip_serializing_if = "Option::is_none")]
        job: Option<String>,
        /// A budget stop (exit 5): when a rerun can go on, RFC 3339.
        #[serde(skip_serializing_if = "Option::is_none")]
        resume_at: Option<String>,
    },
    Summary(Summary),
}

/// The one place output goes through. Cheap to share between folder
/// workers (`&Reporter` across tasks).
pub struct Reporter {
    json: bool,
    quiet: bool,
    verbose: u8,
    dry_run: bool,
    multi: Option<MultiProgress>,
    /// The run's total: its length grows as each folder is planned.
    total: Option<ProgressBar>,
    started: Instant,
    summary: Mutex<Summary>,
    out: Mutex<Box<dyn Write + Send>>,
    /// One entry per job begun (`mailferry run` has several): whether it
    /// was a `verify`, whose human output uses its own words.
    jobs: Mutex<Vec<bool>>,
    /// Whether a fatal error also goes to stderr (SPEC §4: always, also
    /// with `--json`); off for a reporter whose caller reports the error
    /// in its own words (one `migrate` account).
    fatal_to_stderr: bool,
}

/// Progress of one folder: a bar on a terminal, nothing otherwise.
pub struct FolderProgress {
    bar: Option<ProgressBar>,
    total: Option<ProgressBar>,
    bytes: std::sync::atomic::AtomicU64,
}

impl FolderProgress {
    /// Counts one message and its bytes.
    pub fn inc(&self, bytes: u64) {
        use std::sync::atomic::Ordering;
        let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(b) = &self.bar {
            b.inc(1);
            b.set_message(human_bytes(total));
        }
        if let Some(t) = &self.total {
            t.inc(1);
        }
    }

    /// Removes the bar when the folder is done.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Reporter {
    /// A reporter writing JSON/summary to stdout, bars and errors to stderr.
    pub fn new(s: &Settings) -> Reporter {
        Reporter::with_output(s, Box::new(std::io::stdout()))
    }

    /// Same, with stdout replaced (tests).
    pub fn with_output(s: &Settings, out: Box<dyn Write + Send>) -> Reporter {
        let tty = std::io::stderr().is_terminal()
            && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true);
        let multi = (tty && !s.json && !s.quiet)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)));
        let total = multi.as_ref().map(|m| {
            let t = m.add(ProgressBar::new(0));
            t.set_style(
                ProgressStyle::with_template(
                    "{prefix:>20.bold} [{bar:30}] {pos}/{len} msgs {per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            t.set_prefix("total");
            t
        });
        Reporter {
            total,
            json: s.json,
            quiet: s.quiet,
            verbose: s.verbose,
            dry_run: s.dry_run,
            multi,
            started: Instant::now(),
            summary: Mutex::new(Summary::default()),
            out: Mutex::new(out),
            fatal_to_stderr: true,
            jobs: Mutex::new(Vec::new()),
        }
    }

    /// A job starts: a `verify` job's lines speak of messages present,
    /// missing and extra, not of copies.
    pub fn begin_job(&self, verify: bool) {
        self.jobs.lock().unwrap().push(verify);
    }

    /// True while the current job is a `verify`.
    fn verifying(&self) -> bool {
        self.jobs.lock().unwrap().last().copied().unwrap_or(false)
    }

    /// A reporter whose fatal error is left to the caller to show on
    /// stderr (still a JSON `error` event with `--json`): `migrate`
    /// prints one line per failed account, naming it.
    pub fn fatal_not_on_stderr(mut self) -> Reporter {
        self.fatal_to_stderr = false;
        self
    }

    /// True when `--dry-run` (or `plan`) is in force.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// Starts a folder: a JSON event, a bar on a terminal.
    pub fn folder_start(&self, folder: &str, messages: u64, bytes: u64) -> FolderProgress {
        self.emit(Event::FolderStart {
            folder: folder.into(),
            messages,
            bytes,
        });
        if self.verbose > 0 && !self.json && self.multi.is_none() {
            if self.verifying() {
                eprintln!("{folder}: {messages} messages to look for");
            } else {
                eprintln!("{folder}: {messages} to copy ({})", human_bytes(bytes));
            }
        }
        let bar = self.multi.as_ref().filter(|_| messages > 0).map(|m| {
            let b = m.add(ProgressBar::new(messages));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>20.bold} [{bar:30}] {pos}/{len} msgs {msg} {per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(truncate(folder, 20));
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        if let Some(t) = self.total.as_ref().filter(|_| messages > 0) {
            t.inc_length(messages);
        }
        FolderProgress {
            bar,
            total: self.total.clone(),
            bytes: Default::default(),
        }
    }

    /// Ends a folder and adds its counts to the run's summary.
    pub fn folder_done(&self, folder: &str, s: &Summary) {
        self.summary.lock().unwrap().add(s);
        self.emit(Event::FolderDone {
            folder: folder.into(),
            copied: s.copied,
            matched: s.matched,
            flags_updated: s.flags_updated,
            deleted: s.deleted,
            skipped: s.skipped,
            failed: s.failed,
        });
        // verify prints its own line per folder (present, missing, extra).
        if self.verbose > 0 && !self.json && !self.verifying() {
            self.line(&format!(
                "{folder}: {} copied, {} matched, {} flags updated, {} deleted, {} failed",
                s.copied, s.matched, s.flags_updated, s.deleted, s.failed
            ));
        }
    }

    /// A message could not be handled; the run goes on, exit code 1.
    pub fn message_error(&self, folder: &str, uid: Option<u32>, uidl: Option<&str>, error: &str) {
        let what = match (uid, uidl) {
            (Some(u), _) => format!(" UID {u}"),
            (None, Some(u)) => format!(" UIDL {u}"),
            _ => String::new(),
        };
        if self.json {
            self.emit(Event::MessageError {
                folder: folder.into(),
                uid,
                uidl: uidl.map(Into::into),
                error: error.into(),
            });
        } else {
            self.line(&format!("error: {folder}{what}: {error}"));
        }
    }

    /// Something the user should know that is not a failure.
    pub fn warning(&self, folder: Option<&str>, message: &str) {
        if self.json {
            self.emit(Event::Warning {
                folder: folder.map(Into::into),
                message: message.into(),
            });
        } else if !self.quiet {
            match folder {
                Some(f) => self.line(&format!("warning: {f}: {message}")),
                None => self.line(&format!("warning: {message}")),
            }
        }
    }

    /// A retention deletion (done, or with dry-run, planned).
    pub fn delete(&self, ev: Event) {
        if self.json {
            self.emit(ev);
        } else if let Event::Delete {
            folder,
            uid,
            uidl,
            date,
            size,
            reason,
            dry_run,
            subject,
            ..
        } = &ev
            && (*dry_run || self.verbose > 0)
        {
            let id = uid
                .map(|u| format!("UID {u}"))
                .or(uidl.as_ref().map(|u| format!("UIDL {u}")))
                .unwrap_or_default();
            let verb = if *dry_run { "would delete" } else { "deleted" };
            let subject = subject
                .as_deref()
                .map(|s| format!(" {s:?}"))
                .unwrap_or_default();
            self.line(&format!(
                "{verb} {folder} {id} {date} {} ({reason}){subject}",
                human_bytes(*size)
            ));
        }
    }

    /// Prints a line on stderr without tearing a progress bar.
    pub fn line(&self, s: &str) {
        match &self.multi {
            // println on a hidden bar is dropped (crates.md §6); this one is visible.
            Some(m) => {
                let _ = m.println(s);
            }
            None => eprintln!("{s}"),
        }
    }

    /// Adds counts without a folder (e.g. POP3).
    pub fn add(&self, s: &Summary) {
        self.summary.lock().unwrap().add(s);
    }

    /// Ends the run: the summary (JSON, or a line on a terminal or with -v),
    /// a fatal error if any, and the exit code.
    pub fn finish(&self, fatal: Option<&crate::Error>) -> ExitCode {
        let mut s = self.summary.lock().unwrap().clone();
        s.seconds = (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        if let Some(t) = &self.total {
            t.finish_and_clear();
        }
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
        let code = match fatal {
            Some(e) => e.exit_code(),
            None if s.failed > 0 => ExitCode::Partial,
            None => ExitCode::Ok,
        };
        if let Some(e) = fatal.filter(|e| !matches!(e, crate::Error::Reported(_))) {
            self.fatal(None, e);
        }
        if self.json {
            self.emit(Event::Summary(s));
        } else if !self.quiet && (self.multi.is_some() || self.verbose > 0) {
            let dry = if self.dry_run {
                " (dry run: nothing changed)"
            } else {
                ""
            };
            let only_verify = {
                let jobs = self.jobs.lock().unwrap();
                !jobs.is_empty() && jobs.iter().all(|v| *v)
            };
            if only_verify {
                eprintln!(
                    "{} present, {} missing, {} extra in {:.1} s",
                    s.matched, s.failed, s.extra, s.seconds
                );
            } else {
                eprintln!(
                    "{} copied ({}), {} matched, {} flags updated, {} deleted, {} skipped, {} failed in {:.1} s{dry}",
                    s.copied,
                    human_bytes(s.bytes),
                    s.matched,
                    s.flags_updated,
                    s.deleted,
                    s.skipped,
                    s.failed,
                    s.seconds
                );
            }
        }
        code
    }

    /// A fatal error (of the run, or with `job` of one job of `mailferry
    /// run`): one line on stderr, which cron mails, whatever the output
    /// mode (SPEC §4), and with `--json` an `error` event on stdout too.
    pub fn fatal(&self, job: Option<&str>, e: &crate::Error) {
        let message = match job {
            Some(j) => format!("job {j}: {e}"),
            None => e.to_string(),
        };
        if self.json {
            self.emit(Event::Error {
                message: message.clone(),
                exit_code: e.exit_code() as i32,
                job: job.map(str::to_string),
                resume_at: e.resume_at(),
            });
        }
        if self.fatal_to_stderr {
            self.line(&format!("mailferry: {message}"));
        }
    }

    /// The summary so far (tests and `run` across jobs).
    pub fn summary(&self) -> Summary {
        self.summary.lock().unwrap().clone()
    }

    fn emit(&self, ev: Event) {
        if !self.json {
            return;
        }
        let mut out = self.out.lock().unwrap();
        if let Ok(s) = serde_json::to_string(&ev) {
            let _ = writeln!(out, "{s}");
            let _ = out.flush();
        }
    }

    /// Writes a raw JSON value as one line (commands with their own output: check, status).
    pub fn emit_value(&self, v: &serde_json::Value) {
        let mut out = self.out.lock().unwrap();
        let _ = writeln!(out, "{v}");
        let _ = out.flush();
    }

    /// True with `--json`.
    pub fn json(&self) -> bool {
        self.json
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n - 1).collect();
        format!("{t}…")
    }
}

/// `12.3 MB` style sizes for people.
pub fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn settings(json: bool) -> Settings {
        Settings {
            state_path: "/tmp/x".into(),
            dry_run: true,
            json,
            quiet: false,
            verbose: 0,
            connections: 1,
            timeouts: Default::default(),
        }
    }

    #[test]
    fn json_lines_end_with_summary_and_exit_code_follows_failures() {
        let buf = Buf::default();
        let r = Reporter::with_output(&settings(true), Box::new(buf.clone()));
        let _p = r.folder_start("Archive/2024", 2, 100);
        r.message_error("Archive/2024", Some(7), None, "malformed");
        r.folder_done(
            "Archive/2024",
            &Summary {
                copied: 1,
                matched: 2,
                failed: 1,
                bytes: 50,
                ..Default::default()
            },
        );
        r.delete(Event::Delete {
            folder: "INBOX".into(),
            uid: Some(3),
            uidl: None,
            message_id: Some("<a@b>".into()),
            date: crate::config::rfc3339(0),
            size: 10,
            reason: "older-than 365d".into(),
            dry_run: true,
            subject: None,
        });
        assert_eq!(r.finish(None), ExitCode::Partial);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["event"], "folder_start");
        assert_eq!(lines[1]["event"], "message_error");
        assert_eq!(lines[1]["uid"], 7);
        assert_eq!(lines[2]["event"], "folder_done");
        assert_eq!(
            (lines[2]["copied"].as_u64(), lines[2]["matched"].as_u64()),
            (Some(1), Some(2))
        );
        assert_eq!(lines[3]["event"], "delete");
        assert_eq!(lines[3]["date"], "1970-01-01T00:00:00Z");
        assert_eq!(lines[3]["dry_run"], true);
        let last = lines.last().unwrap();
        assert_eq!(last["event"], "summary");
        assert_eq!(last["copied"], 1);
        assert_eq!(last["matched"], 2);
        assert!(
            last.get("extra").is_none(),
            "verify's extra is not a summary field"
        );
        assert_eq!(last["failed"], 1);
        assert!(last["seconds"].is_number());
    }

    #[test]
    fn fatal_error_sets_code_and_is_reported() {
        let buf = Buf::default();
        let r = Reporter::with_output(&settings(true), Box::new(buf.clone()));
        let code = r.finish(Some(&crate::Error::Auth {
            server: "h:1".into(),
            msg: "bad".into(),
        }));
        assert_eq!(code, ExitCode::Auth);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.lines().next().unwrap().contains("\"exit_code\":3"));
    }
}
