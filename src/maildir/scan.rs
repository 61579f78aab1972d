//! Listing a folder's messages from directory entries alone: with `S=` in
//! the names, 100k messages cost two readdirs and no stat.

use super::name::{SourceKey, parse_file_name};
use crate::error::{Error, Result};
use crate::types::Flags;
use std::fs;
use std::path::{Path, PathBuf};

/// A message file found in new/ or cur/.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMessage {
    /// Where it is now (changes with flags).
    pub path: PathBuf,
    /// True while in new/ (no client has seen it).
    pub in_new: bool,
    /// The unique part of the name: stable across flag changes.
    pub unique: String,
    /// Standard flags from the `:2,` info.
    pub flags: Flags,
    /// Info letters mailferry does not map (Dovecot keyword letters `a`–`z`,
    /// `P`): kept untouched by [`super::Maildir::set_flags`].
    pub other_flags: String,
    /// Bytes on disk, from `S=` or, if absent, from the file's metadata.
    pub size: u64,
    /// `W=` when present: size with CRLF line endings.
    pub vsize: Option<u64>,
    /// 8-hex account tag when written by mailferry ([`super::account_tag`]).
    pub account: Option<String>,
    /// Source identity when written by mailferry.
    pub source: Option<SourceKey>,
}

pub(crate) fn scan_dir(folder_dir: &Path) -> Result<Vec<LocalMessage>> {
    let mut out = Vec::new();
    for (sub, in_new) in [("new", true), ("cur", false)] {
        let dir = folder_dir.join(sub);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && in_new => continue,
            Err(e) => return Err(Error::io(&dir, e)),
        };
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(&dir, e))?;
            let os = ent.file_name();
            let name = os.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            // d_type is free from readdir; only unknown types cost a stat.
            match ent.file_type() {
                Ok(t) if t.is_dir() => continue,
                Ok(_) => {}
                Err(_) => continue, // vanished meanwhile (another client renamed it)
            }
            let p = parse_file_name(&name);
            let path = ent.path();
            let size = match p.size {
                Some(s) => s,
                None => match ent.metadata() {
                    Ok(m) => m.len(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io(&path, e)),
                },
            };
            let info = p.info.unwrap_or("");
            let other_flags: String = info.chars().filter(|c| !"DFRST".contains(*c)).collect();
            out.push(LocalMessage {
                in_new,
                unique: p.unique.to_string(),
                flags: Flags::from_maildir(info),
                other_flags,
                size,
                vsize: p.vsize,
                account: p.account.map(str::to_string),
                source: p.source,
                path,
            });
        }
    }
    Ok(out)
}
