//! `verify` (SPEC §2): compares source and target folder by folder —
//! count, the multiset of (Message-ID, size), and with `--deep` the
//! multiset of content digests — and lists what is missing on the target
//! (`message_error`, counted as failed: exit 1) and what is extra there
//! (`warning`). Read-only on both sides (EXAMINE).
//!
//! The source is whatever `push` reads (IMAP, a Maildir, POP3). The
//! target is an IMAP account (folders mapped as `push` maps them:
//! separators, namespace prefixes, special-use) or, for a server source,
//! a Maildir (the Maildir++ folder `fetch` writes for each source folder).

use std::collections::HashMap;
use std::path::Path;

use tokio::sync::mpsc;

use super::Ctx;
use super::message::{MessageHeaders, normalize_message_id, wire_bytes};
use super::source::{Source, SourceSpec};
use crate::config::{PushJob, VerifyJob};
use crate::endpoint::{Endpoint, Protocol};
use crate::error::{Error, Result};
use crate::imap::{self, FetchedMessage, ListedFolder, Session};
use crate::maildir::Maildir;
use crate::plan::MsgKey;
use crate::report::Summary;
use crate::types::{FolderName, Uid};

/// One message as compared.
#[derive(Debug, Clone)]
struct Item {
    uid: Option<Uid>,
    /// POP3 UIDL.
    uidl: Option<String>,
    /// Maildir file name, for messages.
    file: Option<String>,
    message_id: Option<String>,
    size: u64,
    digest: Option<[u8; 32]>,
}

impl Item {
    fn label(&self) -> String {
        match (&self.uid, &self.file, &self.uidl) {
            (Some(u), _, _) => format!("UID {u}"),
            (None, Some(f), _) => f.clone(),
            (None, None, Some(u)) => format!("UIDL {u}"),
            _ => String::new(),
        }
    }
}

enum Target {
    Imap(Box<Session>, HashMap<FolderName, String>),
    Maildir(Maildir),
}

pub async fn run(job: &VerifyJob, ctx: &Ctx<'_>) -> Result<()> {
    let (spec, _, url_folder) = super::push::source_spec(&job.from, ctx)?;
    if matches!(spec, SourceSpec::Maildir(_)) && matches!(job.to.endpoint, Endpoint::Maildir(_)) {
        return Err(Error::Usage(
            "verify from a Maildir compares it with an IMAP account: --to must be an IMAP URL"
                .into(),
        ));
    }
    let mut s = super::fresh_login(async || spec.connect().await).await?;
    let (folders, targets, mut target) = match &job.to.endpoint {
        Endpoint::Maildir(p) => {
            if !p.join("cur").is_dir() {
                return Err(Error::Usage(format!("no Maildir at {}", p.display())));
            }
            // Named as fetch names the Maildir folders: below the namespace.
            let (listed, prefix) = s.list_folders(ctx.reporter).await?;
            let folders: Vec<ListedFolder> = listed
                .into_iter()
                .map(|mut f| {
                    f.name = crate::plan::strip_namespace(&f.name, &prefix);
                    f
                })
                .filter(|f| {
                    f.selectable
                        && job.filter.wants_folder(&f.name)
                        && super::url_allows(url_folder.as_ref(), &f.name)
                })
                .collect();
            let targets: Vec<FolderName> = folders.iter().map(|f| f.name.clone()).collect();
            (
                folders,
                targets,
                Target::Maildir(Maildir::open_or_create(p)?),
            )
        }
        Endpoint::Server(u) if u.protocol == Protocol::Imap => {
            let tcfg = job.to.server_config("--to", ctx.settings.timeouts)?;
            let (mut t, _) = super::fresh_login(async || imap::connect(&tcfg).await).await?;
            // The same mapping push uses (without --map: verify has none).
            let pj = PushJob {
                from: job.from.clone(),
                to: job.to.clone(),
                filter: job.filter.clone(),
                maps: Vec::new(),
                max_rate: None,
            };
            let (folders, maps, wires) = super::push::folder_map(
                &mut s,
                &mut t,
                &pj,
                url_folder.as_ref(),
                &[],
                ctx.reporter,
            )
            .await?;
            let targets: Vec<FolderName> = maps.into_iter().map(|m| m.target).collect();
            (folders, targets, Target::Imap(Box::new(t), wires))
        }
        Endpoint::Server(_) => {
            return Err(Error::Usage(
                "--to of verify must be an IMAP URL or a Maildir".into(),
            ));
        }
    };
    for (f, tname) in folders.iter().zip(&targets) {
        ctx.interrupt.check()?;
        let name = f.name.as_str();
        let r = async {
            let src = source_items(&mut s, f, job.deep, ctx).await?;
            let dst = match &mut target {
                Target::Imap(t, wires) => match wires.get(tname) {
                    Some(w) => {
                        t.examine(w).await?;
                        imap_items(t, job.deep).await?
                    }
                    None => Vec::new(),
                },
                Target::Maildir(md) => maildir_items(md, tname, job.deep)?,
            };
            Ok::<_, Error>((src, dst))
        }
        .await;
        let (src, dst) = match r {
            Ok(x) => x,
            Err(Error::Interrupted) => return Err(Error::Interrupted),
            Err(e) => {
                ctx.reporter.message_error(name, None, None, &e.to_string());
                ctx.reporter.add(&Summary {
                    failed: 1,
                    ..Default::default()
                });
                continue;
            }
        };
        let progress = ctx.reporter.folder_start(name, src.len() as u64, 0);
        let (missing, extra) = compare(&src, &dst, job.deep);
        for m in &missing {
            report(
                ctx,
                "message_error",
                name,
                m,
                &format!("missing in {tname}"),
            );
        }
        for m in &extra {
            report(
                ctx,
                "warning",
                name,
                m,
                &format!("extra in {tname} (not in the source)"),
            );
        }
        progress.finish();
        ctx.reporter.folder_done(
            name,
            &Summary {
                matched: (src.len() - missing.len()) as u64,
                failed: missing.len() as u64,
                extra: extra.len() as u64,
                ..Default::default()
            },
        );
        if ctx.settings.verbose > 0 && !ctx.reporter.json() {
            ctx.reporter.line(&format!(
                "{name} → {tname}: {} of {} present ({} in the target), {} missing, {} extra",
                src.len() - missing.len(),
                src.len(),
                dst.len(),
                missing.len(),
                extra.len()
            ));
        }
    }
    let limit = ctx.settings.timeouts.command;
    s.logout(limit).await;
    if let Target::Imap(t, _) = target {
        t.logout(limit).await;
    }
    Ok(())
}

/// A source folder's items: IMAP by UID, a Maildir by file, POP3 by UIDL.
async fn source_items(
    s: &mut Source,
    f: &ListedFolder,
    deep: bool,
    ctx: &Ctx<'_>,
) -> Result<Vec<Item>> {
    match s {
        Source::Imap(sess) => {
            sess.examine(&f.wire).await?;
            imap_items(sess, deep).await
        }
        Source::Maildir(m) => maildir_items(m.maildir(), &f.name, deep),
        Source::Pop3(_) => {
            let keys: Vec<MsgKey> = s
                .open(f, ctx.reporter)
                .await?
                .listing
                .into_iter()
                .map(|m| m.key)
                .collect();
            let heads = s.heads(&keys).await?;
            let digests = if deep {
                s.digests(&keys).await?
            } else {
                HashMap::new()
            };
            Ok(heads
                .into_iter()
                .map(|h| Item {
                    uid: None,
                    uidl: match &h.key {
                        MsgKey::Uidl(u) => Some(u.0.clone()),
                        MsgKey::Uid(_) => None,
                    },
                    file: None,
                    digest: digests.get(&h.key).copied(),
                    message_id: h.message_id,
                    size: h.size,
                })
                .collect())
        }
    }
}

/// `message_error`/`warning` with the folder, the UID (or file) and the
/// Message-ID.
fn report(ctx: &Ctx<'_>, event: &str, folder: &str, m: &Item, what: &str) {
    let rep = ctx.reporter;
    if rep.json() {
        let mut v = serde_json::json!({
            "event": event,
            "folder": folder,
            "message_id": m.message_id,
            "size": m.size,
        });
        if let Some(u) = m.uid {
            v["uid"] = u.0.into();
        }
        if let Some(f) = &m.file {
            v["file"] = f.clone().into();
        }
        if let Some(u) = &m.uidl {
            v["uidl"] = u.clone().into();
        }
        let key = if event == "warning" {
            "message"
        } else {
            "error"
        };
        v[key] = format!("{}: {what}", m.label()).into();
        rep.emit_value(&v);
    } else if event != "warning" || !ctx.settings.quiet {
        rep.line(&format!(
            "{}: {folder} {} <{}> ({} bytes): {what}",
            if event == "warning" {
                "warning"
            } else {
                "error"
            },
            m.label(),
            m.message_id.as_deref().unwrap_or("no Message-ID"),
            m.size
        ));
    }
}

/// Source messages with no counterpart, and target messages with none.
///
/// `--deep` matches by content digest alone. Otherwise by Message-ID and
/// size, with one allowance for POP3: a server ends a message whose last
/// line lacks a line break with CRLF when it sends it (RFC 1939's
/// terminating line needs one) but may count the size without it, as
/// Dovecot's LIST does, so such a message is stored 2 bytes longer than
/// listed. A POP3 message with a Message-ID left unmatched is tried once
/// more at size + 2.
fn compare(src: &[Item], dst: &[Item], deep: bool) -> (Vec<Item>, Vec<Item>) {
    type Key = (Option<String>, u64, Option<[u8; 32]>);
    let key = |i: &Item, slack: u64| -> Key {
        match (deep, i.digest) {
            (true, Some(d)) => (None, 0, Some(d)),
            (true, None) => (None, i.size + slack, None),
            (false, _) => (i.message_id.clone(), i.size + slack, None),
        }
    };
    let mut pool: HashMap<Key, Vec<&Item>> = HashMap::new();
    for d in dst {
        pool.entry(key(d, 0)).or_default().push(d);
    }
    let mut unmatched = Vec::new();
    for s in src {
        if pool.get_mut(&key(s, 0)).and_then(|v| v.pop()).is_none() {
            unmatched.push(s);
        }
    }
    let mut missing = Vec::new();
    for s in unmatched {
        let pop3_slack = !deep && s.uidl.is_some() && s.message_id.is_some();
        if !(pop3_slack && pool.get_mut(&key(s, 2)).and_then(|v| v.pop()).is_some()) {
            missing.push(s.clone());
        }
    }
    let extra = pool.into_values().flatten().cloned().collect();
    (missing, extra)
}

async fn imap_items(s: &mut Session, deep: bool) -> Result<Vec<Item>> {
    let all = s.uid_search_all().await?;
    let heads = s.fetch_headers(&all, &["MESSAGE-ID"]).await?;
    let mut digests = HashMap::new();
    if deep && !all.is_empty() {
        let (tx, mut rx) = mpsc::channel::<FetchedMessage>(8);
        let collect = async move {
            let mut d = HashMap::new();
            while let Some(m) = rx.recv().await {
                d.insert(m.uid, crate::net::sha256(&m.body));
            }
            d
        };
        let fetch = async {
            let r = s.fetch_bodies(&all, &tx).await;
            drop(tx);
            r
        };
        let (r, d) = tokio::join!(fetch, collect);
        r?;
        digests = d;
    }
    Ok(heads
        .into_iter()
        .map(|h| Item {
            uid: Some(h.uid),
            uidl: None,
            file: None,
            message_id: h.message_id.as_deref().and_then(normalize_message_id),
            size: h.size,
            digest: digests.get(&h.uid).copied(),
        })
        .collect())
}

fn maildir_items(md: &Maildir, folder: &FolderName, deep: bool) -> Result<Vec<Item>> {
    let dir = md.folder_dir(folder)?;
    if !dir.join("cur").is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for l in md.scan(folder)? {
        let bytes = std::fs::read(&l.path).map_err(|e| Error::io(&l.path, e))?;
        let wire = wire_bytes(&bytes);
        out.push(Item {
            uid: None,
            uidl: None,
            file: Path::new(&l.path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
            message_id: MessageHeaders::parse(&wire).message_id,
            size: wire.len() as u64,
            digest: deep.then(|| crate::net::sha256(&wire)),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn it(uid: u32, mid: Option<&str>, size: u64, d: u8) -> Item {
        Item {
            uid: Some(Uid(uid)),
            uidl: None,
            file: None,
            message_id: mid.map(Into::into),
            size,
            digest: Some([d; 32]),
        }
    }

    #[test]
    fn compare_counts_multisets() {
        let src = [
            it(1, Some("a"), 10, 1),
            it(2, Some("a"), 10, 1),
            it(3, None, 5, 3),
        ];
        let dst = [
            it(7, Some("a"), 10, 1),
            it(8, None, 5, 3),
            it(9, Some("z"), 1, 9),
        ];
        let (missing, extra) = compare(&src, &dst, false);
        assert_eq!(missing.len(), 1, "one of the two copies of <a> is missing");
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].uid, Some(Uid(9)));
        // Deep: same Message-ID and size but other content is missing.
        let dst = [
            it(7, Some("a"), 10, 1),
            it(8, Some("a"), 10, 2),
            it(9, None, 5, 3),
        ];
        let (missing, extra) = compare(&src, &dst, true);
        assert_eq!(missing.len(), 1);
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].uid, Some(Uid(8)));
    }

    #[test]
    fn a_pop3_message_stored_with_the_servers_final_crlf_matches() {
        let pop3 = |uidl: &str, mid: &str, size: u64, d: u8| Item {
            uid: None,
            uidl: Some(uidl.into()),
            ..it(0, Some(mid), size, d)
        };
        // LIST said 10 and 20; the stored copies are 12 and 20 bytes.
        let src = [pop3("u1", "a", 10, 1), pop3("u2", "b", 20, 2)];
        let dst = [it(7, Some("a"), 12, 1), it(8, Some("b"), 20, 2)];
        for deep in [false, true] {
            let (missing, extra) = compare(&src, &dst, deep);
            assert!(missing.is_empty() && extra.is_empty(), "deep {deep}");
        }
        // Only POP3 gets the allowance, and only 2 bytes of it.
        let (missing, _) = compare(&[it(1, Some("a"), 10, 1)], &dst, false);
        assert_eq!(missing.len(), 1);
        let (missing, _) = compare(&[pop3("u1", "a", 9, 1)], &dst, false);
        assert_eq!(missing.len(), 1);
        // Without a Message-ID, size alone is too weak a hint to stretch.
        let anon = |size| Item {
            message_id: None,
            ..pop3("u3", "-", size, 1)
        };
        let (missing, _) = compare(
            &[anon(10)],
            &[Item {
                message_id: None,
                ..dst[0].clone()
            }],
            false,
        );
        assert_eq!(missing.len(), 1);
        // Deep: the content decides, whatever the sizes say.
        let (missing, extra) = compare(&[pop3("u1", "a", 12, 3)], &dst[..1], true);
        assert_eq!((missing.len(), extra.len()), (1, 1));
    }
}
