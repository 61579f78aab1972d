//! Modified UTF-7 (RFC 3501 §5.1.3), the encoding IMAP uses for folder names
//! on the wire and Dovecot uses for Maildir++ directory names.
//!
//! Written in-house because utf7-imap panics on malformed input and treats
//! 0x7F as printable (crates.md §2). Decoding is strict: only the one
//! canonical encoding of a name is accepted, so two different wire names can
//! never decode to the same folder (which would merge or duplicate folders).

use std::fmt;

/// Why a string is not canonical modified UTF-7. Carries the input and the
/// byte position so a user can find the offending folder name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutf7Error {
    /// The whole input, as given.
    pub input: String,
    /// Byte offset of the problem in `input`.
    pub pos: usize,
    /// What is wrong there.
    pub reason: &'static str,
}

impl fmt::Display for Mutf7Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid modified UTF-7 name {:?} at byte {}: {}",
            self.input, self.pos, self.reason
        )
    }
}

impl std::error::Error for Mutf7Error {}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn b64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b',' => 63,
        _ => return None,
    } as u32)
}

fn is_direct(c: char) -> bool {
    ('\u{20}'..='\u{7e}').contains(&c)
}

/// Encodes a decoded name; total, so any Unicode folder name can be sent to
/// a server or written to disk.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut units: Vec<u16> = Vec::new();
    let mut buf = [0u16; 2];
    for c in s.chars() {
        if is_direct(c) {
            flush_shift(&mut out, &mut units);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            units.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush_shift(&mut out, &mut units);
    out
}

fn flush_shift(out: &mut String, units: &mut Vec<u16>) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &u in units.iter() {
        acc = (acc << 16) | u as u32;
        bits += 16;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 0x3f) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize] as char);
    }
    out.push('-');
    units.clear();
}

/// Decodes a wire or on-disk name, rejecting anything that is not the
/// canonical encoding of some string (see the module docs). Never panics.
pub fn decode(s: &str) -> Result<String, Mutf7Error> {
    let err = |pos: usize, reason: &'static str| Mutf7Error {
        input: s.to_string(),
        pos,
        reason,
    };
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    // End offset of the last base64 section, to catch `&AAA-&AAA-`.
    let mut last_shift_end: Option<usize> = None;
    while i < b.len() {
        let c = b[i];
        if c != b'&' {
            if !(0x20..=0x7e).contains(&c) {
                return Err(err(
                    i,
                    "byte outside printable US-ASCII must be base64-encoded",
                ));
            }
            out.push(c as char);
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        if b.get(i) == Some(&b'-') {
            out.push('&');
            i += 1;
            continue;
        }
        if last_shift_end == Some(start) {
            return Err(err(start, "two adjacent base64 sections (non-canonical)"));
        }
        let mut acc: u32 = 0;
        let mut bits = 0u32;
        let mut units: Vec<u16> = Vec::new();
        loop {
            let Some(&d) = b.get(i) else {
                return Err(err(start, "unterminated '&' shift (missing '-')"));
            };
            if d == b'-' {
                break;
            }
            let Some(v) = b64_value(d) else {
                return Err(err(i, "invalid character in base64 section"));
            };
            acc = ((acc << 6) | v) & 0x3f_ffff;
            bits += 6;
            if bits >= 16 {
                bits -= 16;
                units.push((acc >> bits) as u16);
                acc &= (1 << bits) - 1;
            }
            i += 1;
        }
        if bits >= 6 {
            return Err(err(
                i,
                "superfluous base64 character before '-' (non-canonical)",
            ));
        }
        if acc != 0 {
            return Err(err(i, "leftover bits are not zero (non-canonical)"));
        }
        let mut pending = units.iter().copied().peekable();
        while let Some(u) = pending.next() {
            let ch = match u {
                0xd800..=0xdbff => match pending.peek().copied() {
                    Some(lo @ 0xdc00..=0xdfff) => {
                        pending.next();
                        let cp = 0x10000 + (((u as u32) - 0xd800) << 10) + (lo as u32 - 0xdc00);
                        char::from_u32(cp).ok_or_else(|| err(start, "invalid code point"))?
                    }
                    _ => return Err(err(start, "unpaired high surrogate")),
                },
                0xdc00..=0xdfff => return Err(err(start, "unpaired low surrogate")),
                _ => char::from_u32(u as u32).ok_or_else(|| err(start, "invalid code point"))?,
            };
            if is_direct(ch) {
                return Err(err(
                    start,
                    "base64 section encodes printable ASCII (non-canonical)",
                ));
            }
            out.push(ch);
        }
        i += 1; // the '-'
        last_shift_end = Some(i);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &[(&str, &str)] = &[
        ("Entwürfe", "Entw&APw-rfe"),
        ("日本語", "&ZeVnLIqe-"),
        ("a&b", "a&-b"),
        ("Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
        ("", ""),
        ("&", "&-"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("\u{7f}", "&AH8-"),
        ("😀", "&2D3eAA-"),
    ];

    #[test]
    fn known_vectors() {
        for (plain, wire) in VECTORS {
            assert_eq!(encode(plain), *wire, "encode {plain:?}");
            assert_eq!(decode(wire).as_deref(), Ok(*plain), "decode {wire:?}");
        }
    }

    #[test]
    fn rejects_non_canonical_and_malformed() {
        for bad in [
            "Bad&Jjo!-name", // bad base64 char
            "abc&ZeVn",      // unterminated
            "&",             // unterminated
            "&AGE-",         // encodes printable 'a'
            "&APw-&APw-",    // adjacent sections
            "&APx-",         // leftover bits non-zero
            "&APwA-",        // superfluous char
            "&2D0-",         // lone high surrogate
            "&3gA-",         // lone low surrogate
            "a\tb",          // raw control
            "ü",             // raw non-ASCII
            "&AP",           // unterminated
        ] {
            let e = decode(bad).expect_err(bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        // Separate sections are fine when something printable sits between.
        assert_eq!(decode("&APw-x&APw-").unwrap(), "üxü");
        assert_eq!(decode("&APw-&-").unwrap(), "ü&");
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random_char(r: &mut XorShift) -> char {
        loop {
            let c = match r.below(8) {
                0 => Some('&'),
                1 => char::from_u32(r.below(0x20) as u32),
                2 => Some('\u{7f}'),
                3 | 4 => char::from_u32(0x20 + r.below(0x5f) as u32),
                5 => char::from_u32(0x80 + r.below(0x780) as u32),
                6 => char::from_u32(r.below(0x1_0000) as u32),
                _ => char::from_u32(0x1_0000 + r.below(0x10_0000) as u32),
            };
            if let Some(c) = c {
                return c;
            }
        }
    }

    #[test]
    fn property_round_trip() {
        let mut r = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let len = r.below(24) as usize;
            let s: String = (0..len).map(|_| random_char(&mut r)).collect();
            let e = encode(&s);
            assert!(
                e.bytes().all(|b| (0x20..=0x7e).contains(&b)),
                "{s:?} -> {e:?}"
            );
            assert_eq!(decode(&e).as_deref(), Ok(s.as_str()), "{s:?} -> {e:?}");
        }
    }

    #[test]
    fn decode_never_panics_on_random_bytes() {
        let mut r = XorShift(0x1234_5678_9abc_def1);
        let pool = b"&-+,AZaz09!~ \x7f\x00/";
        for _ in 0..50_000 {
            let len = r.below(16) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if r.below(4) == 0 {
                        r.below(256) as u8
                    } else {
                        pool[r.below(pool.len() as u64) as usize]
                    }
                })
                .collect();
            let s = String::from_utf8_lossy(&bytes);
            if let Ok(d) = decode(&s) {
                // Whatever decodes must be canonical: re-encoding gives it back.
                assert_eq!(encode(&d), s);
            }
        }
    }
}
