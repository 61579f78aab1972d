//! Text in a mail charset to Unicode, for display (prune's subject
//! column). UTF-8 and ASCII are decoded here; every other charset by the
//! C library's iconv, which on glibc and musl knows the CJK ones mail
//! still uses (GB2312/GBK/GB18030, Shift_JIS/CP932, EUC-JP, ISO-2022-JP,
//! Big5, EUC-KR) besides the ISO-8859 and windows-125x families. A name
//! iconv does not know falls back to mail-parser's single-byte tables.
//!
//! Why not mail-parser alone: without its `full_encoding` feature it
//! decodes multi-byte charsets as (lossy) UTF-8, and that feature pulls in
//! encoding_rs, a crate the project does not carry.

use std::ffi::CString;

/// Decodes `bytes` in `charset` (a MIME charset name, any case). Bytes
/// that are invalid in it become U+FFFD; an unknown charset is read as
/// UTF-8.
pub fn decode(charset: &str, bytes: &[u8]) -> String {
    let label = charset.trim().to_ascii_lowercase();
    if matches!(label.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii" | "") {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    // The superset where the C library knows it (glibc does), else the
    // label itself (musl knows "shift_jis" but not "CP932").
    let superset = iconv_name(&label);
    let converted = iconv(superset, bytes)
        .or_else(|| (superset != label).then(|| iconv(&label, bytes)).flatten());
    if let Some(s) = converted {
        return s;
    }
    match mail_parser::decoders::charsets::map::charset_decoder(label.as_bytes()) {
        Some(decode) => decode(bytes),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The iconv name for a MIME label. Labels whose charset mailers
/// routinely exceed get the superset that decodes what they really send
/// (as browsers do): GBK and GB18030 characters in "gb2312", Microsoft's
/// additions in "shift_jis" and "ks_c_5601-1987", windows-1252 in
/// "iso-8859-1".
fn iconv_name(label: &str) -> &str {
    match label {
        "gb2312" | "gbk" | "cp936" | "x-gbk" | "euc-cn" | "csgb2312" | "gb_2312-80" | "chinese"
        | "gb18030" => "GB18030",
        "shift_jis" | "shift-jis" | "sjis" | "x-sjis" | "ms_kanji" | "csshiftjis"
        | "windows-31j" | "cp932" => "CP932",
        "euc-kr" | "ks_c_5601-1987" | "ks_c_5601" | "cp949" | "korean" | "cseuckr" => "UHC",
        "big5" | "big5-hkscs" | "cn-big5" | "x-x-big5" | "csbig5" => "BIG5-HKSCS",
        "iso-8859-1" | "iso8859-1" | "latin1" | "l1" | "cp819" => "WINDOWS-1252",
        other => other,
    }
}

/// Converts with iconv(3) to UTF-8; `None` when iconv does not know the
/// charset (or the C library ships no conversion modules).
fn iconv(name: &str, bytes: &[u8]) -> Option<String> {
    let from = CString::new(name).ok()?;
    // SAFETY: both names are NUL-terminated; the descriptor is closed
    // below on every path after a successful open.
    let cd = unsafe { libc::iconv_open(c"UTF-8".as_ptr(), from.as_ptr()) };
    if cd as isize == -1 {
        return None;
    }
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len() * 3 + 16);
    let mut input = bytes.to_vec();
    let mut inp = input.as_mut_ptr().cast::<libc::c_char>();
    let mut inleft = input.len();
    let mut buf = [0u8; 1024];
    loop {
        let mut outp = buf.as_mut_ptr().cast::<libc::c_char>();
        let mut outleft = buf.len();
        // SAFETY: `inp`/`inleft` stay within `input`, `outp`/`outleft`
        // within `buf`; iconv only advances them within those bounds. A
        // null input flushes a stateful encoding's shift sequence.
        let r = unsafe {
            if inleft == 0 {
                libc::iconv(
                    cd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    &mut outp,
                    &mut outleft,
                )
            } else {
                libc::iconv(cd, &mut inp, &mut inleft, &mut outp, &mut outleft)
            }
        };
        let errno = std::io::Error::last_os_error().raw_os_error();
        out.extend_from_slice(&buf[..buf.len() - outleft]);
        if r != usize::MAX {
            if inleft == 0 {
                break;
            }
            continue;
        }
        match errno {
            Some(libc::E2BIG) => continue,
            // An invalid byte: mark it and go on with the next one.
            Some(libc::EILSEQ) if inleft > 0 => {
                out.extend_from_slice("\u{FFFD}".as_bytes());
                // SAFETY: inleft > 0, so one more byte is inside `input`.
                inp = unsafe { inp.add(1) };
                inleft -= 1;
            }
            // Cut off mid-character at the end, or anything else.
            _ => {
                out.extend_from_slice("\u{FFFD}".as_bytes());
                break;
            }
        }
    }
    // SAFETY: `cd` came from a successful iconv_open and is closed once.
    unsafe { libc::iconv_close(cd) };
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn cjk_and_western_charsets() {
        let gb = [0xd6, 0xd0, 0xce, 0xc4];
        assert_eq!(decode("GB2312", &gb), "中文");
        // 镕 is GBK, outside GB2312: mailers label it gb2312 anyway.
        assert_eq!(decode("gb2312", &[0xe9, 0x46]), "镕");
        assert_eq!(decode("Shift_JIS", &[0x93, 0xfa, 0x96, 0x7b]), "日本");
        assert_eq!(decode("iso-2022-jp", b"\x1b$BF|K\\\x1b(B!"), "日本!");
        assert_eq!(decode("ISO-8859-1", b"Caf\xe9"), "Café");
        assert_eq!(decode("windows-1251", b"\xcf\xf0\xe8"), "При");
        assert_eq!(decode("UTF-8", "ß".as_bytes()), "ß");
    }

    #[test]
    fn invalid_bytes_and_unknown_charsets_never_fail() {
        // A lone lead byte at the end, and an invalid one in the middle.
        assert_eq!(decode("gb2312", &[0xd6, 0xd0, 0xd6]), "中\u{FFFD}");
        assert_eq!(decode("shift_jis", &[0x41, 0xa0, 0x42]).chars().count(), 3);
        assert_eq!(decode("x-no-such-charset", b"plain"), "plain");
    }
}
