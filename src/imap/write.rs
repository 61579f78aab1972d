//! Changing the selected mailbox: flags, deletion by UID, moving. Every
//! command is checked to its tagged OK; deletion never uses a bare
//! EXPUNGE unless the caller asks for it by its dangerous name.

use super::codec::UidSet;
use super::parse::Untagged;
use super::session::{Part, Session, astring};
use crate::error::{Error, Result};
use crate::types::{Flags, Uid, UidValidity};

/// How `uid_store_flags` combines the given flags with the current ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Add,
    Remove,
    Replace,
}

/// COPYUID (RFC 4315): where copied/moved messages landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyUid {
    pub uidvalidity: UidValidity,
    /// (source UID, destination UID) pairs.
    pub map: Vec<(Uid, Uid)>,
}

/// Parses `uidvalidity src-set dst-set` of a COPYUID code.
fn parse_copyuid(args: &str) -> Option<CopyUid> {
    let mut it = args.split_ascii_whitespace();
    let uv = it.next()?.parse().ok()?;
    let expand = |s: &str| -> Vec<u32> {
        super::parse::parse_seq_set(s)
            .into_iter()
            .flat_map(|(a, b)| a..=b)
            .collect()
    };
    let src = expand(it.next()?);
    let dst = expand(it.next()?);
    if src.len() != dst.len() {
        return None;
    }
    Some(CopyUid {
        uidvalidity: UidValidity(uv),
        map: src
            .into_iter()
            .zip(dst)
            .map(|(a, b)| (Uid(a), Uid(b)))
            .collect(),
    })
}

impl Session {
    fn need_writable(&self, what: &str) -> Result<()> {
        match &self.st.selected {
            None => Err(Error::protocol(
                &self.io.server,
                format!("{what}: no mailbox selected"),
            )),
            Some(s) if s.read_only => Err(Error::protocol(
                &self.io.server,
                format!("{what}: folder {} is open read-only (EXAMINE)", s.wire),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Runs `UID <verb> <set> <tail>` over compact UID chunks, pipelined.
    async fn uid_cmd_chunks(&mut self, verb: &str, uids: &UidSet, tail: &str) -> Result<()> {
        let cmds: Vec<String> = uids
            .chunks(5000, 7000)
            .iter()
            .map(|c| format!("UID {verb} {c}{tail}"))
            .collect();
        self.run_pipelined(&cmds, 4, |_| Ok(false)).await
    }

    /// `UID STORE … [+-]FLAGS.SILENT (…)`: silent, so a 10,000-message
    /// flag sync does not echo 10,000 FETCH responses.
    pub async fn uid_store_flags(
        &mut self,
        uids: &[Uid],
        mode: StoreMode,
        flags: &Flags,
    ) -> Result<()> {
        let set = UidSet::from_uids(uids.iter().copied());
        let what = "UID STORE";
        self.need_writable(what)?;
        let list = flags.to_imap();
        if set.is_empty() || (list.is_empty() && mode != StoreMode::Replace) {
            return Ok(());
        }
        let op = match mode {
            StoreMode::Add => "+FLAGS.SILENT",
            StoreMode::Remove => "-FLAGS.SILENT",
            StoreMode::Replace => "FLAGS.SILENT",
        };
        self.uid_cmd_chunks("STORE", &set, &format!(" {op} ({list})"))
            .await
    }

    /// `UID EXPUNGE` (UIDPLUS): removes exactly these UIDs. Refused on a
    /// server without UIDPLUS, where the only alternative, EXPUNGE, would
    /// also remove other clients' `\Deleted` messages. Marks them
    /// `\Deleted` first.
    pub async fn uid_expunge(&mut self, uids: &[Uid]) -> Result<()> {
        self.need_writable("UID EXPUNGE")?;
        if !self.st.caps.uidplus {
            return Err(Error::protocol(
                &self.io.server,
                "the server lacks UIDPLUS, so messages cannot be deleted by UID; refusing a bare EXPUNGE, which could remove other clients' \\Deleted messages (use --to-trash instead)",
            ));
        }
        let set = UidSet::from_uids(uids.iter().copied());
        if set.is_empty() {
            return Ok(());
        }
        let deleted = Flags {
            deleted: true,
            ..Flags::default()
        };
        self.uid_store_flags(uids, StoreMode::Add, &deleted).await?;
        self.uid_cmd_chunks("EXPUNGE", &set, "").await
    }

    /// Bare `EXPUNGE`: removes every `\Deleted` message in the folder,
    /// including ones other clients marked. Only for explicit user request.
    pub async fn expunge_all_dangerous(&mut self) -> Result<()> {
        self.need_writable("EXPUNGE")?;
        self.simple("EXPUNGE").await.map(|_| ())
    }

    /// Moves `uids` to `dest` (wire name): `UID MOVE`, or without MOVE,
    /// COPY then `\Deleted` and `UID EXPUNGE` (refused up front if UIDPLUS
    /// is missing too, so nothing is half done). Returns COPYUID when the
    /// server gives it.
    pub async fn uid_move(&mut self, uids: &[Uid], dest: &str) -> Result<Option<CopyUid>> {
        self.need_writable("UID MOVE")?;
        let set = UidSet::from_uids(uids.iter().copied());
        if set.is_empty() {
            return Ok(None);
        }
        let use_move = self.st.caps.move_;
        if !use_move && !self.st.caps.uidplus {
            return Err(Error::protocol(
                &self.io.server,
                "the server has neither MOVE nor UIDPLUS; refusing to move (copy then bare EXPUNGE could remove other clients' messages)",
            ));
        }
        let verb = if use_move { "MOVE" } else { "COPY" };
        let mut copy = CopyUid {
            uidvalidity: UidValidity(0),
            map: Vec::new(),
        };
        let mut have_copyuid = false;
        for chunk in set.chunks(5000, 7000) {
            let parts = [Part::Text(format!("UID {verb} {chunk} ")), astring(dest)];
            let mut found: Option<CopyUid> = None;
            let text = self
                .run(&parts, &format!("UID {verb} to {dest}"), |u| {
                    if let Untagged::Status(_, t) = u
                        && t.code_name().as_deref() == Some("COPYUID")
                    {
                        found = parse_copyuid(t.code_args());
                        return Ok(true);
                    }
                    Ok(false)
                })
                .await?;
            if text.code_name().as_deref() == Some("COPYUID") {
                found = parse_copyuid(text.code_args());
            }
            if let Some(f) = found {
                have_copyuid = true;
                copy.uidvalidity = f.uidvalidity;
                copy.map.extend(f.map);
            }
        }
        if !use_move {
            self.uid_expunge(uids).await?;
        }
        Ok(have_copyuid.then_some(copy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copyuid_parses_ranges() {
        let c = parse_copyuid("38505 304,319:320 3956:3958").unwrap();
        assert_eq!(c.uidvalidity, UidValidity(38505));
        assert_eq!(
            c.map,
            vec![
                (Uid(304), Uid(3956)),
                (Uid(319), Uid(3957)),
                (Uid(320), Uid(3958))
            ]
        );
        assert!(parse_copyuid("1 1:2 5").is_none());
    }
}
