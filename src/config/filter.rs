//! Which folders and messages a job considers: folder globs, sizes, dates.
//! Parsed once here so the planner works on plain numbers.

use crate::error::{Error, Result};
use crate::types::FolderName;

/// A folder glob on the decoded `/`-separated name: `*` matches within one
/// level, `**` across levels, `?` one character. `INBOX` matches
/// case-insensitively, as IMAP wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    /// Keeps the pattern; any string is a valid glob.
    pub fn new(p: &str) -> Glob {
        Glob(p.trim_matches('/').to_string())
    }

    /// True if `name` matches the whole pattern.
    pub fn matches(&self, name: &FolderName) -> bool {
        let pat = self.0.as_bytes();
        let name = name.as_str();
        // INBOX is case-insensitive: compare with the pattern's own spelling.
        let normalized;
        let name = if name == "INBOX" || name.starts_with("INBOX/") {
            let plen = pat.iter().position(|&c| c == b'/').unwrap_or(pat.len());
            if plen == 5 && self.0[..5].eq_ignore_ascii_case("inbox") {
                normalized = format!("{}{}", &self.0[..5], &name[5..]);
                normalized.as_str()
            } else {
                name
            }
        } else {
            name
        };
        glob_match(pat, name.as_bytes())
    }
}

fn glob_match(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => {
            let rest = &p[2..];
            (0..=s.len()).any(|i| glob_match(rest, &s[i..]))
        }
        Some(b'*') => {
            let rest = &p[1..];
            for i in 0..=s.len() {
                if glob_match(rest, &s[i..]) {
                    return true;
                }
                if i < s.len() && s[i] == b'/' {
                    break;
                }
            }
            false
        }
        Some(b'?') => {
            // one character (UTF-8 aware), never the separator
            if s.is_empty() || s[0] == b'/' {
                return false;
            }
            let w = utf8_width(s[0]);
            s.len() >= w && glob_match(&p[1..], &s[w..])
        }
        Some(&c) => !s.is_empty() && s[0] == c && glob_match(&p[1..], &s[1..]),
    }
}

fn utf8_width(b: u8) -> usize {
    match b {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Folder and message selection shared by every command.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Empty means every folder.
    pub folders: Vec<Glob>,
    /// Wins over `folders`.
    pub excludes: Vec<Glob>,
    /// Skip messages larger than this many bytes.
    pub max_size: Option<u64>,
    /// Skip messages that arrived before this (unix seconds, UTC).
    pub since: Option<i64>,
}

impl Filter {
    /// True if the folder is selected by `--folder`/`--exclude`.
    pub fn wants_folder(&self, name: &FolderName) -> bool {
        (self.folders.is_empty() || self.folders.iter().any(|g| g.matches(name)))
            && !self.excludes.iter().any(|g| g.matches(name))
    }

    /// True if a message of this size and arrival date is selected.
    pub fn wants_message(&self, size: u64, arrived: i64) -> bool {
        self.max_size.is_none_or(|m| size <= m) && self.since.is_none_or(|s| arrived >= s)
    }
}

/// Parses `20M`, `512k`, `1.5G`, `1000` (bytes; powers of 1024).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = t[i..].to_ascii_lowercase();
            let m: u64 = match unit.trim_end_matches("ib").trim_end_matches('b') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => {
                    return Err(Error::Usage(format!(
                        "size {s:?}: unknown unit (use k, M, G)"
                    )));
                }
            };
            (&t[..i], m)
        }
        None => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| Error::Usage(format!("size {s:?}: expected a number like 20M or 512k")))?;
    if !(n.is_finite() && n >= 0.0) {
        return Err(Error::Usage(format!(
            "size {s:?}: must be a positive number"
        )));
    }
    Ok((n * mult as f64).round() as u64)
}

/// Parses `YYYY-MM-DD` as midnight UTC, in unix seconds.
pub fn parse_date(s: &str) -> Result<i64> {
    let bad = || Error::Usage(format!("date {s:?}: expected YYYY-MM-DD"));
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    let m: u32 = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    let d: u32 = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok(crate::date::days_from_civil(y, m, d) * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> FolderName {
        FolderName::new(s)
    }

    #[test]
    fn globs() {
        assert!(Glob::new("Archive/*").matches(&f("Archive/2024")));
        assert!(!Glob::new("Archive/*").matches(&f("Archive/2024/Q1")));
        assert!(Glob::new("Archive/**").matches(&f("Archive/2024/Q1")));
        assert!(Glob::new("*").matches(&f("Entwürfe")));
        assert!(Glob::new("Entw?rfe").matches(&f("Entwürfe")));
        assert!(Glob::new("inbox").matches(&f("INBOX")));
        assert!(Glob::new("inbox/*").matches(&f("INBOX/x")));
        assert!(!Glob::new("Sent").matches(&f("Sent Items")));
    }

    #[test]
    fn exclude_wins() {
        let flt = Filter {
            folders: vec![Glob::new("**")],
            excludes: vec![Glob::new("Trash")],
            ..Default::default()
        };
        assert!(flt.wants_folder(&f("INBOX")));
        assert!(!flt.wants_folder(&f("Trash")));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("20M").unwrap(), 20 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("2MiB").unwrap(), 2 << 20);
        assert!(parse_size("20X").is_err());
        assert!(parse_size("-1M").is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01").unwrap(), 0);
        assert_eq!(parse_date("2024-02-29").unwrap(), 1_709_164_800);
        assert!(parse_date("2024-13-01").is_err());
    }
}
