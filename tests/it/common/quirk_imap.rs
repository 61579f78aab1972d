//! A scripted IMAP server with switchable provider quirks, for what
//! Dovecot and Cyrus cannot be made to do: advertise X-GM-EXT-1, answer
//! `RFC822` without the data (iCloud), report `RFC822.SIZE 0` and a
//! HIGHESTMODSEQ that never moves (Yahoo), drop `\Flagged` and foreign
//! keywords on APPEND (Exchange), throttle (`NO [THROTTLED]`, Microsoft's
//! "Suggested Backoff Time" in NO or BAD + BYE), refuse logins beyond N
//! sessions ("Too many simultaneous connections") and end a session with
//! an expired token's BYE (with `oauth`: and refuse that token from then
//! on, as a provider would once it has expired).
//!
//! Plain TCP on loopback (mailferry with `tls = "none"`), a thread per
//! connection, one in-memory mailbox set behind a mutex. It implements
//! what mailferry sends: CAPABILITY, LOGIN, AUTHENTICATE PLAIN or XOAUTH2 (SASL-IR),
//! ENABLE, NAMESPACE, LIST, STATUS, SELECT/EXAMINE, UID SEARCH/FETCH/
//! STORE/EXPUNGE, APPEND (LITERAL+ and synchronizing literals, UIDPLUS
//! answers), CREATE, SUBSCRIBE, NOOP, UNSELECT, LOGOUT.
//!
//! Every command is logged with when it arrived; a throttle reply records
//! until when the client was asked to wait, and any command of the same
//! account that arrives before then is kept in `early()`. So a test
//! asserts "the backoff was obeyed" from the server's own clock, without
//! timing the client.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use base64::Engine;

use super::corpus::Message;

/// How the throttle answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleStyle {
    /// `NO Request is throttled. Suggested Backoff Time: N milliseconds`.
    SuggestedNo,
    /// `BAD Request is throttled. Suggested Backoff Time: …` then
    /// `* BYE Connection closed. 14` and the connection is closed.
    SuggestedBadBye,
    /// Gmail's `NO [THROTTLED] …` (no time given).
    Throttled,
}

/// Throttle every `every`-th command named `on` (`APPEND`, `FETCH`), at
/// most `times` times.
#[derive(Debug, Clone)]
pub struct Throttle {
    pub on: &'static str,
    pub every: usize,
    pub times: usize,
    pub backoff: Duration,
    pub style: ThrottleStyle,
}

/// The switches.
#[derive(Debug, Clone, Default)]
pub struct QuirkOpts {
    /// Gmail: X-GM-EXT-1 and CONDSTORE.
    pub gmail: bool,
    /// iCloud: `RFC822` is answered with a FETCH response without it.
    pub icloud: bool,
    /// Yahoo: `RFC822.SIZE 0`, XYMHIGHESTMODSEQ, and a HIGHESTMODSEQ on
    /// SELECT that never changes.
    pub yahoo: bool,
    /// With `yahoo`: also advertise CONDSTORE (the modseq still lies).
    pub lying_condstore: bool,
    /// Exchange: PERMANENTFLAGS without `\*` (only `$MDNSent` as a
    /// keyword), APPEND keeps neither `\Flagged` nor other keywords.
    pub exchange: bool,
    /// Logins beyond this many open sessions are refused with Gmail's
    /// `NO [ALERT] Too many simultaneous connections. (Failure)`.
    pub max_sessions: Option<usize>,
    pub throttle: Option<Throttle>,
    /// Refuse these logins (1-based, in order of arrival) with Gmail's
    /// "Too many simultaneous connections", whatever is open.
    pub refuse_logins: Vec<usize>,
    /// After this many commands in a selected folder on one connection,
    /// `* BYE Session invalidated - AccessTokenExpired` and close (the
    /// next login works).
    pub expire_after: Option<usize>,
    /// AUTH=XOAUTH2 (SASL-IR): any token logs the user in until a session
    /// that logged in with it was ended for expiry (`expire_after`); then
    /// it is refused with `NO [AUTHENTICATIONFAILED]`.
    pub oauth: bool,
}

/// One message as the server holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub uid: u32,
    /// As sent (`\Seen`, `$MDNSent`).
    pub flags: BTreeSet<String>,
    /// INTERNALDATE, unix seconds.
    pub date: i64,
    /// CRLF bytes.
    pub body: Vec<u8>,
    modseq: u64,
}

impl Msg {
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }
}

#[derive(Debug, Clone)]
struct Mailbox {
    uidvalidity: u32,
    uidnext: u32,
    special_use: Option<String>,
    msgs: Vec<Msg>,
    highestmodseq: u64,
}

/// One logged command.
#[derive(Debug, Clone)]
pub struct Entry {
    pub conn: usize,
    pub at: Instant,
    /// The command without its tag (literals elided).
    pub line: String,
}

#[derive(Default)]
struct Shared {
    opts: QuirkOpts,
    user: String,
    password: String,
    boxes: BTreeMap<String, Mailbox>,
    log: Vec<Entry>,
    sessions: usize,
    max_seen: usize,
    refused: usize,
    /// Per throttled kind: how many such commands were seen.
    counted: usize,
    throttled: usize,
    /// No command before this (a throttle reply asked for it).
    wait_until: Option<Instant>,
    early: Vec<String>,
    next_conn: usize,
    logins: usize,
    /// Tokens that logged in, in order (`oauth`).
    tokens: Vec<String>,
    /// Tokens a session was ended for.
    expired: BTreeSet<String>,
    /// Logins refused because their token had expired.
    stale_logins: usize,
}

/// A running quirk server; stops when dropped.
pub struct QuirkServer {
    pub port: u16,
    sh: Arc<Mutex<Shared>>,
    closed: Arc<AtomicBool>,
}

pub const USER: &str = "alice@example.com";
pub const PASSWORD: &str = "quirk-pw";

impl QuirkServer {
    /// Starts with an empty INBOX (and Sent, `\Sent`).
    pub fn start(opts: QuirkOpts) -> QuirkServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let sh = Arc::new(Mutex::new(Shared {
            opts,
            user: USER.into(),
            password: PASSWORD.into(),
            ..Default::default()
        }));
        let srv = QuirkServer {
            port,
            sh: sh.clone(),
            closed: Arc::new(AtomicBool::new(false)),
        };
        srv.create("INBOX", None);
        srv.create("Sent", Some("\\Sent"));
        let closed = srv.closed.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                if closed.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(s) = s else { continue };
                let sh = sh.clone();
                std::thread::spawn(move || {
                    let _ = serve(s, sh);
                });
            }
        });
        srv
    }

    /// `imap://alice%40example.com@127.0.0.1:PORT` (plain text).
    pub fn url(&self) -> String {
        format!("imap://alice%40example.com@127.0.0.1:{}", self.port)
    }

    pub fn create(&self, name: &str, special_use: Option<&str>) {
        let mut sh = self.sh.lock().unwrap();
        let uv = 1000 + sh.boxes.len() as u32;
        sh.boxes.entry(name.to_string()).or_insert(Mailbox {
            uidvalidity: uv,
            uidnext: 1,
            special_use: special_use.map(Into::into),
            msgs: Vec::new(),
            highestmodseq: 1,
        });
    }

    /// Adds the corpus messages with their Maildir flags.
    pub fn deliver(&self, folder: &str, msgs: &[Message]) {
        self.create(folder, None);
        let mut sh = self.sh.lock().unwrap();
        let b = sh.boxes.get_mut(folder).unwrap();
        for m in msgs {
            let mut flags = BTreeSet::new();
            for c in m.flags.chars() {
                let f = match c {
                    'S' => "\\Seen",
                    'R' => "\\Answered",
                    'F' => "\\Flagged",
                    'T' => "\\Deleted",
                    'D' => "\\Draft",
                    _ => continue,
                };
                flags.insert(f.to_string());
            }
            let date = m
                .internal_date
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            add(b, m.raw_crlf(), flags, date);
        }
    }

    /// Sets a message's flags, as another client would.
    pub fn set_flags(&self, folder: &str, uid: u32, flags: &[&str]) {
        let mut sh = self.sh.lock().unwrap();
        let b = sh.boxes.get_mut(folder).unwrap();
        b.highestmodseq += 1;
        let ms = b.highestmodseq;
        let m = b.msgs.iter_mut().find(|m| m.uid == uid).unwrap();
        m.flags = flags.iter().map(|s| s.to_string()).collect();
        m.modseq = ms;
    }

    /// The messages of a folder, by UID.
    pub fn messages(&self, folder: &str) -> Vec<Msg> {
        let sh = self.sh.lock().unwrap();
        sh.boxes
            .get(folder)
            .map(|b| b.msgs.clone())
            .unwrap_or_default()
    }

    pub fn folders(&self) -> Vec<String> {
        self.sh.lock().unwrap().boxes.keys().cloned().collect()
    }

    /// Every command so far.
    pub fn log(&self) -> Vec<Entry> {
        self.sh.lock().unwrap().log.clone()
    }

    /// Commands that arrived while a backoff the server asked for ran.
    pub fn early(&self) -> Vec<String> {
        self.sh.lock().unwrap().early.clone()
    }

    /// Throttle replies sent.
    pub fn throttled(&self) -> usize {
        self.sh.lock().unwrap().throttled
    }

    /// Logins refused for too many sessions.
    pub fn refused(&self) -> usize {
        self.sh.lock().unwrap().refused
    }

    /// The most sessions logged in at once.
    pub fn max_sessions_seen(&self) -> usize {
        self.sh.lock().unwrap().max_seen
    }

    /// The tokens that logged in, in order (`oauth`).
    pub fn tokens(&self) -> Vec<String> {
        self.sh.lock().unwrap().tokens.clone()
    }

    /// Sessions ended for an expired token.
    pub fn expired(&self) -> usize {
        self.sh.lock().unwrap().expired.len()
    }

    /// Logins refused because their token had expired.
    pub fn stale_logins(&self) -> usize {
        self.sh.lock().unwrap().stale_logins
    }

    /// Changes the switches for new commands.
    pub fn set_opts(&self, f: impl FnOnce(&mut QuirkOpts)) {
        f(&mut self.sh.lock().unwrap().opts);
    }
}

impl Drop for QuirkServer {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn add(b: &mut Mailbox, body: Vec<u8>, flags: BTreeSet<String>, date: i64) -> u32 {
    let uid = b.uidnext;
    b.uidnext += 1;
    b.highestmodseq += 1;
    b.msgs.push(Msg {
        uid,
        flags,
        date,
        body,
        modseq: b.highestmodseq,
    });
    uid
}

/// A command token.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<Tok>),
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Atom(a) => a.clone(),
            Tok::Str(s) => String::from_utf8_lossy(s).into_owned(),
            Tok::List(l) => format!(
                "({})",
                l.iter().map(|t| t.text()).collect::<Vec<_>>().join(" ")
            ),
        }
    }
    fn list(&self) -> &[Tok] {
        match self {
            Tok::List(l) => l,
            _ => &[],
        }
    }
}

/// A command line with literals replaced by `\0N\0`, and the literals.
type Command = (Vec<u8>, Vec<Vec<u8>>);

/// Reads one command. Sends `+` for synchronizing literals.
fn read_command(
    r: &mut BufReader<TcpStream>,
    w: &mut TcpStream,
) -> std::io::Result<Option<Command>> {
    let mut text = Vec::new();
    let mut lits = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        let trimmed = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
            .unwrap_or(&line)
            .to_vec();
        if let Some(open) = trimmed.iter().rposition(|&b| b == b'{')
            && trimmed.ends_with(b"}")
        {
            let inner = &trimmed[open + 1..trimmed.len() - 1];
            let (digits, plus) = match inner.strip_suffix(b"+") {
                Some(d) => (d, true),
                None => (inner, false),
            };
            if let Some(n) = std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse::<usize>().ok())
            {
                if !plus {
                    w.write_all(b"+ go ahead\r\n")?;
                }
                let mut buf = vec![0; n];
                r.read_exact(&mut buf)?;
                text.extend_from_slice(&trimmed[..open]);
                text.extend_from_slice(format!("\0{}\0", lits.len()).as_bytes());
                lits.push(buf);
                continue;
            }
        }
        text.extend_from_slice(&trimmed);
        return Ok(Some((text, lits)));
    }
}

fn tokenize(s: &[u8], lits: &[Vec<u8>]) -> Vec<Tok> {
    fn parse(s: &[u8], i: &mut usize, lits: &[Vec<u8>], until_paren: bool) -> Vec<Tok> {
        let mut out = Vec::new();
        while *i < s.len() {
            match s[*i] {
                b' ' => *i += 1,
                b')' if until_paren => {
                    *i += 1;
                    return out;
                }
                b'(' => {
                    *i += 1;
                    out.push(Tok::List(parse(s, i, lits, true)));
                }
                b'"' => {
                    *i += 1;
                    let mut v = Vec::new();
                    while *i < s.len() && s[*i] != b'"' {
                        if s[*i] == b'\\' && *i + 1 < s.len() {
                            *i += 1;
                        }
                        v.push(s[*i]);
                        *i += 1;
                    }
                    *i += 1;
                    out.push(Tok::Str(v));
                }
                0 => {
                    let end = s[*i + 1..].iter().position(|&b| b == 0).unwrap() + *i + 1;
                    let n: usize = std::str::from_utf8(&s[*i + 1..end])
                        .unwrap()
                        .parse()
                        .unwrap();
                    out.push(Tok::Str(lits[n].clone()));
                    *i = end + 1;
                }
                _ => {
                    let start = *i;
                    let mut depth = 0;
                    while *i < s.len() {
                        match s[*i] {
                            b'[' => depth += 1,
                            b']' => depth -= 1,
                            b' ' | b'(' | b')' if depth == 0 => break,
                            _ => {}
                        }
                        *i += 1;
                    }
                    out.push(Tok::Atom(
                        String::from_utf8_lossy(&s[start..*i]).into_owned(),
                    ));
                }
            }
        }
        out
    }
    let mut i = 0;
    parse(s, &mut i, lits, false)
}

/// A UID set (`1:5,7,9:*`) against the highest UID.
fn in_set(set: &str, uid: u32, max: u32) -> bool {
    set.split(',').any(|part| {
        let num = |x: &str| {
            if x == "*" {
                max
            } else {
                x.parse().unwrap_or(0)
            }
        };
        match part.split_once(':') {
            Some((a, b)) => {
                let (a, b) = (num(a), num(b));
                (a.min(b)..=a.max(b)).contains(&uid)
            }
            None => num(part) == uid,
        }
    })
}

fn imap_date(t: i64) -> String {
    mailferry::imap::format_internal_date(t)
}

struct Conn {
    id: usize,
    w: TcpStream,
    authed: bool,
    selected: Option<(String, bool)>,
    commands: usize,
    expired_once: bool,
    /// The token it logged in with (`oauth`).
    token: Option<String>,
    condstore: bool,
    /// This connection was told to wait until then.
    own_wait: Option<Instant>,
}

fn serve(s: TcpStream, sh: Arc<Mutex<Shared>>) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let id = {
        let mut g = sh.lock().unwrap();
        g.next_conn += 1;
        g.next_conn
    };
    let mut r = BufReader::new(s.try_clone()?);
    let mut c = Conn {
        id,
        w: s,
        authed: false,
        selected: None,
        commands: 0,
        expired_once: false,
        token: None,
        condstore: false,
        own_wait: None,
    };
    c.w.write_all(b"* OK quirk IMAP server ready\r\n")?;
    let result = (|| -> std::io::Result<()> {
        while let Some((text, lits)) = read_command(&mut r, &mut c.w)? {
            let toks = tokenize(&text, &lits);
            if toks.len() < 2 {
                c.w.write_all(b"* BAD empty command\r\n")?;
                continue;
            }
            let tag = toks[0].text();
            let out = handle(&mut c, &sh, &tag, &toks[1..])?;
            c.w.write_all(&out.bytes)?;
            c.w.flush()?;
            if out.close {
                let _ = c.w.shutdown(Shutdown::Both);
                return Ok(());
            }
        }
        Ok(())
    })();
    if c.authed {
        sh.lock().unwrap().sessions -= 1;
    }
    result
}

struct Out {
    bytes: Vec<u8>,
    close: bool,
}

fn ok(s: String) -> Out {
    Out {
        bytes: s.into_bytes(),
        close: false,
    }
}

fn caps(o: &QuirkOpts) -> String {
    let mut c =
        String::from("IMAP4rev1 LITERAL+ UIDPLUS NAMESPACE ENABLE ID AUTH=PLAIN SASL-IR UNSELECT");
    if o.gmail {
        c.push_str(" X-GM-EXT-1 CONDSTORE");
    }
    if o.yahoo {
        c.push_str(" XYMHIGHESTMODSEQ");
        if o.lying_condstore {
            c.push_str(" CONDSTORE");
        }
    }
    if o.exchange {
        c.push_str(" MOVE IDLE CHILDREN");
    }
    if o.oauth {
        c.push_str(" AUTH=XOAUTH2");
    }
    c
}

fn handle(c: &mut Conn, sh: &Mutex<Shared>, tag: &str, args: &[Tok]) -> std::io::Result<Out> {
    let mut g = sh.lock().unwrap();
    let cmd = args[0].text().to_ascii_uppercase();
    let uid_cmd = cmd == "UID";
    let verb = if uid_cmd {
        args.get(1)
            .map(|t| t.text().to_ascii_uppercase())
            .unwrap_or_default()
    } else {
        cmd.clone()
    };
    let now = Instant::now();
    let logged: String = args
        .iter()
        .map(|t| match t {
            Tok::Str(s) if s.len() > 100 => format!("{{{}}}", s.len()),
            t => t.text(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    g.log.push(Entry {
        conn: c.id,
        at: now,
        line: logged.clone(),
    });
    // Early: a login while a pause the server asked for runs (a new
    // session), or any command on the connection that was told to wait.
    // Connections that were busy elsewhere when the reply went out learn
    // of it only through the client's governor, so they are not judged.
    let new_session = matches!(cmd.as_str(), "LOGIN" | "AUTHENTICATE");
    let window = if new_session {
        g.wait_until
    } else {
        c.own_wait
    };
    if let Some(t) = window
        && now < t
    {
        g.early.push(format!(
            "conn {}: {logged} ({} ms early)",
            c.id,
            (t - now).as_millis()
        ));
    }
    if c.authed && c.selected.is_some() {
        c.commands += 1;
        if let Some(n) = g.opts.expire_after
            && c.commands > n
            && !c.expired_once
        {
            c.expired_once = true;
            if let Some(t) = c.token.clone() {
                g.expired.insert(t);
            }
            return Ok(Out {
                bytes: b"* BYE Session invalidated - AccessTokenExpired\r\n".to_vec(),
                close: true,
            });
        }
    }
    // Throttling: every n-th command of the kind.
    if c.authed
        && let Some(th) = g.opts.throttle.clone()
        && verb == th.on
    {
        g.counted += 1;
        if g.counted.is_multiple_of(th.every) && g.throttled < th.times {
            g.throttled += 1;
            let until = Instant::now() + th.backoff;
            g.wait_until = Some(g.wait_until.map_or(until, |t| t.max(until)));
            c.own_wait = Some(until);
            let ms = th.backoff.as_millis();
            return Ok(match th.style {
                ThrottleStyle::SuggestedNo => ok(format!(
                    "{tag} NO Request is throttled. Suggested Backoff Time: {ms} milliseconds\r\n"
                )),
                ThrottleStyle::SuggestedBadBye => Out {
                    bytes: format!("{tag} BAD Request is throttled. Suggested Backoff Time: {ms} milliseconds\r\n* BYE Connection closed. 14\r\n").into_bytes(),
                    close: true,
                },
                ThrottleStyle::Throttled => ok(format!(
                    "{tag} NO [THROTTLED] Too many requests, slow down\r\n"
                )),
            });
        }
    }
    let o = g.opts.clone();
    let done = |what: &str| format!("{tag} OK {what} completed\r\n");
    match cmd.as_str() {
        "CAPABILITY" => Ok(ok(format!(
            "* CAPABILITY {}\r\n{}",
            caps(&o),
            done("CAPABILITY")
        ))),
        "NOOP" => Ok(ok(done("NOOP"))),
        "ID" => Ok(ok(format!("* ID NIL\r\n{}", done("ID")))),
        "LOGOUT" => Ok(Out {
            bytes: format!("* BYE bye\r\n{}", done("LOGOUT")).into_bytes(),
            close: true,
        }),
        "LOGIN" | "AUTHENTICATE" => {
            let (u, p) = if cmd == "LOGIN" {
                (
                    args.get(1).map(|t| t.text()).unwrap_or_default(),
                    args.get(2).map(|t| t.text()).unwrap_or_default(),
                )
            } else if o.oauth
                && args
                    .get(1)
                    .is_some_and(|m| m.text().eq_ignore_ascii_case("XOAUTH2"))
            {
                // user=U ^A auth=Bearer T ^A ^A
                let ir = args.get(2).map(|t| t.text()).unwrap_or_default();
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(ir)
                    .unwrap_or_default();
                let raw = String::from_utf8_lossy(&raw).into_owned();
                let field = |k: &str| {
                    raw.split('\x01')
                        .find_map(|f| f.strip_prefix(k))
                        .unwrap_or_default()
                        .to_string()
                };
                let token = field("auth=Bearer ");
                if g.expired.contains(&token) {
                    g.stale_logins += 1;
                    return Ok(ok(format!(
                        "{tag} NO [AUTHENTICATIONFAILED] AUTHENTICATE failed.\r\n"
                    )));
                }
                c.token = Some(token);
                (field("user="), g.password.clone())
            } else {
                let ir = args.get(2).map(|t| t.text()).unwrap_or_default();
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(ir)
                    .unwrap_or_default();
                let parts: Vec<String> = raw
                    .split(|&b| b == 0)
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                (
                    parts.get(1).cloned().unwrap_or_default(),
                    parts.get(2).cloned().unwrap_or_default(),
                )
            };
            if u != g.user || p != g.password {
                return Ok(ok(format!(
                    "{tag} NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n"
                )));
            }
            g.logins += 1;
            let n = g.logins;
            if o.max_sessions.is_some_and(|max| g.sessions >= max) || o.refuse_logins.contains(&n) {
                g.refused += 1;
                return Ok(ok(format!(
                    "{tag} NO [ALERT] Too many simultaneous connections. (Failure)\r\n"
                )));
            }
            g.sessions += 1;
            g.max_seen = g.max_seen.max(g.sessions);
            c.authed = true;
            if let Some(t) = c.token.clone() {
                g.tokens.push(t);
            }
            Ok(ok(format!(
                "{tag} OK [CAPABILITY {}] Logged in\r\n",
                caps(&o)
            )))
        }
        _ if !c.authed => Ok(ok(format!("{tag} BAD log in first\r\n"))),
        "ENABLE" => {
            let cond = o.gmail || o.lying_condstore;
            let want: Vec<String> = args[1..]
                .iter()
                .map(|t| t.text().to_ascii_uppercase())
                .collect();
            if cond && want.iter().any(|w| w == "CONDSTORE") {
                c.condstore = true;
                Ok(ok(format!("* ENABLED CONDSTORE\r\n{}", done("ENABLE"))))
            } else {
                Ok(ok(done("ENABLE")))
            }
        }
        "NAMESPACE" => Ok(ok(format!(
            "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n{}",
            done("NAMESPACE")
        ))),
        "LIST" => {
            let pat = args.get(2).map(|t| t.text()).unwrap_or_default();
            let mut s = String::new();
            if pat.is_empty() {
                s.push_str("* LIST (\\Noselect) \"/\" \"\"\r\n");
            } else {
                for (name, b) in &g.boxes {
                    let attrs = b.special_use.clone().unwrap_or_default();
                    s.push_str(&format!("* LIST ({attrs}) \"/\" \"{name}\"\r\n"));
                }
            }
            s.push_str(&done("LIST"));
            Ok(ok(s))
        }
        "CREATE" => {
            let name = args.get(1).map(|t| t.text()).unwrap_or_default();
            if g.boxes.contains_key(&name) {
                return Ok(ok(format!("{tag} NO [ALREADYEXISTS] exists\r\n")));
            }
            let uv = 1000 + g.boxes.len() as u32;
            g.boxes.insert(
                name,
                Mailbox {
                    uidvalidity: uv,
                    uidnext: 1,
                    special_use: None,
                    msgs: Vec::new(),
                    highestmodseq: 1,
                },
            );
            Ok(ok(done("CREATE")))
        }
        "SUBSCRIBE" | "UNSUBSCRIBE" => Ok(ok(done(&cmd))),
        "STATUS" => {
            let name = args.get(1).map(|t| t.text()).unwrap_or_default();
            let Some(b) = g.boxes.get(&name) else {
                return Ok(ok(format!("{tag} NO [NONEXISTENT] no such mailbox\r\n")));
            };
            let items: Vec<String> = args
                .get(2)
                .map(|t| {
                    t.list()
                        .iter()
                        .map(|x| x.text().to_ascii_uppercase())
                        .collect()
                })
                .unwrap_or_default();
            let mut v = Vec::new();
            for it in &items {
                match it.as_str() {
                    "MESSAGES" => v.push(format!("MESSAGES {}", b.msgs.len())),
                    "UIDNEXT" => v.push(format!("UIDNEXT {}", b.uidnext)),
                    "UIDVALIDITY" => v.push(format!("UIDVALIDITY {}", b.uidvalidity)),
                    "HIGHESTMODSEQ" => v.push(format!("HIGHESTMODSEQ {}", modseq_of(b, &o))),
                    _ => {}
                }
            }
            Ok(ok(format!(
                "* STATUS \"{name}\" ({})\r\n{}",
                v.join(" "),
                done("STATUS")
            )))
        }
        "SELECT" | "EXAMINE" => {
            let name = args.get(1).map(|t| t.text()).unwrap_or_default();
            let Some(b) = g.boxes.get(&name) else {
                c.selected = None;
                return Ok(ok(format!("{tag} NO [NONEXISTENT] no such mailbox\r\n")));
            };
            let ro = cmd == "EXAMINE";
            let permanent = if o.exchange {
                "\\Seen \\Answered \\Flagged \\Deleted \\Draft $MDNSent"
            } else {
                "\\Seen \\Answered \\Flagged \\Deleted \\Draft \\*"
            };
            let mut s = format!(
                "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $MDNSent)\r\n* OK [PERMANENTFLAGS ({permanent})] ok\r\n* {} EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY {}] ok\r\n* OK [UIDNEXT {}] ok\r\n",
                b.msgs.len(),
                b.uidvalidity,
                b.uidnext
            );
            if o.gmail || o.yahoo {
                s.push_str(&format!("* OK [HIGHESTMODSEQ {}] ok\r\n", modseq_of(b, &o)));
            }
            s.push_str(&format!(
                "{tag} OK [{}] {cmd} completed\r\n",
                if ro { "READ-ONLY" } else { "READ-WRITE" }
            ));
            c.selected = Some((name, ro));
            Ok(ok(s))
        }
        "UNSELECT" | "CLOSE" => {
            c.selected = None;
            Ok(ok(done(&cmd)))
        }
        "APPEND" => {
            let name = args.get(1).map(|t| t.text()).unwrap_or_default();
            let mut flags = BTreeSet::new();
            let mut date = 0;
            // The message is the last argument; flags and date come before.
            let Some((Tok::Str(body), opts)) = args[2..].split_last() else {
                return Ok(ok(format!("{tag} BAD no message\r\n")));
            };
            let body = body.clone();
            for t in opts {
                match t {
                    Tok::List(l) => flags = l.iter().map(|x| x.text()).collect(),
                    Tok::Str(s) => {
                        date = mailferry::imap::parse_internal_date(&String::from_utf8_lossy(s))
                            .unwrap_or(0)
                    }
                    _ => {}
                }
            }
            if o.exchange {
                // \Flagged is lost on APPEND; keywords other than $MDNSent too.
                flags.retain(|f| {
                    (f.starts_with('\\') && !f.eq_ignore_ascii_case("\\Flagged"))
                        || f.eq_ignore_ascii_case("$MDNSent")
                });
            }
            let Some(b) = g.boxes.get_mut(&name) else {
                return Ok(ok(format!("{tag} NO [TRYCREATE] no such mailbox\r\n")));
            };
            if date == 0 {
                date = std::time::SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
            }
            let uv = b.uidvalidity;
            let uid = add(b, body, flags, date);
            Ok(ok(format!(
                "{tag} OK [APPENDUID {uv} {uid}] APPEND completed\r\n"
            )))
        }
        "UID" => {
            let Some((name, ro)) = c.selected.clone() else {
                return Ok(ok(format!("{tag} BAD no mailbox selected\r\n")));
            };
            let b = g.boxes.get_mut(&name).unwrap();
            let max = b.msgs.last().map_or(0, |m| m.uid);
            match verb.as_str() {
                "SEARCH" => {
                    let crit: Vec<String> = args[2..].iter().map(|t| t.text()).collect();
                    let uids: Vec<u32> = b
                        .msgs
                        .iter()
                        .map(|m| m.uid)
                        .filter(|&u| {
                            match crit
                                .iter()
                                .map(|s| s.to_ascii_uppercase())
                                .collect::<Vec<_>>()
                                .as_slice()
                            {
                                [a] if a == "ALL" => true,
                                [n, u2, set] if n == "NOT" && u2 == "UID" => !in_set(set, u, max),
                                [u2, set] if u2 == "UID" => in_set(set, u, max),
                                _ => false,
                            }
                        })
                        .collect();
                    let list: Vec<String> = uids.iter().map(|u| u.to_string()).collect();
                    Ok(ok(format!(
                        "* SEARCH {}\r\n{}",
                        list.join(" "),
                        done("SEARCH")
                    )))
                }
                "FETCH" => {
                    let set = args[2].text();
                    let items: Vec<String> = match &args[3] {
                        Tok::List(l) => l.iter().map(|t| t.text().to_ascii_uppercase()).collect(),
                        t => vec![t.text().to_ascii_uppercase()],
                    };
                    let since: Option<u64> = args.get(4).and_then(|m| {
                        let l = m.list();
                        let i = l
                            .iter()
                            .position(|t| t.text().eq_ignore_ascii_case("CHANGEDSINCE"))?;
                        l.get(i + 1)?.text().parse().ok()
                    });
                    let mut out = Vec::new();
                    for (i, m) in b.msgs.iter().enumerate() {
                        if !in_set(&set, m.uid, max) {
                            continue;
                        }
                        // Yahoo's modseqs never move: CHANGEDSINCE finds nothing.
                        let ms = if o.yahoo { 1 } else { m.modseq };
                        if let Some(s) = since
                            && ms <= s
                        {
                            continue;
                        }
                        out.extend_from_slice(
                            format!("* {} FETCH (UID {}", i + 1, m.uid).as_bytes(),
                        );
                        for it in &items {
                            match it.as_str() {
                                "UID" => {}
                                "FLAGS" => out.extend_from_slice(
                                    format!(
                                        " FLAGS ({})",
                                        m.flags.iter().cloned().collect::<Vec<_>>().join(" ")
                                    )
                                    .as_bytes(),
                                ),
                                "INTERNALDATE" => out.extend_from_slice(
                                    format!(" INTERNALDATE {}", imap_date(m.date)).as_bytes(),
                                ),
                                "RFC822.SIZE" => out.extend_from_slice(
                                    format!(
                                        " RFC822.SIZE {}",
                                        if o.yahoo { 0 } else { m.body.len() }
                                    )
                                    .as_bytes(),
                                ),
                                "MODSEQ" if c.condstore || o.gmail || o.lying_condstore => out
                                    .extend_from_slice(
                                        format!(" MODSEQ ({})", if o.yahoo { 1 } else { m.modseq })
                                            .as_bytes(),
                                    ),
                                "BODY.PEEK[]" | "BODY[]" => {
                                    out.extend_from_slice(
                                        format!(" BODY[] {{{}}}\r\n", m.body.len()).as_bytes(),
                                    );
                                    out.extend_from_slice(&m.body);
                                }
                                // iCloud: OK, but the data is not there.
                                "RFC822" if o.icloud => {}
                                "RFC822" => {
                                    out.extend_from_slice(
                                        format!(" RFC822 {{{}}}\r\n", m.body.len()).as_bytes(),
                                    );
                                    out.extend_from_slice(&m.body);
                                }
                                h if h.starts_with("BODY.PEEK[HEADER.FIELDS") => {
                                    let hdr = header_fields(&m.body, h);
                                    out.extend_from_slice(
                                        format!(
                                            " BODY[HEADER.FIELDS (MESSAGE-ID)] {{{}}}\r\n",
                                            hdr.len()
                                        )
                                        .as_bytes(),
                                    );
                                    out.extend_from_slice(&hdr);
                                }
                                _ => {}
                            }
                        }
                        out.extend_from_slice(b")\r\n");
                    }
                    out.extend_from_slice(done("FETCH").as_bytes());
                    Ok(Out {
                        bytes: out,
                        close: false,
                    })
                }
                "STORE" if ro => Ok(ok(format!("{tag} NO read-only\r\n"))),
                "STORE" => {
                    let set = args[2].text();
                    let op = args[3].text().to_ascii_uppercase();
                    let flags: BTreeSet<String> = args[4].list().iter().map(|t| t.text()).collect();
                    let flags: BTreeSet<String> = if o.exchange {
                        flags
                            .into_iter()
                            .filter(|f| f.starts_with('\\') || f.eq_ignore_ascii_case("$MDNSent"))
                            .collect()
                    } else {
                        flags
                    };
                    let yahoo = o.yahoo;
                    if !yahoo {
                        b.highestmodseq += 1;
                    }
                    let ms = b.highestmodseq;
                    for m in b.msgs.iter_mut().filter(|m| in_set(&set, m.uid, max)) {
                        if op.starts_with('+') {
                            m.flags.extend(flags.iter().cloned());
                        } else if op.starts_with('-') {
                            m.flags
                                .retain(|f| !flags.iter().any(|x| x.eq_ignore_ascii_case(f)));
                        } else {
                            m.flags = flags.clone();
                        }
                        m.modseq = ms;
                    }
                    Ok(ok(done("STORE")))
                }
                "EXPUNGE" if ro => Ok(ok(format!("{tag} NO read-only\r\n"))),
                "EXPUNGE" => {
                    let set = args[2].text();
                    b.msgs
                        .retain(|m| !(in_set(&set, m.uid, max) && m.has("\\Deleted")));
                    Ok(ok(done("EXPUNGE")))
                }
                _ => Ok(ok(format!("{tag} BAD unknown UID command\r\n"))),
            }
        }
        _ => Ok(ok(format!("{tag} BAD unknown command\r\n"))),
    }
}

/// The HIGHESTMODSEQ the server reports: Yahoo's never moves.
fn modseq_of(b: &Mailbox, o: &QuirkOpts) -> u64 {
    if o.yahoo { 1 } else { b.highestmodseq }
}

/// The Message-ID header field of a message (as `HEADER.FIELDS` returns
/// it: the field lines, then an empty line).
fn header_fields(body: &[u8], _item: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut out = String::new();
    let mut in_field = false;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if in_field {
                out.push_str(line);
                out.push_str("\r\n");
            }
            continue;
        }
        in_field = line
            .split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("Message-ID"));
        if in_field {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out.into_bytes()
}
