//! Where `push` and `verify` read from: an IMAP account, a Maildir (a
//! `fetch` backup, or any Dovecot/mbsync Maildir++), or a POP3 mailbox.
//!
//! One [`Source`] per connection. Each opens a folder and lists it for the
//! planner, then hands out Message-ID headers (reconciliation) and message
//! bodies (APPEND) by the planner's key: the IMAP UID, the Maildir file's
//! unique part, or the POP3 UIDL. So push has one pipeline for all three.
//!
//! What each kind gives APPEND: IMAP the exact bytes, flags and
//! INTERNALDATE; a Maildir the file's bytes with LF turned back into CRLF
//! where `fetch` (or Dovecot) stored LF, the flags of the `:2,` info plus
//! keywords from Dovecot's `dovecot-keywords`, and the file's mtime as
//! INTERNALDATE (what `fetch` sets it to); POP3 the bytes as served, no
//! flags, and the Date: header as INTERNALDATE.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::message::{MessageHeaders, normalize_message_id, wire_bytes};
use crate::endpoint::ServerConfig;
use crate::error::{Error, Result};
use crate::imap::{self, FetchedMessage, FolderStatus, ListedFolder, Session};
use crate::maildir::Maildir;
use crate::plan::{self, MsgKey, SourceMsg};
use crate::pop3::{self, Fetched, Pop3Client};
use crate::report::Reporter;
use crate::state::MsgKey as StateKey;
use crate::types::{Flags, FolderName, ModSeq, Uid, UidValidity, Uidl};

/// How to (re)open a source: the pool reconnects with it.
#[derive(Debug, Clone)]
pub(super) enum SourceSpec {
    Imap(ServerConfig),
    Maildir(Maildir),
    Pop3(ServerConfig),
}

impl SourceSpec {
    /// Opens one source connection (a Maildir needs none).
    pub async fn connect(&self) -> Result<Source> {
        Ok(match self {
            SourceSpec::Imap(c) => Source::Imap(Box::new(imap::connect(c).await?.0)),
            SourceSpec::Maildir(md) => Source::Maildir(MaildirSource {
                md: md.clone(),
                open: HashMap::new(),
            }),
            SourceSpec::Pop3(c) => Source::Pop3(Box::new(Pop3Source {
                c: pop3::connect(c).await?.0,
                open: HashMap::new(),
                probed: None,
            })),
        })
    }

    /// POP3 and a Maildir's folder list need no parallel connections for
    /// listing; POP3 has one mailbox, so one connection.
    pub fn max_connections(&self) -> Option<usize> {
        matches!(self, SourceSpec::Pop3(_)).then_some(1)
    }
}

/// One connection's worth of source, with the folder it has open.
pub(super) enum Source {
    Imap(Box<Session>),
    Maildir(MaildirSource),
    Pop3(Box<Pop3Source>),
}

/// A Maildir source: the open folder's messages by unique part.
pub(super) struct MaildirSource {
    md: Maildir,
    open: HashMap<String, LocalEntry>,
}

#[derive(Debug, Clone)]
struct LocalEntry {
    path: PathBuf,
    flags: Flags,
    /// mtime, unix seconds.
    date: i64,
    /// Wire size (CRLF line ends), for the memory budget.
    size: u64,
}

/// A POP3 source: its one mailbox's listing by UIDL.
pub(super) struct Pop3Source {
    c: Pop3Client,
    open: HashMap<Uidl, (u32, u64)>,
    /// The listing [`Source::probe`] made, for the open that follows.
    probed: Option<Vec<super::pop3_fetch::Listed>>,
}

/// A source folder opened for planning.
#[derive(Debug, Clone, Default)]
pub(super) struct Opened {
    /// IMAP only (state keys carry it, and the folder's sync point).
    pub uidvalidity: Option<UidValidity>,
    pub uidnext: Option<Uid>,
    pub highestmodseq: Option<ModSeq>,
    pub listing: Vec<SourceMsg>,
    /// The listing holds only the messages changed (new, or flags) since
    /// the sync point given to [`Source::open_since`], not the folder.
    pub changes_only: bool,
    /// A Maildir folder's change stamp, taken before it was listed
    /// ([`super::stamp`]); `None` when too fresh to trust, or not a Maildir.
    pub stamp: Option<u64>,
}

/// What a source tells about a folder without opening it, so push can
/// pass over one that did not change since its last complete push.
#[derive(Debug, Clone)]
pub(super) enum Probe {
    /// It cannot tell cheaply (IMAP without CONDSTORE, a refused STATUS,
    /// a Maildir folder changed a moment ago): the folder is opened.
    Unknown,
    /// IMAP with CONDSTORE: STATUS, whose HIGHESTMODSEQ also moves with
    /// every flag change.
    Status(FolderStatus),
    /// A Maildir folder's change stamp, and the files in `cur/` and `new/`.
    Stamp { stamp: u64, messages: u64 },
    /// POP3: the UIDLs the mailbox lists (it has no flags to change).
    Uidls(Vec<Uidl>),
}

impl Probe {
    /// True when the folder is known to hold no message.
    pub fn empty(&self) -> bool {
        match self {
            Probe::Unknown => false,
            Probe::Status(s) => s.messages == 0,
            Probe::Stamp { messages, .. } => *messages == 0,
            Probe::Uidls(u) => u.is_empty(),
        }
    }
}

/// Where a folder was last pushed to completion (IMAP with CONDSTORE):
/// the next run lists only what changed after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Since {
    pub uidvalidity: UidValidity,
    pub highestmodseq: ModSeq,
}

/// One message read from the source, ready for APPEND.
#[derive(Debug)]
pub(super) struct Body {
    pub key: MsgKey,
    /// Exact bytes with CRLF line endings.
    pub body: Vec<u8>,
    pub size: u64,
    /// Arrival date for APPEND, unix seconds; `None`: the server's now.
    pub date: Option<i64>,
    pub flags: Flags,
    /// The body's bytes in the memory budget, until it has been sent on.
    pub lease: crate::flow::Lease,
}

/// A message's reconciliation facts: normalized Message-ID and wire size.
#[derive(Debug, Clone)]
pub(super) struct Head {
    pub key: MsgKey,
    pub message_id: Option<String>,
    pub size: u64,
}

/// The state's key for a planner key: IMAP (UIDVALIDITY, UID), else the
/// text key (POP3 UIDL, Maildir unique part) in the UIDL column.
pub(super) fn state_key(uv: Option<UidValidity>, key: &MsgKey) -> StateKey {
    match (key, uv) {
        (MsgKey::Uid(uid), Some(uidvalidity)) => StateKey::Imap {
            uidvalidity,
            uid: *uid,
        },
        (MsgKey::Uid(uid), None) => StateKey::Pop3 {
            uidl: Uidl(uid.to_string()),
        },
        (MsgKey::Uidl(u), _) => StateKey::Pop3 { uidl: u.clone() },
    }
}

/// `(uid, uidl)` for `message_error` events.
pub(super) fn ids(key: &MsgKey) -> (Option<u32>, Option<&str>) {
    match key {
        MsgKey::Uid(u) => (Some(u.0), None),
        MsgKey::Uidl(u) => (None, Some(u.0.as_str())),
    }
}

impl Source {
    /// Every folder with its decoded personal-namespace prefix. A Maildir
    /// has no attributes: its top-level Sent, Drafts, Trash, Junk and
    /// Archive are given the special-use of their name, so they land in
    /// the target's folder of that role as they do from IMAP.
    pub async fn list_folders(&mut self, rep: &Reporter) -> Result<(Vec<ListedFolder>, String)> {
        match self {
            Source::Imap(s) => {
                let l = s.list_folders().await?;
                let ns = s.namespace().await?;
                let prefix = imap::decode_folder(&ns.prefix, ns.delimiter).0.to_string();
                Ok((l, prefix))
            }
            Source::Maildir(m) => {
                let listing = m.md.list_folders_report()?;
                for (dir, why) in &listing.skipped {
                    rep.warning(
                        None,
                        &format!("{}: directory {dir} skipped: {why}", m.md.root().display()),
                    );
                }
                let out = listing
                    .folders
                    .into_iter()
                    .map(|name| ListedFolder {
                        wire: name.to_string(),
                        delimiter: Some('/'),
                        attributes: Vec::new(),
                        special_use: plan::special_use_by_name(&name),
                        selectable: true,
                        warning: None,
                        name,
                    })
                    .collect();
                Ok((out, String::new()))
            }
            Source::Pop3(_) => Ok((
                vec![ListedFolder {
                    name: FolderName::inbox(),
                    wire: "INBOX".into(),
                    delimiter: None,
                    attributes: Vec::new(),
                    special_use: None,
                    selectable: true,
                    warning: None,
                }],
                String::new(),
            )),
        }
    }

    /// A [`Probe`] of each of these folders: for IMAP one pipelined
    /// STATUS (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ) for all, only
    /// with CONDSTORE (without it flag changes are invisible); for a
    /// Maildir each folder's change stamp; for POP3 its one LIST + UIDL,
    /// kept for the open that follows so the mailbox is listed once.
    pub async fn probe(&mut self, folders: &[ListedFolder], rep: &Reporter) -> Result<Vec<Probe>> {
        match self {
            Source::Imap(s) if s.capabilities().condstore && !folders.is_empty() => {
                let wires: Vec<&str> = folders.iter().map(|f| f.wire.as_str()).collect();
                Ok(s.status_many(&wires)
                    .await?
                    .into_iter()
                    .map(|r| r.map_or(Probe::Unknown, Probe::Status))
                    .collect())
            }
            Source::Imap(_) => Ok(vec![Probe::Unknown; folders.len()]),
            Source::Maildir(m) => {
                let now = std::time::SystemTime::now();
                Ok(folders
                    .iter()
                    .map(|f| {
                        // An unreadable folder is the open's error to report.
                        let dir = m.md.folder_dir(&f.name).ok()?;
                        super::stamp::of(&dir, now)
                            .ok()?
                            .map(|(stamp, messages)| Probe::Stamp { stamp, messages })
                    })
                    .map(|p| p.unwrap_or(Probe::Unknown))
                    .collect())
            }
            Source::Pop3(p) => {
                let listed = super::pop3_fetch::list(&mut p.c, rep).await?;
                let uidls: Vec<Uidl> = listed.iter().map(|l| l.uidl.clone()).collect();
                p.probed = Some(listed);
                Ok(folders
                    .iter()
                    .map(|_| Probe::Uidls(uidls.clone()))
                    .collect())
            }
        }
    }

    /// Opens a folder read-only and lists it for the planner.
    pub async fn open(&mut self, f: &ListedFolder, rep: &Reporter) -> Result<Opened> {
        self.open_since(f, None, rep).await
    }

    /// [`open`](Self::open), but an IMAP folder still at the UIDVALIDITY
    /// of `since` is listed only for what changed after it (CHANGEDSINCE:
    /// new messages and flag changes, one round trip whatever the folder's
    /// size). Anything else gets a full listing; see `changes_only`.
    pub async fn open_since(
        &mut self,
        f: &ListedFolder,
        since: Option<Since>,
        rep: &Reporter,
    ) -> Result<Opened> {
        match self {
            Source::Imap(s) => {
                let sel = s.examine(&f.wire).await?;
                let from = since
                    .filter(|p| {
                        s.capabilities().condstore
                            && !sel.nomodseq
                            && sel.highestmodseq.is_some()
                            && sel.uidvalidity == p.uidvalidity
                    })
                    .map(|p| p.highestmodseq);
                let listing = s.uid_fetch_meta(None, from).await?;
                Ok(Opened {
                    uidvalidity: Some(sel.uidvalidity),
                    uidnext: sel.uidnext,
                    highestmodseq: sel.highestmodseq,
                    changes_only: from.is_some(),
                    stamp: None,
                    listing: listing
                        .messages
                        .iter()
                        .map(|m| SourceMsg {
                            key: MsgKey::Uid(m.uid),
                            size: m.size,
                            date: m.internal_date,
                            flags: Some(m.flags.clone()),
                        })
                        .collect(),
                })
            }
            Source::Maildir(m) => m.open_folder(&f.name),
            Source::Pop3(p) => {
                let listed = match p.probed.take() {
                    Some(l) => l,
                    None => super::pop3_fetch::list(&mut p.c, rep).await?,
                };
                p.open = listed
                    .iter()
                    .map(|l| (l.uidl.clone(), (l.msgno, l.size)))
                    .collect();
                Ok(Opened {
                    listing: listed
                        .into_iter()
                        .map(|l| SourceMsg {
                            key: MsgKey::Uidl(l.uidl),
                            size: l.size,
                            date: 0,
                            flags: None,
                        })
                        .collect(),
                    ..Default::default()
                })
            }
        }
    }

    /// Message-ID and wire size of these messages of the open folder.
    pub async fn heads(&mut self, keys: &[MsgKey]) -> Result<Vec<Head>> {
        match self {
            Source::Imap(s) => {
                let uids: Vec<Uid> = keys.iter().filter_map(MsgKey::uid).collect();
                Ok(s.fetch_headers(&uids, &["MESSAGE-ID"])
                    .await?
                    .into_iter()
                    .map(|h| Head {
                        key: MsgKey::Uid(h.uid),
                        message_id: h.message_id.as_deref().and_then(normalize_message_id),
                        size: h.size,
                    })
                    .collect())
            }
            Source::Maildir(m) => {
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    // A file gone meanwhile is simply not a candidate.
                    if let Some(Ok(wire)) = m.read(k).await {
                        out.push(Head {
                            key: k.clone(),
                            message_id: MessageHeaders::parse(&wire).message_id,
                            size: wire.len() as u64,
                        });
                    }
                }
                Ok(out)
            }
            Source::Pop3(p) => {
                // TOP n 0 for every candidate, pipelined: one round trip
                // per window, not per message.
                let mut want: HashMap<u32, (MsgKey, u64)> = HashMap::new();
                let mut msgnos = Vec::with_capacity(keys.len());
                for k in keys {
                    let MsgKey::Uidl(u) = k else { continue };
                    if let Some(&(n, size)) = p.open.get(u) {
                        want.insert(n, (k.clone(), size));
                        msgnos.push(n);
                    }
                }
                let mut out = Vec::with_capacity(msgnos.len());
                // A message without its header cannot be matched: the
                // error stops the run rather than risk appending a copy
                // the target has.
                p.c.top_each(&msgnos, 0, |n, head| {
                    let (key, size) = want[&n].clone();
                    out.push(Head {
                        key,
                        message_id: MessageHeaders::parse(&head).message_id,
                        size,
                    });
                    true
                })
                .await?;
                Ok(out)
            }
        }
    }

    /// Streams these messages of the open folder into `tx`, in order.
    /// Returns the messages that could not be read, with why; a lost
    /// connection is the `Err`.
    pub async fn bodies(
        &mut self,
        keys: &[MsgKey],
        tx: &mpsc::Sender<Body>,
    ) -> Result<Vec<(MsgKey, String)>> {
        match self {
            Source::Imap(s) => {
                let uids: Vec<Uid> = keys.iter().filter_map(MsgKey::uid).collect();
                let (itx, mut irx) = mpsc::channel::<FetchedMessage>(8);
                let fetch = async {
                    let r = s.fetch_bodies(&uids, &itx).await;
                    drop(itx);
                    r
                };
                let forward = async {
                    while let Some(m) = irx.recv().await {
                        let b = Body {
                            key: MsgKey::Uid(m.uid),
                            size: m.size,
                            date: Some(m.internal_date),
                            flags: m.flags,
                            body: m.body,
                            lease: m.lease,
                        };
                        if tx.send(b).await.is_err() {
                            break;
                        }
                    }
                    drop(irx);
                };
                let (r, ()) = tokio::join!(fetch, forward);
                Ok(r?
                    .failed
                    .into_iter()
                    .map(|(u, why)| (MsgKey::Uid(u), why))
                    .collect())
            }
            Source::Maildir(m) => {
                let mut failed = Vec::new();
                for k in keys {
                    let Some(e) = m.open.get(&unique_of(k)).cloned() else {
                        failed.push((k.clone(), "not in the folder listing".into()));
                        continue;
                    };
                    let lease = crate::flow::global().lease(e.size as usize, &[]).await;
                    match m.read(k).await {
                        Some(Ok(body)) => {
                            let b = Body {
                                key: k.clone(),
                                size: body.len() as u64,
                                body,
                                date: Some(e.date),
                                flags: e.flags,
                                lease,
                            };
                            if tx.send(b).await.is_err() {
                                break;
                            }
                        }
                        Some(Err(why)) => failed.push((k.clone(), why)),
                        None => failed.push((
                            k.clone(),
                            format!(
                                "{} is gone (moved or deleted by another program meanwhile); rerun to copy it",
                                e.path.display()
                            ),
                        )),
                    }
                }
                Ok(failed)
            }
            Source::Pop3(p) => {
                let mut by_no: HashMap<u32, MsgKey> = HashMap::new();
                let mut msgnos = Vec::with_capacity(keys.len());
                let mut failed = Vec::new();
                for k in keys {
                    match k {
                        MsgKey::Uidl(u) if p.open.contains_key(u) => {
                            let n = p.open[u].0;
                            by_no.insert(n, k.clone());
                            msgnos.push(n);
                        }
                        _ => failed.push((k.clone(), "not in the POP3 listing".into())),
                    }
                }
                let (ptx, mut prx) = mpsc::channel::<Fetched>(8);
                let fetch = p.c.retr_many(&msgnos, ptx);
                let forward = async {
                    let mut failed = Vec::new();
                    while let Some(f) = prx.recv().await {
                        let key = by_no[&f.msgno].clone();
                        match f.result {
                            Ok(body) => {
                                let b = Body {
                                    key,
                                    size: body.len() as u64,
                                    date: MessageHeaders::parse(&body).date,
                                    flags: Flags::default(),
                                    body,
                                    lease: f.lease,
                                };
                                if tx.send(b).await.is_err() {
                                    break;
                                }
                            }
                            Err(e) => failed.push((key, e.to_string())),
                        }
                    }
                    drop(prx);
                    failed
                };
                let (r, more) = tokio::join!(fetch, forward);
                r?;
                failed.extend(more);
                Ok(failed)
            }
        }
    }

    /// SHA-256 of these messages' wire bytes (only for reconciliation
    /// candidates whose Message-ID is missing or shared).
    pub async fn digests(&mut self, keys: &[MsgKey]) -> Result<HashMap<MsgKey, [u8; 32]>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let (tx, mut rx) = mpsc::channel::<Body>(8);
        let collect = async move {
            let mut d = HashMap::new();
            while let Some(b) = rx.recv().await {
                d.insert(b.key, crate::net::sha256(&b.body));
            }
            d
        };
        let read = async {
            let r = self.bodies(keys, &tx).await;
            drop(tx);
            r
        };
        let (r, d) = tokio::join!(read, collect);
        r?;
        Ok(d)
    }

    /// Ends the session politely (a Maildir has none). POP3 QUIT commits
    /// nothing here: push never deletes on the source.
    pub async fn logout(self, limit: Duration) {
        match self {
            Source::Imap(s) => s.logout(limit).await,
            Source::Maildir(_) => {}
            Source::Pop3(p) => {
                let _ = tokio::time::timeout(limit, p.c.quit()).await;
            }
        }
    }
}

fn unique_of(k: &MsgKey) -> String {
    match k {
        MsgKey::Uidl(u) => u.0.clone(),
        MsgKey::Uid(u) => u.to_string(),
    }
}

impl MaildirSource {
    /// The Maildir read from.
    pub fn maildir(&self) -> &Maildir {
        &self.md
    }

    /// Lists a folder: unique part, flags (and keywords), wire size where
    /// the name tells it (`W=`, else `S=`), mtime as the arrival date.
    fn open_folder(&mut self, folder: &FolderName) -> Result<Opened> {
        let dir = self.md.folder_dir(folder)?;
        // Before the listing: what changes from here on changes the stamp.
        let stamp = super::stamp::of(&dir, std::time::SystemTime::now())?.map(|(s, _)| s);
        let keywords = read_keywords(&dir);
        let mut open = HashMap::new();
        let mut listing = Vec::new();
        for l in self.md.scan(folder)? {
            let meta = match std::fs::metadata(&l.path) {
                Ok(m) => m,
                // Renamed by a flag change or deleted meanwhile: the next run sees it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&l.path, e)),
            };
            let date = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            let mut flags = l.flags.clone();
            for c in l.other_flags.chars() {
                if let Some(kw) = c
                    .is_ascii_lowercase()
                    .then(|| keywords.get((c as u8 - b'a') as usize))
                    .flatten()
                    .and_then(Option::as_ref)
                {
                    flags.keywords.push(kw.clone());
                }
            }
            if open.contains_key(&l.unique) {
                continue; // the same message in new/ and cur/: the first is it
            }
            listing.push(SourceMsg {
                key: MsgKey::Uidl(Uidl(l.unique.clone())),
                size: l.vsize.unwrap_or(l.size),
                date,
                flags: Some(flags.clone()),
            });
            open.insert(
                l.unique,
                LocalEntry {
                    size: l.vsize.unwrap_or(l.size),
                    path: l.path,
                    flags,
                    date,
                },
            );
        }
        self.open = open;
        Ok(Opened {
            listing,
            stamp,
            ..Default::default()
        })
    }

    /// The file's wire bytes (CRLF); `None` when the file is gone.
    async fn read(&self, k: &MsgKey) -> Option<std::result::Result<Vec<u8>, String>> {
        let e = self.open.get(&unique_of(k))?;
        match tokio::fs::read(&e.path).await {
            Ok(bytes) => Some(Ok(match wire_bytes(&bytes) {
                std::borrow::Cow::Borrowed(_) => bytes,
                std::borrow::Cow::Owned(v) => v,
            })),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => Some(Err(Error::io(&e.path, err).to_string())),
        }
    }
}

/// Dovecot's `dovecot-keywords` (`<n> <keyword>` per line): letter `a` is
/// keyword 0, `b` 1, … up to `z`. Missing or unreadable: no keywords.
fn read_keywords(dir: &Path) -> Vec<Option<String>> {
    let Ok(text) = std::fs::read_to_string(dir.join("dovecot-keywords")) else {
        return Vec::new();
    };
    parse_keywords(&text)
}

fn parse_keywords(text: &str) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = vec![None; 26];
    for line in text.lines() {
        if let Some((n, kw)) = line.trim().split_once(' ')
            && let Ok(n) = n.parse::<usize>()
            && n < 26
            && !kw.trim().is_empty()
        {
            out[n] = Some(kw.trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_keywords_map_letters() {
        let k = parse_keywords("0 $Forwarded\n1 Work\n\nbad line\n30 far\n");
        assert_eq!(k[0].as_deref(), Some("$Forwarded"));
        assert_eq!(k[1].as_deref(), Some("Work"));
        assert_eq!(k[2], None);
        assert_eq!(k.len(), 26);
    }

    #[test]
    fn maildir_folder_lists_flags_keywords_and_mtime() {
        let dir = std::env::temp_dir().join(format!("mf-src-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let md = Maildir::open_or_create(&dir).unwrap();
        std::fs::write(dir.join("dovecot-keywords"), "0 $Forwarded\n").unwrap();
        let p = dir.join("cur/123.M1P2.host,S=5,W=6:2,RSa");
        std::fs::write(&p, "a\nb\n").unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(UNIX_EPOCH + Duration::from_secs(1_000_000))
            .unwrap();
        let mut s = MaildirSource {
            md,
            open: HashMap::new(),
        };
        let o = s.open_folder(&FolderName::inbox()).unwrap();
        assert_eq!(o.listing.len(), 1);
        let m = &o.listing[0];
        assert_eq!(m.key, MsgKey::Uidl(Uidl("123.M1P2.host".into())));
        assert_eq!(m.date, 1_000_000);
        assert_eq!(m.size, 6);
        let fl = m.flags.clone().unwrap();
        assert!(fl.seen && fl.answered && !fl.flagged);
        assert_eq!(fl.keywords, vec!["$Forwarded".to_string()]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let body = rt.block_on(s.read(&m.key)).unwrap().unwrap();
        assert_eq!(body, b"a\r\nb\r\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
