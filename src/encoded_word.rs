//! RFC 2047 encoded words (`=?charset?B|Q?…?=`) in an unstructured header
//! such as Subject, decoded for display.
//!
//! Mailers split a long subject over several encoded words and do not
//! always cut between characters: the UTF-8 (or GB2312, Shift_JIS) bytes of
//! one character end up in two words. mail-parser 0.11 decodes each word
//! on its own, which turns such a character into replacement marks; here
//! adjacent words in the same charset are joined as bytes first, then
//! decoded once ([`crate::charset`]), as common mail readers do. White
//! space between adjacent encoded words is dropped (RFC 2047 §6.2).

use base64::Engine;

/// Unfolds and decodes a raw header value (the bytes after `Name:`).
/// Never fails: what is not a well-formed encoded word stays as it is,
/// and 8-bit text is read as UTF-8.
pub fn decode_unstructured(raw: &[u8]) -> String {
    let raw = unfold(raw);
    let mut segs: Vec<Seg> = Vec::new();
    let mut text = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'='
            && raw.get(i + 1) == Some(&b'?')
            && let Some((word, len)) = parse_word(&raw[i..])
        {
            if !text.is_empty() {
                segs.push(Seg::Text(std::mem::take(&mut text)));
            }
            segs.push(word);
            i += len;
            continue;
        }
        text.push(raw[i]);
        i += 1;
    }
    if !text.is_empty() {
        segs.push(Seg::Text(text));
    }
    // Drop white space between two encoded words, then join neighbours in
    // one charset.
    let mut merged: Vec<Seg> = Vec::with_capacity(segs.len());
    for (k, s) in segs.iter().enumerate() {
        let between_words = matches!(s, Seg::Text(t) if t.iter().all(|b| b.is_ascii_whitespace()))
            && matches!(merged.last(), Some(Seg::Word { .. }))
            && matches!(segs.get(k + 1), Some(Seg::Word { .. }));
        if between_words {
            continue;
        }
        match (merged.last_mut(), s) {
            (
                Some(Seg::Word { charset, bytes }),
                Seg::Word {
                    charset: c2,
                    bytes: b2,
                },
            ) if charset == c2 => bytes.extend_from_slice(b2),
            _ => merged.push(s.clone()),
        }
    }
    let mut out = String::new();
    for s in &merged {
        match s {
            Seg::Text(t) => out.push_str(&String::from_utf8_lossy(t)),
            Seg::Word { charset, bytes } => out.push_str(&crate::charset::decode(charset, bytes)),
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Seg {
    Text(Vec<u8>),
    /// Decoded bytes of one or more encoded words; charset lowercased,
    /// without an RFC 2231 language (`utf-8*en`).
    Word {
        charset: String,
        bytes: Vec<u8>,
    },
}

/// Removes folding: a line break followed by white space is the white
/// space alone (RFC 5322 §2.2.3); any other CR or LF is dropped.
fn unfold(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for &b in raw {
        if b != b'\r' && b != b'\n' {
            out.push(b);
        }
    }
    out
}

/// One encoded word at the start of `s`: the segment and its length.
fn parse_word(s: &[u8]) -> Option<(Seg, usize)> {
    let rest = s.strip_prefix(b"=?")?;
    let q1 = rest.iter().position(|&b| b == b'?')?;
    let charset = &rest[..q1];
    if charset.is_empty() || charset.iter().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    let enc = *rest.get(q1 + 1)?;
    if rest.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let body = &rest[q1 + 3..];
    let end = body.windows(2).position(|w| w == b"?=")?;
    let text = &body[..end];
    if text.iter().any(|b| b.is_ascii_whitespace() || *b == b'?') {
        return None;
    }
    let bytes = match enc {
        b'B' | b'b' => base64_lenient(text)?,
        b'Q' | b'q' => q_decode(text),
        _ => return None,
    };
    let charset = String::from_utf8_lossy(charset).to_ascii_lowercase();
    let charset = charset.split('*').next().unwrap_or_default().to_string();
    Some((Seg::Word { charset, bytes }, 2 + q1 + 3 + end + 2))
}

/// Base64 as mailers write it: padding present or not.
fn base64_lenient(text: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(text).ok()
}

/// The `Q` encoding: `_` is a space, `=XX` a byte; a stray `=` stays.
fn q_decode(text: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let digit = |k: usize| text.get(k).and_then(|&b| hex(b));
                match (digit(i + 1), digit(i + 2)) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'='),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::decode_unstructured as d;

    #[test]
    fn plain_and_single_words() {
        assert_eq!(d(b" Hello"), " Hello");
        assert_eq!(
            d(b"=?utf-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?="),
            "Grüße aus Köln"
        );
        assert_eq!(d(b"=?ISO-8859-1?b?Q2Fm6Q==?="), "Café");
        assert_eq!(d("raw 8-bit Ümlaut".as_bytes()), "raw 8-bit Ümlaut");
    }

    #[test]
    fn white_space_between_words_goes_text_around_them_stays() {
        assert_eq!(d(b"=?utf-8?Q?a?= =?utf-8?Q?b?="), "ab");
        assert_eq!(d(b"=?utf-8?Q?a?=\r\n\t=?iso-8859-1?Q?b?="), "ab");
        assert_eq!(d(b"Re: =?utf-8?Q?a?= x =?utf-8?Q?b?= y"), "Re: a x b y");
    }

    #[test]
    fn a_character_split_over_two_words_is_whole() {
        // "é" is C3 A9: split between the words.
        assert_eq!(d(b"=?UTF-8?B?Y8M=?= =?UTF-8?B?qQ==?="), "cé");
        assert_eq!(d(b"=?utf-8?Q?c=C3?=\r\n =?UTF-8?Q?=A9?="), "cé");
        // GB2312 "中" (D6 D0) split likewise.
        assert_eq!(d(b"=?gb2312?B?1g==?= =?gb2312?B?0A==?="), "中");
    }

    #[test]
    fn malformed_words_stay_as_text() {
        for s in [
            "=?utf-8?Q?no end",
            "=?utf-8?X?a?=",
            "=??Q?a?=",
            "=?utf-8?B?not base64!?=",
            "=?utf-8?Q?has space?=",
        ] {
            assert_eq!(d(s.as_bytes()), s);
        }
        assert_eq!(d(b"=?utf-8?Q?50=25_off?="), "50% off");
        assert_eq!(d(b"=?utf-8?Q?a=ZZ?="), "a=ZZ");
        assert_eq!(d(b"=?utf-8*en?Q?lang?="), "lang");
    }
}
