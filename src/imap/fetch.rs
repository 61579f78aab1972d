//! UID listing, metadata (with CHANGEDSINCE/VANISHED), header probes and
//! streamed, pipelined body fetches that account for every requested UID.

use std::collections::{HashSet, VecDeque};

use tokio::sync::mpsc;

use super::codec::{UidSet, parse_internal_date};
use super::parse::{self, Untagged, Val};
use super::session::{Part, Session, Step};
use crate::error::{Error, Result};
use crate::types::{Flags, ModSeq, Uid};

/// UIDs per UID FETCH command: bounded work per command, and with two
/// commands in flight the server never waits for us.
const BODY_CHUNK: u64 = 1000;
const META_CHUNK: u64 = 5000;
/// Keeps command lines well under common server limits (8 KB+).
const MAX_SET_BYTES: usize = 7000;

/// Per-message metadata for planning (what changed, what is new).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: Uid,
    pub flags: Flags,
    /// RFC822.SIZE; 0 when the server did not tell (Yahoo), which
    /// planning takes as unknown, not as a size.
    pub size: u64,
    /// INTERNALDATE as Unix seconds (its zone applied).
    pub internal_date: i64,
    pub modseq: Option<ModSeq>,
}

/// Result of [`Session::uid_fetch_meta`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaListing {
    /// Sorted by UID.
    pub messages: Vec<MessageMeta>,
    /// UIDs the server says are gone since `changed_since` (QRESYNC only).
    pub vanished: UidSet,
}

/// Header probe result for UIDVALIDITY recovery and dedup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderInfo {
    pub uid: Uid,
    pub size: u64,
    /// Trimmed `Message-ID` value when that field was asked for and present.
    pub message_id: Option<String>,
    /// The requested header fields, raw.
    pub headers: Vec<u8>,
}

/// One downloaded message: exact `BODY[]` bytes plus what Maildir needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMessage {
    pub uid: Uid,
    pub flags: Flags,
    /// INTERNALDATE as Unix seconds.
    pub internal_date: i64,
    /// RFC822.SIZE as the server reported it, or the body's length when
    /// it reported none or 0.
    pub size: u64,
    pub body: Vec<u8>,
    /// The body's bytes in the process's memory budget; dropping it (with
    /// the body, once written or sent on) lets the next one be read. A
    /// consumer that keeps bodies drops the lease, or the reader slows to
    /// one message per [`crate::flow::WAIT_LIMIT`].
    pub lease: crate::flow::Lease,
}

/// Accounting of a body fetch: every requested UID is in exactly one of
/// delivered (sent on the channel), `missing` or `failed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    pub delivered: usize,
    pub bytes: u64,
    /// Not returned by the server: expunged meanwhile (normal, not an error).
    pub missing: Vec<Uid>,
    /// Returned but unusable (NIL body, no INTERNALDATE…), with the reason.
    pub failed: Vec<(Uid, String)>,
}

fn flags_of(v: &Val<'_>) -> Flags {
    let f = parse::atoms_of(Some(v));
    Flags::from_imap(f.iter().map(|s| s.as_str()))
}

fn modseq_of(v: &Val<'_>) -> Option<ModSeq> {
    v.list()
        .and_then(|l| l.first())
        .and_then(|x| x.number())
        .map(ModSeq)
}

impl Session {
    fn modseq_available(&self) -> bool {
        self.st.caps.condstore
    }

    /// Sends text commands with up to `depth` in flight and reads to every
    /// completion. The first NO/BAD stops further sends; in-flight ones are
    /// drained so the connection stays usable, then the error is returned.
    pub(crate) async fn run_pipelined<F>(
        &mut self,
        cmds: &[String],
        depth: usize,
        mut cb: F,
    ) -> Result<()>
    where
        F: FnMut(&Untagged<'_>) -> Result<bool>,
    {
        let mut inflight: VecDeque<(String, usize)> = VecDeque::new();
        let mut next = 0;
        let mut first_err: Option<Error> = None;
        loop {
            while first_err.is_none() && inflight.len() < depth && next < cmds.len() {
                let t = self.queue_cmd(&[Part::Text(cmds[next].clone())]);
                inflight.push_back((t, next));
                next += 1;
            }
            let Some((_, front)) = inflight.front() else {
                break;
            };
            self.io.ctx = self.ctx(&short(&cmds[*front]));
            self.io.flush().await?;
            match self.read_step(&mut cb).await? {
                Step::Untagged(e) => {
                    if first_err.is_none() {
                        first_err = e;
                    }
                }
                Step::Tagged { tag, status, text } => {
                    let Some(pos) = inflight.iter().position(|(t, _)| *t == tag) else {
                        return Err(self.stray_tag(&tag));
                    };
                    let (_, i) = inflight.remove(pos).expect("position is valid");
                    if let Err(e) = self.check(&short(&cmds[i]), status, text)
                        && first_err.is_none()
                    {
                        first_err = Some(e);
                    }
                }
                Step::Continue(_) => {
                    self.io.broken = true;
                    return Err(Error::protocol(
                        &self.io.server,
                        format!("{}: unexpected continuation request", self.io.ctx),
                    ));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// All UIDs in the selected mailbox (`UID SEARCH ALL`), ascending.
    pub async fn uid_search_all(&mut self) -> Result<Vec<Uid>> {
        self.uid_search("ALL").await
    }

    /// UIDs in the selected mailbox that are not in `known` (`UID SEARCH
    /// NOT UID set`), ascending: what a state lacks, in a reply as small as
    /// the answer. A set too long for one command line is diffed locally
    /// against `UID SEARCH ALL` instead.
    pub async fn uid_search_not(&mut self, known: &UidSet) -> Result<Vec<Uid>> {
        if known.is_empty() {
            return self.uid_search_all().await;
        }
        let set = known.to_string();
        if set.len() > MAX_SET_BYTES {
            let all = self.uid_search_all().await?;
            return Ok(all.into_iter().filter(|u| !known.contains(*u)).collect());
        }
        self.uid_search(&format!("NOT UID {set}")).await
    }

    async fn uid_search(&mut self, criteria: &str) -> Result<Vec<Uid>> {
        let mut uids = Vec::new();
        self.run(
            &[Part::Text(format!("UID SEARCH {criteria}"))],
            "UID SEARCH",
            |u| {
                if let Untagged::Search(v) = u {
                    uids.extend(v.iter().map(|&n| Uid(n)));
                    return Ok(true);
                }
                Ok(false)
            },
        )
        .await?;
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// UIDs from `from` up (`UID SEARCH UID from:*`), ascending: the
    /// messages added since a known UID, without listing the whole
    /// mailbox. (`n:*` names the last message even when `n` is past it;
    /// that one is left out.)
    pub async fn uid_search_from(&mut self, from: Uid) -> Result<Vec<Uid>> {
        let mut uids = self.uid_search(&format!("UID {}:*", from.0.max(1))).await?;
        uids.retain(|u| *u >= from);
        Ok(uids)
    }

    /// Flags, size, INTERNALDATE and MODSEQ for `uids` (all when `None`).
    /// With `changed_since`, only messages changed after that MODSEQ, plus
    /// (QRESYNC) the UIDs expunged since: a rerun costs one round trip.
    pub async fn uid_fetch_meta(
        &mut self,
        uids: Option<&UidSet>,
        changed_since: Option<ModSeq>,
    ) -> Result<MetaListing> {
        let modseq = self.modseq_available();
        let items = if modseq {
            "(UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ)"
        } else {
            "(UID FLAGS INTERNALDATE RFC822.SIZE)"
        };
        let modifier = match changed_since {
            Some(_) if !modseq => {
                return Err(Error::protocol(
                    &self.io.server,
                    "CHANGEDSINCE requested but the server lacks CONDSTORE",
                ));
            }
            Some(m) if self.st.is_enabled("QRESYNC") => format!(" (CHANGEDSINCE {} VANISHED)", m.0),
            Some(m) => format!(" (CHANGEDSINCE {})", m.0),
            None => String::new(),
        };
        let sets: Vec<String> = match uids {
            None => vec!["1:*".into()],
            Some(s) if s.is_empty() => return Ok(MetaListing::default()),
            Some(s) => s
                .chunks(META_CHUNK, MAX_SET_BYTES)
                .iter()
                .map(|c| c.to_string())
                .collect(),
        };
        let cmds: Vec<String> = sets
            .iter()
            .map(|s| format!("UID FETCH {s} {items}{modifier}"))
            .collect();
        let mut out = MetaListing::default();
        let mut vanished: Vec<(u32, u32)> = Vec::new();
        let mut bad: Option<String> = None;
        self.run_pipelined(&cmds, 4, |u| match u {
            Untagged::Fetch(_, c) => {
                let (mut uid, mut size, mut date, mut flags, mut ms) =
                    (None, None, None, None, None);
                for (k, v) in parse::fetch_items(c.clone()) {
                    match k.as_str() {
                        "UID" => uid = v.number().map(|n| Uid(n as u32)),
                        "RFC822.SIZE" => size = v.number(),
                        "INTERNALDATE" => date = v.text().map(|t| t.into_owned()),
                        "FLAGS" => flags = Some(flags_of(&v)),
                        "MODSEQ" => ms = modseq_of(&v),
                        _ => {}
                    }
                }
                let (Some(uid), Some(size), Some(flags)) = (uid, size, flags) else {
                    return Ok(false); // unsolicited flag update
                };
                let internal_date = match date.as_deref().and_then(parse_internal_date) {
                    Some(d) => d,
                    None => {
                        bad.get_or_insert(format!("UID {uid}: bad INTERNALDATE {date:?}"));
                        return Ok(true);
                    }
                };
                out.messages.push(MessageMeta {
                    uid,
                    flags,
                    size,
                    internal_date,
                    modseq: ms,
                });
                Ok(true)
            }
            Untagged::Vanished {
                earlier: true,
                uids,
            } => {
                vanished.extend(uids.iter().copied());
                Ok(true)
            }
            _ => Ok(false),
        })
        .await?;
        if let Some(b) = bad {
            return Err(Error::protocol(&self.io.server, self.ctx(&b)));
        }
        out.messages.sort_unstable_by_key(|m| m.uid);
        out.messages.dedup_by_key(|m| m.uid);
        out.vanished = UidSet::from_ranges(vanished);
        Ok(out)
    }

    /// Size and selected header fields (e.g. `["MESSAGE-ID"]`) per UID,
    /// without downloading bodies: matches messages after a UIDVALIDITY
    /// change. UIDs the server does not return are simply absent.
    pub async fn fetch_headers(
        &mut self,
        uids: &[Uid],
        fields: &[&str],
    ) -> Result<Vec<HeaderInfo>> {
        let set = UidSet::from_uids(uids.iter().copied());
        if set.is_empty() {
            return Ok(Vec::new());
        }
        let fl = fields
            .iter()
            .map(|f| {
                if f.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
                {
                    Ok(f.to_string())
                } else {
                    Err(Error::Usage(format!("bad header field name {f:?}")))
                }
            })
            .collect::<Result<Vec<_>>>()?
            .join(" ");
        let want_mid = fields.iter().any(|f| f.eq_ignore_ascii_case("MESSAGE-ID"));
        let cmds: Vec<String> = set
            .chunks(META_CHUNK, MAX_SET_BYTES)
            .iter()
            .map(|c| format!("UID FETCH {c} (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS ({fl})])"))
            .collect();
        let mut out = Vec::new();
        self.run_pipelined(&cmds, 4, |u| {
            let Untagged::Fetch(_, c) = u else {
                return Ok(false);
            };
            let (mut uid, mut size, mut hdr) = (None, None, None);
            for (k, v) in parse::fetch_items(c.clone()) {
                match k.as_str() {
                    "UID" => uid = v.number().map(|n| Uid(n as u32)),
                    "RFC822.SIZE" => size = v.number(),
                    k if k.starts_with("BODY[HEADER.FIELDS") => {
                        hdr = Some(match v {
                            Val::Str(s) => s.into_owned(),
                            _ => Vec::new(),
                        })
                    }
                    _ => {}
                }
            }
            let (Some(uid), Some(size), Some(headers)) = (uid, size, hdr) else {
                return Ok(false);
            };
            out.push(HeaderInfo {
                uid,
                size,
                message_id: if want_mid {
                    header_value(&headers, "Message-ID")
                } else {
                    None
                },
                headers,
            });
            Ok(true)
        })
        .await?;
        out.sort_by_key(|h| h.uid);
        out.dedup_by_key(|h| h.uid);
        self.size_unsized(&mut out).await?;
        Ok(out)
    }

    /// Gives the messages whose RFC822.SIZE came back 0 (Yahoo: "{0}
    /// sizes") their real size, the length of their body, so matching by
    /// Message-ID + size and verify never take 0 for a size. Costs a
    /// download of just those messages; none on a server that tells.
    async fn size_unsized(&mut self, heads: &mut [HeaderInfo]) -> Result<()> {
        let zero: Vec<Uid> = heads
            .iter()
            .filter(|h| h.size == 0)
            .map(|h| h.uid)
            .collect();
        if zero.is_empty() {
            return Ok(());
        }
        let (tx, mut rx) = mpsc::channel::<FetchedMessage>(8);
        let collect = async move {
            let mut sizes = std::collections::HashMap::new();
            while let Some(m) = rx.recv().await {
                sizes.insert(m.uid, m.body.len() as u64);
            }
            sizes
        };
        let fetch = async {
            let r = self.fetch_bodies(&zero, &tx).await;
            drop(tx);
            r
        };
        let (r, sizes) = tokio::join!(fetch, collect);
        r?;
        for h in heads.iter_mut() {
            if let Some(&n) = sizes.get(&h.uid) {
                h.size = n;
            }
        }
        Ok(())
    }

    /// Downloads `uids` (compact sets, ≤1000 per command, two commands in
    /// flight) and sends each message on `tx` as soon as it is complete, so
    /// the caller writes one to disk while the next arrives; memory stays
    /// at one message plus the channel bound.
    ///
    /// Returns only after the server completed every command; a dropped
    /// connection is `Err`, never a short `Ok`. UIDs not returned are in
    /// `missing`. If the receiver is dropped, the rest is drained and
    /// discarded and `Err` is returned.
    pub async fn fetch_bodies(
        &mut self,
        uids: &[Uid],
        tx: &mpsc::Sender<FetchedMessage>,
    ) -> Result<FetchReport> {
        let requested = UidSet::from_uids(uids.iter().copied());
        let item = self.st.quirks.body_item.wire();
        let cmds: Vec<String> = requested
            .chunks(BODY_CHUNK, MAX_SET_BYTES)
            .iter()
            .map(|c| format!("UID FETCH {c} (UID FLAGS INTERNALDATE RFC822.SIZE {item})"))
            .collect();
        let mut report = FetchReport::default();
        let mut seen: HashSet<u32> = HashSet::with_capacity(requested.len().min(1 << 20) as usize);
        let mut no_body: HashSet<u32> = HashSet::new();
        let mut inflight: VecDeque<(String, usize)> = VecDeque::new();
        let mut next = 0;
        let mut first_err: Option<Error> = None;
        let mut receiver_gone = false;
        let mut slot: Option<std::result::Result<FetchedMessage, (Uid, String)>> = None;
        let mut detached: Option<Detached> = None;
        // Bodies are leased from the memory budget before they are read,
        // and read into buffers of their own.
        self.io.lease_from = Some(crate::flow::global().clone());
        self.io.detach = true;
        let r = async {
            loop {
                while first_err.is_none()
                    && !receiver_gone
                    && inflight.len() < 2
                    && next < cmds.len()
                {
                    let t = self.queue_cmd(&[Part::Text(cmds[next].clone())]);
                    inflight.push_back((t, next));
                    next += 1;
                }
                let Some((_, front)) = inflight.front() else {
                    break;
                };
                self.io.ctx = self.ctx(&short(&cmds[*front]));
                self.io.flush().await?;
                let step = self
                    .read_step(&mut |u| {
                        let Untagged::Fetch(_, c) = u else {
                            return Ok(false);
                        };
                        body_from_fetch(
                            c,
                            &requested,
                            &mut seen,
                            &mut no_body,
                            &mut slot,
                            &mut detached,
                        )
                    })
                    .await?;
                match step {
                    Step::Untagged(_) => {}
                    Step::Tagged { tag, status, text } => {
                        let Some(pos) = inflight.iter().position(|(t, _)| *t == tag) else {
                            return Err(self.stray_tag(&tag));
                        };
                        let (_, i) = inflight.remove(pos).expect("valid position");
                        if let Err(e) = self.check(&short(&cmds[i]), status, text)
                            && first_err.is_none()
                        {
                            first_err = Some(e);
                        }
                    }
                    Step::Continue(_) => {
                        self.io.broken = true;
                        return Err(Error::protocol(
                            &self.io.server,
                            format!("{}: unexpected continuation request", self.io.ctx),
                        ));
                    }
                }
                match slot.take() {
                    Some(Ok(mut m)) if !receiver_gone => {
                        m.lease = self.io.take_lease();
                        if let Some(d) = detached.take() {
                            m.body = self.io.take_detached(d.index).unwrap_or_default();
                            if !d.size_known {
                                m.size = m.body.len() as u64;
                            }
                        }
                        let n = m.body.len() as u64;
                        if tx.send(m).await.is_err() {
                            receiver_gone = true;
                        } else {
                            report.delivered += 1;
                            report.bytes += n;
                        }
                    }
                    Some(Err(f)) => report.failed.push(f),
                    _ => {}
                }
            }
            Ok(())
        }
        .await;
        self.io.lease_from = None;
        self.io.detach = false;
        r?;
        if let Some(e) = first_err {
            return Err(e);
        }
        if receiver_gone {
            return Err(Error::protocol(
                &self.io.server,
                self.ctx("UID FETCH: the message consumer stopped; download abandoned"),
            ));
        }
        for uid in requested.iter() {
            if !seen.contains(&uid.0) {
                if no_body.contains(&uid.0) {
                    report
                        .failed
                        .push((uid, "server returned the message without BODY[]".into()));
                } else {
                    report.missing.push(uid);
                }
            }
        }
        Ok(report)
    }
}

/// A body the framing layer read into a buffer of its own: it is taken
/// from there once the response is parsed.
struct Detached {
    index: usize,
    /// RFC822.SIZE was in the response; else the size is the body's.
    size_known: bool,
}

/// Extracts one message from a FETCH response, or a per-UID failure.
/// Returns whether the response was ours (consumed).
fn body_from_fetch(
    c: &parse::Cursor<'_>,
    requested: &UidSet,
    seen: &mut HashSet<u32>,
    no_body: &mut HashSet<u32>,
    slot: &mut Option<std::result::Result<FetchedMessage, (Uid, String)>>,
    detached: &mut Option<Detached>,
) -> Result<bool> {
    let (mut uid, mut flags, mut date, mut size, mut body) = (None, None, None, None, None);
    let mut nil_body = false;
    let mut detached_body = None;
    for (k, v) in parse::fetch_items(c.clone()) {
        match k.as_str() {
            "UID" => uid = v.number().map(|n| Uid(n as u32)),
            "FLAGS" => flags = Some(flags_of(&v)),
            "INTERNALDATE" => date = v.text().map(|t| t.into_owned()),
            "RFC822.SIZE" => size = v.number(),
            "BODY[]" | "RFC822" => match v {
                Val::Str(s) => body = Some(s.into_owned()),
                Val::Detached(k) => {
                    body = Some(Vec::new());
                    detached_body = Some(k);
                }
                _ => nil_body = true,
            },
            _ => {}
        }
    }
    let Some(uid) = uid else { return Ok(false) };
    if !requested.contains(uid) || seen.contains(&uid.0) {
        return Ok(false);
    }
    if body.is_none() && !nil_body {
        // FLAGS-only update for a message we asked for; the body follows.
        no_body.insert(uid.0);
        return Ok(false);
    }
    seen.insert(uid.0);
    let fail = |why: String| Ok(Some(Err((uid, why))));
    let r: Result<Option<_>> = match (body, date.as_deref().and_then(parse_internal_date)) {
        (None, _) => fail("server returned NIL for BODY[]".into()),
        // No mail is 0 bytes (Dovecot refuses to store one): a server
        // glitch, never a message to store and count as copied.
        (Some(b), _) if b.is_empty() && detached_body.is_none() => {
            fail("server returned an empty body ({0}); not stored, the next run asks again".into())
        }
        (Some(_), None) => fail(format!("missing or bad INTERNALDATE {date:?}")),
        (Some(body), Some(internal_date)) => {
            // RFC822.SIZE 0 (Yahoo) is "unknown", never a size: the bytes
            // fetched are the size.
            let size = size.filter(|&n| n > 0);
            if let Some(index) = detached_body {
                *detached = Some(Detached {
                    index,
                    size_known: size.is_some(),
                });
            }
            Ok(Some(Ok(FetchedMessage {
                uid,
                flags: flags.unwrap_or_default(),
                internal_date,
                size: size.unwrap_or(body.len() as u64),
                body,
                lease: Default::default(),
            })))
        }
    };
    *slot = r?;
    Ok(true)
}

/// A command shortened for messages: long UID sets are elided.
fn short(cmd: &str) -> String {
    let mut parts = cmd.splitn(4, ' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("UID"), Some(verb), Some(set), rest) if set.len() > 40 => {
            let first = set.split([',', ':']).next().unwrap_or("");
            let last = set.rsplit([',', ':']).next().unwrap_or("");
            format!(
                "UID {verb} {first}…{last}{}",
                rest.map(|r| format!(" {r}")).unwrap_or_default()
            )
        }
        _ => cmd.to_string(),
    }
}

/// The unfolded, trimmed value of header `name` in a raw header block.
pub(crate) fn header_value(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let mut value: Option<String> = None;
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                if !v.is_empty() {
                    v.push(' ');
                }
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((n, v)) = line.split_once(':')
            && n.trim().eq_ignore_ascii_case(name)
        {
            value = Some(v.trim().to_string());
        }
    }
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_value_unfolds() {
        let h = b"Message-ID:\r\n <abc@x>\r\nSubject: y\r\n\r\n";
        assert_eq!(header_value(h, "message-id").as_deref(), Some("<abc@x>"));
        assert_eq!(header_value(b"\r\n", "Message-ID"), None);
    }

    #[test]
    fn short_elides_sets() {
        let set = (1..40)
            .map(|n| (n * 2).to_string())
            .collect::<Vec<_>>()
            .join(",");
        let s = short(&format!("UID FETCH {set} (BODY.PEEK[])"));
        assert_eq!(s, "UID FETCH 2…78 (BODY.PEEK[])");
        assert_eq!(short("UID FETCH 1:5 (X)"), "UID FETCH 1:5 (X)");
    }
}
