//! Retention on the source after a copy (SPEC §2 fetch, "leave messages on
//! the server for N days"): only messages the state shows durably stored
//! are ever candidates.

use std::collections::HashSet;

use super::{Known, MsgKey};
use crate::config::Retention;

/// A message to delete on the source, with the reason the user will see.
#[derive(Debug, Clone, PartialEq)]
pub struct Deletion {
    pub key: MsgKey,
    pub reason: String,
    pub size: u64,
    pub date: i64,
    pub message_id: Option<String>,
}

/// The newest `first_stored_at` a message may have to be due for deletion
/// under `retention`, or None when nothing is ever deleted. The same
/// cutoff as [`source_deletions`], for a cheap "is anything due?" query.
pub fn deletion_cutoff(retention: Retention, now: i64) -> Option<i64> {
    match retention {
        Retention::Keep => None,
        Retention::AfterFetch => Some(i64::MAX),
        Retention::AfterDays(d) => Some(now - i64::from(d) * 86_400),
    }
}

/// The source deletions that `retention` asks for at time `now`. `known`
/// are the state's records (stored durably, by construction); `present`,
/// when given, limits to keys still on the server (POP3 must not DELE a
/// message number that is another message now).
pub fn source_deletions<'a>(
    known: impl IntoIterator<Item = &'a Known>,
    retention: Retention,
    now: i64,
    present: Option<&HashSet<MsgKey>>,
) -> Vec<Deletion> {
    let Some(cutoff) = deletion_cutoff(retention, now) else {
        return Vec::new();
    };
    let reason = match retention {
        Retention::AfterDays(d) => format!("delete-after {d}d"),
        _ => "delete-after-fetch".to_string(),
    };
    let mut out: Vec<Deletion> = known
        .into_iter()
        .filter(|k| !k.deleted && k.stored_at <= cutoff)
        .filter(|k| present.is_none_or(|p| p.contains(&k.key)))
        .map(|k| Deletion {
            key: k.key.clone(),
            reason: reason.clone(),
            size: k.size,
            date: k.date,
            message_id: k.message_id.clone(),
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Uid;

    fn k(uid: u32, stored_at: i64, deleted: bool) -> Known {
        Known {
            id: uid as i64,
            key: MsgKey::Uid(Uid(uid)),
            flags: None,
            stored_at,
            location: String::new(),
            size: 1,
            date: 0,
            message_id: None,
            deleted,
        }
    }

    #[test]
    fn keep_deletes_nothing() {
        assert!(source_deletions(&[k(1, 0, false)], Retention::Keep, 1_000_000, None).is_empty());
    }

    #[test]
    fn after_days_uses_the_stored_time() {
        let day = 86_400;
        let now = 100 * day;
        let ks = [
            k(1, now - 31 * day, false),
            k(2, now - 29 * day, false),
            k(3, now - 40 * day, true),
        ];
        let d = source_deletions(&ks, Retention::AfterDays(30), now, None);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].key, MsgKey::Uid(Uid(1)));
        assert_eq!(d[0].reason, "delete-after 30d");
        // exactly at the boundary counts as old enough
        assert_eq!(
            source_deletions(
                &[k(4, now - 30 * day, false)],
                Retention::AfterDays(30),
                now,
                None
            )
            .len(),
            1
        );
    }

    #[test]
    fn after_fetch_takes_all_stored_but_only_present() {
        let ks = [k(1, 5, false), k(2, 6, false)];
        let present: HashSet<MsgKey> = [MsgKey::Uid(Uid(2))].into_iter().collect();
        let d = source_deletions(&ks, Retention::AfterFetch, 7, Some(&present));
        assert_eq!(
            d.iter().map(|d| d.key.clone()).collect::<Vec<_>>(),
            vec![MsgKey::Uid(Uid(2))]
        );
    }
}
