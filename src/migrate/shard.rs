//! Splitting a manifest between runners (Kubernetes Indexed Jobs, GNU
//! parallel, systemd template units) with no overlap and nothing left out.
//!
//! Shard `I/N` (0-based, like `JOB_COMPLETION_INDEX`) holds the accounts
//! whose id hashes to `I`: `fnv1a64(id) % N`, FNV-1a over the id's UTF-8
//! bytes. By the id, not the row number, so an account keeps its shard
//! when rows are added, removed or reordered: a runner's state directory
//! keeps matching its accounts between runs. Every id lands in exactly one
//! shard, so the shards are disjoint and together are the manifest.

use crate::error::{Error, Result};

/// One runner's part: `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Parses `I/N` (0 ≤ I < N).
    pub fn parse(s: &str) -> Result<Shard> {
        let bad = || {
            Error::Usage(format!(
                "--shard {s:?}: write I/N with 0 <= I < N, e.g. 0/4 (0-based, like JOB_COMPLETION_INDEX)"
            ))
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u64, u64) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// `--shards N` with the index from `JOB_COMPLETION_INDEX`, as a
    /// Kubernetes Indexed Job sets it in each pod.
    pub fn from_env(count: u64, value: Option<&str>) -> Result<Shard> {
        let Some(v) = value else {
            return Err(Error::Usage(
                "--shards N takes the index from JOB_COMPLETION_INDEX, which is not set; \
                 use --shard I/N"
                    .into(),
            ));
        };
        Shard::parse(&format!("{}/{count}", v.trim())).map_err(|_| {
            Error::Usage(format!(
                "JOB_COMPLETION_INDEX={v:?} is not an index below --shards {count}"
            ))
        })
    }

    /// True when the account `id` belongs to this shard.
    pub fn holds(&self, id: &str) -> bool {
        fnv1a(id.as_bytes()) % self.count == self.index
    }
}

/// 64-bit FNV-1a: tiny, stable across versions and platforms, and easy
/// to reproduce in a shell or Python script that wants to predict shards.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_and_complete() {
        let ids: Vec<String> = (0..1000).map(|i| format!("user{i}@example.com")).collect();
        for n in 1..=7 {
            let shards: Vec<Shard> = (0..n)
                .map(|i| Shard::parse(&format!("{i}/{n}")).unwrap())
                .collect();
            for id in &ids {
                assert_eq!(
                    shards.iter().filter(|s| s.holds(id)).count(),
                    1,
                    "{id} in {n}"
                );
            }
            // Roughly even: no shard gets less than half its share.
            for s in &shards {
                let k = ids.iter().filter(|id| s.holds(id)).count() as u64;
                assert!(k * 2 * n >= 1000, "shard {s:?} has {k}");
            }
        }
    }

    #[test]
    fn the_hash_is_fnv1a_and_stable() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn parse_and_env() {
        assert_eq!(Shard::parse("2/3").unwrap(), Shard { index: 2, count: 3 });
        for bad in ["3/3", "1/0", "1", "-1/3", "a/b", "1/3/4"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Shard::from_env(4, Some("3")).unwrap().index, 3);
        assert!(Shard::from_env(4, Some("4")).is_err());
        assert!(Shard::from_env(4, None).is_err());
    }
}
