//! Parsing of complete, framed server responses (line plus literals).
//!
//! A tiny tokenizer instead of imap-proto: it unescapes quoted strings
//! (crates.md §2 bug 3), keeps going on responses it does not know
//! (NAMESPACE, LIST-EXTENDED data, unknown response codes) instead of
//! killing the connection, and tells a quoted name from a literal one.

use std::borrow::Cow;

/// One token of IMAP response syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Val<'a> {
    /// Atom or number; `BODY[HEADER.FIELDS (X)]<0>` is one atom.
    Atom(&'a [u8]),
    /// Quoted string (unescaped) or literal.
    Str(Cow<'a, [u8]>),
    Nil,
    List(Vec<Val<'a>>),
    /// A large literal the framing layer read into a buffer of its own
    /// (`Io::take_detached`), by its index in the response.
    Detached(usize),
}

impl<'a> Val<'a> {
    /// The atom or string as text (lossy only for 8-bit garbage).
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Val::Atom(a) => Some(String::from_utf8_lossy(a)),
            Val::Str(s) => Some(String::from_utf8_lossy(s)),
            _ => None,
        }
    }

    pub fn number(&self) -> Option<u64> {
        match self {
            Val::Atom(a) => std::str::from_utf8(a).ok()?.parse().ok(),
            _ => None,
        }
    }

    pub fn list(&self) -> Option<&[Val<'a>]> {
        match self {
            Val::List(l) => Some(l),
            _ => None,
        }
    }
}

/// Cursor over one complete response.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    s: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(s: &'a [u8]) -> Self {
        Cursor { s, pos: 0 }
    }

    pub fn rest(&self) -> &'a [u8] {
        &self.s[self.pos..]
    }

    pub fn skip_sp(&mut self) {
        while self.s.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    /// Consumes `word` (case-insensitive) followed by a space or end.
    pub fn word(&mut self, word: &str) -> bool {
        self.skip_sp();
        let w = word.as_bytes();
        let end = self.pos + w.len();
        if self.s.len() >= end
            && self.s[self.pos..end].eq_ignore_ascii_case(w)
            && matches!(self.s.get(end), None | Some(b' ' | b'\r' | b'\n' | b'('))
        {
            self.pos = end;
            self.skip_sp();
            true
        } else {
            false
        }
    }

    /// Reads one value; `None` at end of line or on `)`.
    pub fn value(&mut self) -> Option<Val<'a>> {
        self.skip_sp();
        let b = *self.s.get(self.pos)?;
        match b {
            b'\r' | b'\n' | b')' => None,
            b'(' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_sp();
                    match self.s.get(self.pos) {
                        Some(b')') => {
                            self.pos += 1;
                            break;
                        }
                        None | Some(b'\r' | b'\n') => break,
                        _ => match self.value() {
                            Some(v) => items.push(v),
                            None => break,
                        },
                    }
                }
                Some(Val::List(items))
            }
            b'"' => {
                self.pos += 1;
                let start = self.pos;
                let mut owned: Option<Vec<u8>> = None;
                while let Some(&c) = self.s.get(self.pos) {
                    match c {
                        b'"' => break,
                        b'\\' if self.pos + 1 < self.s.len() => {
                            let o = owned.get_or_insert_with(|| self.s[start..self.pos].to_vec());
                            o.push(self.s[self.pos + 1]);
                            self.pos += 2;
                            continue;
                        }
                        _ => {
                            if let Some(o) = owned.as_mut() {
                                o.push(c);
                            }
                        }
                    }
                    self.pos += 1;
                }
                let v = match owned {
                    Some(o) => Cow::Owned(o),
                    None => Cow::Borrowed(&self.s[start..self.pos]),
                };
                self.pos = (self.pos + 1).min(self.s.len());
                Some(Val::Str(v))
            }
            b'{' | b'~' => {
                let open = if b == b'~' { self.pos + 1 } else { self.pos };
                let close = open + self.s[open..].iter().position(|&c| c == b'}')?;
                let mut p = close + 1;
                if self.s.get(p) == Some(&b'\r') {
                    p += 1;
                }
                if self.s.get(p) == Some(&b'\n') {
                    p += 1;
                }
                if let Some(k) = self.s[open + 1..close].strip_prefix(b"@") {
                    let k = std::str::from_utf8(k).ok()?.parse().ok()?;
                    self.pos = p;
                    return Some(Val::Detached(k));
                }
                let n: usize = std::str::from_utf8(&self.s[open + 1..close])
                    .ok()?
                    .trim_end_matches('+')
                    .parse()
                    .ok()?;
                let data = self.s.get(p..p + n)?;
                self.pos = p + n;
                Some(Val::Str(Cow::Borrowed(data)))
            }
            _ => {
                let start = self.pos;
                while let Some(&c) = self.s.get(self.pos) {
                    match c {
                        b' ' | b'(' | b')' | b'\r' | b'\n' => break,
                        b'[' => {
                            // section spec: up to the matching ']', spaces and all
                            let mut depth = 0;
                            while let Some(&c) = self.s.get(self.pos) {
                                self.pos += 1;
                                match c {
                                    b'[' => depth += 1,
                                    b']' => {
                                        depth -= 1;
                                        if depth == 0 {
                                            break;
                                        }
                                    }
                                    _ => {}
                                }
                            }
                            continue;
                        }
                        _ => self.pos += 1,
                    }
                }
                let a = &self.s[start..self.pos];
                if a.eq_ignore_ascii_case(b"NIL") {
                    Some(Val::Nil)
                } else {
                    Some(Val::Atom(a))
                }
            }
        }
    }
}

/// Completion status of a tagged or untagged condition response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
    PreAuth,
    Bye,
}

/// A status response's `[CODE args]` and human text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RespText {
    /// Inside of the brackets, e.g. `APPENDUID 38505 3955`.
    pub code: Option<String>,
    pub text: String,
}

impl RespText {
    /// The code's first word, uppercased (`APPENDUID`).
    pub fn code_name(&self) -> Option<String> {
        self.code
            .as_deref()
            .map(|c| c.split(' ').next().unwrap_or("").to_ascii_uppercase())
    }

    /// The code's arguments after its name.
    pub fn code_args(&self) -> &str {
        self.code
            .as_deref()
            .and_then(|c| c.split_once(' ').map(|x| x.1))
            .unwrap_or("")
    }

    /// `[CODE] text` for error messages.
    pub fn display(&self) -> String {
        match &self.code {
            Some(c) => format!("[{c}] {}", self.text),
            None => self.text.clone(),
        }
    }
}

fn strip_crlf(s: &[u8]) -> &[u8] {
    let s = s.strip_suffix(b"\n").unwrap_or(s);
    s.strip_suffix(b"\r").unwrap_or(s)
}

/// Parses `OK [CODE] text` (status word first).
pub(crate) fn parse_status(s: &[u8]) -> Option<(Status, RespText)> {
    let s = strip_crlf(s);
    let (word, rest) = match s.iter().position(|&b| b == b' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &b""[..]),
    };
    let status = match word.to_ascii_uppercase().as_slice() {
        b"OK" => Status::Ok,
        b"NO" => Status::No,
        b"BAD" => Status::Bad,
        b"PREAUTH" => Status::PreAuth,
        b"BYE" => Status::Bye,
        _ => return None,
    };
    Some((status, parse_resp_text(rest)))
}

/// Parses `[CODE args] text` or just `text`.
pub(crate) fn parse_resp_text(s: &[u8]) -> RespText {
    let s = String::from_utf8_lossy(strip_crlf(s));
    if let Some(inner) = s.strip_prefix('[')
        && let Some(end) = inner.find(']')
    {
        return RespText {
            code: Some(inner[..end].to_string()),
            text: inner[end + 1..].trim_start().to_string(),
        };
    }
    RespText {
        code: None,
        text: s.into_owned(),
    }
}

/// A framed response, classified by its first token.
#[derive(Debug)]
pub(crate) enum Resp<'a> {
    /// `* ...`, with the `* ` stripped.
    Untagged(&'a [u8]),
    /// `+ ...`, with the `+` stripped.
    Continue(&'a [u8]),
    Tagged {
        tag: &'a [u8],
        status: Status,
        text: RespText,
    },
    /// A tagged line that is not OK/NO/BAD: a protocol violation.
    Garbage(&'a [u8]),
}

pub(crate) fn classify(raw: &[u8]) -> Resp<'_> {
    if let Some(r) = raw.strip_prefix(b"* ") {
        return Resp::Untagged(r);
    }
    if let Some(r) = raw.strip_prefix(b"+") {
        return Resp::Continue(r.strip_prefix(b" ").unwrap_or(r));
    }
    if let Some(i) = raw.iter().position(|&b| b == b' ')
        && let Some((status, text)) = parse_status(&raw[i + 1..])
        && matches!(status, Status::Ok | Status::No | Status::Bad)
    {
        return Resp::Tagged {
            tag: &raw[..i],
            status,
            text,
        };
    }
    Resp::Garbage(raw)
}

/// What an untagged response is about, for the unsolicited bookkeeping.
#[derive(Debug)]
pub(crate) enum Untagged<'a> {
    Status(Status, RespText),
    Capability(Vec<String>),
    Enabled(Vec<String>),
    Exists(u32),
    Expunge(#[allow(dead_code)] u32),
    Vanished {
        earlier: bool,
        uids: Vec<(u32, u32)>,
    },
    Fetch(u32, Cursor<'a>),
    Flags(Vec<String>),
    Search(Vec<u32>),
    Other(&'a [u8], Cursor<'a>),
}

/// Splits an untagged response (without `* `) into its kind.
pub(crate) fn untagged(r: &[u8]) -> Untagged<'_> {
    if let Some(st) = parse_status(r) {
        return Untagged::Status(st.0, st.1);
    }
    let mut c = Cursor::new(r);
    let words = |c: &mut Cursor<'_>| {
        let mut v = Vec::new();
        while let Some(x) = c.value() {
            if let Some(t) = x.text() {
                v.push(t.into_owned());
            }
        }
        v
    };
    if c.word("CAPABILITY") {
        return Untagged::Capability(words(&mut c));
    }
    if c.word("ENABLED") {
        return Untagged::Enabled(words(&mut c));
    }
    if c.word("FLAGS") {
        let v = c.value();
        return Untagged::Flags(atoms_of(v.as_ref()));
    }
    if c.word("SEARCH") {
        let mut v = Vec::new();
        while let Some(x) = c.value() {
            if let Some(n) = x.number() {
                v.push(n as u32);
            }
        }
        return Untagged::Search(v);
    }
    if c.word("VANISHED") {
        let earlier = matches!(c.rest().first(), Some(b'('));
        if earlier {
            c.value();
        }
        let set = c.value().and_then(|v| v.text().map(|t| t.into_owned()));
        return Untagged::Vanished {
            earlier,
            uids: set.as_deref().map(parse_seq_set).unwrap_or_default(),
        };
    }
    if let Some(Val::Atom(n)) = c.value()
        && let Some(n) = std::str::from_utf8(n)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
    {
        if c.word("EXISTS") {
            return Untagged::Exists(n);
        }
        if c.word("EXPUNGE") {
            return Untagged::Expunge(n);
        }
        if c.word("FETCH") {
            return Untagged::Fetch(n, c);
        }
    }
    let mut c = Cursor::new(r);
    let name = match c.value() {
        Some(Val::Atom(a)) => a,
        _ => &b""[..],
    };
    Untagged::Other(name, c)
}

/// Flag/attribute atoms of a parenthesized list.
pub(crate) fn atoms_of(v: Option<&Val<'_>>) -> Vec<String> {
    v.and_then(|v| v.list())
        .map(|l| {
            l.iter()
                .filter_map(|x| x.text().map(|t| t.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Parses `1:3,5,7:*`-style sets (`*` read as u32::MAX).
pub(crate) fn parse_seq_set(s: &str) -> Vec<(u32, u32)> {
    let num = |x: &str| {
        if x == "*" {
            Some(u32::MAX)
        } else {
            x.parse().ok()
        }
    };
    s.split(',')
        .filter_map(|p| match p.split_once(':') {
            Some((a, b)) => Some((num(a)?, num(b)?)),
            None => num(p).map(|n| (n, n)),
        })
        .collect()
}

/// The name/value pairs of a FETCH response's attribute list.
pub(crate) fn fetch_items<'a>(mut c: Cursor<'a>) -> Vec<(String, Val<'a>)> {
    let mut out = Vec::new();
    let Some(Val::List(items)) = c.value() else {
        return out;
    };
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if let Val::Atom(a) = k {
            out.push((String::from_utf8_lossy(a).to_ascii_uppercase(), v));
        }
    }
    out
}

/// One `* LIST` line, with the name exactly as the server spelled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListLine {
    pub attributes: Vec<String>,
    pub delimiter: Option<char>,
    /// Unescaped (quoted) or verbatim (literal/atom) wire name.
    pub name: String,
}

/// Parses the part after `LIST `; extended data items after the name are
/// ignored rather than fatal.
pub(crate) fn parse_list(c: &mut Cursor<'_>) -> Option<ListLine> {
    let attrs = atoms_of(Some(&c.value()?));
    let delimiter = match c.value()? {
        Val::Nil => None,
        v => v.text()?.chars().next(),
    };
    let name = match c.value()? {
        Val::Atom(a) => String::from_utf8_lossy(a).into_owned(),
        Val::Str(s) => String::from_utf8_lossy(&s).into_owned(),
        Val::Nil => "NIL".into(),
        Val::List(_) | Val::Detached(_) => return None,
    };
    Some(ListLine {
        attributes: attrs,
        delimiter,
        name,
    })
}

/// Parses the part after `STATUS `: mailbox name and attribute pairs.
pub(crate) fn parse_status_data(c: &mut Cursor<'_>) -> Option<(String, Vec<(String, u64)>)> {
    let name = c.value()?.text()?.into_owned();
    let list = c.value()?;
    let l = list.list()?;
    let mut out = Vec::new();
    for pair in l.chunks(2) {
        if let [k, v] = pair {
            out.push((k.text()?.to_ascii_uppercase(), v.number()?));
        }
    }
    Some((name, out))
}

/// Parses `NAMESPACE personal other shared`, each NIL or
/// `(("prefix" "delim") ...)`.
pub(crate) type NsList = Vec<(String, Option<char>)>;

pub(crate) fn parse_namespace(c: &mut Cursor<'_>) -> Option<[NsList; 3]> {
    let mut out: [NsList; 3] = Default::default();
    for slot in out.iter_mut() {
        match c.value()? {
            Val::Nil => {}
            Val::List(l) => {
                for ns in l {
                    let parts = ns.list()?;
                    let prefix = parts.first()?.text()?.into_owned();
                    let delim = match parts.get(1)? {
                        Val::Nil => None,
                        v => v.text()?.chars().next(),
                    };
                    slot.push((prefix, delim));
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_with_escapes_literals_and_extended_data() {
        let r = b"LIST (\\HasNoChildren) \"/\" \"Quote\\\"Back\\\\slash\"\r\n";
        let Untagged::Other(name, mut c) = untagged(r) else {
            panic!()
        };
        assert_eq!(name, b"LIST");
        let l = parse_list(&mut c).unwrap();
        assert_eq!(l.name, "Quote\"Back\\slash");
        assert_eq!(l.delimiter, Some('/'));
        assert_eq!(l.attributes, vec!["\\HasNoChildren"]);

        let r = b"LIST (\\Noselect \\Sent) \"\\\\\" {9}\r\nback\\lash (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n";
        let Untagged::Other(_, mut c) = untagged(r) else {
            panic!()
        };
        let l = parse_list(&mut c).unwrap();
        assert_eq!(l.name, "back\\lash", "literal is verbatim");
        assert_eq!(l.delimiter, Some('\\'));

        let r = b"LIST () NIL INBOX\r\n";
        let Untagged::Other(_, mut c) = untagged(r) else {
            panic!()
        };
        let l = parse_list(&mut c).unwrap();
        assert_eq!((l.delimiter, l.name.as_str()), (None, "INBOX"));
    }

    #[test]
    fn fetch_items_with_body_literal_and_sections() {
        let r = b"12 FETCH (UID 7 FLAGS (\\Seen $Fwd) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 5 MODSEQ (99) BODY[HEADER.FIELDS (MESSAGE-ID)] {5}\r\nab)cd BODY[] NIL)\r\n";
        let Untagged::Fetch(12, c) = untagged(r) else {
            panic!()
        };
        let items = fetch_items(c);
        let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "UID",
                "FLAGS",
                "INTERNALDATE",
                "RFC822.SIZE",
                "MODSEQ",
                "BODY[HEADER.FIELDS (MESSAGE-ID)]",
                "BODY[]"
            ]
        );
        assert_eq!(items[5].1, Val::Str(Cow::Borrowed(b"ab)cd")));
        assert_eq!(items[6].1, Val::Nil);
    }

    #[test]
    fn classify_and_codes() {
        match classify(b"M3 OK [APPENDUID 38505 3955] APPEND completed\r\n") {
            Resp::Tagged { tag, status, text } => {
                assert_eq!(tag, b"M3");
                assert_eq!(status, Status::Ok);
                assert_eq!(text.code_name().as_deref(), Some("APPENDUID"));
                assert_eq!(text.code_args(), "38505 3955");
                assert_eq!(text.text, "APPEND completed");
            }
            r => panic!("{r:?}"),
        }
        assert!(matches!(
            classify(b"+ go ahead\r\n"),
            Resp::Continue(b"go ahead\r\n")
        ));
        assert!(matches!(classify(b"junk\r\n"), Resp::Garbage(_)));
        match untagged(b"OK [PERMANENTFLAGS (\\Seen \\*)] Flags permitted.\r\n") {
            Untagged::Status(Status::Ok, t) => {
                assert_eq!(t.code.as_deref(), Some("PERMANENTFLAGS (\\Seen \\*)"))
            }
            r => panic!("{r:?}"),
        }
        assert!(matches!(untagged(b"3 EXISTS\r\n"), Untagged::Exists(3)));
        match untagged(b"VANISHED (EARLIER) 1:3,7\r\n") {
            Untagged::Vanished { earlier, uids } => {
                assert!(earlier);
                assert_eq!(uids, vec![(1, 3), (7, 7)]);
            }
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn status_and_namespace() {
        let Untagged::Other(_, mut c) =
            untagged(b"STATUS \"a \\\"b\" (MESSAGES 3 UIDNEXT 9 HIGHESTMODSEQ 12)\r\n")
        else {
            panic!()
        };
        let (n, a) = parse_status_data(&mut c).unwrap();
        assert_eq!(n, "a \"b");
        assert_eq!(a[2], ("HIGHESTMODSEQ".into(), 12));
        let Untagged::Other(_, mut c) =
            untagged(b"NAMESPACE ((\"INBOX.\" \".\")) NIL ((\"#shared.\" \".\"))\r\n")
        else {
            panic!()
        };
        let ns = parse_namespace(&mut c).unwrap();
        assert_eq!(ns[0], vec![("INBOX.".to_string(), Some('.'))]);
        assert!(ns[1].is_empty());
    }
}
