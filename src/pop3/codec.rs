//! POP3 wire format without I/O (the imap-codec/imap-next split): the
//! client feeds whatever bytes the socket produced, in any chunking, and
//! gets back protocol events. Keeping this pure makes every framing rule
//! (dot-unstuffing, `CRLF.CRLF`, bare-LF servers, size caps) testable on
//! recorded bytes, and lets the client pipeline without re-deriving framing.
//!
//! POP3 responses are not self-describing (a `+OK` may or may not be
//! followed by a body), so the caller queues an [`Expect`] for every command
//! it sends, in order; the decoder consumes them as responses complete.

use std::collections::VecDeque;
use std::fmt;

use crate::types::Uidl;

/// Size limits that bound memory against a broken or hostile server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest status or continuation line accepted (RFC 2449 allows 512
    /// octets; real servers stay far below 8 KiB).
    pub max_line: usize,
    /// Largest message body (RETR/TOP) accepted; a larger one fails that
    /// message only, the session continues.
    pub max_message: u64,
    /// Largest multi-line listing (UIDL, LIST, CAPA) accepted; these are
    /// collected whole, so they need their own bound.
    pub max_listing: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 8 * 1024,
            max_message: 1 << 30,
            max_listing: 256 << 20,
        }
    }
}

/// What the next response on the wire will look like, known only from the
/// command that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// One status line (greeting, USER, DELE, STAT, LIST n, ...).
    Single,
    /// A status line, and after `+OK` a dot-terminated body. `msgno` names
    /// the message in size-limit errors and selects the message cap
    /// (`None`: a listing, capped by `max_listing`).
    Multi { msgno: Option<u32> },
    /// An AUTH exchange: any number of `+ base64` continuations, then a
    /// final status line.
    Sasl,
}

/// A status line: `+OK`/`-ERR`, an optional RFC 2449 response code and the
/// human text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `+OK` (true) or `-ERR` (false).
    pub ok: bool,
    /// Response code without brackets, upper-cased: `AUTH`, `IN-USE`,
    /// `SYS/TEMP`, `LOGIN-DELAY`, ...
    pub code: Option<String>,
    /// The rest of the line, trimmed; may be empty.
    pub text: String,
}

impl Status {
    /// True for `-ERR` codes that say "try again later" rather than "your
    /// credentials are wrong" (RFC 2449 §8.1, RFC 3206): callers must not
    /// report these as authentication failures.
    pub fn is_temporary(&self) -> bool {
        !self.ok
            && matches!(
                self.code.as_deref(),
                Some("IN-USE") | Some("LOGIN-DELAY") | Some("SYS/TEMP")
            )
    }

    /// The APOP timestamp (`<...>`) from a greeting, needed for the digest.
    pub fn apop_timestamp(&self) -> Option<&str> {
        let start = self.text.find('<')?;
        let len = self.text[start..].find('>')?;
        let ts = &self.text[start..=start + len];
        (ts.len() > 2).then_some(ts)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.ok { "+OK" } else { "-ERR" })?;
        if let Some(c) = &self.code {
            write!(f, " [{c}]")?;
        }
        if !self.text.is_empty() {
            write!(f, " {}", self.text)?;
        }
        Ok(())
    }
}

/// One step of a response, in wire order. A multi-line `+OK` response is
/// `Status`, zero or more `Body` chunks, then `End`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The first line of a response.
    Status(Status),
    /// `+ base64` during AUTH: the server's SASL challenge (base64 text).
    Continuation(String),
    /// Unstuffed body bytes, line endings exactly as received.
    Body(Vec<u8>),
    /// The terminating `.` line of a multi-line response.
    End,
}

/// Why the byte stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// A status line longer than `max_line`: not POP3, or hostile.
    LineTooLong { limit: usize },
    /// The message is larger than the cap. Recoverable: the decoder skips
    /// the rest of this body and then yields [`Event::End`].
    MessageTooLarge { msgno: Option<u32>, limit: u64 },
    /// A line that is neither `+OK`, `-ERR` nor (during AUTH) `+ `.
    Malformed(String),
    /// A command argument holding CR, LF or NUL, which would inject a
    /// second command.
    BadArgument(&'static str),
    /// An earlier fatal error left the stream position unknown.
    Poisoned,
}

impl CodecError {
    /// False only for errors after which the session is still in sync.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, CodecError::MessageTooLarge { .. })
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::LineTooLong { limit } => {
                write!(f, "server sent a response line longer than {limit} bytes")
            }
            CodecError::MessageTooLarge {
                msgno: Some(n),
                limit,
            } => write!(f, "message {n} is larger than the limit of {limit} bytes"),
            CodecError::MessageTooLarge { msgno: None, limit } => {
                write!(f, "listing is larger than the limit of {limit} bytes")
            }
            CodecError::Malformed(l) => write!(f, "unexpected response line {l:?}"),
            CodecError::BadArgument(what) => {
                write!(
                    f,
                    "{what} contains a line break or NUL; refusing to send it"
                )
            }
            CodecError::Poisoned => f.write_str("response stream out of sync after an error"),
        }
    }
}

impl std::error::Error for CodecError {}

#[derive(Debug)]
struct BodyState {
    msgno: Option<u32>,
    size: u64,
    cap: u64,
    at_line_start: bool,
    discarding: bool,
}

/// Incremental response decoder. Feed bytes with [`Decoder::feed`], pull
/// events with [`Decoder::next_event`] until it returns `Ok(None)` (needs
/// more bytes, or nothing is expected).
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    pos: usize,
    expect: VecDeque<Expect>,
    body: Option<BodyState>,
    limits: Limits,
    poisoned: bool,
}

impl Decoder {
    /// A decoder with the given limits and nothing expected yet.
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            buf: Vec::with_capacity(64 * 1024),
            pos: 0,
            expect: VecDeque::new(),
            body: None,
            limits,
            poisoned: false,
        }
    }

    /// Queues the shape of the response to the next command sent.
    pub fn expect(&mut self, e: Expect) {
        self.expect.push_back(e);
    }

    /// Responses still outstanding (including one partly decoded).
    pub fn pending(&self) -> usize {
        self.expect.len()
    }

    /// Bytes received but not yet decoded. Must be zero right after the
    /// `+OK` to STLS: anything else was injected before the TLS handshake.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True while inside a multi-line body (for "connection lost in the
    /// middle of message N" errors).
    pub fn in_body(&self) -> Option<Option<u32>> {
        self.body.as_ref().map(|b| b.msgno)
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        self.input(data.len()).extend_from_slice(data);
    }

    /// The input buffer, with decoded bytes dropped and room for `room`
    /// more: a reader appends to it directly (`AsyncReadExt::read_buf`)
    /// instead of copying through [`Decoder::feed`].
    pub fn input(&mut self, room: usize) -> &mut Vec<u8> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(room);
        &mut self.buf
    }

    /// Decodes the next event, `Ok(None)` when more input is needed or no
    /// response is expected. After a fatal error every call fails.
    pub fn next_event(&mut self) -> Result<Option<Event>, CodecError> {
        self.next_event_into(None)
    }

    /// As [`Decoder::next_event`], but body bytes are appended to `sink`
    /// and reported as an empty `Body`: a message is assembled in one
    /// buffer, without a chunk allocated and copied on the way.
    pub fn next_event_into(
        &mut self,
        sink: Option<&mut Vec<u8>>,
    ) -> Result<Option<Event>, CodecError> {
        if self.poisoned {
            return Err(CodecError::Poisoned);
        }
        let r = self.next_inner(sink);
        if let Err(e) = &r
            && e.is_fatal()
        {
            self.poisoned = true;
        }
        r
    }

    fn next_inner(&mut self, sink: Option<&mut Vec<u8>>) -> Result<Option<Event>, CodecError> {
        if self.body.is_some() {
            return self.body_event(sink);
        }
        let Some(&exp) = self.expect.front() else {
            return Ok(None);
        };
        let Some(line) = self.take_line()? else {
            return Ok(None);
        };
        if exp == Expect::Sasl
            && let Some(rest) = strip_continuation(&line)
        {
            return Ok(Some(Event::Continuation(rest)));
        }
        let status = parse_status(&line)?;
        match exp {
            Expect::Multi { msgno } if status.ok => {
                let cap = match msgno {
                    Some(_) => self.limits.max_message,
                    None => self.limits.max_listing,
                };
                self.body = Some(BodyState {
                    msgno,
                    size: 0,
                    cap,
                    at_line_start: true,
                    discarding: false,
                });
            }
            _ => {
                self.expect.pop_front();
            }
        }
        Ok(Some(Event::Status(status)))
    }

    /// One line without its line ending, or None if incomplete.
    fn take_line(&mut self) -> Result<Option<Vec<u8>>, CodecError> {
        let rest = &self.buf[self.pos..];
        let limit = self.limits.max_line;
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) if i > limit => Err(CodecError::LineTooLong { limit }),
            Some(i) => {
                let mut line = &rest[..i];
                if let [head @ .., b'\r'] = line {
                    line = head;
                }
                let line = line.to_vec();
                self.pos += i + 1;
                Ok(Some(line))
            }
            None if rest.len() > limit => Err(CodecError::LineTooLong { limit }),
            None => Ok(None),
        }
    }

    fn body_event(&mut self, sink: Option<&mut Vec<u8>>) -> Result<Option<Event>, CodecError> {
        let body = self.body.as_mut().expect("in body");
        let mut own = Vec::new();
        let to_sink = sink.is_some();
        let out = sink.unwrap_or(&mut own);
        let before = out.len();
        let mut ended = false;
        loop {
            let rest = &self.buf[self.pos..];
            if rest.is_empty() {
                break;
            }
            if body.at_line_start {
                if rest[0] == b'.' {
                    match rest.get(1) {
                        None => break,
                        Some(b'\n') => {
                            ended = true;
                            break;
                        }
                        Some(b'\r') => match rest.get(2) {
                            None => break,
                            Some(b'\n') => {
                                ended = true;
                                break;
                            }
                            Some(_) => {}
                        },
                        Some(_) => {}
                    }
                    // RFC 1939 §3: a leading dot not ending the response
                    // is the stuffing dot; strip it.
                    self.pos += 1;
                }
                body.at_line_start = false;
                continue;
            }
            // Copy a run of whole lines up to the next line starting with
            // a dot (or to the end of the buffer) in one go.
            let copy_end = match crate::bytes::find_lf_before(rest, b'.') {
                Some(j) => {
                    body.at_line_start = true;
                    j + 1
                }
                None => {
                    body.at_line_start = rest.last() == Some(&b'\n');
                    rest.len()
                }
            };
            if !body.discarding {
                body.size += copy_end as u64;
                if body.size > body.cap {
                    body.discarding = true;
                    self.pos += copy_end;
                    return Err(CodecError::MessageTooLarge {
                        msgno: body.msgno,
                        limit: body.cap,
                    });
                }
                out.extend_from_slice(&rest[..copy_end]);
            }
            self.pos += copy_end;
        }
        if out.len() > before {
            // Data first; the terminator (left unconsumed) on the next call.
            return Ok(Some(Event::Body(if to_sink { Vec::new() } else { own })));
        }
        if ended {
            self.pos += if self.buf[self.pos + 1] == b'\r' {
                3
            } else {
                2
            };
            self.body = None;
            self.expect.pop_front();
            return Ok(Some(Event::End));
        }
        Ok(None)
    }
}

fn strip_continuation(line: &[u8]) -> Option<String> {
    match line {
        [b'+'] => Some(String::new()),
        [b'+', b' ', rest @ ..] => Some(String::from_utf8_lossy(rest).trim().to_string()),
        _ => None,
    }
}

/// Parses `+OK ...` / `-ERR ...` (line ending already removed).
pub fn parse_status(line: &[u8]) -> Result<Status, CodecError> {
    let (ok, rest) = if line.len() >= 3 && line[..3].eq_ignore_ascii_case(b"+OK") {
        (true, &line[3..])
    } else if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"-ERR") {
        (false, &line[4..])
    } else {
        return Err(malformed(line));
    };
    if !rest.is_empty() && rest[0] != b' ' && rest[0] != b'\t' {
        return Err(malformed(line));
    }
    let text = String::from_utf8_lossy(rest);
    let text = text.trim();
    let (code, text) = match text.strip_prefix('[') {
        Some(r) => match r.find(']') {
            Some(end) => (
                Some(r[..end].trim().to_ascii_uppercase()),
                r[end + 1..].trim_start().to_string(),
            ),
            None => (None, text.to_string()),
        },
        None => (None, text.to_string()),
    };
    Ok(Status { ok, code, text })
}

fn malformed(line: &[u8]) -> CodecError {
    let shown = &line[..line.len().min(80)];
    CodecError::Malformed(String::from_utf8_lossy(shown).into_owned())
}

/// A POP3 command. `Debug` hides secrets so a command can be logged.
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    Capa,
    Stls,
    User(String),
    Pass(String),
    /// APOP user hex-digest.
    Apop {
        user: String,
        digest: String,
    },
    /// AUTH mechanism, with an optional SASL-IR initial response (base64).
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
    /// A reply to a `+` continuation (base64, or `*` to cancel).
    SaslResponse(String),
    Stat,
    List(Option<u32>),
    Uidl(Option<u32>),
    Retr(u32),
    Top(u32, u32),
    Dele(u32),
    Rset,
    Noop,
    Quit,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Pass(_) => f.write_str("Pass(***)"),
            Command::Apop { user, .. } => write!(f, "Apop({user:?}, ***)"),
            Command::Auth { mechanism, initial } => write!(
                f,
                "Auth({mechanism:?}, {})",
                if initial.is_some() { "***" } else { "-" }
            ),
            Command::SaslResponse(_) => f.write_str("SaslResponse(***)"),
            Command::User(u) => write!(f, "User({u:?})"),
            Command::Capa => f.write_str("Capa"),
            Command::Stls => f.write_str("Stls"),
            Command::Stat => f.write_str("Stat"),
            Command::List(n) => write!(f, "List({n:?})"),
            Command::Uidl(n) => write!(f, "Uidl({n:?})"),
            Command::Retr(n) => write!(f, "Retr({n})"),
            Command::Top(n, l) => write!(f, "Top({n}, {l})"),
            Command::Dele(n) => write!(f, "Dele({n})"),
            Command::Rset => f.write_str("Rset"),
            Command::Noop => f.write_str("Noop"),
            Command::Quit => f.write_str("Quit"),
        }
    }
}

impl Command {
    /// The response shape to queue on the decoder; `None` for a SASL reply,
    /// which continues the AUTH response already queued.
    pub fn expect(&self) -> Option<Expect> {
        Some(match self {
            Command::Capa | Command::List(None) | Command::Uidl(None) => {
                Expect::Multi { msgno: None }
            }
            Command::Retr(n) | Command::Top(n, _) => Expect::Multi { msgno: Some(*n) },
            Command::Auth { .. } => Expect::Sasl,
            Command::SaslResponse(_) => return None,
            _ => Expect::Single,
        })
    }

    /// Appends the command line (with CRLF) to `out`. Refuses arguments
    /// that would smuggle in a second command.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        fn arg<'a>(s: &'a str, what: &'static str) -> Result<&'a str, CodecError> {
            if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                Err(CodecError::BadArgument(what))
            } else {
                Ok(s)
            }
        }
        use std::io::Write;
        let w = match self {
            Command::Capa => write!(out, "CAPA"),
            Command::Stls => write!(out, "STLS"),
            Command::User(u) => write!(out, "USER {}", arg(u, "user name")?),
            Command::Pass(p) => write!(out, "PASS {}", arg(p, "password")?),
            Command::Apop { user, digest } => {
                write!(out, "APOP {} {}", arg(user, "user name")?, digest)
            }
            Command::Auth {
                mechanism,
                initial: None,
            } => write!(out, "AUTH {}", arg(mechanism, "mechanism")?),
            Command::Auth {
                mechanism,
                initial: Some(i),
            } => {
                let i = if i.is_empty() { "=" } else { i };
                write!(
                    out,
                    "AUTH {} {}",
                    arg(mechanism, "mechanism")?,
                    arg(i, "SASL")?
                )
            }
            Command::SaslResponse(r) => write!(out, "{}", arg(r, "SASL")?),
            Command::Stat => write!(out, "STAT"),
            Command::List(None) => write!(out, "LIST"),
            Command::List(Some(n)) => write!(out, "LIST {n}"),
            Command::Uidl(None) => write!(out, "UIDL"),
            Command::Uidl(Some(n)) => write!(out, "UIDL {n}"),
            Command::Retr(n) => write!(out, "RETR {n}"),
            Command::Top(n, l) => write!(out, "TOP {n} {l}"),
            Command::Dele(n) => write!(out, "DELE {n}"),
            Command::Rset => write!(out, "RSET"),
            Command::Noop => write!(out, "NOOP"),
            Command::Quit => write!(out, "QUIT"),
        };
        w.expect("writing to a Vec cannot fail");
        out.extend_from_slice(b"\r\n");
        Ok(())
    }
}

/// Splits a collected listing body into lines without line endings,
/// accepting CRLF or bare LF.
pub fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(|b| b.is_ascii_whitespace()))
}

fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
}

fn num<T: std::str::FromStr>(f: Option<&[u8]>) -> Option<T> {
    std::str::from_utf8(f?).ok()?.parse().ok()
}

/// Parses the text of `+OK nn mm` to STAT: (message count, total octets).
pub fn parse_stat(text: &str) -> Result<(u32, u64), CodecError> {
    let mut f = fields(text.as_bytes());
    match (num(f.next()), num(f.next())) {
        (Some(n), Some(s)) => Ok((n, s)),
        _ => Err(malformed(text.as_bytes())),
    }
}

/// Parses one `msgno size` line of LIST (any whitespace between fields).
pub fn parse_list_line(line: &[u8]) -> Result<(u32, u64), CodecError> {
    let mut f = fields(line);
    match (num(f.next()), num(f.next())) {
        (Some(n), Some(s)) => Ok((n, s)),
        _ => Err(malformed(line)),
    }
}

/// Parses one `msgno unique-id` line of UIDL. The id must be printable
/// ASCII (RFC 1939 §7) since it becomes a key in the state file.
pub fn parse_uidl_line(line: &[u8]) -> Result<(u32, Uidl), CodecError> {
    let mut f = fields(line);
    let n = num(f.next()).ok_or_else(|| malformed(line))?;
    let id = f.next().ok_or_else(|| malformed(line))?;
    if f.next().is_some() || !id.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(malformed(line));
    }
    let id = String::from_utf8(id.to_vec()).map_err(|_| malformed(line))?;
    Ok((n, Uidl(id)))
}

/// Capabilities from a CAPA body, one trimmed line each (`SASL PLAIN`,
/// `PIPELINING`, ...), tags kept as the server spelled them.
pub fn parse_capa(body: &[u8]) -> Vec<String> {
    lines(body)
        .map(|l| String::from_utf8_lossy(l).trim().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in the given chunk sizes, collapsing adjacent
    /// body chunks so results compare independent of chunking.
    fn run(expects: &[Expect], input: &[u8], chunks: &[usize]) -> Vec<Result<Event, CodecError>> {
        let mut d = Decoder::new(Limits {
            max_line: 64,
            max_message: 1000,
            max_listing: 1000,
        });
        for e in expects {
            d.expect(*e);
        }
        let mut out: Vec<Result<Event, CodecError>> = Vec::new();
        let push = |r: Result<Event, CodecError>, out: &mut Vec<_>| match (out.last_mut(), r) {
            (Some(Ok(Event::Body(a))), Ok(Event::Body(b))) => a.extend(b),
            (_, r) => out.push(r),
        };
        let mut fed = 0;
        let mut ci = 0;
        loop {
            loop {
                match d.next_event() {
                    Ok(Some(ev)) => push(Ok(ev), &mut out),
                    Ok(None) => break,
                    Err(e) => {
                        let fatal = e.is_fatal();
                        push(Err(e), &mut out);
                        if fatal {
                            return out;
                        }
                    }
                }
            }
            if fed >= input.len() {
                return out;
            }
            let n = chunks.get(ci).copied().unwrap_or(input.len()).max(1);
            ci += 1;
            let end = (fed + n).min(input.len());
            d.feed(&input[fed..end]);
            fed = end;
        }
    }

    fn ok(text: &str) -> Event {
        Event::Status(parse_status(text.as_bytes()).unwrap())
    }

    fn body(b: &[u8]) -> Event {
        Event::Body(b.to_vec())
    }

    fn retr(n: u32) -> Expect {
        Expect::Multi { msgno: Some(n) }
    }

    #[test]
    fn dot_unstuffing_and_byte_exact_crlf() {
        let wire = b"+OK 50 octets\r\n..hidden\r\n...two dots\r\n..\r\nend\r\n.\r\n";
        let got = run(&[retr(1)], wire, &[]);
        assert_eq!(
            got,
            vec![
                Ok(ok("+OK 50 octets")),
                Ok(body(b".hidden\r\n..two dots\r\n.\r\nend\r\n")),
                Ok(Event::End)
            ]
        );
    }

    #[test]
    fn message_without_final_crlf_and_bare_lf() {
        // The server adds the CRLF before the terminator; the body keeps it.
        let got = run(&[retr(1)], b"+OK\r\nno newline\r\n.\r\n", &[]);
        assert_eq!(got[1], Ok(body(b"no newline\r\n")));
        // Bare LF server: line endings kept as sent, `.\n` terminates.
        let got = run(
            &[retr(1), Expect::Single],
            b"+OK\na\n..b\n.\n+OK bye\n",
            &[],
        );
        assert_eq!(
            got,
            vec![
                Ok(ok("+OK")),
                Ok(body(b"a\n.b\n")),
                Ok(Event::End),
                Ok(ok("+OK bye"))
            ]
        );
        // Mixed, and a bare CR inside a line is data.
        let got = run(&[retr(1)], b"+OK\r\nx\ry\n.\rz\r\n.\n", &[]);
        assert_eq!(got[1], Ok(body(b"x\ry\n\rz\r\n")));
    }

    #[test]
    fn empty_body() {
        let got = run(&[retr(3)], b"+OK\r\n.\r\n", &[]);
        assert_eq!(got, vec![Ok(ok("+OK")), Ok(Event::End)]);
    }

    #[test]
    fn err_has_no_body_and_response_codes_parse() {
        let got = run(
            &[Expect::Single, retr(9), Expect::Single],
            b"-ERR [IN-USE] Mailbox locked\r\n-ERR no such message\r\n+OK\r\n",
            &[],
        );
        let Ok(Event::Status(s)) = &got[0] else {
            panic!("{got:?}")
        };
        assert!(!s.ok && s.is_temporary());
        assert_eq!(s.code.as_deref(), Some("IN-USE"));
        assert_eq!(s.text, "Mailbox locked");
        assert_eq!(got.len(), 3);
        let s = parse_status(b"-ERR [SYS/TEMP] try later").unwrap();
        assert!(s.is_temporary());
        let s = parse_status(b"-ERR [AUTH] Authentication failed.").unwrap();
        assert!(!s.is_temporary());
        assert_eq!(s.code.as_deref(), Some("AUTH"));
        assert!(parse_status(b"+OKAY").is_err());
        assert!(parse_status(b"* OK imap").is_err());
    }

    #[test]
    fn sasl_continuations() {
        let got = run(
            &[Expect::Sasl],
            b"+ \r\n+ eyJzdGF0dXMiOiI0MDEifQ==\r\n-ERR [AUTH] no\r\n",
            &[],
        );
        assert_eq!(got[0], Ok(Event::Continuation(String::new())));
        assert_eq!(
            got[1],
            Ok(Event::Continuation("eyJzdGF0dXMiOiI0MDEifQ==".into()))
        );
        assert!(matches!(&got[2], Ok(Event::Status(s)) if !s.ok));
        // Outside AUTH a `+ ` line is a protocol error.
        let got = run(&[Expect::Single], b"+ abc\r\n", &[]);
        assert!(matches!(got[0], Err(CodecError::Malformed(_))));
    }

    #[test]
    fn greeting_timestamp() {
        let s = parse_status(b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>").unwrap();
        assert_eq!(
            s.apop_timestamp(),
            Some("<1896.697170952@dbc.mtview.ca.us>")
        );
        assert_eq!(
            parse_status(b"+OK Dovecot ready.")
                .unwrap()
                .apop_timestamp(),
            None
        );
    }

    #[test]
    fn multi_line_capa() {
        let wire = b"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nSTLS\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n";
        let got = run(&[Expect::Multi { msgno: None }], wire, &[]);
        let Ok(Event::Body(b)) = &got[1] else {
            panic!()
        };
        let caps = parse_capa(b);
        assert_eq!(caps.len(), 9);
        assert_eq!(caps[8], "SASL PLAIN LOGIN");
    }

    #[test]
    fn uidl_and_list_lines_with_odd_spacing() {
        assert_eq!(
            parse_uidl_line(b"  1   000000017a5b2c3d\t").unwrap(),
            (1, Uidl("000000017a5b2c3d".into()))
        );
        assert_eq!(parse_uidl_line(b"2\tabc").unwrap().1, Uidl("abc".into()));
        assert!(parse_uidl_line(b"x abc").is_err());
        assert!(parse_uidl_line(b"3").is_err());
        assert!(parse_uidl_line(b"3 a b").is_err());
        assert!(parse_uidl_line("3 \u{e9}".as_bytes()).is_err());
        assert_eq!(parse_list_line(b"12  3456 ").unwrap(), (12, 3456));
        assert!(parse_list_line(b"12").is_err());
        assert_eq!(parse_stat("2 320").unwrap(), (2, 320));
        assert!(parse_stat("").is_err());
        let body = b"1 a\r\n\r\n2 b\n";
        let v: Vec<_> = lines(body).map(|l| parse_uidl_line(l).unwrap().0).collect();
        assert_eq!(v, vec![1, 2]);
    }

    #[test]
    fn oversize_line_is_an_error() {
        let long = [b"+OK ".as_slice(), &[b'x'; 100], b"\r\n"].concat();
        let got = run(&[Expect::Single], &long, &[]);
        assert_eq!(got, vec![Err(CodecError::LineTooLong { limit: 64 })]);
        // Also without any newline in sight.
        let got = run(&[Expect::Single], &[b'+'; 200], &[]);
        assert_eq!(got, vec![Err(CodecError::LineTooLong { limit: 64 })]);
    }

    #[test]
    fn oversize_message_fails_that_message_only() {
        let mut wire = b"+OK\r\n".to_vec();
        for _ in 0..30 {
            wire.extend_from_slice(&[b'a'; 50]);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b".\r\n+OK\r\nsmall\r\n.\r\n");
        let got = run(&[retr(7), retr(8)], &wire, &[100]);
        assert_eq!(got[0], Ok(ok("+OK")));
        let err_at = got.iter().position(|e| e.is_err()).expect("an error");
        assert_eq!(
            got[err_at],
            Err(CodecError::MessageTooLarge {
                msgno: Some(7),
                limit: 1000
            })
        );
        assert_eq!(
            &got[err_at + 1..],
            &[
                Ok(Event::End),
                Ok(ok("+OK")),
                Ok(body(b"small\r\n")),
                Ok(Event::End)
            ]
        );
        assert!(
            CodecError::MessageTooLarge {
                msgno: Some(7),
                limit: 1
            }
            .to_string()
            .contains("message 7")
        );
    }

    #[test]
    fn commands_encode_and_refuse_injection() {
        let mut out = Vec::new();
        Command::Retr(5).encode(&mut out).unwrap();
        Command::Top(5, 0).encode(&mut out).unwrap();
        Command::Auth {
            mechanism: "PLAIN".into(),
            initial: Some(String::new()),
        }
        .encode(&mut out)
        .unwrap();
        assert_eq!(out, b"RETR 5\r\nTOP 5 0\r\nAUTH PLAIN =\r\n");
        assert_eq!(
            Command::User("a\r\nDELE 1".into()).encode(&mut out),
            Err(CodecError::BadArgument("user name"))
        );
        assert_eq!(
            format!("{:?}", Command::Pass("hunter2".into())),
            "Pass(***)"
        );
    }

    /// A recorded Dovecot session (greeting, CAPA, USER/PASS, UIDL, RETR x2,
    /// TOP, DELE, QUIT) with stuffed dots and a bare-LF tail.
    fn recorded() -> (Vec<Expect>, Vec<u8>) {
        let exp = vec![
            Expect::Single,
            Expect::Multi { msgno: None },
            Expect::Single,
            Expect::Single,
            Expect::Multi { msgno: None },
            retr(1),
            retr(2),
            Expect::Multi { msgno: Some(2) },
            Expect::Single,
            Expect::Single,
        ];
        let wire = b"+OK Dovecot ready.\r\n\
+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nUSER\r\nSASL PLAIN\r\n.\r\n\
+OK\r\n+OK Logged in.\r\n\
+OK\r\n1 000000015f1e7c5a\r\n2 000000025f1e7c5a\r\n.\r\n\
+OK 64 octets\r\nSubject: a\r\n\r\n..hidden\r\n...two dots\r\n..\r\n.\r\n\
+OK 20 octets\nFrom: b\n\nbody\n.\n\
+OK\r\nFrom: b\r\n\r\n.\r\n\
+OK Marked to be deleted.\r\n+OK Logging out, messages deleted.\r\n"
            .to_vec();
        (exp, wire)
    }

    #[test]
    fn random_chunking_gives_identical_events() {
        let (exp, wire) = recorded();
        let whole = run(&exp, &wire, &[]);
        assert_eq!(whole.len(), 20, "{whole:?}");
        assert!(whole.iter().all(|e| e.is_ok()));
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..2000 {
            let mut chunks = Vec::new();
            for _ in 0..wire.len() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let max = if round % 3 == 0 { 3 } else { 40 };
                chunks.push(1 + (seed % max) as usize);
            }
            assert_eq!(run(&exp, &wire, &chunks), whole, "chunks {chunks:?}");
        }
        // Byte-at-a-time as the extreme.
        assert_eq!(run(&exp, &wire, &vec![1; wire.len()]), whole);
    }

    #[test]
    fn malformed_input_never_panics() {
        let (exp, wire) = recorded();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut w = wire.clone();
            for _ in 0..(next() % 8) {
                let i = (next() as usize) % w.len();
                match next() % 4 {
                    0 => w[i] = (next() % 256) as u8,
                    1 => {
                        w.remove(i);
                    }
                    2 => w.insert(i, b".\r\n\n+-"[(next() % 6) as usize]),
                    _ => w.truncate(i),
                }
                if w.is_empty() {
                    break;
                }
            }
            let chunks: Vec<usize> = (0..w.len()).map(|_| 1 + (next() % 17) as usize).collect();
            let _ = run(&exp, &w, &chunks);
        }
    }
}
