//! IMAP keywords in a Maildir, the way Dovecot stores them, so that Dovecot
//! serving the backup (and `push` from it) sees them: a folder's
//! `dovecot-keywords` file names up to 26 keywords, one `<index> <name>`
//! line each, and a message carries the lowercase letters of its keywords
//! after the standard flags in its name (`:2,FSab`: index 0 is `a`).
//!
//! The file is shared with Dovecot and other clients: entries are never
//! renumbered or dropped, new ones take free indexes, and a write is the
//! one Dovecot does itself: under `dovecot-uidlist.lock` (when Dovecot
//! manages the folder) and `dovecot-keywords.lock`, re-read, written into
//! the lock file, fsynced, renamed over the old file, directory fsynced,
//! with an mtime that grows (Dovecot re-reads the file only when its mtime
//! changed). A letter is written into a message name only after the file
//! naming it is durable.

use super::sync_dir;
use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The file's name in each folder directory.
pub const KEYWORDS_FILE: &str = "dovecot-keywords";

/// Letters `a`–`z`: the most keywords one folder's files can carry.
pub const MAX_KEYWORDS: usize = 26;

/// A lock older than this is left over by a dead process (Dovecot's value).
const LOCK_STALE: Duration = Duration::from_secs(120);
/// How long to wait for a live lock before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// A folder's keyword table: index (letter) → name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keywords {
    names: Vec<Option<String>>,
}

impl Default for Keywords {
    fn default() -> Keywords {
        Keywords {
            names: vec![None; MAX_KEYWORDS],
        }
    }
}

/// A name that can be a line of the file: an IMAP atom has no white space
/// or control characters, and a name that had them would break the file.
fn storable(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl Keywords {
    /// Parses the file as Dovecot does: `<index> <name>` lines, anything
    /// else (and indexes past `z`) ignored.
    pub fn parse(text: &str) -> Keywords {
        let mut k = Keywords::default();
        for line in text.lines() {
            if let Some((n, name)) = line.split_once(' ')
                && let Ok(i) = n.trim().parse::<usize>()
                && i < MAX_KEYWORDS
                && !name.trim().is_empty()
            {
                k.names[i] = Some(name.trim().to_string());
            }
        }
        k
    }

    /// The file's text (only named indexes, in order).
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.names.iter().enumerate() {
            if let Some(n) = n {
                s.push_str(&format!("{i} {n}\n"));
            }
        }
        s
    }

    /// The letter of a keyword (compared without case, as Dovecot does).
    pub fn letter(&self, keyword: &str) -> Option<char> {
        self.names
            .iter()
            .position(|n| {
                n.as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(keyword))
            })
            .map(|i| (b'a' + i as u8) as char)
    }

    /// The keyword a letter stands for.
    pub fn name(&self, letter: char) -> Option<&str> {
        let i = (letter as u32).checked_sub('a' as u32)? as usize;
        self.names.get(i)?.as_deref()
    }

    /// Every letter that names a keyword.
    pub fn named_letters(&self) -> String {
        (0..MAX_KEYWORDS)
            .filter(|&i| self.names[i].is_some())
            .map(|i| (b'a' + i as u8) as char)
            .collect()
    }

    /// The keywords a file name's letters stand for.
    pub fn names_of(&self, letters: &str) -> Vec<String> {
        letters
            .chars()
            .filter_map(|c| self.name(c))
            .map(str::to_string)
            .collect()
    }

    /// Adds the keywords it does not name yet in free indexes, keeping
    /// every existing one where it is. Returns whether anything was added
    /// and those that could not be (no free index, or not a storable name).
    pub fn add<'a>(&mut self, keywords: impl IntoIterator<Item = &'a str>) -> (bool, Vec<String>) {
        let mut changed = false;
        let mut left = Vec::new();
        for kw in keywords {
            if self.letter(kw).is_some() {
                continue;
            }
            match self.names.iter().position(Option::is_none) {
                Some(i) if storable(kw) => {
                    self.names[i] = Some(kw.to_string());
                    changed = true;
                }
                _ => left.push(kw.to_string()),
            }
        }
        (changed, left)
    }
}

/// The letters of a message's file name after the standard flags: the
/// current ones minus `remove`, plus `add`, sorted (the Maildir spec's
/// order). Letters that name no keyword mailferry knows stay.
pub fn merge_letters(current: &str, add: &str, remove: &str) -> String {
    let mut v: Vec<char> = current
        .chars()
        .filter(|c| c.is_ascii_lowercase() && !remove.contains(*c))
        .chain(add.chars().filter(char::is_ascii_lowercase))
        .collect();
    v.sort_unstable();
    v.dedup();
    v.into_iter().collect()
}

/// One folder's keywords for the length of a run: looked up in memory,
/// extended (and the file written) only when a message has a keyword the
/// file does not name yet. Shared by the folder's writer thread and its
/// flag updates.
#[derive(Debug)]
pub struct FolderKeywords {
    dir: PathBuf,
    host: String,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    table: Keywords,
    /// Keywords that found no letter: kept in the state only.
    unstored: BTreeSet<String>,
}

impl FolderKeywords {
    /// Reads the folder's table (none yet: empty).
    pub(crate) fn open(dir: PathBuf, host: String) -> Result<FolderKeywords> {
        let (table, _) = read_table(&dir.join(KEYWORDS_FILE))?;
        Ok(FolderKeywords {
            dir,
            host,
            inner: Mutex::new(Inner {
                table,
                ..Default::default()
            }),
        })
    }

    /// The table as it is now.
    pub fn table(&self) -> Keywords {
        self.inner.lock().unwrap().table.clone()
    }

    /// The letters for `keywords`, sorted; keywords the file does not name
    /// yet are added to it first (durably). Those that cannot have a letter
    /// are left out and remembered for [`FolderKeywords::unstored`].
    pub fn letters(&self, keywords: &[String]) -> Result<String> {
        let mut inner = self.inner.lock().unwrap();
        let missing: Vec<&str> = keywords
            .iter()
            .map(String::as_str)
            .filter(|k| inner.table.letter(k).is_none() && !inner.unstored.contains(*k))
            .collect();
        if !missing.is_empty() {
            let (table, left) = self.store(&missing)?;
            inner.table = table;
            inner.unstored.extend(left);
        }
        let mut v: Vec<char> = keywords
            .iter()
            .filter_map(|k| inner.table.letter(k))
            .collect();
        v.sort_unstable();
        v.dedup();
        Ok(v.into_iter().collect())
    }

    /// The letter of a keyword the file already names (no write).
    pub fn letter(&self, keyword: &str) -> Option<char> {
        self.inner.lock().unwrap().table.letter(keyword)
    }

    /// Keywords that could not be stored in this folder's file names (no
    /// free letter), for the run's warnings.
    pub fn unstored(&self) -> Vec<String> {
        self.inner
            .lock()
            .unwrap()
            .unstored
            .iter()
            .cloned()
            .collect()
    }

    /// Adds `missing` to the file under Dovecot's locks; returns the table
    /// as written and what did not fit.
    fn store(&self, missing: &[&str]) -> Result<(Keywords, Vec<String>)> {
        let path = self.dir.join(KEYWORDS_FILE);
        // Dovecot changes the keywords only while it holds the uidlist lock.
        let uidlist = self.dir.join("dovecot-uidlist");
        let _uidlist_lock = if uidlist.exists() {
            Some(DotLock::acquire(&uidlist, &self.host)?)
        } else {
            None
        };
        let lock = DotLock::acquire(&path, &self.host)?;
        let (mut table, mtime) = read_table(&path)?;
        let (changed, left) = table.add(missing.iter().copied());
        if !changed {
            return Ok((table, left));
        }
        let mut f = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&lock.path)
            .map_err(|e| Error::io(&lock.path, e))?;
        f.write_all(table.render().as_bytes())
            .map_err(|e| Error::io(&lock.path, e))?;
        let now = SystemTime::now();
        let next = mtime
            .map(|m| m + Duration::from_secs(1))
            .filter(|&m| m > now)
            .unwrap_or(now);
        f.set_modified(next).map_err(|e| Error::io(&lock.path, e))?;
        f.sync_all().map_err(|e| Error::io(&lock.path, e))?;
        drop(f);
        lock.replace(&path)?;
        sync_dir(&self.dir)?;
        Ok((table, left))
    }
}

/// The table and the file's mtime; a missing file is an empty table.
fn read_table(path: &Path) -> Result<(Keywords, Option<SystemTime>)> {
    match fs::read(path) {
        Ok(b) => {
            let mtime = fs::metadata(path).and_then(|m| m.modified()).ok();
            Ok((Keywords::parse(&String::from_utf8_lossy(&b)), mtime))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok((Keywords::default(), None)),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// A Dovecot-style dot lock: `<file>.lock`, created exclusively, holding
/// `<pid>:<host>` so Dovecot can tell when its owner died.
struct DotLock {
    path: PathBuf,
    held: bool,
}

impl DotLock {
    fn acquire(file: &Path, host: &str) -> Result<DotLock> {
        let mut name = file.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let start = Instant::now();
        loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = write!(f, "{}:{host}", std::process::id());
                    return Ok(DotLock { path, held: true });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if stale(&path, host) {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    if start.elapsed() > LOCK_WAIT {
                        return Err(Error::io(
                            &path,
                            std::io::Error::new(
                                ErrorKind::WouldBlock,
                                "held by another process (Dovecot or another client) for over 10 s",
                            ),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
    }

    /// Renames the lock file (holding the new contents) over `file`, which
    /// also releases the lock.
    fn replace(mut self, file: &Path) -> Result<()> {
        fs::rename(&self.path, file).map_err(|e| Error::io(file, e))?;
        self.held = false;
        Ok(())
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        if self.held {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A lock whose owner on this host is gone, or untouched for two minutes.
fn stale(lock: &Path, host: &str) -> bool {
    if let Ok(text) = fs::read_to_string(lock)
        && let Some((pid, h)) = text.trim().split_once(':')
        && h == host
        && let Ok(pid) = pid.parse::<u32>()
        && !Path::new(&format!("/proc/{pid}")).exists()
    {
        return true;
    }
    fs::metadata(lock)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > LOCK_STALE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[test]
    fn parses_and_renders_like_dovecot() {
        let k = Keywords::parse("0 $Forwarded\n2 Work\n\nbad line\n30 far\nx y\n");
        assert_eq!(k.name('a'), Some("$Forwarded"));
        assert_eq!(k.name('b'), None);
        assert_eq!(k.name('c'), Some("Work"));
        assert_eq!(k.letter("work"), Some('c'), "no case, as Dovecot");
        assert_eq!(k.render(), "0 $Forwarded\n2 Work\n");
        assert_eq!(k.named_letters(), "ac");
        assert_eq!(k.names_of("cSa"), vec!["Work", "$Forwarded"]);
    }

    #[test]
    fn add_keeps_existing_indexes_and_fills_gaps() {
        let mut k = Keywords::parse("0 $Forwarded\n2 Work\n");
        let (changed, left) = k.add(["Work", "New", "Other"]);
        assert!(changed && left.is_empty());
        assert_eq!(k.render(), "0 $Forwarded\n1 New\n2 Work\n3 Other\n");
        let (changed, _) = k.add(["$forwarded"]);
        assert!(!changed);
    }

    #[test]
    fn at_most_26_and_only_storable_names() {
        let mut k = Keywords::default();
        let names: Vec<String> = (0..28).map(|i| format!("k{i}")).collect();
        let (_, left) = k.add(names.iter().map(String::as_str));
        assert_eq!(left, vec!["k26".to_string(), "k27".to_string()]);
        assert_eq!(k.letter("k25"), Some('z'));
        let mut k = Keywords::default();
        let (changed, left) = k.add(["a b", "x\ny", ""]);
        assert!(!changed);
        assert_eq!(left.len(), 3);
    }

    #[test]
    fn letters_merge_sorted_and_keep_unknown_ones() {
        assert_eq!(merge_letters("bz", "a", "z"), "ab");
        assert_eq!(merge_letters("", "ca", ""), "ac");
        assert_eq!(merge_letters("c", "", "c"), "");
    }

    #[test]
    fn folder_keywords_write_the_file_once_per_new_keyword() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        fs::write(dir.join(KEYWORDS_FILE), "0 Existing\n").unwrap();
        let old = SystemTime::now() + Duration::from_secs(100);
        File::options()
            .write(true)
            .open(dir.join(KEYWORDS_FILE))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let fk = FolderKeywords::open(dir.clone(), "h".into()).unwrap();
        // Another client adds one meanwhile: kept, ours goes after it.
        fs::write(dir.join(KEYWORDS_FILE), "0 Existing\n1 TheirOwn\n").unwrap();
        let l = fk
            .letters(&["$Forwarded".into(), "Existing".into()])
            .unwrap();
        assert_eq!(l, "ac");
        let text = fs::read_to_string(dir.join(KEYWORDS_FILE)).unwrap();
        assert_eq!(text, "0 Existing\n1 TheirOwn\n2 $Forwarded\n");
        assert!(!dir.join("dovecot-keywords.lock").exists());
        let m = fs::metadata(dir.join(KEYWORDS_FILE))
            .unwrap()
            .modified()
            .unwrap();
        assert!(
            m > SystemTime::now(),
            "the mtime must change, even backwards in time"
        );
        assert_eq!(fk.letter("$forwarded"), Some('c'));
        assert!(fk.unstored().is_empty());
    }

    #[test]
    fn a_lock_left_by_a_dead_process_is_taken_over() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        // No such process on this host.
        fs::write(dir.join("dovecot-keywords.lock"), "999999999:h").unwrap();
        let fk = FolderKeywords::open(dir.clone(), "h".into()).unwrap();
        assert_eq!(fk.letters(&["A".into()]).unwrap(), "a");
        let again = FolderKeywords::open(dir.clone(), "h".into()).unwrap();
        assert_eq!(again.table().name('a'), Some("A"));
    }

    #[test]
    fn overflow_is_remembered_not_written() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        let full: String = (0..26).map(|i| format!("{i} k{i}\n")).collect();
        fs::write(dir.join(KEYWORDS_FILE), &full).unwrap();
        let fk = FolderKeywords::open(dir.clone(), "h".into()).unwrap();
        assert_eq!(fk.letters(&["k3".into(), "Extra".into()]).unwrap(), "d");
        assert_eq!(fk.unstored(), vec!["Extra".to_string()]);
        assert_eq!(fs::read_to_string(dir.join(KEYWORDS_FILE)).unwrap(), full);
    }
}
