//! Copy planning: which source messages to copy, which were already
//! written by a run that died before recording them (adopt), and whose
//! flags changed on the server.

use std::collections::HashMap;

use super::{Known, MsgKey, SkipReason, SourceMsg};
use crate::config::Filter;
use crate::types::Flags;

/// A message already on the target that carries this source's identity in
/// its name (written, then the run was killed before the state commit).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalFile {
    pub key: MsgKey,
    pub location: String,
    pub size: u64,
}

/// The actions for one folder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FolderPlan {
    /// Download and store these, in UID/listing order.
    pub copy: Vec<SourceMsg>,
    /// Already on the target: record in the state, download nothing.
    pub adopt: Vec<(SourceMsg, LocalFile)>,
    /// Carry the server's new flags to the stored copy.
    pub set_flags: Vec<(Known, Flags)>,
    /// Not copied, and why (reported, counted as skipped).
    pub skipped: Vec<(MsgKey, SkipReason)>,
    /// Known in the state but no longer on the source (only with a
    /// complete listing): reported, never deleted locally.
    pub gone: Vec<MsgKey>,
}

impl FolderPlan {
    /// Nothing to do at all.
    pub fn is_empty(&self) -> bool {
        self.copy.is_empty() && self.adopt.is_empty() && self.set_flags.is_empty()
    }

    /// Bytes that `copy` will download.
    pub fn copy_bytes(&self) -> u64 {
        self.copy.iter().map(|m| m.size).sum()
    }
}

/// Plans one folder. `source` is the listing (complete, or only the changes
/// since the last HIGHESTMODSEQ when `complete` is false); `known` the
/// state's records under the current UIDVALIDITY; `local` the target's
/// files that carry this source's identity (may be empty when the caller
/// knows there is nothing to copy).
pub fn plan_copy(
    source: &[SourceMsg],
    complete: bool,
    known: &HashMap<MsgKey, Known>,
    local: &HashMap<MsgKey, LocalFile>,
    filter: &Filter,
) -> FolderPlan {
    let mut plan = FolderPlan::default();
    for m in source {
        match known.get(&m.key) {
            Some(k) => {
                // Flags: follow the server only where the server changed
                // them since we last synced; local edits otherwise survive.
                if let (Some(now), Some(before)) = (&m.flags, &k.flags)
                    && (!now.same_standard(before) || now.keywords != before.keywords)
                {
                    plan.set_flags.push((k.clone(), now.clone()));
                }
            }
            None => {
                if let Some(f) = local.get(&m.key) {
                    plan.adopt.push((m.clone(), f.clone()));
                } else if let Some(max) = filter.max_size.filter(|&max| m.size > max) {
                    plan.skipped
                        .push((m.key.clone(), SkipReason::TooLarge { size: m.size, max }));
                } else if filter.since.is_some_and(|s| m.date != 0 && m.date < s) {
                    plan.skipped.push((m.key.clone(), SkipReason::TooOld));
                } else {
                    plan.copy.push(m.clone());
                }
            }
        }
    }
    if complete {
        let present: std::collections::HashSet<&MsgKey> = source.iter().map(|m| &m.key).collect();
        let mut gone: Vec<MsgKey> = known
            .values()
            .filter(|k| !k.deleted && !present.contains(&k.key))
            .map(|k| k.key.clone())
            .collect();
        gone.sort();
        plan.gone = gone;
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Uid, Uidl};

    fn src(uid: u32, flags: &[&str]) -> SourceMsg {
        SourceMsg {
            key: MsgKey::Uid(Uid(uid)),
            size: 100 * uid as u64,
            date: 1000 + uid as i64,
            flags: Some(Flags::from_imap(flags.iter().copied())),
        }
    }

    fn known(uid: u32, flags: &[&str]) -> (MsgKey, Known) {
        let key = MsgKey::Uid(Uid(uid));
        (
            key.clone(),
            Known {
                id: uid as i64,
                key,
                flags: Some(Flags::from_imap(flags.iter().copied())),
                stored_at: 5,
                location: format!("file{uid}"),
                size: 100 * uid as u64,
                date: 1000 + uid as i64,
                message_id: None,
                deleted: false,
            },
        )
    }

    #[test]
    fn copies_only_new_messages() {
        let source = vec![src(1, &[]), src(2, &[]), src(3, &["\\Seen"])];
        let k: HashMap<_, _> = [known(1, &[]), known(2, &[])].into_iter().collect();
        let p = plan_copy(&source, true, &k, &HashMap::new(), &Filter::default());
        assert_eq!(
            p.copy.iter().map(|m| m.key.clone()).collect::<Vec<_>>(),
            vec![MsgKey::Uid(Uid(3))]
        );
        assert!(p.set_flags.is_empty() && p.gone.is_empty() && p.adopt.is_empty());
        assert_eq!(p.copy_bytes(), 300);
    }

    #[test]
    fn nothing_new_is_an_empty_plan() {
        let source = vec![src(1, &["\\Seen"])];
        let k: HashMap<_, _> = [known(1, &["\\Seen"])].into_iter().collect();
        assert!(plan_copy(&source, true, &k, &HashMap::new(), &Filter::default()).is_empty());
    }

    #[test]
    fn server_flag_changes_are_carried() {
        let source = vec![src(1, &["\\Seen", "\\Flagged"]), src(2, &["$Forwarded"])];
        let k: HashMap<_, _> = [known(1, &["\\Seen"]), known(2, &[])].into_iter().collect();
        let p = plan_copy(&source, true, &k, &HashMap::new(), &Filter::default());
        assert_eq!(p.set_flags.len(), 2);
        assert!(p.set_flags[0].1.flagged);
        assert_eq!(p.set_flags[0].0.location, "file1");
    }

    #[test]
    fn written_but_unrecorded_is_adopted_not_copied() {
        let source = vec![src(1, &[]), src(2, &[])];
        let local: HashMap<_, _> = [(
            MsgKey::Uid(Uid(2)),
            LocalFile {
                key: MsgKey::Uid(Uid(2)),
                location: "x".into(),
                size: 200,
            },
        )]
        .into_iter()
        .collect();
        let p = plan_copy(&source, true, &HashMap::new(), &local, &Filter::default());
        assert_eq!(p.copy.len(), 1);
        assert_eq!(p.adopt.len(), 1);
        assert_eq!(p.adopt[0].1.location, "x");
    }

    #[test]
    fn filters_skip_with_reasons() {
        let source = vec![src(1, &[]), src(50, &[])];
        let f = Filter {
            max_size: Some(1000),
            ..Default::default()
        };
        let p = plan_copy(&source, true, &HashMap::new(), &HashMap::new(), &f);
        assert_eq!(p.copy.len(), 1);
        assert_eq!(
            p.skipped,
            vec![(
                MsgKey::Uid(Uid(50)),
                SkipReason::TooLarge {
                    size: 5000,
                    max: 1000
                }
            )]
        );
        let f = Filter {
            since: Some(1010),
            ..Default::default()
        };
        let p = plan_copy(&source, true, &HashMap::new(), &HashMap::new(), &f);
        assert_eq!(p.skipped, vec![(MsgKey::Uid(Uid(1)), SkipReason::TooOld)]);
    }

    #[test]
    fn vanished_reported_only_with_complete_listing() {
        let k: HashMap<_, _> = [known(1, &[]), known(2, &[])].into_iter().collect();
        let source = vec![src(2, &[])];
        assert_eq!(
            plan_copy(&source, true, &k, &HashMap::new(), &Filter::default()).gone,
            vec![MsgKey::Uid(Uid(1))]
        );
        assert!(
            plan_copy(&source, false, &k, &HashMap::new(), &Filter::default())
                .gone
                .is_empty()
        );
    }

    #[test]
    fn pop3_keys_work_the_same() {
        let m = |u: &str| SourceMsg {
            key: MsgKey::Uidl(Uidl(u.into())),
            size: 10,
            date: 0,
            flags: None,
        };
        let mut k = HashMap::new();
        let (_, mut kn) = known(1, &[]);
        kn.key = MsgKey::Uidl(Uidl("a".into()));
        kn.flags = None;
        k.insert(kn.key.clone(), kn);
        let f = Filter {
            since: Some(5),
            ..Default::default()
        }; // POP3 has no date before download: not filtered
        let p = plan_copy(&[m("a"), m("b")], true, &k, &HashMap::new(), &f);
        assert_eq!(p.copy, vec![m("b")]);
        assert!(p.set_flags.is_empty());
    }
}
