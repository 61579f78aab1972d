//! Pure encoders/decoders for the IMAP wire: UID sets, INTERNALDATE,
//! quoted strings and mailbox names. No I/O here, so all of it is unit
//! tested on plain strings.

use std::fmt;

use crate::date::{civil_from_days, days_from_civil};
use crate::types::{FolderName, Uid};

/// A set of UIDs kept as sorted, merged ranges, so a 50,000-message folder
/// becomes `1:50000` on the wire instead of a 300 KB command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UidSet {
    ranges: Vec<(u32, u32)>,
}

impl UidSet {
    /// Builds a compact set from UIDs in any order, duplicates allowed.
    pub fn from_uids(uids: impl IntoIterator<Item = Uid>) -> UidSet {
        let mut v: Vec<u32> = uids.into_iter().map(|u| u.0).filter(|&u| u > 0).collect();
        v.sort_unstable();
        v.dedup();
        let mut s = UidSet::default();
        for u in v {
            s.push_range(u, u);
        }
        s
    }

    /// Builds a set from ranges in any order (e.g. a VANISHED response).
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u32, u32)>) -> UidSet {
        let mut v: Vec<(u32, u32)> = ranges
            .into_iter()
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect();
        v.sort_unstable();
        let mut s = UidSet::default();
        for (a, b) in v {
            s.push_range(a, b);
        }
        s
    }

    /// Appends a range that starts at or after the current last range.
    fn push_range(&mut self, a: u32, b: u32) {
        if let Some(last) = self.ranges.last_mut()
            && a <= last.1.saturating_add(1)
        {
            last.1 = last.1.max(b);
            return;
        }
        self.ranges.push((a, b));
    }

    /// Number of UIDs in the set.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|&(a, b)| u64::from(b - a) + 1).sum()
    }

    /// True when no UID is in the set.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Membership by binary search over the ranges.
    pub fn contains(&self, uid: Uid) -> bool {
        let u = uid.0;
        match self.ranges.binary_search_by(|&(a, _)| a.cmp(&u)) {
            Ok(_) => true,
            Err(0) => false,
            Err(i) => self.ranges[i - 1].1 >= u,
        }
    }

    /// The merged inclusive ranges, ascending.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges
    }

    /// Every UID, ascending (lazy, so `1:4000000000` costs nothing up front).
    pub fn iter(&self) -> impl Iterator<Item = Uid> + '_ {
        self.ranges.iter().flat_map(|&(a, b)| (a..=b).map(Uid))
    }

    /// Splits into sets of at most `max_uids` UIDs whose wire form stays
    /// under `max_bytes`, so one command never exceeds server line limits
    /// and one failed command costs a bounded amount of work.
    pub fn chunks(&self, max_uids: u64, max_bytes: usize) -> Vec<UidSet> {
        let mut out = Vec::new();
        let mut cur = UidSet::default();
        let (mut n, mut bytes) = (0u64, 0usize);
        for &(a, b) in &self.ranges {
            let mut a = a;
            loop {
                let room = max_uids - n;
                let take_end = if u64::from(b - a) + 1 > room {
                    a + (room as u32) - 1
                } else {
                    b
                };
                let piece_len = range_wire_len(a, take_end) + 1;
                if n > 0 && bytes + piece_len > max_bytes {
                    out.push(std::mem::take(&mut cur));
                    (n, bytes) = (0, 0);
                    continue;
                }
                cur.ranges.push((a, take_end));
                n += u64::from(take_end - a) + 1;
                bytes += piece_len;
                if n >= max_uids {
                    out.push(std::mem::take(&mut cur));
                    (n, bytes) = (0, 0);
                }
                if take_end == b {
                    break;
                }
                a = take_end + 1;
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }
}

fn range_wire_len(a: u32, b: u32) -> usize {
    let d = |x: u32| x.to_string().len();
    if a == b { d(a) } else { d(a) + 1 + d(b) }
}

impl fmt::Display for UidSet {
    /// The IMAP sequence-set form, e.g. `1:500,502,510:700`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(a, b)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}:{b}")?;
            }
        }
        Ok(())
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses an INTERNALDATE (`17-Jul-1996 02:44:25 -0700`, day may be
/// space-padded) into Unix seconds, honouring its zone.
pub fn parse_internal_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once(' ')?;
    let mut dp = date.split('-');
    let day: u32 = dp.next()?.trim().parse().ok()?;
    let mon = dp.next()?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))? as u32 + 1;
    let year: i64 = dp.next()?.parse().ok()?;
    let (time, zone) = rest.trim().split_once(' ')?;
    let mut tp = time.split(':');
    let h: i64 = tp.next()?.parse().ok()?;
    let mi: i64 = tp.next()?.parse().ok()?;
    let se: i64 = tp.next()?.parse().ok()?;
    let zone = zone.trim();
    if zone.len() != 5 || !((1..=31).contains(&day) && h < 24 && mi < 60 && se < 61) {
        return None;
    }
    let sign = match &zone[..1] {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let zh: i64 = zone[1..3].parse().ok()?;
    let zm: i64 = zone[3..5].parse().ok()?;
    let local = days_from_civil(year, month, day) * 86_400 + h * 3600 + mi * 60 + se;
    Some(local - sign * (zh * 3600 + zm * 60))
}

/// Formats Unix seconds as an APPEND date-time in UTC, already quoted:
/// `"02-Jan-2018 03:04:05 +0000"` (an unquoted date makes Dovecot wait
/// forever, crates.md §2).
pub fn format_internal_date(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "\"{d:02}-{}-{y:04} {:02}:{:02}:{:02} +0000\"",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// True when `s` can go on the wire as a quoted string (printable ASCII
/// only); anything else needs a literal.
pub(crate) fn quotable(s: &[u8]) -> bool {
    s.iter().all(|&b| (0x20..0x7f).contains(&b))
}

/// Quotes a printable-ASCII string, escaping `\` and `"`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Modified UTF-7 decoding of one mailbox name (RFC 3501 §5.1.3).
pub(crate) fn decode_mailbox(s: &str) -> Result<String, String> {
    crate::mutf7::decode(s).map_err(|e| e.to_string())
}

/// Modified UTF-7 encoding of one mailbox name.
pub(crate) fn encode_mailbox(s: &str) -> String {
    crate::mutf7::encode(s)
}

/// The character that stands in for a `/` inside one server-side name
/// component (FolderName reserves `/` for hierarchy): U+2215 DIVISION SLASH.
pub const SLASH_STANDIN: char = '\u{2215}';

/// Decodes a wire mailbox name into a [`FolderName`]: mUTF-7 per
/// component, server delimiter → `/`, a `/` inside a component → U+2215.
/// On broken mUTF-7 the raw wire name is kept and a warning returned.
pub fn decode_folder(wire: &str, delimiter: Option<char>) -> (FolderName, Option<String>) {
    let comps: Vec<&str> = match delimiter {
        Some(d) => wire.split(d).collect(),
        None => vec![wire],
    };
    let mut parts = Vec::with_capacity(comps.len());
    let mut warning = None;
    for (i, c) in comps.iter().enumerate() {
        let mut dec = match decode_mailbox(c) {
            Ok(d) => d,
            Err(e) => {
                return (
                    FolderName::new(wire),
                    Some(format!(
                        "folder {wire:?}: invalid modified UTF-7 ({e}); using the raw name"
                    )),
                );
            }
        };
        if i == 0 && dec.eq_ignore_ascii_case("INBOX") {
            dec = "INBOX".into();
        }
        if dec.contains('/') {
            warning = Some(format!(
                "folder {wire:?}: a name part contains '/', which mailferry uses as the hierarchy separator; shown with '{SLASH_STANDIN}' instead"
            ));
            dec = dec.replace('/', &SLASH_STANDIN.to_string());
        }
        parts.push(dec);
    }
    (FolderName::new(parts.join("/")), warning)
}

/// Encodes a [`FolderName`] for a server with `delimiter`: mUTF-7 per
/// component, `/` → delimiter. Refuses a component holding the delimiter,
/// which the server would read as an extra hierarchy level.
pub fn encode_folder(name: &FolderName, delimiter: Option<char>) -> Result<String, String> {
    let comps: Vec<&str> = name.components().collect();
    let Some(d) = delimiter else {
        if comps.len() > 1 {
            return Err(format!(
                "folder {name}: the server has a flat namespace (no hierarchy delimiter)"
            ));
        }
        return Ok(encode_mailbox(&name.as_str().replace(SLASH_STANDIN, "/")));
    };
    let mut out = Vec::with_capacity(comps.len());
    for c in comps {
        let c = if d == '/' {
            c.to_string()
        } else {
            c.replace(SLASH_STANDIN, "/")
        };
        if c.contains(d) {
            return Err(format!(
                "folder {name}: the part {c:?} contains the server's hierarchy delimiter {d:?}"
            ));
        }
        if c.is_empty() {
            return Err(format!("folder {name}: empty name part"));
        }
        out.push(encode_mailbox(&c));
    }
    Ok(out.join(&d.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_set_compacts_and_prints() {
        let s = UidSet::from_uids([5, 1, 2, 3, 3, 9, 10, 7].map(Uid));
        assert_eq!(s.to_string(), "1:3,5,7,9:10");
        assert_eq!(s.len(), 7);
        assert!(s.contains(Uid(2)) && s.contains(Uid(10)) && !s.contains(Uid(4)));
        assert!(!s.contains(Uid(0)) && !s.contains(Uid(11)));
        let r = UidSet::from_ranges([(10, 20), (1, 3), (4, 4), (15, 30)]);
        assert_eq!(r.to_string(), "1:4,10:30");
        assert_eq!(r.iter().count(), 25);
    }

    #[test]
    fn uid_set_chunks_respect_count_and_bytes() {
        let s = UidSet::from_ranges([(1, 2500)]);
        let c = s.chunks(1000, 8000);
        assert_eq!(
            c.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            ["1:1000", "1001:2000", "2001:2500"]
        );
        let sparse = UidSet::from_uids((1..=4000u32).map(|u| Uid(u * 2)));
        let c = sparse.chunks(100_000, 1000);
        assert!(c.len() > 10);
        assert!(c.iter().all(|c| c.to_string().len() <= 1000));
        assert_eq!(c.iter().map(|c| c.len()).sum::<u64>(), 4000);
        let back: Vec<Uid> = c
            .iter()
            .flat_map(|c| c.iter().collect::<Vec<_>>())
            .collect();
        assert_eq!(back, sparse.iter().collect::<Vec<_>>());
    }

    #[test]
    fn dates_parse_with_zone_and_format_utc() {
        assert_eq!(
            parse_internal_date("17-Jul-1996 02:44:25 -0700"),
            Some(837596665)
        );
        assert_eq!(
            parse_internal_date(" 2-Jan-2018 03:04:05 +0100"),
            Some(1514858645)
        );
        assert_eq!(parse_internal_date("02-Foo-2018 03:04:05 +0100"), None);
        assert_eq!(parse_internal_date("garbage"), None);
        assert_eq!(
            format_internal_date(1514858645),
            "\"02-Jan-2018 02:04:05 +0000\""
        );
        for t in [0i64, 951_782_400, 1_700_000_000, -86_400] {
            let f = format_internal_date(t);
            assert_eq!(parse_internal_date(f.trim_matches('"')), Some(t), "{f}");
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(quote(r#"Quote"Back\slash"#), r#""Quote\"Back\\slash""#);
        assert!(quotable(b"a b") && !quotable("ü".as_bytes()) && !quotable(b"a\r\n"));
    }

    #[test]
    fn mutf7_placeholder_round_trips() {
        for (dec, enc) in [
            ("Entwürfe", "Entw&APw-rfe"),
            ("日本語", "&ZeVnLIqe-"),
            ("a&b", "a&-b"),
            ("Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
        ] {
            assert_eq!(encode_mailbox(dec), enc);
            assert_eq!(decode_mailbox(enc).unwrap(), dec);
        }
        assert!(decode_mailbox("Bad&Jjo!-name").is_err());
        assert!(decode_mailbox("open&AGE").is_err());
    }

    #[test]
    fn folder_names_map_delimiters_both_ways() {
        let (n, w) = decode_folder("INBOX.Entw&APw-rfe.2024", Some('.'));
        assert_eq!((n.as_str(), w), ("INBOX/Entwürfe/2024", None));
        let (n, w) = decode_folder("a/b.c", Some('.'));
        assert_eq!(n.as_str(), "a\u{2215}b/c");
        assert!(w.is_some());
        assert_eq!(encode_folder(&n, Some('.')).unwrap(), "a/b.c");
        let (n, w) = decode_folder("Bad&Jjo!-name/x", Some('/'));
        assert_eq!(n.as_str(), "Bad&Jjo!-name/x");
        assert!(w.unwrap().contains("invalid modified UTF-7"));
        assert_eq!(
            encode_folder(&FolderName::new("日本語/子"), Some('/')).unwrap(),
            "&ZeVnLIqe-/&W1A-"
        );
        assert!(encode_folder(&FolderName::new("a.b/c"), Some('.')).is_err());
        assert!(encode_folder(&FolderName::new("a/b"), None).is_err());
        assert_eq!(decode_folder("inbox", Some('/')).0, FolderName::inbox());
    }
}
