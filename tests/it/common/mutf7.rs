//! Modified UTF-7 (RFC 3501 §5.1.3) encoder, local to the tests so that the
//! harness does not trust the product's own codec it is meant to check.

/// Encodes one mailbox name component (or a whole name) as IMAP modified
/// UTF-7: printable ASCII stays, `&` becomes `&-`, everything else is
/// UTF-16BE in base64 with `,` for `/`, no padding, between `&` and `-`.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for ch in name.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut pending, &mut out);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

fn flush(pending: &mut Vec<u16>, out: &mut String) {
    if pending.is_empty() {
        return;
    }
    let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    out.push_str(&super::corpus::base64(
        &bytes,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,",
        false,
    ));
    out.push('-');
    pending.clear();
}
