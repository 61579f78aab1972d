//! Pipelined APPEND written straight on the stream: LITERAL+ lets 32
//! messages be in flight (one round trip per batch instead of two per
//! message), and each tagged completion yields that message's APPENDUID
//! or its own error (crates.md §2: async-imap's append is 2 RTT/message,
//! has no APPENDUID and hangs on an unquoted date).

use std::collections::VecDeque;

use super::codec::UidSet;
use super::codec::{format_internal_date, quotable, quote};
use super::parse::{RespText, Status, Untagged};
use super::session::{Session, Step};
use super::write::StoreMode;
use crate::error::{Error, Result};
use crate::types::{Flags, Uid, UidValidity};

const MAX_IN_FLIGHT: usize = 32;
const FLUSH_BYTES: usize = 256 * 1024;
/// MULTIAPPEND group bounds: a refused group is resent one by one, so
/// keep groups modest; a few groups in flight keep the link busy.
const GROUP_MSGS: usize = 50;
const GROUP_BYTES: usize = 4 * 1024 * 1024;
const GROUPS_IN_FLIGHT: usize = 4;

/// One message to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMsg {
    /// Exact RFC 5322 bytes (CRLF line ends expected by IMAP).
    pub body: Vec<u8>,
    pub flags: Flags,
    /// INTERNALDATE as Unix seconds; `None` lets the server use "now".
    pub internal_date: Option<i64>,
}

/// A successful upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// From APPENDUID (UIDPLUS); lets the state record the target UID
    /// without searching for it.
    pub uid: Option<(UidValidity, Uid)>,
    /// Keywords left out because the target does not keep them.
    pub dropped_keywords: Vec<String>,
    /// Flags the copy should have but does not: a server that drops
    /// `\Flagged` on APPEND (the `flag_after_append` quirk) and did not
    /// take it by UID STORE either, or gave no APPENDUID to set it by.
    pub lost_flags: Vec<String>,
}

fn keyword_allowed(kw: &str, permanent: &[String]) -> bool {
    permanent
        .iter()
        .any(|p| p == "\\*" || p.eq_ignore_ascii_case(kw))
}

impl Session {
    /// Appends `msgs` to mailbox `wire`, pipelined. The outer `Err` is a
    /// connection-level failure; each message gets its own `Ok`/`Err`
    /// (in input order), so one rejected message does not fail the batch.
    ///
    /// `permanent_flags`: the target's PERMANENTFLAGS; keywords not
    /// allowed there are dropped and reported. `None` uses the selected
    /// mailbox's if it is the target, else sends all keywords. Messages
    /// over APPENDLIMIT or containing NUL are refused without sending.
    pub async fn append_batch<I>(
        &mut self,
        wire: &str,
        permanent_flags: Option<&[String]>,
        msgs: I,
    ) -> Result<Vec<Result<Appended>>>
    where
        I: IntoIterator<Item = AppendMsg>,
    {
        let what = format!("APPEND to {wire}");
        if self.io.broken {
            return Err(Error::connect(
                &self.io.server,
                format!("connection already lost; cannot {what}"),
            ));
        }
        let permanent: Option<Vec<String>> = match permanent_flags {
            Some(p) => Some(p.to_vec()),
            None => self
                .st
                .selected
                .as_ref()
                .filter(|s| s.wire == wire)
                .map(|s| s.permanent_flags.clone()),
        };
        let mbox = if quotable(wire.as_bytes()) {
            quote(wire)
        } else if self.st.caps.literal_plus {
            format!("{{{}+}}\r\n{wire}", wire.len())
        } else {
            return Err(Error::Usage(format!(
                "{}: mailbox name {wire:?} is not ASCII and the server lacks LITERAL+",
                self.io.server
            )));
        };
        self.io.ctx = what.clone();
        let limit = self.st.caps.appendlimit;
        let mut results: Vec<Option<Result<Appended>>> = Vec::new();
        let mut dropped: Vec<Vec<String>> = Vec::new();
        let mut inflight: VecDeque<(String, usize, usize)> = VecDeque::new();
        let mut nocb = |_: &Untagged<'_>| Ok(false);

        // Prepare: refuse what cannot be sent, filter keywords, build the
        // `(flags) date` part of each message.
        let mut ready: Vec<(usize, String, Vec<u8>)> = Vec::new();
        let mut flagged: Vec<usize> = Vec::new();
        for (idx, msg) in msgs.into_iter().enumerate() {
            if msg.flags.flagged {
                flagged.push(idx);
            }
            results.push(None);
            dropped.push(Vec::new());
            let len = msg.body.len();
            if let Some(max) = limit
                && len as u64 > max
            {
                results[idx] = Some(Err(Error::protocol(
                    &self.io.server,
                    format!(
                        "{what}: message #{idx} is {len} bytes, over the server's APPENDLIMIT of {max}; not sent"
                    ),
                )));
                continue;
            }
            if msg.body.contains(&0) {
                results[idx] = Some(Err(Error::protocol(
                    &self.io.server,
                    format!(
                        "{what}: message #{idx} contains NUL bytes, which IMAP APPEND cannot carry; not sent"
                    ),
                )));
                continue;
            }
            let mut flags = msg.flags.clone();
            if let Some(p) = &permanent {
                let (keep, drop): (Vec<String>, Vec<String>) = flags
                    .keywords
                    .drain(..)
                    .partition(|k| keyword_allowed(k, p));
                flags.keywords = keep;
                dropped[idx] = drop;
            }
            let flag_list = flags.to_imap();
            let mut line = String::new();
            if !flag_list.is_empty() {
                line.push_str(&format!(" ({flag_list})"));
            }
            if let Some(t) = msg.internal_date {
                line.push(' ');
                line.push_str(&format_internal_date(t));
            }
            ready.push((idx, line, msg.body));
        }
        // MULTIAPPEND (RFC 3502): many messages per command, one
        // completion per group instead of per message. A group is
        // all-or-nothing; a refused group is retried one by one below so
        // the bad message gets its own error and the rest still go in.
        if self.st.caps.multiappend && self.st.caps.literal_plus && ready.len() > 1 {
            let retry = self
                .multiappend(&what, &mbox, &ready, &mut results, &mut dropped)
                .await?;
            ready.retain(|(idx, _, _)| retry.contains(idx));
        }
        for (idx, opts, body) in ready {
            let len = body.len();
            let line = format!("APPEND {mbox}{opts}");
            let tag = self.io.tag();
            if self.nonsync_ok(len) {
                self.io
                    .queue(format!("{tag} {line} {{{len}+}}\r\n").as_bytes());
                self.io.send_payload(&body).await?;
                self.io.queue(b"\r\n");
                inflight.push_back((tag, idx, len));
                if self.io.queued() >= FLUSH_BYTES {
                    self.io.flush().await?;
                }
            } else {
                // Synchronizing literal: wait for "+" (earlier appends may
                // complete meanwhile), or a NO refusing this one.
                self.io
                    .queue(format!("{tag} {line} {{{len}}}\r\n").as_bytes());
                self.io.flush().await?;
                let mut refused = false;
                loop {
                    match self.read_step(&mut nocb).await? {
                        Step::Continue(_) => break,
                        Step::Untagged(_) => {}
                        Step::Tagged {
                            tag: t,
                            status,
                            text,
                        } if t == tag => {
                            results[idx] =
                                Some(self.append_result(&what, idx, len, status, text, Vec::new()));
                            refused = true;
                            break;
                        }
                        Step::Tagged {
                            tag: t,
                            status,
                            text,
                        } => {
                            self.complete(
                                &what,
                                &mut inflight,
                                &mut results,
                                &mut dropped,
                                t,
                                status,
                                text,
                            )?;
                        }
                    }
                }
                if refused {
                    continue;
                }
                self.io.send_payload(&body).await?;
                self.io.queue(b"\r\n");
                inflight.push_back((tag, idx, len));
            }
            while inflight.len() >= MAX_IN_FLIGHT {
                self.io.flush().await?;
                self.append_step(&what, &mut inflight, &mut results, &mut dropped)
                    .await?;
            }
        }
        self.io.flush().await?;
        while !inflight.is_empty() {
            self.append_step(&what, &mut inflight, &mut results, &mut dropped)
                .await?;
        }
        let mut results: Vec<Result<Appended>> = results
            .into_iter()
            .map(|r| r.expect("every message has a result"))
            .collect();
        if self.st.quirks.flag_after_append {
            self.flag_after_append(wire, &flagged, &mut results).await?;
        }
        Ok(results)
    }

    /// `\Flagged` again, by UID STORE, on the copies a server dropped it
    /// from at APPEND (Exchange), then read back: a copy where it did not
    /// stick (or that has no APPENDUID, or is not in the selected
    /// folder) gets it in `lost_flags`, so the caller can say so.
    async fn flag_after_append(
        &mut self,
        wire: &str,
        flagged: &[usize],
        results: &mut [Result<Appended>],
    ) -> Result<()> {
        let writable = self
            .st
            .selected
            .as_ref()
            .is_some_and(|s| s.wire == wire && !s.read_only);
        let mut uids: Vec<(usize, Uid)> = Vec::new();
        for &i in flagged {
            if let Ok(a) = &mut results[i] {
                match a.uid {
                    Some((_, u)) if writable => uids.push((i, u)),
                    _ => a.lost_flags.push("\\Flagged".into()),
                }
            }
        }
        if uids.is_empty() {
            return Ok(());
        }
        let set: Vec<Uid> = uids.iter().map(|(_, u)| *u).collect();
        let flag = Flags {
            flagged: true,
            ..Flags::default()
        };
        self.uid_store_flags(&set, StoreMode::Add, &flag).await?;
        let now = self
            .uid_fetch_meta(Some(&UidSet::from_uids(set.iter().copied())), None)
            .await?;
        for (i, u) in uids {
            let stuck = now.messages.iter().any(|m| m.uid == u && m.flags.flagged);
            if !stuck && let Ok(a) = &mut results[i] {
                a.lost_flags.push("\\Flagged".into());
            }
        }
        Ok(())
    }

    /// Sends `ready` as MULTIAPPEND groups (LITERAL+, a few groups in
    /// flight). Fills `results` for every message of an accepted group;
    /// returns the indices of refused groups, to be retried singly.
    async fn multiappend(
        &mut self,
        what: &str,
        mbox: &str,
        ready: &[(usize, String, Vec<u8>)],
        results: &mut [Option<Result<Appended>>],
        dropped: &mut [Vec<String>],
    ) -> Result<std::collections::HashSet<usize>> {
        let mut retry = std::collections::HashSet::new();
        let mut groups: Vec<&[(usize, String, Vec<u8>)]> = Vec::new();
        let mut start = 0;
        let mut bytes = 0;
        for (i, (_, _, body)) in ready.iter().enumerate() {
            if i > start && (i - start >= GROUP_MSGS || bytes + body.len() > GROUP_BYTES) {
                groups.push(&ready[start..i]);
                start = i;
                bytes = 0;
            }
            bytes += body.len();
        }
        groups.push(&ready[start..]);
        let mut inflight: VecDeque<(String, usize)> = VecDeque::new();
        let mut nocb = |_: &Untagged<'_>| Ok(false);
        let mut next = 0;
        while next < groups.len() || !inflight.is_empty() {
            while next < groups.len() && inflight.len() < GROUPS_IN_FLIGHT {
                let tag = self.io.tag();
                self.io.queue(format!("{tag} APPEND {mbox}").as_bytes());
                for (_, opts, body) in groups[next] {
                    self.io
                        .queue(format!("{opts} {{{}+}}\r\n", body.len()).as_bytes());
                    self.io.send_payload(body).await?;
                }
                self.io.queue(b"\r\n");
                inflight.push_back((tag, next));
                next += 1;
                if self.io.queued() >= FLUSH_BYTES {
                    self.io.flush().await?;
                }
            }
            self.io.flush().await?;
            match self.read_step(&mut nocb).await? {
                Step::Untagged(_) => {}
                Step::Continue(_) => {
                    self.io.broken = true;
                    return Err(Error::protocol(
                        &self.io.server,
                        format!("{what}: unexpected continuation request"),
                    ));
                }
                Step::Tagged { tag, status, text } => {
                    let Some(pos) = inflight.iter().position(|(t, _)| *t == tag) else {
                        return Err(self.stray_tag(&tag));
                    };
                    let (_, g) = inflight.remove(pos).expect("valid position");
                    let group = groups[g];
                    if status != Status::Ok {
                        retry.extend(group.iter().map(|(i, _, _)| *i));
                        continue;
                    }
                    let uids = if text.code_name().as_deref() == Some("APPENDUID") {
                        appenduid_set(text.code_args())
                    } else {
                        None
                    };
                    let uids = uids.filter(|(_, u)| u.len() == group.len());
                    for (k, (idx, _, _)) in group.iter().enumerate() {
                        results[*idx] = Some(Ok(Appended {
                            uid: uids.as_ref().map(|(uv, u)| (*uv, u[k])),
                            dropped_keywords: std::mem::take(&mut dropped[*idx]),
                            lost_flags: Vec::new(),
                        }));
                    }
                }
            }
        }
        Ok(retry)
    }

    async fn append_step(
        &mut self,
        what: &str,
        inflight: &mut VecDeque<(String, usize, usize)>,
        results: &mut [Option<Result<Appended>>],
        dropped: &mut [Vec<String>],
    ) -> Result<()> {
        let mut nocb = |_: &Untagged<'_>| Ok(false);
        match self.read_step(&mut nocb).await? {
            Step::Untagged(_) => Ok(()),
            Step::Continue(_) => {
                self.io.broken = true;
                Err(Error::protocol(
                    &self.io.server,
                    format!("{what}: unexpected continuation request"),
                ))
            }
            Step::Tagged { tag, status, text } => {
                self.complete(what, inflight, results, dropped, tag, status, text)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn complete(
        &mut self,
        what: &str,
        inflight: &mut VecDeque<(String, usize, usize)>,
        results: &mut [Option<Result<Appended>>],
        dropped: &mut [Vec<String>],
        tag: String,
        status: Status,
        text: RespText,
    ) -> Result<()> {
        let Some(pos) = inflight.iter().position(|(t, _, _)| *t == tag) else {
            return Err(self.stray_tag(&tag));
        };
        let (_, idx, len) = inflight.remove(pos).expect("valid position");
        let d = std::mem::take(&mut dropped[idx]);
        results[idx] = Some(self.append_result(what, idx, len, status, text, d));
        Ok(())
    }

    fn append_result(
        &self,
        what: &str,
        idx: usize,
        len: usize,
        status: Status,
        text: RespText,
        dropped_keywords: Vec<String>,
    ) -> Result<Appended> {
        if status != Status::Ok {
            return Err(Error::protocol(
                &self.io.server,
                format!(
                    "{what}: message #{idx} ({len} bytes): server said {}: {}",
                    if status == Status::No { "NO" } else { "BAD" },
                    text.display()
                ),
            ));
        }
        let uid = if text.code_name().as_deref() == Some("APPENDUID") {
            let mut it = text.code_args().split_ascii_whitespace();
            match (
                it.next().and_then(|v| v.parse().ok()),
                it.next().and_then(|v| v.parse().ok()),
            ) {
                (Some(uv), Some(u)) => Some((UidValidity(uv), Uid(u))),
                _ => None,
            }
        } else {
            None
        };
        Ok(Appended {
            uid,
            dropped_keywords,
            lost_flags: Vec::new(),
        })
    }
}

/// `APPENDUID uidvalidity uid-set` of a MULTIAPPEND: the UIDs in message
/// order (RFC 4315 §3: ranges ascend in the order the messages were given).
fn appenduid_set(args: &str) -> Option<(UidValidity, Vec<Uid>)> {
    let mut it = args.split_ascii_whitespace();
    let uv = UidValidity(it.next()?.parse().ok()?);
    let mut uids = Vec::new();
    for part in it.next()?.split(',') {
        let (a, b) = match part.split_once(':') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let a = part.parse::<u32>().ok()?;
                (a, a)
            }
        };
        let (lo, hi) = (a.min(b), a.max(b));
        if hi - lo > 1_000_000 {
            return None;
        }
        uids.extend((lo..=hi).map(Uid));
    }
    Some((uv, uids))
}

#[cfg(test)]
mod multi_tests {
    use super::*;

    #[test]
    fn appenduid_sets_in_order() {
        let (uv, u) = appenduid_set("38505 3955:3957,4000").unwrap();
        assert_eq!(uv, UidValidity(38505));
        assert_eq!(u, vec![Uid(3955), Uid(3956), Uid(3957), Uid(4000)]);
        assert!(appenduid_set("1").is_none());
        assert!(appenduid_set("x 1").is_none());
    }
}
