//! The rolled-up report of a migrate run: one outcome per account (a JSON
//! line each with `--json`), a summary, a plain table for the terminal and
//! a self-contained HTML page for the person who signs the migration off.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, ExitCode, Result};
use crate::report::{Summary, human_bytes};

/// How one account ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything copied.
    Ok,
    /// Finished, but some messages failed (exit 1).
    Partial,
    /// The account stopped on an error (auth, connection, config, lock…).
    Failed,
    /// Stopped by a signal; a rerun continues it.
    Interrupted,
    /// `--skip-done`: its last migrate run finished ok; not contacted.
    Skipped,
    /// Never started: the run was interrupted first.
    NotStarted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Skipped => "skipped",
            Outcome::NotStarted => "not_started",
        }
    }
}

/// One `{"event":"account",…}` line.
#[derive(Debug, Clone, Serialize)]
pub struct AccountLine {
    pub event: &'static str,
    pub id: String,
    pub source: String,
    pub target: String,
    pub outcome: Outcome,
    pub exit_code: i32,
    pub copied: u64,
    /// Already on the target: recorded, not copied again.
    pub matched: u64,
    pub flags_updated: u64,
    pub skipped: u64,
    pub failed: u64,
    pub bytes: u64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The account's own event log (JSON lines of its push).
    pub log: String,
}

impl AccountLine {
    pub fn summary(&self) -> Summary {
        Summary {
            copied: self.copied,
            matched: self.matched,
            flags_updated: self.flags_updated,
            skipped: self.skipped,
            failed: self.failed,
            bytes: self.bytes,
            ..Default::default()
        }
    }
}

/// The `{"event":"migrate_summary",…}` line.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateSummary {
    pub event: &'static str,
    pub accounts: usize,
    pub ok: usize,
    pub partial: usize,
    pub failed: usize,
    pub interrupted: usize,
    pub skipped: usize,
    pub not_started: usize,
    pub copied: u64,
    pub matched: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub messages_per_second: f64,
    pub exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
}

impl MigrateSummary {
    pub fn of(lines: &[AccountLine], seconds: f64, exit: ExitCode, shard: Option<String>) -> Self {
        let n = |o: Outcome| lines.iter().filter(|l| l.outcome == o).count();
        let copied = lines.iter().map(|l| l.copied).sum();
        MigrateSummary {
            event: "migrate_summary",
            accounts: lines.len(),
            ok: n(Outcome::Ok),
            partial: n(Outcome::Partial),
            failed: n(Outcome::Failed),
            interrupted: n(Outcome::Interrupted),
            skipped: n(Outcome::Skipped),
            not_started: n(Outcome::NotStarted),
            copied,
            matched: lines.iter().map(|l| l.matched).sum(),
            bytes: lines.iter().map(|l| l.bytes).sum(),
            seconds: round3(seconds),
            messages_per_second: if seconds > 0.0 {
                (copied as f64 / seconds * 10.0).round() / 10.0
            } else {
                0.0
            },
            exit_code: exit as i32,
            shard,
        }
    }
}

pub fn round3(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// How bad an exit code is, for "the worst account decides": a signal
/// first (the run did not finish), then what needs a person (config,
/// credentials), then what may pass by itself (connection, lock, a
/// daily budget), then missing messages.
pub fn severity(code: ExitCode) -> u8 {
    match code {
        ExitCode::Ok => 0,
        ExitCode::Partial => 1,
        ExitCode::Budget => 2,
        ExitCode::Locked => 3,
        ExitCode::Connect => 4,
        ExitCode::Auth => 5,
        ExitCode::Usage => 6,
        ExitCode::Interrupted => 7,
    }
}

/// The plain table (stdout without `--json`).
pub fn table(lines: &[AccountLine], sum: &MigrateSummary) -> String {
    let w = lines
        .iter()
        .map(|l| l.id.chars().count())
        .max()
        .unwrap_or(2)
        .clamp(2, 40);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<w$}  {:<11}  {:>4}  {:>8}  {:>8}  {:>6}  {:>10}  {:>8}  error",
        "id", "outcome", "exit", "copied", "matched", "failed", "bytes", "seconds"
    );
    for l in lines {
        let id: String = l.id.chars().take(40).collect();
        let _ = writeln!(
            s,
            "{id:<w$}  {:<11}  {:>4}  {:>8}  {:>8}  {:>6}  {:>10}  {:>8.1}  {}",
            l.outcome.as_str(),
            l.exit_code,
            l.copied,
            l.matched,
            l.failed,
            human_bytes(l.bytes),
            l.seconds,
            l.error.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(
        s,
        "{} accounts: {} ok, {} partial, {} failed, {} interrupted, {} skipped, {} not started; \
         {} messages copied ({}), {} matched, in {:.1} s, {:.1} messages/s; exit {}",
        sum.accounts,
        sum.ok,
        sum.partial,
        sum.failed,
        sum.interrupted,
        sum.skipped,
        sum.not_started,
        sum.copied,
        human_bytes(sum.bytes),
        sum.matched,
        sum.seconds,
        sum.messages_per_second,
        sum.exit_code
    );
    s
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A self-contained page (no scripts, no external files): the summary and
/// one row per account, every field escaped.
pub fn html(lines: &[AccountLine], sum: &MigrateSummary, generated: &str) -> String {
    let mut s = String::new();
    s.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>mailferry migrate report</title>\n<style>\
         body{font-family:system-ui,sans-serif;margin:2em}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
         td.n{text-align:right}tr.ok td.o{background:#d8f5d8}tr.partial td.o{background:#fff3c4}\
         tr.failed td.o,tr.interrupted td.o,tr.not_started td.o{background:#f8d0d0}\
         </style></head><body>\n<h1>mailferry migrate report</h1>\n",
    );
    let _ = writeln!(
        s,
        "<p>{} accounts{}: {} ok, {} partial, {} failed, {} interrupted, {} skipped, {} not started. \
         {} messages copied ({}), {} matched, in {:.1} s ({:.1} messages/s). Exit code {}. Generated {}.</p>",
        sum.accounts,
        sum.shard
            .as_deref()
            .map(|x| format!(" (shard {})", escape(x)))
            .unwrap_or_default(),
        sum.ok,
        sum.partial,
        sum.failed,
        sum.interrupted,
        sum.skipped,
        sum.not_started,
        sum.copied,
        escape(&human_bytes(sum.bytes)),
        sum.matched,
        sum.seconds,
        sum.messages_per_second,
        sum.exit_code,
        escape(generated)
    );
    s.push_str(
        "<table>\n<tr><th>id</th><th>source</th><th>target</th><th>outcome</th><th>exit</th>\
         <th>copied</th><th>matched</th><th>flags updated</th><th>failed</th><th>bytes</th><th>seconds</th>\
         <th>error</th></tr>\n",
    );
    for l in lines {
        let _ = writeln!(
            s,
            "<tr class=\"{o}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"o\">{o}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td>{}</td></tr>",
            escape(&l.id),
            escape(&l.source),
            escape(&l.target),
            l.exit_code,
            l.copied,
            l.matched,
            l.flags_updated,
            l.failed,
            escape(&human_bytes(l.bytes)),
            l.seconds,
            escape(l.error.as_deref().unwrap_or("")),
            o = l.outcome.as_str(),
        );
    }
    s.push_str("</table>\n</body></html>\n");
    s
}

/// Writes the HTML report atomically: a reader never sees half a page.
pub fn write_html(path: &Path, page: &str) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, page).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, outcome: Outcome, code: i32, err: Option<&str>) -> AccountLine {
        AccountLine {
            event: "account",
            id: id.into(),
            source: "imaps://a@old:993".into(),
            target: "imaps://a@new:993".into(),
            outcome,
            exit_code: code,
            copied: 10,
            matched: 0,
            flags_updated: 0,
            skipped: 0,
            failed: 0,
            bytes: 2048,
            seconds: 1.5,
            error: err.map(Into::into),
            log: "/s/a.events.jsonl".into(),
        }
    }

    #[test]
    fn html_escapes_every_field() {
        let lines = vec![
            line(
                "<script>alert(1)</script>",
                Outcome::Failed,
                3,
                Some("bad \"pw\" & <x>"),
            ),
            line("bob", Outcome::Ok, 0, None),
        ];
        let sum = MigrateSummary::of(&lines, 2.0, ExitCode::Auth, Some("0/3".into()));
        let page = html(&lines, &sum, "2026-01-01T00:00:00Z");
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("bad &quot;pw&quot; &amp; &lt;x&gt;"));
        assert_eq!(page.matches("<tr class=").count(), 2);
        assert_eq!(sum.ok, 1);
        assert_eq!(sum.failed, 1);
        assert_eq!(sum.copied, 20);
        assert_eq!(sum.messages_per_second, 10.0);
        let t = table(&lines, &sum);
        assert!(t.contains("bob") && t.contains("exit 3"), "{t}");
        let j = serde_json::to_value(&lines[1]).unwrap();
        assert_eq!(j["event"], "account");
        assert_eq!(j["outcome"], "ok");
        assert!(j.get("error").is_none());
    }

    #[test]
    fn worst_code_ranks_signal_then_config_then_auth() {
        let mut v = [
            ExitCode::Partial,
            ExitCode::Connect,
            ExitCode::Ok,
            ExitCode::Usage,
            ExitCode::Locked,
            ExitCode::Auth,
        ];
        v.sort_by_key(|c| severity(*c));
        assert_eq!(v.last(), Some(&ExitCode::Usage));
        assert!(severity(ExitCode::Interrupted) > severity(ExitCode::Usage));
        assert!(severity(ExitCode::Partial) > severity(ExitCode::Ok));
    }
}
