//! A Maildir++ store that Dovecot, mutt, notmuch and mu open directly.
//!
//! Hand-rolled rather than the `maildir` crate (crates.md §4), because
//! mailferry needs: directory fsyncs batched before the state commit, the
//! arrival date as mtime, the source identity in the file name, Dovecot's
//! folder-name encoding and the `maildirfolder` marker. Layout and naming
//! rules are in [`name`]; delivery in [`deliver`].

mod deliver;
mod fs_sync;
mod keywords;
mod name;
mod scan;

pub use deliver::{Batch, LineEndings, PendingFile, StoredFile, SyncMode};
pub use keywords::{FolderKeywords, KEYWORDS_FILE, Keywords, MAX_KEYWORDS, merge_letters};
pub use name::{SourceKey, account_tag};
pub use scan::LocalMessage;

use crate::error::{Error, Result};
use crate::types::{Flags, FolderName};
use std::collections::BTreeSet;
use std::fs::{self, DirBuilder, File};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Files in tmp/ untouched this long are debris of a crashed delivery (the
/// Maildir spec's 36 hours).
pub const TMP_MAX_AGE: Duration = Duration::from_secs(36 * 3600);

/// An opened Maildir++ root (the INBOX) and its subfolders.
#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
    host: String,
}

/// What [`Maildir::list_folders_report`] found, including directories it had
/// to skip, so the caller can warn instead of silently ignoring mail.
#[derive(Debug, Clone, Default)]
pub struct FolderListing {
    /// INBOX first, then the decoded subfolders, sorted.
    pub folders: Vec<FolderName>,
    /// Directory names that are not valid encoded folder names, with why.
    pub skipped: Vec<(String, String)>,
}

/// fsyncs a directory so renames and unlinks in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Creates one directory with mode 0700; an existing directory is fine, so
/// a crash halfway through folder creation is repaired by the next call.
/// Returns true when it was created.
fn mkdir(dir: &Path) -> Result<bool> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Makes cur/ new/ tmp/ under `dir`; true if anything was created.
fn make_maildir(dir: &Path) -> Result<bool> {
    let mut created = mkdir(dir)?;
    for sub in ["cur", "new", "tmp"] {
        created |= mkdir(&dir.join(sub))?;
    }
    Ok(created)
}

/// A file name's new info letters: `flags` as the standard ones, keyword
/// letters per [`merge_letters`], any other letter (`P`) kept; sorted.
fn info_letters(old: &str, flags: &Flags, add: &str, remove: &str) -> String {
    let kept: String = old
        .chars()
        .filter(|c| c.is_ascii_alphabetic() && !"DFRST".contains(*c) && !c.is_ascii_lowercase())
        .collect();
    let mut letters: Vec<char> = flags
        .to_maildir()
        .chars()
        .chain(kept.chars())
        .chain(merge_letters(old, add, remove).chars())
        .collect();
    letters.sort_unstable();
    letters.dedup();
    letters.into_iter().collect()
}

fn hostname() -> String {
    let raw = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    name::sanitize_host(&raw)
}

impl Maildir {
    /// Opens the Maildir at `root`, creating it (mode 0700) if needed, so a
    /// first `fetch` into a new path just works.
    pub fn open_or_create(root: &Path) -> Result<Maildir> {
        if !root.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .map_err(|e| Error::io(root, e))?;
        }
        if make_maildir(root)? {
            sync_dir(root)?;
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Ok(Maildir {
            root: root.to_path_buf(),
            host: hostname(),
        })
    }

    /// Opens an existing Maildir to read from (push, verify), creating
    /// nothing: a backup may be on a read-only medium. It must have `cur/`.
    pub fn open_existing(root: &Path) -> Result<Maildir> {
        if !root.join("cur").is_dir() {
            return Err(Error::Usage(format!(
                "no Maildir at {} (no cur/ directory)",
                root.display()
            )));
        }
        Ok(Maildir {
            root: root.to_path_buf(),
            host: hostname(),
        })
    }

    /// The root directory (INBOX).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a folder: INBOX is the root, `A/B` is `root/.A.B`
    /// (see [`name`] for the encoding). Errors name the folder when it
    /// cannot be stored safely.
    pub fn folder_dir(&self, f: &FolderName) -> Result<PathBuf> {
        Ok(match name::folder_dir_name(f)? {
            None => self.root.clone(),
            Some(d) => self.root.join(d),
        })
    }

    /// Creates a folder (idempotent): its cur/ new/ tmp/ and the empty
    /// `maildirfolder` file Dovecot expects, durably.
    pub fn create_folder(&self, f: &FolderName) -> Result<PathBuf> {
        let dir = self.folder_dir(f)?;
        if f.is_inbox() {
            return Ok(dir);
        }
        let mut created = make_maildir(&dir)?;
        let marker = dir.join("maildirfolder");
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&marker)
        {
            Ok(_) => created = true,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(&marker, e)),
        }
        if created {
            sync_dir(&dir)?;
            sync_dir(&self.root)?;
        }
        Ok(dir)
    }

    /// All folders: INBOX plus every decodable `.X.Y` directory. Entries that
    /// do not decode are left out; use [`Maildir::list_folders_report`] to
    /// see them.
    pub fn list_folders(&self) -> Result<Vec<FolderName>> {
        Ok(self.list_folders_report()?.folders)
    }

    /// Like [`Maildir::list_folders`], also reporting skipped directories.
    pub fn list_folders_report(&self) -> Result<FolderListing> {
        let mut listing = FolderListing::default();
        let mut found = BTreeSet::new();
        let rd = fs::read_dir(&self.root).map_err(|e| Error::io(&self.root, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(&self.root, e))?;
            let os = ent.file_name();
            let Some(n) = os.to_str() else {
                if os.as_encoded_bytes().first() == Some(&b'.') {
                    listing.skipped.push((
                        os.to_string_lossy().into_owned(),
                        "name is not UTF-8".into(),
                    ));
                }
                continue;
            };
            if !n.starts_with('.') || n == "." || n == ".." {
                continue;
            }
            let is_dir = ent.file_type().map(|t| t.is_dir()).unwrap_or(false)
                || ent.path().metadata().map(|m| m.is_dir()).unwrap_or(false);
            if !is_dir {
                continue;
            }
            match name::folder_from_dir_name(n) {
                Ok(f) => {
                    found.insert(f);
                }
                Err(why) => listing.skipped.push((n.to_string(), why)),
            }
        }
        listing.folders.push(FolderName::inbox());
        listing
            .folders
            .extend(found.into_iter().filter(|f| !f.is_inbox()));
        Ok(listing)
    }

    /// Starts a batch of deliveries into `folder` (created if missing) for
    /// `account` (the canonical account key; its hash goes into file names).
    pub fn batch(&self, folder: &FolderName, account: &str) -> Result<Batch> {
        let dir = self.create_folder(folder)?;
        Ok(Batch::new(dir, self.host.clone(), account))
    }

    /// Lists the messages of a folder from directory entries (new/ and cur/,
    /// not tmp/, no dotfiles). A missing folder is an error naming it.
    pub fn scan(&self, folder: &FolderName) -> Result<Vec<LocalMessage>> {
        scan::scan_dir(&self.folder_dir(folder)?)
    }

    /// Sets the standard flags of a message file, moving it from new/ to
    /// cur/ if needed, and returns its new path. The unique part is kept, and
    /// so are info letters mailferry does not map (Dovecot keyword letters
    /// `a`–`z`, `P`): they belong to other clients. Letters are sorted as
    /// the Maildir spec asks. Not fsynced: a lost flag rename is redone by
    /// the next run; call [`Maildir::sync_folder`] before recording it if
    /// the state must not get ahead of the disk.
    pub fn set_flags(&self, path: &Path, flags: &Flags) -> Result<PathBuf> {
        self.set_flags_and_keywords(path, flags, "", "")
    }

    /// [`Maildir::set_flags`], and the keyword letters `add` set and
    /// `remove` cleared (see [`FolderKeywords`]); other keyword letters
    /// stay. A file whose letters would not change is left where it is
    /// (also in new/).
    pub fn set_flags_and_keywords(
        &self,
        path: &Path,
        flags: &Flags,
        add: &str,
        remove: &str,
    ) -> Result<PathBuf> {
        let bad = |why: &str| {
            Error::io(
                path,
                std::io::Error::new(ErrorKind::InvalidInput, why.to_string()),
            )
        };
        let fname = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| bad("not a message file name"))?;
        let sub = path.parent().ok_or_else(|| bad("not in a Maildir"))?;
        if !matches!(
            sub.file_name().and_then(|s| s.to_str()),
            Some("cur" | "new")
        ) {
            return Err(bad("not in a Maildir cur/ or new/ directory"));
        }
        let folder_dir = sub.parent().ok_or_else(|| bad("not in a Maildir"))?;
        let (base, old_info) = match fname.split_once(':') {
            Some((b, i)) => (b, i.strip_prefix("2,")),
            None => (fname, None),
        };
        let new_info = info_letters(old_info.unwrap_or(""), flags, add, remove);
        if old_info == Some(new_info.as_str()) {
            return Ok(path.to_path_buf());
        }
        let new_path = folder_dir.join("cur").join(format!("{base}:2,{new_info}"));
        if new_path != path {
            fs::rename(path, &new_path).map_err(|e| Error::io(path, e))?;
        }
        Ok(new_path)
    }

    /// The keyword table of a folder, to name files with keyword letters
    /// and extend Dovecot's `dovecot-keywords` when a new keyword comes.
    pub fn keywords(&self, folder: &FolderName) -> Result<FolderKeywords> {
        FolderKeywords::open(self.folder_dir(folder)?, self.lock_host())
    }

    /// The host name as Dovecot writes it into its lock files.
    fn lock_host(&self) -> String {
        fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| self.host.clone())
    }

    /// fsyncs a folder's cur/ and new/ after flag renames.
    pub fn sync_folder(&self, folder: &FolderName) -> Result<()> {
        let dir = self.folder_dir(folder)?;
        sync_dir(&dir.join("cur"))?;
        sync_dir(&dir.join("new"))
    }

    /// Deletes a message file durably (unlink + directory fsync), for prune.
    /// A file already gone counts as removed, so a rerun after a crash is fine.
    pub fn remove(&self, path: &Path) -> Result<()> {
        self.remove_many(std::slice::from_ref(&path.to_path_buf()))
    }

    /// Deletes many files with one fsync per directory touched.
    pub fn remove_many(&self, paths: &[PathBuf]) -> Result<()> {
        let mut dirs = BTreeSet::new();
        for p in paths {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(p, e)),
            }
            if let Some(d) = p.parent() {
                dirs.insert(d.to_path_buf());
            }
        }
        dirs.iter().try_for_each(|d| sync_dir(d))
    }

    /// Removes files in a folder's tmp/ whose inode changed more than
    /// [`TMP_MAX_AGE`] before `now`: debris of a crashed delivery. Uses
    /// ctime, not mtime, because deliveries set mtime to the (old) arrival
    /// date while still in tmp/. Returns how many were removed.
    pub fn clean_tmp(&self, folder: &FolderName, now: SystemTime) -> Result<usize> {
        let tmp = self.folder_dir(folder)?.join("tmp");
        let limit = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(TMP_MAX_AGE)
            .as_secs() as i64;
        let rd = match fs::read_dir(&tmp) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(&tmp, e)),
        };
        let mut n = 0;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(&tmp, e))?;
            let Ok(md) = ent.metadata() else { continue };
            if md.is_file() && md.ctime() < limit && fs::remove_file(ent.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod bench;
