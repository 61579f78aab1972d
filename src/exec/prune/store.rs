//! `--only-if-stored-in`: where a durable copy must be proven before prune
//! may delete a message. First the state (what fetch or push recorded,
//! and for a Maildir, that the file is still there); for a message the
//! state does not know, a lookup in the store by Message-ID + size, or by
//! content digest where there is no Message-ID.

use std::collections::{HashMap, HashSet};

use tokio::sync::mpsc;

use super::super::message::{MessageHeaders, wire_bytes};
use crate::config::Account;
use crate::endpoint::{Endpoint, Protocol, ServerConfig, Timeouts};
use crate::error::{Error, Result};
use crate::imap::{self, FetchedMessage, Session, SpecialUse};
use crate::maildir::Maildir;
use crate::plan::MsgKey;
use crate::state::{State, StoredMsg};
use crate::types::{FolderName, UidValidity};

/// What the source knows of a message to prove: its identity in the store.
#[derive(Debug, Clone)]
pub(super) struct Probe {
    pub key: MsgKey,
    pub message_id: Option<String>,
    /// Size as the wire carries it (CRLF), as IMAP and POP3 report it.
    pub size: u64,
    /// SHA-256 of the wire bytes; the source fills it where there is no
    /// Message-ID.
    pub digest: Option<[u8; 32]>,
}

/// The store a copy must be proven in.
pub(super) enum Store {
    Maildir {
        md: Maildir,
        /// The state's name for it (`maildir:/abs`).
        target: String,
    },
    Imap {
        cfg: ServerConfig,
        /// The account key; push records targets as `<key>/<folder>`.
        account: String,
        session: Option<Box<Session>>,
    },
}

impl Store {
    /// Resolves `--only-if-stored-in` (a POP3 mailbox cannot prove a copy:
    /// it has no folders and forgets what it hands out).
    pub fn open(a: &Account, timeouts: Timeouts) -> Result<Store> {
        match &a.endpoint {
            Endpoint::Maildir(p) => {
                if !p.join("cur").is_dir() {
                    return Err(Error::Usage(format!(
                        "--only-if-stored-in: no Maildir at {}",
                        p.display()
                    )));
                }
                Ok(Store::Maildir {
                    md: Maildir::open_or_create(p)?,
                    target: super::super::maildir_target(p),
                })
            }
            Endpoint::Server(u) if u.protocol == Protocol::Imap => Ok(Store::Imap {
                cfg: a.server_config("--only-if-stored-in", timeouts)?,
                account: u.account_key(),
                session: None,
            }),
            Endpoint::Server(_) => Err(Error::Usage(
                "--only-if-stored-in must be a Maildir or an IMAP account, not POP3".into(),
            )),
        }
    }

    /// How to name it in messages.
    pub fn describe(&self) -> String {
        match self {
            Store::Maildir { target, .. } => target.clone(),
            Store::Imap { account, .. } => account.clone(),
        }
    }

    /// The state's records of `folder` of `source` (an account key) stored
    /// in this store, still there: key → row id. IMAP keys only under
    /// `uidvalidity`. For a Maildir, the recorded file must still exist.
    pub fn state_proofs(
        &self,
        state: &State,
        source: &str,
        folder: &FolderName,
        uidvalidity: Option<UidValidity>,
    ) -> Result<HashMap<MsgKey, i64>> {
        let tname = self.describe();
        let Some(fs) = state.find_folder(&super::super::sync_key(source, &tname), folder)? else {
            return Ok(HashMap::new());
        };
        let prefix = format!("{tname}/");
        let rows: Vec<StoredMsg> = state
            .messages(fs.id)?
            .into_iter()
            .filter(|m| m.target_removed_at.is_none())
            .filter(|m| match self {
                Store::Maildir { target, .. } => &m.target == target,
                Store::Imap { .. } => m.target.starts_with(&prefix),
            })
            .collect();
        let files: Option<HashSet<String>> = match self {
            Store::Maildir { md, .. } => Some(if md.folder_dir(folder)?.join("cur").is_dir() {
                md.scan(folder)?.into_iter().map(|l| l.unique).collect()
            } else {
                HashSet::new()
            }),
            Store::Imap { .. } => None,
        };
        let mut out = HashMap::new();
        for m in rows {
            if let (Some(files), Some(loc)) = (&files, &m.location)
                && !files.contains(loc.split(',').next().unwrap_or(loc))
            {
                continue; // the backup file was removed since
            }
            let key = match (m.uid, m.uidvalidity, &m.uidl) {
                (Some(u), Some(v), _) if Some(v) == uidvalidity => MsgKey::Uid(u),
                (None, _, Some(l)) => MsgKey::Uidl(l.clone()),
                _ => continue,
            };
            out.insert(key, m.id);
        }
        Ok(out)
    }

    /// Which probes have a copy in the store's `folder` (for an IMAP store:
    /// the folder of that name, or of the same special use). Each copy
    /// proves one probe only.
    pub async fn lookup(
        &mut self,
        folder: &FolderName,
        special_use: Option<SpecialUse>,
        probes: &[Probe],
    ) -> Result<HashSet<MsgKey>> {
        if probes.is_empty() {
            return Ok(HashSet::new());
        }
        let sizes: HashSet<u64> = probes.iter().map(|p| p.size).collect();
        let copies = match self {
            Store::Maildir { md, .. } => maildir_copies(md, folder, &sizes)?,
            Store::Imap { cfg, session, .. } => {
                if session.is_none() {
                    *session = Some(Box::new(
                        crate::exec::fresh_login(async || imap::connect(cfg).await)
                            .await?
                            .0,
                    ));
                }
                let s = session.as_mut().expect("connected above");
                imap_copies(s, folder, special_use, &sizes, probes).await?
            }
        };
        Ok(match_probes(probes, copies))
    }

    /// Logs out of an IMAP store.
    pub async fn close(self) {
        if let Store::Imap {
            session: Some(s),
            cfg,
            ..
        } = self
        {
            s.logout(cfg.timeouts.command).await;
        }
    }
}

/// One message in the store.
struct Copy {
    message_id: Option<String>,
    size: u64,
    digest: Option<[u8; 32]>,
}

/// Pairs each probe with an unclaimed copy: by Message-ID + size, or for a
/// probe without Message-ID, by digest + size.
fn match_probes(probes: &[Probe], copies: Vec<Copy>) -> HashSet<MsgKey> {
    let mut by_mid: HashMap<(String, u64), usize> = HashMap::new();
    let mut by_digest: HashMap<([u8; 32], u64), usize> = HashMap::new();
    for c in copies {
        if let Some(m) = c.message_id {
            *by_mid.entry((m, c.size)).or_default() += 1;
        }
        if let Some(d) = c.digest {
            *by_digest.entry((d, c.size)).or_default() += 1;
        }
    }
    let mut out = HashSet::new();
    for p in probes {
        let slot = match (&p.message_id, &p.digest) {
            (Some(m), _) => by_mid.get_mut(&(m.clone(), p.size)),
            (None, Some(d)) => by_digest.get_mut(&(*d, p.size)),
            (None, None) => None,
        };
        if let Some(n) = slot.filter(|n| **n > 0) {
            *n -= 1;
            out.insert(p.key.clone());
        }
    }
    out
}

/// The Maildir folder's messages of a size some probe has, read from disk
/// (files whose `W=` size rules them out are not opened).
fn maildir_copies(md: &Maildir, folder: &FolderName, sizes: &HashSet<u64>) -> Result<Vec<Copy>> {
    if !md.folder_dir(folder)?.join("cur").is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for l in md.scan(folder)? {
        if l.vsize.is_some_and(|v| !sizes.contains(&v)) {
            continue;
        }
        let bytes = match std::fs::read(&l.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&l.path, e)),
        };
        let wire = wire_bytes(&bytes);
        let size = wire.len() as u64;
        if !sizes.contains(&size) {
            continue;
        }
        let h = MessageHeaders::parse(&wire);
        out.push(Copy {
            digest: Some(crate::net::sha256(&wire)),
            message_id: h.message_id,
            size,
        });
    }
    Ok(out)
}

/// The IMAP store folder's messages of a size some probe has: Message-ID
/// from the header, and the content digest only of those that could
/// match a probe without Message-ID.
async fn imap_copies(
    s: &mut Session,
    folder: &FolderName,
    special_use: Option<SpecialUse>,
    sizes: &HashSet<u64>,
    probes: &[Probe],
) -> Result<Vec<Copy>> {
    let listed = s.list_folders().await?;
    let wire = listed
        .iter()
        .find(|f| f.selectable && &f.name == folder)
        .or_else(|| {
            special_use.and_then(|u| {
                listed
                    .iter()
                    .find(|f| f.selectable && f.special_use == Some(u))
            })
        })
        .map(|f| f.wire.clone());
    let Some(wire) = wire else {
        return Ok(Vec::new());
    };
    s.examine(&wire).await?;
    let all = s.uid_search_all().await?;
    let heads = s.fetch_headers(&all, &["MESSAGE-ID"]).await?;
    let digest_sizes: HashSet<u64> = probes
        .iter()
        .filter(|p| p.message_id.is_none())
        .map(|p| p.size)
        .collect();
    let want: Vec<crate::types::Uid> = heads
        .iter()
        .filter(|h| digest_sizes.contains(&h.size))
        .map(|h| h.uid)
        .collect();
    let digests = digests(s, &want).await?;
    Ok(heads
        .into_iter()
        .filter(|h| sizes.contains(&h.size))
        .map(|h| Copy {
            message_id: h
                .message_id
                .as_deref()
                .and_then(super::super::normalize_message_id),
            size: h.size,
            digest: digests.get(&h.uid).copied(),
        })
        .collect())
}

/// SHA-256 of the bodies of `uids` in the selected folder.
pub(super) async fn digests(
    s: &mut Session,
    uids: &[crate::types::Uid],
) -> Result<HashMap<crate::types::Uid, [u8; 32]>> {
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
