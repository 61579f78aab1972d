//! What the executor reads from a message's header: Message-ID (for
//! reconciliation) and Date: (the arrival date where the protocol has none).
//! Only the header is parsed; malformed mail yields `None`, never an error.

/// The header facts the state keeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageHeaders {
    pub message_id: Option<String>,
    /// Date: header, unix seconds.
    pub date: Option<i64>,
}

impl MessageHeaders {
    /// Parses only the header block of `raw`, and in it only the two
    /// fields kept: a default parser also tokenises every Received: line,
    /// which was a visible share of a 10,000-message fetch's CPU.
    pub fn parse(raw: &[u8]) -> MessageHeaders {
        static PARSER: std::sync::LazyLock<mail_parser::MessageParser> =
            std::sync::LazyLock::new(|| {
                use mail_parser::HeaderName;
                mail_parser::MessageParser::new()
                    .header_id(HeaderName::MessageId)
                    .header_date(HeaderName::Date)
                    .default_header_ignore()
            });
        let Some(m) = PARSER.parse_headers(raw) else {
            return MessageHeaders::default();
        };
        MessageHeaders {
            message_id: m.message_id().and_then(normalize_message_id),
            date: m.date().map(|d| d.to_timestamp()).filter(|&t| t > 0),
        }
    }
}

/// The Subject, unfolded, its RFC 2047 words decoded in whatever charset
/// they name ([`crate::encoded_word`]) and trimmed; `None` when there is
/// none or it is empty.
pub fn subject(raw: &[u8]) -> Option<String> {
    let v = raw_header(raw, "subject")?;
    let s = crate::encoded_word::decode_unstructured(&v);
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// The Message-ID of a header block read from a file, exactly as the IMAP
/// side reads it from the server's `BODY[HEADER.FIELDS (MESSAGE-ID)]`
/// (the field's lines, unfolded, normalised), so a file and the server's
/// copy of one message compare equal. Stops at the end of the header.
pub fn message_id_of_header(head: &[u8]) -> Option<String> {
    let mut field = b"Message-ID:".to_vec();
    field.extend(raw_header(head, "message-id")?);
    crate::imap::header_value(&field, "Message-ID")
        .as_deref()
        .and_then(normalize_message_id)
}

/// The raw value of the first `name` field of the header block (after the
/// colon, continuation lines included).
fn raw_header(raw: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if bare.is_empty() {
            break; // the end of the header
        }
        let folded = line[0] == b' ' || line[0] == b'\t';
        match &mut out {
            Some(v) if folded => v.extend_from_slice(line),
            Some(_) => break,
            None => {
                if let Some(colon) = bare.iter().position(|&b| b == b':')
                    && bare[..colon]
                        .trim_ascii_end()
                        .eq_ignore_ascii_case(name.as_bytes())
                {
                    out = Some(line[colon + 1..].to_vec());
                }
            }
        }
    }
    out
}

/// One spelling of a Message-ID for comparisons: no angle brackets, no
/// surrounding white space; empty means none.
pub fn normalize_message_id(s: &str) -> Option<String> {
    let t = s
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!t.is_empty()).then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_message_id_and_date() {
        let h = MessageHeaders::parse(
            b"Message-ID: <abc@x.org>\r\nDate: Thu, 01 Jan 1970 00:01:00 +0000\r\n\r\nbody",
        );
        assert_eq!(h.message_id.as_deref(), Some("abc@x.org"));
        assert_eq!(h.date, Some(60));
    }

    #[test]
    fn malformed_header_gives_nothing_not_an_error() {
        assert_eq!(
            MessageHeaders::parse(b"\x00\xff garbage without colon\n\n"),
            MessageHeaders::default()
        );
        assert_eq!(MessageHeaders::parse(b"").message_id, None);
    }

    #[test]
    fn message_id_of_a_file_header_reads_the_field_only() {
        let h = b"Subject: x\n Message-ID: <not@this>\nMessage-Id:\n <a@b>\nX: y\n\nMessage-ID: <body@x>\n";
        assert_eq!(message_id_of_header(h).as_deref(), Some("a@b"));
        assert_eq!(message_id_of_header(b"Subject: x\r\n\r\n").as_deref(), None);
        assert_eq!(
            message_id_of_header(b"Message-ID: <c@d>\r\n\r\n").as_deref(),
            Some("c@d")
        );
    }

    #[test]
    fn subject_is_the_first_field_unfolded_and_decoded() {
        let m = b"From: a@b\r\nSUBJECT: =?utf-8?Q?caf=C3?=\r\n =?utf-8?Q?=A9?= ok\r\n\tmore\r\nSubject: second\r\n\r\nSubject: body";
        assert_eq!(subject(m).as_deref(), Some("café ok\tmore"));
        assert_eq!(subject(b"From: a@b\n\nSubject: in the body\n"), None);
        assert_eq!(subject(b"Subject:   \n\n"), None);
    }

    #[test]
    fn message_id_spellings_compare_equal() {
        assert_eq!(normalize_message_id(" <a@b> "), normalize_message_id("a@b"));
        assert_eq!(normalize_message_id("<>"), None);
    }
}

/// The bytes as the server sent them, from a Maildir file: a file with no
/// CR at all was stored with CRLF turned into LF (only done when that is
/// exactly reversible), so LF becomes CRLF again; anything else is as-is.
pub fn wire_bytes(file: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if file.contains(&b'\r') || !file.contains(&b'\n') {
        return std::borrow::Cow::Borrowed(file);
    }
    let mut out = Vec::with_capacity(file.len() + file.len() / 40);
    for &b in file {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod wire_tests {
    use super::wire_bytes;
    use crate::maildir::LineEndings;

    #[test]
    fn lf_storage_round_trips_exactly() {
        for msg in [
            &b"a\r\nb\r\n"[..],
            b"x",
            b"a\r\nbare\nlf\r\n",
            b"a\r\r\n",
            b"cr\r",
        ] {
            let stored: Vec<u8> = match LineEndings::lossless_for(msg) {
                LineEndings::Lf => msg.iter().copied().filter(|&b| b != b'\r').collect(),
                LineEndings::AsIs => msg.to_vec(),
            };
            assert_eq!(
                &*wire_bytes(&stored),
                msg,
                "{:?}",
                String::from_utf8_lossy(msg)
            );
        }
    }
}
