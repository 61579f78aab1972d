//! The change stamp of a Maildir source folder, so a `push` rerun from a
//! Maildir can pass over a folder nothing happened to without listing it
//! (the Maildir's counterpart of an IMAP folder's HIGHESTMODSEQ).
//!
//! Every change push cares about is a directory change in `cur/` or
//! `new/`: a delivered message is a file renamed in, a flag change a
//! rename within `cur/`, a deletion an unlink, and each of these sets the
//! directory's mtime. Keywords are letters in the names, meaning what
//! `dovecot-keywords` says. So the stamp hashes, for `cur/` and `new/`,
//! the mtime (with nanoseconds), the inode and the number of entries, and
//! the mtime and size of `dovecot-keywords`.
//!
//! A change within the file system's timestamp granularity of the moment
//! the stamp was taken could leave the mtime as it was (a flag change
//! keeps the count too). So, as git does for its index, a stamp is only
//! trusted when every mtime in it is at least [`SETTLED`] older than the
//! moment it was taken; a fresher folder gets no stamp, and the next run
//! lists it. The stamp is taken before the folder is listed, so what
//! changes during a push changes the stamp the next run sees.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// How old every mtime in a stamp must be for it to count: above the
/// coarsest common timestamp granularity (2 s, FAT), with room for a
/// network file system's clock being a little ahead.
pub(super) const SETTLED: Duration = Duration::from_secs(3);

/// The stamp of the Maildir folder at `dir` as of `now` (63 bits, as the
/// state stores it) and the number of entries in `cur/` and `new/`;
/// `None` when it changed too recently to be trusted (see the module doc)
/// or has no `cur/`.
pub(super) fn of(dir: &Path, now: SystemTime) -> Result<Option<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    let mut h = Fnv::new();
    let mut total = 0;
    let settled = |t: SystemTime| t + SETTLED <= now;
    for sub in ["cur", "new"] {
        let d = dir.join(sub);
        let m = match std::fs::metadata(&d) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && sub == "new" => {
                h.u64(0);
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&d, e)),
        };
        let mtime = m.modified().map_err(|e| Error::io(&d, e))?;
        if !settled(mtime) {
            return Ok(None);
        }
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?.count();
        h.u64(nanos(mtime));
        h.u64(m.ino());
        h.u64(m.dev());
        h.u64(entries as u64);
        total += entries as u64;
    }
    let kw = dir.join("dovecot-keywords");
    match std::fs::metadata(&kw) {
        Ok(m) => {
            let mtime = m.modified().map_err(|e| Error::io(&kw, e))?;
            if !settled(mtime) {
                return Ok(None);
            }
            h.u64(nanos(mtime));
            h.u64(m.len());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => h.u64(0),
        Err(e) => return Err(Error::io(&kw, e)),
    }
    Ok(Some((h.0 & (i64::MAX as u64), total)))
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// FNV-1a, 64 bit: stable across runs and builds (the std hasher is not).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn u64(&mut self, v: u64) {
        for b in v.to_le_bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for s in ["cur", "new", "tmp"] {
            std::fs::create_dir(d.path().join(s)).unwrap();
        }
        d
    }

    /// Sets the mtime of `p` to `secs` ago.
    fn age(p: &Path, now: SystemTime, secs: u64) {
        let f = std::fs::File::open(p).unwrap();
        f.set_modified(now - Duration::from_secs(secs)).unwrap();
    }

    /// Puts every mtime of the folder a minute back.
    fn settle(d: &Path, now: SystemTime) {
        for s in ["cur", "new", "dovecot-keywords"] {
            if d.join(s).exists() {
                age(&d.join(s), now, 60);
            }
        }
    }

    #[test]
    fn every_change_push_cares_about_changes_the_stamp() {
        let d = folder();
        let dir = d.path();
        let cur = dir.join("cur");
        std::fs::write(cur.join("1.M1.host:2,S"), "a").unwrap();
        // Each change against a settled folder; the stamps are read "a
        // minute later", so the kernel's own mtimes count.
        let later = || SystemTime::now() + Duration::from_secs(60);
        let check = |what: &str, change: &dyn Fn()| {
            settle(dir, SystemTime::now());
            let before = of(dir, later()).unwrap().expect("settled").0;
            assert_eq!(
                of(dir, later()).unwrap().map(|s| s.0),
                Some(before),
                "stable"
            );
            change();
            let after = of(dir, later()).unwrap().unwrap().0;
            assert_ne!(before, after, "{what}");
            assert!(after <= i64::MAX as u64);
        };
        check("a flag change (a rename within cur/)", &|| {
            std::fs::rename(cur.join("1.M1.host:2,S"), cur.join("1.M1.host:2,FS")).unwrap()
        });
        check("a delivery into new/", &|| {
            std::fs::write(dir.join("new/2.M2.host"), "b").unwrap()
        });
        check("new/ to cur/", &|| {
            std::fs::rename(dir.join("new/2.M2.host"), cur.join("2.M2.host:2,")).unwrap()
        });
        check("a deletion", &|| {
            std::fs::remove_file(cur.join("2.M2.host:2,")).unwrap()
        });
        check("a new keyword name", &|| {
            std::fs::write(dir.join("dovecot-keywords"), "0 $Forwarded\n").unwrap()
        });
        assert_eq!(
            of(dir, later()).unwrap().unwrap().1,
            1,
            "files in cur/ and new/"
        );
    }

    #[test]
    fn a_fresh_change_gives_no_stamp() {
        let d = folder();
        let now = SystemTime::now();
        settle(d.path(), now);
        assert!(of(d.path(), now).unwrap().is_some());
        age(&d.path().join("new"), now, 1);
        assert_eq!(of(d.path(), now).unwrap(), None, "changed a second ago");
        age(&d.path().join("new"), now, 60);
        std::fs::write(d.path().join("dovecot-keywords"), "0 x\n").unwrap();
        assert_eq!(of(d.path(), now).unwrap(), None);
        assert_eq!(of(&d.path().join("nope"), now).unwrap(), None);
    }
}
