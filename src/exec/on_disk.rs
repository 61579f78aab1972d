//! What an IMAP fetch finds already in the Maildir for the messages it is
//! about to download, so that they are recorded instead of stored twice:
//!
//! - files a killed run wrote but never recorded, by the identity in their
//!   names (`,X=<account>-i<UIDVALIDITY>-<UID>`);
//! - when the state does not know them (state file lost, a copied Maildir,
//!   a folder recreated on the server with a new UIDVALIDITY, or a Maildir
//!   another tool made), files no record accounts for, paired by
//!   Message-ID + size, or content digest where the Message-ID is missing
//!   or shared ([`plan::pair_files`]).
//!
//! The cost stays proportional: only the names are read unless a file's
//! size is one a planned download has, and only those files' headers (and,
//! for a digest, contents) are read.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::message::{message_id_of_header, normalize_message_id, wire_bytes};
use crate::error::{Error, Result};
use crate::imap::{FetchedMessage, Session};
use crate::maildir::{LocalMessage, Maildir, SourceKey, account_tag};
use crate::plan::{self, Known, LocalFile, MsgKey, RekeySource, SourceMsg, UnclaimedFile};
use crate::state::State;
use crate::types::{FolderName, Uid, UidValidity};

/// Where to look, and what is already accounted for.
pub(super) struct Scope<'a> {
    pub md: &'a Maildir,
    pub folder: &'a FolderName,
    /// The account key (its tag is in our file names).
    pub account: &'a str,
    pub uidvalidity: UidValidity,
    /// The state's name of this Maildir.
    pub target: &'a str,
    pub state: &'a Arc<Mutex<State>>,
    /// The state's records under the current UIDVALIDITY.
    pub known: &'a HashMap<MsgKey, Known>,
}

/// Planned downloads already on disk, and how each was recognised.
#[derive(Debug, Default)]
pub(super) struct Found {
    pub local: HashMap<MsgKey, LocalFile>,
    pub by_name: usize,
    pub by_message_id: usize,
    pub by_digest: usize,
}

impl Found {
    /// Matched by content, not by a name this account wrote: what the user
    /// should hear about.
    pub fn by_content(&self) -> usize {
        self.by_message_id + self.by_digest
    }
}

/// Finds the planned downloads `copy` that are already files in the folder.
pub(super) async fn find(s: &mut Session, sc: &Scope<'_>, copy: &[SourceMsg]) -> Result<Found> {
    let mut found = Found::default();
    if copy.is_empty() || !sc.md.folder_dir(sc.folder)?.join("cur").is_dir() {
        return Ok(found);
    }
    let tag = account_tag(sc.account);
    let wanted: HashMap<Uid, &SourceMsg> = copy
        .iter()
        .filter_map(|m| Some((m.key.uid()?, m)))
        .collect();
    let mut rest: Vec<LocalMessage> = Vec::new();
    for l in sc.md.scan(sc.folder)? {
        match (&l.account, &l.source) {
            (Some(a), Some(SourceKey::Imap { uidvalidity, uid }))
                if *a == tag && *uidvalidity == sc.uidvalidity =>
            {
                let key = MsgKey::Uid(*uid);
                if wanted.contains_key(uid) {
                    if !found.local.contains_key(&key) {
                        found.by_name += 1;
                        found.local.insert(
                            key.clone(),
                            LocalFile {
                                key,
                                location: l.path.display().to_string(),
                                size: l.vsize.unwrap_or(l.size),
                            },
                        );
                    }
                } else if !sc.known.contains_key(&key) {
                    // A message since gone from the server, unknown to a
                    // lost state: the same mail may be back under a new UID.
                    rest.push(l);
                }
            }
            // Another account's file: that account's record claims it.
            (Some(a), _) if *a != tag => {}
            // Ours under another UIDVALIDITY, or another tool's.
            _ => rest.push(l),
        }
    }
    let left: Vec<&SourceMsg> = copy
        .iter()
        .filter(|m| !found.local.contains_key(&m.key))
        .collect();
    if left.is_empty() || rest.is_empty() {
        return Ok(found);
    }
    // Only a file of a size some download has can be one of them.
    let sizes: BTreeSet<u64> = left.iter().map(|m| m.size).collect();
    rest.retain(|l| match l.vsize {
        Some(w) => sizes.contains(&w) || sizes.contains(&l.size),
        // LF line ends may count twice on the wire: read to know.
        None => sizes
            .range(l.size..=l.size.saturating_mul(2))
            .next()
            .is_some(),
    });
    if rest.is_empty() {
        return Ok(found);
    }
    // Files the state records (this account or another feeding the same
    // Maildir) are somebody's already.
    let recorded = sc.state.lock().unwrap().rows_by_location(sc.target)?;
    rest.retain(|l| !recorded.contains_key(&l.unique));
    if rest.is_empty() {
        return Ok(found);
    }
    let read_sizes = sizes.clone();
    let cands: Vec<(PathBuf, UnclaimedFile)> = tokio::task::spawn_blocking(move || {
        rest.iter()
            .filter_map(|l| candidate(l, &read_sizes))
            .collect()
    })
    .await
    .map_err(|e| Error::State(format!("reading the Maildir failed: {e}")))?;
    if cands.is_empty() {
        return Ok(found);
    }
    let file_sizes: BTreeSet<u64> = cands.iter().map(|c| c.1.size).collect();
    let probe: Vec<Uid> = left
        .iter()
        .filter(|m| file_sizes.contains(&m.size))
        .filter_map(|m| m.key.uid())
        .collect();
    let mut server: Vec<RekeySource> = s
        .fetch_headers(&probe, &["MESSAGE-ID"])
        .await?
        .into_iter()
        .map(|h| RekeySource {
            uid: h.uid,
            message_id: h.message_id.as_deref().and_then(normalize_message_id),
            size: h.size,
            digest: None,
        })
        .collect();
    let (paths, mut files): (Vec<PathBuf>, Vec<UnclaimedFile>) = cands.into_iter().unzip();
    let mut pairing = plan::pair_files(&server, &files);
    let by_message_id = pairing.pairs.len();
    if !pairing.need_server_digest.is_empty() {
        let digests = server_digests(s, &pairing.need_server_digest).await?;
        for m in &mut server {
            m.digest = digests.get(&m.uid).copied();
        }
        let want: Vec<(usize, PathBuf)> = pairing
            .need_file_digest
            .iter()
            .map(|&i| (i, paths[i].clone()))
            .collect();
        let local = tokio::task::spawn_blocking(move || {
            want.into_iter()
                .filter_map(|(i, p)| {
                    let bytes = std::fs::read(&p).ok()?;
                    Some((i, crate::net::sha256(&wire_bytes(&bytes))))
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Error::State(format!("reading the Maildir failed: {e}")))?;
        for (i, d) in local {
            files[i].digest = Some(d);
        }
        pairing = plan::pair_files(&server, &files);
    }
    found.by_message_id = by_message_id;
    found.by_digest = pairing.pairs.len().saturating_sub(by_message_id);
    let size_of: HashMap<Uid, u64> = left
        .iter()
        .filter_map(|m| Some((m.key.uid()?, m.size)))
        .collect();
    for (uid, i) in pairing.pairs {
        let key = MsgKey::Uid(uid);
        found.local.insert(
            key.clone(),
            LocalFile {
                key,
                location: paths[i].display().to_string(),
                size: size_of.get(&uid).copied().unwrap_or(files[i].size),
            },
        );
    }
    Ok(found)
}

/// A file's Message-ID and the size the server would count for it, if
/// that size is one of `sizes`. A file that cannot be read (gone since the
/// scan, no permission) is no candidate: its message is downloaded.
fn candidate(l: &LocalMessage, sizes: &BTreeSet<u64>) -> Option<(PathBuf, UnclaimedFile)> {
    let size = match l.vsize {
        // `W=` is the CRLF size of the file; a file stored as the server
        // sent it (with a CR somewhere) is its own size (`S=`).
        Some(w) if w == l.size || sizes.contains(&w) => w,
        Some(_) => l.size,
        None => wire_bytes(&std::fs::read(&l.path).ok()?).len() as u64,
    };
    if !sizes.contains(&size) {
        return None;
    }
    let head = read_head(&l.path).ok()?;
    Some((
        l.path.clone(),
        UnclaimedFile {
            message_id: message_id_of_header(&head),
            size,
            digest: None,
        },
    ))
}

/// The header block of a file (up to the first empty line, at most 1 MB).
fn read_head(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        let from = out.len().saturating_sub(3);
        out.extend_from_slice(&buf[..n]);
        let tail = &out[from..];
        if tail.windows(2).any(|w| w == b"\n\n")
            || tail.windows(3).any(|w| w == b"\n\r\n")
            || out.len() > 1 << 20
        {
            return Ok(out);
        }
    }
}

/// SHA-256 of the server's bytes of `uids`, downloaded only to hash them.
pub(super) async fn server_digests(
    s: &mut Session,
    uids: &[Uid],
) -> Result<HashMap<Uid, [u8; 32]>> {
    let (tx, mut rx) = mpsc::channel::<FetchedMessage>(8);
    let collect = tokio::spawn(async move {
        let mut d = HashMap::new();
        while let Some(m) = rx.recv().await {
            d.insert(m.uid, crate::net::sha256(&m.body));
        }
        d
    });
    let r = s.fetch_bodies(uids, &tx).await;
    drop(tx);
    let digests = collect.await.unwrap_or_default();
    r?;
    Ok(digests)
}
