//! Recovery from a UIDVALIDITY change without downloading again (SPEC §3):
//! the folder's new UIDs are paired with the stored messages by
//! Message-ID + size, and by content digest where that is missing or
//! ambiguous. Whatever cannot be proven the same is treated as new.

use std::collections::HashMap;

use crate::types::Uid;

/// A stored message under the old UIDVALIDITY.
#[derive(Debug, Clone, PartialEq)]
pub struct RekeyRecord {
    pub uid: Uid,
    pub message_id: Option<String>,
    pub size: u64,
    pub digest: Option<[u8; 32]>,
}

/// A message on the server under the new UIDVALIDITY. `digest` is filled
/// only for the UIDs a previous call asked for.
pub type RekeySource = RekeyRecord;

/// The result: pairs to re-key in the state, UIDs whose digest is needed
/// to decide, and what is really new or gone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RekeyOutcome {
    /// (old UID, new UID): the same message.
    pub pairs: Vec<(Uid, Uid)>,
    /// New UIDs to download (only to hash) before calling again.
    pub need_digest: Vec<Uid>,
    /// New UIDs that match nothing stored: copy them.
    pub new: Vec<Uid>,
    /// Old UIDs that match nothing on the server any more.
    pub lost: Vec<Uid>,
}

type Key = (String, u64);

/// Pairs old records with the new listing. Call once without digests; if
/// `need_digest` is not empty, fetch those messages, fill in their
/// digests, and call again.
pub fn rekey(old: &[RekeyRecord], new: &[RekeySource]) -> RekeyOutcome {
    let mut out = RekeyOutcome::default();
    let mut old_used = vec![false; old.len()];
    let mut by_key_old: HashMap<Key, Vec<usize>> = HashMap::new();
    for (i, r) in old.iter().enumerate() {
        if let Some(m) = &r.message_id {
            by_key_old.entry((m.clone(), r.size)).or_default().push(i);
        }
    }
    let mut by_key_new: HashMap<Key, Vec<usize>> = HashMap::new();
    for (i, r) in new.iter().enumerate() {
        if let Some(m) = &r.message_id {
            by_key_new.entry((m.clone(), r.size)).or_default().push(i);
        }
    }
    let mut by_digest_old: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
    for (i, r) in old.iter().enumerate() {
        if let Some(d) = r.digest {
            by_digest_old.entry(d).or_default().push(i);
        }
    }
    let mut new_done = vec![false; new.len()];
    // 1. unique Message-ID + size on both sides: the same message.
    for (key, news) in &by_key_new {
        if let (Some(olds), [n]) = (by_key_old.get(key), news.as_slice())
            && let [o] = olds.as_slice()
        {
            out.pairs.push((old[*o].uid, new[*n].uid));
            old_used[*o] = true;
            new_done[*n] = true;
        }
    }
    // 2. everything else: by digest when we have it, else ask for it when
    //    a stored candidate exists that only a digest can confirm.
    let old_ambiguous_or_anonymous = |i: usize| {
        let r = &old[i];
        match &r.message_id {
            None => true,
            Some(m) => {
                by_key_old
                    .get(&(m.clone(), r.size))
                    .is_some_and(|v| v.len() > 1)
                    || by_key_new
                        .get(&(m.clone(), r.size))
                        .is_some_and(|v| v.len() > 1)
            }
        }
    };
    let any_old_candidate = |n: &RekeySource, old_used: &[bool]| -> bool {
        match &n.message_id {
            Some(m) => by_key_old
                .get(&(m.clone(), n.size))
                .is_some_and(|v| v.iter().any(|&i| !old_used[i])),
            None => old
                .iter()
                .enumerate()
                .any(|(i, r)| !old_used[i] && r.size == n.size && old_ambiguous_or_anonymous(i)),
        }
    };
    for (ni, n) in new.iter().enumerate() {
        if new_done[ni] {
            continue;
        }
        if let Some(d) = n.digest {
            let hit = by_digest_old
                .get(&d)
                .and_then(|v| v.iter().copied().find(|&i| !old_used[i]));
            match hit {
                Some(oi) => {
                    out.pairs.push((old[oi].uid, n.uid));
                    old_used[oi] = true;
                }
                None => out.new.push(n.uid),
            }
        } else if any_old_candidate(n, &old_used) {
            out.need_digest.push(n.uid);
        } else {
            out.new.push(n.uid);
        }
    }
    if out.need_digest.is_empty() {
        out.lost = old
            .iter()
            .enumerate()
            .filter(|(i, _)| !old_used[*i])
            .map(|(_, r)| r.uid)
            .collect();
    }
    out.pairs.sort();
    out.need_digest.sort();
    out.new.sort();
    out.lost.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(uid: u32, mid: Option<&str>, size: u64, digest: Option<u8>) -> RekeyRecord {
        RekeyRecord {
            uid: Uid(uid),
            message_id: mid.map(Into::into),
            size,
            digest: digest.map(|d| [d; 32]),
        }
    }

    #[test]
    fn unique_message_ids_pair_without_downloading() {
        let old = [
            r(1, Some("<a>"), 10, Some(1)),
            r(2, Some("<b>"), 20, Some(2)),
        ];
        let new = [
            r(101, Some("<b>"), 20, None),
            r(100, Some("<a>"), 10, None),
            r(102, Some("<c>"), 30, None),
        ];
        let o = rekey(&old, &new);
        assert_eq!(o.pairs, vec![(Uid(1), Uid(100)), (Uid(2), Uid(101))]);
        assert_eq!(o.new, vec![Uid(102)]);
        assert!(o.need_digest.is_empty() && o.lost.is_empty());
    }

    #[test]
    fn same_message_id_different_size_is_not_the_same() {
        let o = rekey(
            &[r(1, Some("<a>"), 10, Some(1))],
            &[r(100, Some("<a>"), 11, None)],
        );
        assert_eq!(o.new, vec![Uid(100)]);
        assert_eq!(o.lost, vec![Uid(1)]);
    }

    #[test]
    fn duplicates_and_missing_ids_need_digests_then_pair() {
        let old = [
            r(1, Some("<d>"), 10, Some(1)),
            r(2, Some("<d>"), 10, Some(2)),
            r(3, None, 50, Some(3)),
        ];
        let mut new = vec![
            r(200, Some("<d>"), 10, None),
            r(201, Some("<d>"), 10, None),
            r(202, None, 50, None),
            r(203, None, 7, None),
        ];
        let o = rekey(&old, &new);
        assert_eq!(o.need_digest, vec![Uid(200), Uid(201), Uid(202)]);
        assert_eq!(
            o.new,
            vec![Uid(203)],
            "no stored message of that size: new without hashing"
        );
        assert!(o.pairs.is_empty() && o.lost.is_empty());
        new[0].digest = Some([2; 32]);
        new[1].digest = Some([1; 32]);
        new[2].digest = Some([9; 32]); // content differs: a new message
        let o = rekey(&old, &new);
        assert_eq!(o.pairs, vec![(Uid(1), Uid(201)), (Uid(2), Uid(200))]);
        assert_eq!(o.new, vec![Uid(202), Uid(203)]);
        assert_eq!(o.lost, vec![Uid(3)]);
    }

    #[test]
    fn a_copy_never_pairs_twice() {
        // Two new copies of one stored message: one pairs, the other is new.
        let old = [r(1, None, 10, Some(1))];
        let new = [r(5, None, 10, Some(1)), r(6, None, 10, Some(1))];
        let o = rekey(&old, &new);
        assert_eq!(o.pairs, vec![(Uid(1), Uid(5))]);
        assert_eq!(o.new, vec![Uid(6)]);
    }
}
