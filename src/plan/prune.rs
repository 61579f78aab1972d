//! Retention rules of `prune` (SPEC §2): a union of deletions, then the
//! only-if-stored proof. Anything unproven is kept and reported.

use super::MsgKey;
use crate::config::PruneRules;
use crate::types::Flags;

/// A message that a rule may delete.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneCandidate {
    pub key: MsgKey,
    /// Arrival date, unix seconds.
    pub date: i64,
    pub size: u64,
    pub flags: Option<Flags>,
    pub message_id: Option<String>,
}

/// What prune will do in one folder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PruneDecision {
    /// Delete these, each with the rules that chose it.
    pub delete: Vec<(PruneCandidate, Vec<String>)>,
    /// A rule chose these, but no copy is proven: kept.
    pub unproven: Vec<(PruneCandidate, Vec<String>)>,
}

/// Applies the rules to one folder at time `now`. Flagged messages are kept
/// unless `include_flagged`; with `rules.only_unread`, read ones are too. `stored` answers "is a durable copy proven?"
/// (always true when no `--only-if-stored-in` was given).
pub fn plan_prune(
    cands: &[PruneCandidate],
    rules: &PruneRules,
    include_flagged: bool,
    now: i64,
    stored: &dyn Fn(&PruneCandidate) -> bool,
) -> PruneDecision {
    let eligible: Vec<&PruneCandidate> = cands
        .iter()
        .filter(|c| include_flagged || !c.flags.as_ref().is_some_and(|f| f.flagged))
        .filter(|c| !rules.only_unread || !c.flags.as_ref().is_some_and(|f| f.seen))
        .collect();
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); eligible.len()];
    if let Some(d) = rules.older_than_days {
        let cutoff = now - i64::from(d) * 86_400;
        for (i, c) in eligible.iter().enumerate() {
            if c.date < cutoff {
                reasons[i].push(format!("older-than {d}d"));
            }
        }
    }
    if let Some(n) = rules.larger_than {
        for (i, c) in eligible.iter().enumerate() {
            if c.size > n {
                reasons[i].push(format!("larger-than {n}"));
            }
        }
    }
    // Newest first for keep-last; oldest first for max-total.
    let mut order: Vec<usize> = (0..eligible.len()).collect();
    order.sort_by(|&a, &b| {
        eligible[b]
            .date
            .cmp(&eligible[a].date)
            .then(eligible[b].key.cmp(&eligible[a].key))
    });
    if let Some(n) = rules.keep_last {
        for &i in order.iter().skip(n as usize) {
            reasons[i].push(format!("keep-last {n}"));
        }
    }
    if let Some(max) = rules.max_total {
        // Count every message of the folder (flagged ones take space too),
        // minus what other rules already delete; then oldest go first.
        let mut total: u64 = cands.iter().map(|c| c.size).sum();
        for (i, c) in eligible.iter().enumerate() {
            if !reasons[i].is_empty() {
                total -= c.size;
            }
        }
        for &i in order.iter().rev() {
            if total <= max {
                break;
            }
            if reasons[i].is_empty() {
                total -= eligible[i].size;
                reasons[i].push(format!("max-total {max}"));
            }
        }
    }
    let mut d = PruneDecision::default();
    for (i, c) in eligible.into_iter().enumerate() {
        let r = std::mem::take(&mut reasons[i]);
        if r.is_empty() {
            continue;
        }
        if stored(c) {
            d.delete.push((c.clone(), r));
        } else {
            d.unproven.push((c.clone(), r));
        }
    }
    d.delete.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    d.unproven.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Uid;

    const DAY: i64 = 86_400;

    fn c(uid: u32, age_days: i64, size: u64, flagged: bool) -> PruneCandidate {
        let f = Flags {
            flagged,
            ..Default::default()
        };
        PruneCandidate {
            key: MsgKey::Uid(Uid(uid)),
            date: 1000 * DAY - age_days * DAY,
            size,
            flags: Some(f),
            message_id: None,
        }
    }

    fn uids(d: &[(PruneCandidate, Vec<String>)]) -> Vec<u32> {
        d.iter().map(|(c, _)| c.key.uid().unwrap().0).collect()
    }

    const NOW: i64 = 1000 * DAY;

    #[test]
    fn older_than_and_flagged_kept() {
        let cs = [
            c(1, 400, 10, false),
            c(2, 400, 10, true),
            c(3, 10, 10, false),
        ];
        let rules = PruneRules {
            older_than_days: Some(365),
            ..Default::default()
        };
        let d = plan_prune(&cs, &rules, false, NOW, &|_| true);
        assert_eq!(uids(&d.delete), vec![1]);
        assert_eq!(d.delete[0].1, vec!["older-than 365d".to_string()]);
        let d = plan_prune(&cs, &rules, true, NOW, &|_| true);
        assert_eq!(uids(&d.delete), vec![1, 2]);
    }

    #[test]
    fn only_unread_keeps_read_messages() {
        let mut read = c(1, 400, 10, false);
        read.flags.as_mut().unwrap().seen = true;
        let cs = [read, c(2, 400, 10, false)];
        let rules = PruneRules {
            older_than_days: Some(30),
            only_unread: true,
            ..Default::default()
        };
        let d = plan_prune(&cs, &rules, false, NOW, &|_| true);
        assert_eq!(uids(&d.delete), vec![2]);
    }

    #[test]
    fn keep_last_keeps_the_newest() {
        let cs = [
            c(1, 5, 10, false),
            c(2, 4, 10, false),
            c(3, 3, 10, false),
            c(4, 2, 10, false),
        ];
        let d = plan_prune(
            &cs,
            &PruneRules {
                keep_last: Some(2),
                ..Default::default()
            },
            false,
            NOW,
            &|_| true,
        );
        assert_eq!(uids(&d.delete), vec![1, 2]);
    }

    #[test]
    fn max_total_deletes_oldest_first_until_under() {
        let cs = [
            c(1, 5, 100, false),
            c(2, 4, 100, false),
            c(3, 3, 100, false),
        ];
        let d = plan_prune(
            &cs,
            &PruneRules {
                max_total: Some(150),
                ..Default::default()
            },
            false,
            NOW,
            &|_| true,
        );
        assert_eq!(uids(&d.delete), vec![1, 2]);
    }

    #[test]
    fn rules_union_and_reasons_accumulate() {
        let cs = [
            c(1, 400, 5000, false),
            c(2, 1, 5000, false),
            c(3, 1, 10, false),
        ];
        let rules = PruneRules {
            older_than_days: Some(365),
            larger_than: Some(1000),
            ..Default::default()
        };
        let d = plan_prune(&cs, &rules, false, NOW, &|_| true);
        assert_eq!(uids(&d.delete), vec![1, 2]);
        assert_eq!(d.delete[0].1.len(), 2);
    }

    #[test]
    fn unproven_is_kept() {
        let cs = [c(1, 400, 10, false), c(2, 400, 10, false)];
        let rules = PruneRules {
            older_than_days: Some(30),
            ..Default::default()
        };
        let d = plan_prune(&cs, &rules, false, NOW, &|c| c.key == MsgKey::Uid(Uid(1)));
        assert_eq!(uids(&d.delete), vec![1]);
        assert_eq!(uids(&d.unproven), vec![2]);
    }
}
