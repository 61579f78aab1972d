//! Names on disk: Maildir++ folder directory names and message file names.
//!
//! Folder names: `A/B` is stored as `.A.B`, each component in modified UTF-7
//! as Dovecot does. `.` is Maildir++'s hierarchy separator, so a `.` inside a
//! component is escaped the way Dovecot's listescape plugin does it: `\2e`
//! (and the escape character itself as `\5c`, a leading `~` as `\7e`). A
//! Dovecot with `listescape` and a `/` separator shows these folders under
//! their original names; one without it shows `a\2eb`, which is still
//! lossless. Components that are empty, start with `.` or hold control
//! characters are refused, so no name can climb out of the Maildir.
//!
//! Message file names carry the source identity (see [`SourceKey`]) so a file
//! renamed into `cur/` but never recorded in the state (killed in between) is
//! recognised on the next run instead of being fetched twice:
//!
//! `<secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>,W=<vsize>,X=<acct>-<key>:2,<flags>`
//!
//! `S=` is the on-disk size and `W=` the size with LF counted as CRLF (the
//! IMAP RFC822.SIZE), exactly as Dovecot writes and reads them. `X=` is ours:
//! `<acct>` is 8 hex digits of SHA-256 of the account key (several accounts can
//! feed one Maildir), `<key>` is [`SourceKey::tag`]. Other Maildir readers
//! ignore unknown `,X=` fields.

use crate::error::{Error, Result};
use crate::mutf7;
use crate::types::{FolderName, Uid, UidValidity, Uidl};
use std::fmt::Write as _;

/// Longest directory or file name most file systems accept.
const NAME_MAX: usize = 255;
/// Longest escaped UIDL kept verbatim in a file name; longer ones are hashed
/// so the file name stays under [`NAME_MAX`] whatever the host name.
const MAX_UIDL_TAG: usize = 80;

/// Where a message came from, in a form that survives in a file name. Lets a
/// rerun match files on disk to server messages without the state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceKey {
    /// An IMAP message: valid only with its folder's UIDVALIDITY.
    Imap {
        /// The folder's UIDVALIDITY when the UID was taken.
        uidvalidity: UidValidity,
        /// The message UID.
        uid: Uid,
    },
    /// A POP3 message by its UIDL.
    Pop3 {
        /// The server's unique id for the message.
        uidl: Uidl,
    },
    /// A POP3 UIDL too long for a file name: the first 16 bytes of its
    /// SHA-256. Only ever produced by [`SourceKey::normalized`] or parsing.
    UidlHash([u8; 16]),
    /// A message without a server identity (POP3 without UIDL): a content
    /// or header digest chosen by the caller.
    Digest([u8; 16]),
}

impl SourceKey {
    /// The short, file-name-safe form written after `,X=<acct>-`: `i<uv>-<uid>`,
    /// `p<uidl with bytes outside [A-Za-z0-9._+-] as %XX>`, `h<hex>` for long
    /// UIDLs, `d<hex>` for digests. Compare server and disk identities by
    /// this string (or by [`SourceKey::normalized`]).
    pub fn tag(&self) -> String {
        match self {
            SourceKey::Imap { uidvalidity, uid } => format!("i{}-{}", uidvalidity.0, uid.0),
            SourceKey::Pop3 { uidl } => {
                let mut s = String::with_capacity(uidl.0.len() + 1);
                s.push('p');
                for b in uidl.0.bytes() {
                    if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-') {
                        s.push(b as char);
                    } else {
                        let _ = write!(s, "%{b:02X}");
                    }
                }
                if s.len() > MAX_UIDL_TAG {
                    let h = openssl::sha::sha256(uidl.0.as_bytes());
                    format!("h{}", hex(&h[..16]))
                } else {
                    s
                }
            }
            SourceKey::UidlHash(h) => format!("h{}", hex(h)),
            SourceKey::Digest(d) => format!("d{}", hex(d)),
        }
    }

    /// Parses [`SourceKey::tag`]; `None` for anything else, so foreign or
    /// damaged names are treated as "unknown origin", never misattributed.
    pub fn parse_tag(s: &str) -> Option<SourceKey> {
        let (kind, rest) = (s.as_bytes().first()?, &s[1..]);
        match kind {
            b'i' => {
                let (v, u) = rest.split_once('-')?;
                if !is_decimal(v) || !is_decimal(u) {
                    return None;
                }
                Some(SourceKey::Imap {
                    uidvalidity: UidValidity(v.parse().ok()?),
                    uid: Uid(u.parse().ok()?),
                })
            }
            b'p' => {
                let mut out = Vec::with_capacity(rest.len());
                let b = rest.as_bytes();
                let mut i = 0;
                while i < b.len() {
                    if b[i] == b'%' {
                        let h = rest.get(i + 1..i + 3)?;
                        if !h.bytes().all(|c| c.is_ascii_hexdigit()) {
                            return None;
                        }
                        out.push(u8::from_str_radix(h, 16).ok()?);
                        i += 3;
                    } else {
                        out.push(b[i]);
                        i += 1;
                    }
                }
                let uidl = String::from_utf8(out).ok()?;
                if uidl.is_empty() {
                    return None;
                }
                Some(SourceKey::Pop3 { uidl: Uidl(uidl) })
            }
            b'h' => Some(SourceKey::UidlHash(unhex16(rest)?)),
            b'd' => Some(SourceKey::Digest(unhex16(rest)?)),
            _ => None,
        }
    }

    /// The key as it reads back from a file name (long UIDLs become
    /// [`SourceKey::UidlHash`]), for comparing server keys with scanned ones.
    pub fn normalized(&self) -> SourceKey {
        match self {
            SourceKey::Pop3 { .. } => {
                SourceKey::parse_tag(&self.tag()).unwrap_or_else(|| self.clone())
            }
            other => other.clone(),
        }
    }
}

fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.len() <= 10 && s.bytes().all(|c| c.is_ascii_digit())
}

pub(crate) fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn unhex16(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The 8-hex-digit tag of an account key written into file names, so files
/// from different accounts sharing one Maildir are never confused.
pub fn account_tag(account: &str) -> String {
    hex(&openssl::sha::sha256(account.as_bytes())[..4])
}

/// Maps a folder to its Maildir++ directory name (`None` for INBOX, the root).
pub(crate) fn folder_dir_name(f: &FolderName) -> Result<Option<String>> {
    if f.is_inbox() {
        return Ok(None);
    }
    let bad = |why: &str| {
        Error::Usage(format!(
            "folder {:?} cannot be stored in a Maildir: {why}",
            f.as_str()
        ))
    };
    let mut out = String::new();
    for comp in f.components() {
        if comp.is_empty() {
            return Err(bad("empty name component"));
        }
        if comp.starts_with('.') {
            return Err(bad("a name component starts with '.'"));
        }
        if comp.chars().any(|c| c.is_control()) {
            return Err(bad("control character in name"));
        }
        out.push('.');
        for (i, c) in mutf7::encode(comp).chars().enumerate() {
            match c {
                '.' => out.push_str("\\2e"),
                '\\' => out.push_str("\\5c"),
                '~' if i == 0 => out.push_str("\\7e"),
                '/' => out.push_str("\\2f"),
                c => out.push(c),
            }
        }
    }
    if out.len() > NAME_MAX {
        return Err(bad("encoded directory name longer than 255 bytes"));
    }
    Ok(Some(out))
}

/// Reverses [`folder_dir_name`]. Accepts only names that map back to
/// themselves, so listing and storing always agree on the directory.
pub(crate) fn folder_from_dir_name(dir: &str) -> std::result::Result<FolderName, String> {
    let rest = dir
        .strip_prefix('.')
        .ok_or("not a Maildir++ folder (no leading '.')")?;
    let mut comps = Vec::new();
    for raw in rest.split('.') {
        let mut un = Vec::with_capacity(raw.len());
        let b = raw.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' {
                let h = raw
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
                let h = h.ok_or("bad '\\' escape")?;
                un.push(u8::from_str_radix(h, 16).map_err(|_| "bad '\\' escape")?);
                i += 3;
            } else {
                un.push(b[i]);
                i += 1;
            }
        }
        let un = String::from_utf8(un).map_err(|_| "escape produces invalid UTF-8")?;
        comps.push(mutf7::decode(&un).map_err(|e| e.to_string())?);
    }
    let name = FolderName::new(comps.join("/"));
    match folder_dir_name(&name) {
        Ok(Some(back)) if back == dir => Ok(name),
        Ok(_) => Err("non-canonical encoding".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The parts of a message file name mailferry cares about. Borrowed from the
/// name so scanning 100k files allocates little.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ParsedName<'a> {
    /// Everything before the first `,` or `:`: what identifies the message.
    pub unique: &'a str,
    /// `S=`: physical size.
    pub size: Option<u64>,
    /// `W=`: size with CRLF line endings.
    pub vsize: Option<u64>,
    /// `X=` account tag.
    pub account: Option<&'a str>,
    /// `X=` source identity.
    pub source: Option<SourceKey>,
    /// Letters after `:2,`, if the name has an info part.
    pub info: Option<&'a str>,
}

pub(crate) fn parse_file_name(name: &str) -> ParsedName<'_> {
    let (base, info) = match name.split_once(':') {
        Some((b, i)) => (b, i.strip_prefix("2,")),
        None => (name, None),
    };
    let mut parts = base.split(',');
    let unique = parts.next().unwrap_or("");
    let mut p = ParsedName {
        unique,
        size: None,
        vsize: None,
        account: None,
        source: None,
        info,
    };
    for field in parts {
        if let Some(v) = field.strip_prefix("S=") {
            p.size = v.parse().ok();
        } else if let Some(v) = field.strip_prefix("W=") {
            p.vsize = v.parse().ok();
        } else if let Some(v) = field.strip_prefix("X=")
            && let Some((acct, tag)) = v.split_once('-')
            && acct.len() == 8
            && acct.bytes().all(|c| c.is_ascii_hexdigit())
        {
            p.account = Some(acct);
            p.source = SourceKey::parse_tag(tag);
        }
    }
    p
}

/// Makes a host name safe for the unique part, as the Maildir spec asks
/// (`/` → `\057`, `:` → `\072`), plus `,` so field parsing cannot be fooled.
pub(crate) fn sanitize_host(h: &str) -> String {
    let mut s = String::new();
    for c in h.trim().chars().take(64) {
        match c {
            '/' => s.push_str("\\057"),
            ':' => s.push_str("\\072"),
            ',' => s.push_str("\\054"),
            c if c.is_ascii_graphic() => s.push(c),
            _ => s.push('_'),
        }
    }
    if s.is_empty() { "localhost".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_round_trip() {
        for (name, dir) in [
            ("Archive", ".Archive"),
            ("A/B", ".A.B"),
            ("Entwürfe", ".Entw&APw-rfe"),
            ("v1.2/x", ".v1\\2e2.x"),
            ("a\\b", ".a\\5cb"),
            ("~home", ".\\7ehome"),
            ("a~b", ".a~b"),
            ("INBOX/Sub", ".INBOX.Sub"),
        ] {
            let f = FolderName::new(name);
            assert_eq!(folder_dir_name(&f).unwrap().as_deref(), Some(dir));
            assert_eq!(folder_from_dir_name(dir).unwrap(), f);
        }
        assert_eq!(folder_dir_name(&FolderName::new("inbox")).unwrap(), None);
    }

    #[test]
    fn hostile_folder_names_rejected() {
        for bad in [
            "../x",
            "a/../../b",
            ".hidden",
            "a\0b",
            "",
            "a//b",
            "a/",
            "/a",
            "..",
            ".",
            "x/\n",
        ] {
            let e = folder_dir_name(&FolderName::new(bad))
                .expect_err(bad)
                .to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        assert!(folder_dir_name(&FolderName::new("x".repeat(300))).is_err());
        for bad in [
            ".a..b",
            ".a\\zz",
            ".\\2ehidden",
            ".a\\41",
            ".Bad&Jjo!-name",
            "noDot",
        ] {
            assert!(folder_from_dir_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn source_keys_round_trip() {
        let long = Uidl("x".repeat(100));
        for k in [
            SourceKey::Imap {
                uidvalidity: UidValidity(1_700_000_000),
                uid: Uid(42),
            },
            SourceKey::Pop3 {
                uidl: Uidl("000001a24b3c5d6e".into()),
            },
            SourceKey::Pop3 {
                uidl: Uidl("we:ird/,%=uidl~".into()),
            },
            SourceKey::Digest([0xab; 16]),
        ] {
            let t = k.tag();
            assert!(!t.contains([':', '/', ',']), "{t}");
            assert_eq!(SourceKey::parse_tag(&t), Some(k));
        }
        let k = SourceKey::Pop3 { uidl: long };
        assert!(k.tag().starts_with('h') && k.tag().len() == 33);
        assert!(matches!(
            SourceKey::parse_tag(&k.tag()),
            Some(SourceKey::UidlHash(_))
        ));
        assert_eq!(SourceKey::parse_tag(&k.tag()), Some(k.normalized()));
        for junk in [
            "", "i", "i1", "i-1", "i1-", "ix-1", "p", "p%zz", "hab", "z1",
        ] {
            assert_eq!(SourceKey::parse_tag(junk), None, "{junk}");
        }
    }

    #[test]
    fn parses_dovecot_and_own_names() {
        let p = parse_file_name("1795795241.M938033743P722.vm,S=1346,W=1370:2,FSa");
        assert_eq!(p.unique, "1795795241.M938033743P722.vm");
        assert_eq!(
            (p.size, p.vsize, p.info),
            (Some(1346), Some(1370), Some("FSa"))
        );
        assert_eq!(p.source, None);
        let p = parse_file_name("1.M2P3Q4.h,S=10,W=12,X=0011aabb-i7-9:2,");
        assert_eq!(p.account, Some("0011aabb"));
        assert_eq!(
            p.source,
            Some(SourceKey::Imap {
                uidvalidity: UidValidity(7),
                uid: Uid(9)
            })
        );
        assert_eq!(p.info, Some(""));
        let p = parse_file_name("plain");
        assert_eq!((p.unique, p.size, p.info), ("plain", None, None));
    }
}
