//! `prune` (SPEC §2): retention rules on an IMAP account, a POP3 mailbox
//! or a local Maildir.
//!
//! Every run is list → plan → guard → execute → record:
//! - each folder is listed and planned ([`crate::plan::plan_prune`]: the
//!   union of the rules; flagged mail kept unless asked), and with
//!   `--only-if-stored-in` each chosen message is proven stored there —
//!   by the state, or for a message the state does not know, by a lookup
//!   by Message-ID + size (a content digest where there is no Message-ID).
//!   Anything unproven is kept and reported;
//! - the mass-delete guard then looks at the whole plan before anything
//!   is deleted (`--max-delete`, default 1000, or more than 10% of a
//!   folder once that is more than 20 messages; `--yes`);
//! - deletions go in batches: each is logged in the state's deletion
//!   history *before* the server (or file system) is asked and settled
//!   once it confirmed, so a run killed anywhere leaves a record of every
//!   message that may be gone. The next run settles what the last one
//!   left pending by looking at what is still there.
//!
//! `--dry-run`/`plan` runs the same listing and planning and prints the
//! deletions a real run would make, and nothing else.

mod imap;
mod maildir;
mod pop3;
mod store;

use std::sync::{Arc, Mutex};

use super::Ctx;
use crate::config::{PruneJob, rfc3339};
use crate::endpoint::{Endpoint, Protocol};
use crate::error::{Error, Result};
use crate::plan::{MsgKey, PruneCandidate};
use crate::report::{Event, Summary};
use crate::state::{DeletionIntent, State};
use crate::types::FolderName;

/// Messages per deletion batch: one log transaction, one server round.
const BATCH: usize = 500;
/// The guard's default: more than this many in one run…
const DEFAULT_MAX_DELETE: u64 = 1000;
/// …or more than this share of a folder's messages…
const DEFAULT_MAX_SHARE: f64 = 0.10;
/// …when that is also more than this many: the share rule's floor, so a
/// routine run on a small folder (1 of 9 is 11%) never trips it, while
/// wiping most of a small folder (25 of 30) still does.
const SHARE_FLOOR: u64 = 20;

/// One message prune chose, with everything the report and the log need.
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub cand: PruneCandidate,
    pub reasons: Vec<String>,
    pub subject: Option<String>,
    /// How a stored copy was proven (`state`, `lookup`), when asked for.
    pub proof: Option<String>,
    /// The state's record of this message, if any.
    pub msg_row: Option<i64>,
}

impl FolderWork {
    fn new(name: FolderName, messages: u64) -> FolderWork {
        FolderWork {
            name,
            messages,
            delete: Vec::new(),
            unproven: Vec::new(),
        }
    }
}

impl Item {
    fn reason(&self) -> String {
        self.reasons.join(", ")
    }
}

/// One folder's plan, made before anything is deleted.
#[derive(Debug)]
pub(super) struct FolderWork {
    pub name: FolderName,
    /// Messages in the folder (for the 10% guard).
    pub messages: u64,
    pub delete: Vec<Item>,
    pub unproven: Vec<Item>,
}

/// Runs the job on its endpoint.
pub async fn run(job: &PruneJob, ctx: &Ctx<'_>, state: &Arc<Mutex<State>>) -> Result<()> {
    if job.rules.is_empty() && job.folder_rules.iter().all(|(_, r)| r.is_empty()) {
        return Err(Error::Usage(
            "prune needs a rule: --older-than DAYS, --keep-last N, --max-total SIZE or --larger-than SIZE".into(),
        ));
    }
    match &job.on.endpoint {
        Endpoint::Server(u) if u.protocol == Protocol::Imap => imap::run(job, ctx, state).await,
        Endpoint::Server(_) => pop3::run(job, ctx, state).await,
        Endpoint::Maildir(p) => maildir::run(job, p, ctx, state).await,
    }
}

/// The mass-delete guard over the whole plan: refuses (before anything is
/// deleted) a run above `--max-delete` (or the config's `max_delete`), by
/// default above 1000 messages, or above both 10% and 20 messages of one
/// folder, unless `--yes`. A dry run only warns.
pub(super) fn guard(job: &PruneJob, ctx: &Ctx<'_>, work: &[&FolderWork]) -> Result<()> {
    let total: u64 = work.iter().map(|w| w.delete.len() as u64).sum();
    let why = match job.max_delete {
        Some(n) if total > n => Some(format!(
            "would delete {total} messages, more than --max-delete {n}"
        )),
        Some(_) => None,
        None if total > DEFAULT_MAX_DELETE => Some(format!(
            "would delete {total} messages, more than the default limit of {DEFAULT_MAX_DELETE}"
        )),
        None => work
            .iter()
            .find(|w| {
                w.delete.len() as u64 > SHARE_FLOOR
                    && w.delete.len() as f64 > w.messages as f64 * DEFAULT_MAX_SHARE
            })
            .map(|w| {
                format!(
                    "would delete {} of the {} messages of {} (more than the default limit of 10% of a folder, counted above {SHARE_FLOOR} messages)",
                    w.delete.len(),
                    w.messages,
                    w.name
                )
            }),
    };
    let Some(why) = why else { return Ok(()) };
    if job.yes {
        return Ok(());
    }
    if ctx.settings.dry_run {
        ctx.reporter.warning(
            None,
            &format!("{why}: a real run stops here unless given --yes or a higher --max-delete"),
        );
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{why}; nothing was deleted. Check the list with --dry-run, then rerun with --yes (or set --max-delete / max_delete)"
    )))
}

/// The `delete` event of one message.
pub(super) fn delete_event(folder: &str, it: &Item, dry_run: bool) -> Event {
    let (uid, uidl) = match &it.cand.key {
        MsgKey::Uid(u) => (Some(u.0), None),
        MsgKey::Uidl(u) => (None, Some(u.0.clone())),
    };
    Event::Delete {
        folder: folder.into(),
        uid,
        uidl,
        message_id: it.cand.message_id.clone(),
        date: rfc3339(it.cand.date),
        size: it.cand.size,
        reason: it.reason(),
        dry_run,
        subject: it.subject.clone(),
    }
}

/// Starts a folder's report: the `unproven` warnings, and in a dry run
/// the deletions a real run would make.
pub(super) fn report_plan(ctx: &Ctx<'_>, w: &FolderWork, store: Option<&str>) {
    let rep = ctx.reporter;
    let name = w.name.as_str();
    for it in &w.unproven {
        rep.warning(
            Some(name),
            &format!(
                "{} <{}> kept: rule {} chose it, but no stored copy in {} is proven",
                it.cand.key,
                it.cand.message_id.as_deref().unwrap_or("no Message-ID"),
                it.reason(),
                store.unwrap_or("the store")
            ),
        );
    }
    if ctx.settings.dry_run {
        for it in &w.delete {
            rep.delete(delete_event(name, it, true));
        }
    }
}

/// The folder's summary line for a dry run (what would happen).
pub(super) fn dry_summary(w: &FolderWork) -> Summary {
    Summary {
        deleted: w.delete.len() as u64,
        skipped: w.unproven.len() as u64,
        bytes: w.delete.iter().map(|i| i.cand.size).sum(),
        ..Default::default()
    }
}

/// The deletion-log entry of an item.
pub(super) fn intent(
    account: &str,
    folder: &FolderName,
    it: &Item,
    method: &str,
    uidvalidity: Option<crate::types::UidValidity>,
) -> DeletionIntent {
    let (uid, uidl, file) = match (&it.cand.key, method) {
        (MsgKey::Uid(u), _) => (Some(*u), None, None),
        (MsgKey::Uidl(u), "unlink") => (None, None, Some(u.0.clone())),
        (MsgKey::Uidl(u), _) => (None, Some(u.clone()), None),
    };
    DeletionIntent {
        account: account.to_string(),
        folder: folder.clone(),
        uidvalidity: uid.and(uidvalidity),
        uid,
        uidl,
        file,
        message_id: it.cand.message_id.clone(),
        size: it.cand.size,
        date: it.cand.date,
        reason: it.reason(),
        proof: it.proof.clone(),
        method: method.to_string(),
        msg_row: it.msg_row,
    }
}

/// What prune reads from a message's header.
#[derive(Debug, Clone, Default)]
pub(super) struct Facts {
    /// Decoded.
    pub subject: Option<String>,
    pub message_id: Option<String>,
    /// Date: header, unix seconds.
    pub date: Option<i64>,
}

/// Subject (decoded), Message-ID and Date from a header block; malformed
/// mail gives nothing, never an error.
pub(super) fn header_facts(raw: &[u8]) -> Facts {
    let Some(m) = mail_parser::MessageParser::new().parse_headers(raw) else {
        return Facts::default();
    };
    Facts {
        // Not mail-parser's: it decodes neither CJK charsets nor a
        // character split over two encoded words (issue 13 item 8).
        subject: super::message::subject(raw),
        message_id: m.message_id().and_then(super::normalize_message_id),
        date: m.date().map(|d| d.to_timestamp()).filter(|&t| t > 0),
    }
}

#[cfg(test)]
mod subject_tests {
    use super::header_facts;

    fn subject(header: &str) -> Option<String> {
        header_facts(format!("{header}\r\nFrom: a@b\r\n\r\nbody").as_bytes()).subject
    }

    #[test]
    fn subjects_in_cjk_charsets_and_split_utf8_decode() {
        let cases = [
            ("Subject: =?GB2312?B?1tDOxNPKvP6y4srU?=", "中文邮件测试"),
            // GBK characters in a part labelled gb2312, as mailers send them.
            ("Subject: =?gb2312?B?1uzpRrv5?=", "朱镕基"),
            (
                "Subject: =?Shift_JIS?B?k/qWe4zqgsyMj5a8gsWCtw==?=",
                "日本語の件名です",
            ),
            (
                "Subject: =?shift_jis?Q?=93=FA=96{=8C=EA=82=CC=8C=8F=96=BC=82=C5=82=B7?=",
                "日本語の件名です",
            ),
            // One character's UTF-8 bytes split over two encoded words,
            // the second on a folded line.
            (
                "Subject: =?UTF-8?B?44GT44KT4w==?=\r\n =?UTF-8?B?gavjgaHjga/jgIHkuJbnlYw=?=",
                "こんにちは、世界",
            ),
            ("Subject: Re: =?ISO-8859-1?Q?Caf=E9?= ok", "Re: Café ok"),
        ];
        for (h, want) in cases {
            assert_eq!(subject(h).as_deref(), Some(want), "{h}");
        }
    }
}
