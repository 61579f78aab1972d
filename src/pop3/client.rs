//! The tokio side of POP3: sockets, TLS, timeouts and pipelining around the
//! pure [`codec`](super::codec). Everything that can hang is under a time
//! limit, everything that can lose mail fails loudly: a RETR cut short is an
//! error, never a shorter message, and [`Pop3Client::quit`] fails unless the
//! server confirmed the deletions.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::codec::{self, CodecError, Command, Decoder, Event, Expect, Limits, Status};
use crate::endpoint::{Login, Protocol, Security, ServerConfig, Timeouts};
use crate::error::{Error, Result};
use crate::flow::Lease;
use crate::net::{MailStream, PeerCert, start_tls, tcp_connect};
use crate::types::Uidl;

/// Commands kept in flight when the server offers PIPELINING: enough to
/// hide a 20 ms round trip (crates.md §3: 1,241 msg/s at 32 vs 44 at 1),
/// small enough that the commands always fit in the socket buffers, so
/// writing ahead can never deadlock against an unread response.
pub const PIPELINE_WINDOW: usize = 32;

const READ_BUF: usize = 64 * 1024;

/// What `mailferry check` shows about a session, gathered while connecting.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The greeting's text (without `+OK`).
    pub greeting: String,
    /// CAPA lines as last seen, empty if the server has no CAPA. From a
    /// server that pipelines these are the ones before login: the
    /// post-login CAPA goes out with the first command
    /// ([`Pop3Client::login_capabilities`]).
    pub capabilities: Vec<String>,
    /// The server accepts pipelined commands (RFC 2449 PIPELINING).
    pub pipelining: bool,
    /// CAPA advertises UIDL; [`Pop3Client::uidl_all`] gives the definitive
    /// answer, since servers without CAPA may still have UIDL.
    pub uidl: bool,
    /// The server's certificate when TLS is on.
    pub cert: Option<PeerCert>,
    /// Whether the session is encrypted (pop3s or STLS).
    pub tls: bool,
    /// How we logged in (`AUTH PLAIN`, `USER/PASS`, `APOP`, `AUTH XOAUTH2`, ...).
    pub auth_mechanism: &'static str,
}

/// One message's outcome from [`Pop3Client::retr_many`]: either the exact
/// bytes (dot-unstuffed, line endings as served) or why this message failed.
#[derive(Debug)]
pub struct Fetched {
    /// The message number the bytes belong to.
    pub msgno: u32,
    /// The message, or a per-message failure (`-ERR`, over the size cap);
    /// connection failures end `retr_many` itself instead.
    pub result: Result<Vec<u8>>,
    /// The message's bytes in the process's memory budget ([`crate::flow`]).
    pub lease: Lease,
}

/// An authenticated POP3 session in the TRANSACTION state. Dropping it
/// without [`quit`](Pop3Client::quit) closes the connection, which makes the
/// server forget every DELE (RFC 1939 §6).
pub struct Pop3Client {
    stream: MailStream,
    dec: Decoder,
    server: String,
    timeouts: Timeouts,
    read_limit: std::time::Duration,
    caps: Vec<String>,
    window: usize,
    wbuf: Vec<u8>,
    broken: bool,
    /// The lease of the message body just read, until handed on.
    lease: Lease,
    /// The post-login CAPA is still to be asked: it goes out in one write
    /// with the next command ([`Pop3Client::login_capabilities`]).
    capa_pending: bool,
}

// By hand: the buffers are large, and the write buffer held PASS/AUTH.
impl std::fmt::Debug for Pop3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pop3Client")
            .field("server", &self.server)
            .field("tls", &matches!(self.stream, MailStream::Tls(_)))
            .field("window", &self.window)
            .field("pending", &self.dec.pending())
            .field("broken", &self.broken)
            .finish()
    }
}

/// Opens an authenticated session with default [`Limits`]: TLS as the URL
/// demands, greeting, CAPA, STLS, login. Returns what `check` reports.
pub async fn connect(cfg: &ServerConfig) -> Result<(Pop3Client, ConnInfo)> {
    connect_with_limits(cfg, Limits::default()).await
}

/// [`connect`] with explicit size limits (`--max-size` maps to
/// `max_message`). One attempt: an OAuth2 token the server refuses is
/// spent and reported as [`Error::TokenRefused`], and the caller decides
/// whether to log in again ([`crate::endpoint::Login::outcome`]).
pub async fn connect_with_limits(
    cfg: &ServerConfig,
    limits: Limits,
) -> Result<(Pop3Client, ConnInfo)> {
    let login = cfg.credentials.login().await?;
    login.outcome(connect_as(cfg, limits, &login).await)
}

async fn connect_as(
    cfg: &ServerConfig,
    limits: Limits,
    login: &Login,
) -> Result<(Pop3Client, ConnInfo)> {
    let url = &cfg.url;
    let server = url.server();
    if url.protocol != Protocol::Pop3 {
        return Err(Error::Usage(format!("{server}: not a POP3 endpoint")));
    }
    let t = cfg.timeouts;
    let tcp = tcp_connect(&url.host, url.port, t.connect).await?;
    let (stream, mut cert) = match url.security {
        Security::Implicit => {
            let (tls, cert) = start_tls(tcp, &url.host, url.port, &cfg.tls, t.connect).await?;
            (tls, Some(cert))
        }
        Security::StartTls | Security::Plaintext => (MailStream::Plain(tcp), None),
    };
    let mut c = Pop3Client::new(stream, server.clone(), t, limits);
    c.read_limit = t.connect;
    c.dec.expect(Expect::Single);
    let greeting = c.read_status().await?;
    c.read_limit = t.command;
    if !greeting.ok {
        return Err(Error::connect(
            &server,
            format!("server refused the session: {greeting}"),
        ));
    }
    c.caps = c.capa().await?.unwrap_or_default();

    if url.security == Security::StartTls {
        if !has_cap(&c.caps, "STLS") {
            return Err(Error::connect(
                &server,
                "server does not offer STLS; refusing to continue in clear text (use pop3s://, or --insecure-plaintext on a trusted network)",
            ));
        }
        let st = c.simple(Command::Stls).await?;
        if !st.ok {
            return Err(Error::connect(&server, format!("STLS refused: {st}")));
        }
        if c.dec.buffered() > 0 {
            // RFC 2595 §2.2 / CVE-2011-0411: bytes sent before the handshake
            // would be taken as if they came over TLS.
            return Err(Error::connect(
                &server,
                "server sent data after accepting STLS (possible command injection); refusing",
            ));
        }
        let MailStream::Plain(tcp) = c.stream else {
            unreachable!("STLS is only sent on a plain stream")
        };
        let (tls, peer) = start_tls(tcp, &url.host, url.port, &cfg.tls, t.connect).await?;
        cert = Some(peer);
        c = Pop3Client::new(tls, server.clone(), t, limits);
        // Capabilities seen in clear text could have been forged.
        c.caps = c.capa().await?.unwrap_or_default();
    }

    let auth_mechanism = c.authenticate(cfg, &greeting, login).await?;
    // Some servers announce more (UIDL, PIPELINING) once logged in, so the
    // capabilities are asked again. A server that pipelines gets that CAPA
    // in one write with the first command of the session (no round trip
    // of its own: a no-op fetch is CAPA+UIDL, then QUIT).
    if has_cap(&c.caps, "PIPELINING") {
        c.window = PIPELINE_WINDOW;
        c.capa_pending = true;
    } else {
        c.refresh_capabilities().await?;
    }
    let info = ConnInfo {
        greeting: greeting.text.clone(),
        capabilities: c.caps.clone(),
        pipelining: c.window > 1,
        uidl: has_cap(&c.caps, "UIDL"),
        tls: cert.is_some(),
        cert,
        auth_mechanism,
    };
    Ok((c, info))
}

/// Case-insensitive match of a capability's tag (first word).
fn has_cap(caps: &[String], tag: &str) -> bool {
    caps.iter().any(|c| {
        c.split_whitespace()
            .next()
            .is_some_and(|t| t.eq_ignore_ascii_case(tag))
    })
}

/// SASL mechanisms from the `SASL ...` capability line, upper-cased.
fn sasl_mechs(caps: &[String]) -> Vec<String> {
    caps.iter()
        .filter_map(|c| {
            let mut w = c.split_whitespace();
            w.next()
                .filter(|t| t.eq_ignore_ascii_case("SASL"))
                .map(|_| w.map(|m| m.to_ascii_uppercase()).collect::<Vec<_>>())
        })
        .flatten()
        .collect()
}

impl Pop3Client {
    fn new(stream: MailStream, server: String, timeouts: Timeouts, limits: Limits) -> Pop3Client {
        Pop3Client {
            stream,
            dec: Decoder::new(limits),
            server,
            timeouts,
            read_limit: timeouts.command,
            caps: Vec::new(),
            window: 1,
            wbuf: Vec::with_capacity(1024),
            broken: false,
            lease: Lease::default(),
            capa_pending: false,
        }
    }

    /// Asks CAPA now and sets the pipelining window from the answer.
    async fn refresh_capabilities(&mut self) -> Result<()> {
        if let Some(caps) = self.capa().await? {
            self.caps = caps;
        }
        self.window = if has_cap(&self.caps, "PIPELINING") {
            PIPELINE_WINDOW
        } else {
            1
        };
        Ok(())
    }

    /// The capabilities the server announces once logged in (asked now if
    /// the post-login CAPA has not gone out with a command yet).
    pub async fn login_capabilities(&mut self) -> Result<&[String]> {
        if self.capa_pending {
            self.send(&[]).await?;
        }
        Ok(&self.caps)
    }

    /// `host:port`, for messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The capabilities as last read.
    pub fn capabilities(&self) -> &[String] {
        &self.caps
    }

    /// Commands kept in flight by `retr_many`/`dele_many` (1 = no
    /// pipelining).
    pub fn window(&self) -> usize {
        self.window
    }

    /// Overrides the pipelining window, e.g. 1 to work around a server
    /// that advertises PIPELINING but mishandles it, or to benchmark. Never
    /// raises it above 1 unless the server advertised PIPELINING.
    pub fn set_window(&mut self, window: usize) {
        let max = if has_cap(&self.caps, "PIPELINING") {
            window
        } else {
            1
        };
        self.window = window.clamp(1, max.max(1));
    }

    fn protocol(&self, msg: impl Into<String>) -> Error {
        Error::protocol(&self.server, msg)
    }

    fn usable(&self) -> Result<()> {
        if self.broken {
            Err(Error::connect(
                &self.server,
                "POP3 session unusable after an earlier error; reconnect",
            ))
        } else {
            Ok(())
        }
    }

    /// Writes commands in one go and queues their response shapes.
    async fn send(&mut self, cmds: &[Command]) -> Result<()> {
        self.usable()?;
        self.wbuf.clear();
        // The deferred post-login CAPA leads the first write after login;
        // its answer is read before this call returns (the server is
        // already at work on the rest).
        let capa = std::mem::take(&mut self.capa_pending);
        let lead: &[Command] = if capa { &[Command::Capa] } else { &[] };
        for c in lead.iter().chain(cmds) {
            c.encode(&mut self.wbuf)
                .map_err(|e| Error::Usage(format!("{}: {e}", self.server)))?;
        }
        for c in lead.iter().chain(cmds) {
            if let Some(e) = c.expect() {
                self.dec.expect(e);
            }
        }
        let limit = self.timeouts.command;
        let r = tokio::time::timeout(limit, async {
            self.stream.write_all(&self.wbuf).await?;
            self.stream.flush().await
        })
        .await;
        // Do not keep a password around longer than needed.
        self.wbuf.fill(0);
        self.wbuf.clear();
        match r {
            Ok(Ok(())) if capa => {
                if let Ok(body) = self.read_multi().await? {
                    self.caps = codec::parse_capa(&body);
                }
                if !has_cap(&self.caps, "PIPELINING") {
                    self.window = 1;
                }
                Ok(())
            }
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.broken = true;
                Err(Error::connect(
                    &self.server,
                    format!("connection lost while sending: {e}"),
                ))
            }
            Err(_) => {
                self.broken = true;
                Err(Error::Timeout {
                    server: self.server.clone(),
                    what: "sending a POP3 command".into(),
                })
            }
        }
    }

    /// Reads what the socket has (at least [`READ_BUF`] bytes of room)
    /// into the decoder. The time limit is per read, so a large message is
    /// fine as long as it keeps moving.
    async fn fill(&mut self) -> Result<()> {
        let input = self.dec.input(READ_BUF);
        let r = tokio::time::timeout(self.read_limit, self.stream.read_buf(input)).await;
        let during = match self.dec.in_body() {
            Some(Some(n)) => format!(" in the middle of message {n}"),
            Some(None) => " in the middle of a listing".into(),
            None => String::new(),
        };
        match r {
            Ok(Ok(0)) => {
                self.broken = true;
                Err(Error::connect(
                    &self.server,
                    format!("connection closed by the server{during}"),
                ))
            }
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                self.broken = true;
                Err(Error::connect(
                    &self.server,
                    format!("connection lost{during}: {e}"),
                ))
            }
            Err(_) => {
                self.broken = true;
                Err(Error::Timeout {
                    server: self.server.clone(),
                    what: format!("the POP3 server's response{during}"),
                })
            }
        }
    }

    /// The next decoded event. A recoverable codec error (message over the
    /// cap) leaves `broken` false; everything else breaks the session.
    async fn event(&mut self) -> Result<Event> {
        self.event_into(None).await
    }

    /// As [`event`](Self::event), with body bytes appended to `sink`.
    async fn event_into(&mut self, mut sink: Option<&mut Vec<u8>>) -> Result<Event> {
        self.usable()?;
        loop {
            match self.dec.next_event_into(sink.as_deref_mut()) {
                Ok(Some(ev)) => return Ok(ev),
                Ok(None) if self.dec.pending() == 0 => {
                    self.broken = true;
                    return Err(self.protocol("internal error: read with no command pending"));
                }
                Ok(None) => self.fill().await?,
                Err(e) => {
                    if e.is_fatal() {
                        self.broken = true;
                    }
                    return Err(self.codec_error(e));
                }
            }
        }
    }

    fn codec_error(&self, e: CodecError) -> Error {
        self.protocol(e.to_string())
    }

    async fn read_status(&mut self) -> Result<Status> {
        match self.event().await? {
            Event::Status(s) => Ok(s),
            other => {
                self.broken = true;
                Err(self.protocol(format!("expected a status line, got {other:?}")))
            }
        }
    }

    /// Collects a multi-line body after its `+OK`. An over-cap body is
    /// skipped to its end so the session stays usable, then reported.
    async fn collect_body(&mut self, capacity: usize) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(capacity);
        let mut failure = None;
        loop {
            match self.event_into(Some(&mut out)).await {
                Ok(Event::Body(_)) => {}
                Ok(Event::End) => break,
                Ok(other) => {
                    self.broken = true;
                    return Err(self.protocol(format!("unexpected {other:?} inside a response")));
                }
                Err(e) if self.broken => return Err(e),
                Err(e) => {
                    out = Vec::new();
                    failure = Some(e);
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    async fn simple(&mut self, cmd: Command) -> Result<Status> {
        self.send(std::slice::from_ref(&cmd)).await?;
        self.read_status().await
    }

    /// Sends a multi-line command: `Ok(Err(status))` for `-ERR`.
    async fn multi(&mut self, cmd: Command) -> Result<std::result::Result<Vec<u8>, Status>> {
        self.send(std::slice::from_ref(&cmd)).await?;
        self.read_multi().await
    }

    /// Reads one multi-line response: `Ok(Err(status))` for `-ERR`.
    async fn read_multi(&mut self) -> Result<std::result::Result<Vec<u8>, Status>> {
        let st = self.read_status().await?;
        if !st.ok {
            return Ok(Err(st));
        }
        self.collect_body(0).await.map(Ok)
    }

    async fn capa(&mut self) -> Result<Option<Vec<String>>> {
        Ok(self
            .multi(Command::Capa)
            .await?
            .ok()
            .map(|b| codec::parse_capa(&b)))
    }

    fn ok_or_protocol(&self, what: &str, st: Status) -> Result<Status> {
        if st.ok {
            Ok(st)
        } else {
            Err(self.protocol(format!("{what}: {st}")))
        }
    }

    /// Maps a login `-ERR` (RFC 3206): only `[AUTH]` or no code means bad
    /// credentials; `[IN-USE]`, `[LOGIN-DELAY]`, `[SYS/TEMP]` are transient
    /// so a cron job retries instead of alarming about the password.
    fn login_error(&self, st: &Status) -> Error {
        let text = &st.text;
        match st.code.as_deref() {
            Some("IN-USE") => Error::connect(
                &self.server,
                format!("mailbox in use by another session, try later ({text})"),
            ),
            Some("LOGIN-DELAY") => Error::connect(
                &self.server,
                format!("logged in too recently, try later ({text})"),
            ),
            Some("SYS/TEMP") => Error::connect(
                &self.server,
                format!("server temporarily unavailable, try later ({text})"),
            ),
            Some("SYS/PERM") => {
                self.protocol(format!("server refused the login permanently ({text})"))
            }
            _ => Error::Auth {
                server: self.server.clone(),
                msg: st.to_string(),
            },
        }
    }

    async fn authenticate(
        &mut self,
        cfg: &ServerConfig,
        greeting: &Status,
        login: &Login,
    ) -> Result<&'static str> {
        let user = cfg.url.user.as_str();
        let mechs = sasl_mechs(&self.caps);
        let no_capa = self.caps.is_empty();
        match login {
            Login::Password(pw) => {
                let pw = pw.expose();
                if mechs.iter().any(|m| m == "PLAIN") {
                    let ir = B64.encode(format!("\0{user}\0{pw}"));
                    let st = self.sasl("PLAIN", ir, "*").await?;
                    self.login_result(st, "AUTH PLAIN")
                } else if has_cap(&self.caps, "USER")
                    || (no_capa && greeting.apop_timestamp().is_none())
                {
                    let st = self.simple(Command::User(user.into())).await?;
                    if !st.ok {
                        return Err(self.login_error(&st));
                    }
                    let st = self.simple(Command::Pass(pw.into())).await?;
                    self.login_result(st, "USER/PASS")
                } else if let Some(ts) = greeting.apop_timestamp() {
                    let digest = openssl::hash::hash(
                        openssl::hash::MessageDigest::md5(),
                        format!("{ts}{pw}").as_bytes(),
                    )
                    .map_err(|e| self.protocol(format!("APOP digest: {e}")))?;
                    let digest: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                    let st = self
                        .simple(Command::Apop {
                            user: user.into(),
                            digest,
                        })
                        .await?;
                    self.login_result(st, "APOP")
                } else if mechs.is_empty() && cfg.url.security == Security::Plaintext {
                    Err(Error::Auth {
                        server: self.server.clone(),
                        msg: "server offers no login on an unencrypted connection; use pop3s:// or pop3:// (STLS)".into(),
                    })
                } else {
                    Err(Error::Auth {
                        server: self.server.clone(),
                        msg: format!(
                            "no password login offered that mailferry supports (SASL PLAIN, USER, APOP); server offers SASL {}",
                            mechs.join(" ")
                        ),
                    })
                }
            }
            Login::Bearer(tok) => {
                let tok = tok.secret().expose();
                if mechs.iter().any(|m| m == "OAUTHBEARER") {
                    let (host, port) = (&cfg.url.host, cfg.url.port);
                    let ir = B64.encode(format!(
                        "n,a={},\x01host={host}\x01port={port}\x01auth=Bearer {tok}\x01\x01",
                        user.replace('=', "=3D").replace(',', "=2C")
                    ));
                    // RFC 7628 §3.2.3: answer an error challenge with %x01.
                    let st = self.sasl("OAUTHBEARER", ir, "AQ==").await?;
                    self.login_result(st, "AUTH OAUTHBEARER")
                } else if mechs.iter().any(|m| m == "XOAUTH2") {
                    let ir = B64.encode(format!("user={user}\x01auth=Bearer {tok}\x01\x01"));
                    // Google's XOAUTH2: an empty reply to the error challenge.
                    let st = self.sasl("XOAUTH2", ir, "").await?;
                    self.login_result(st, "AUTH XOAUTH2")
                } else {
                    Err(Error::Auth {
                        server: self.server.clone(),
                        msg: format!(
                            "OAuth2 token given but the server offers neither OAUTHBEARER nor XOAUTH2 (SASL {})",
                            mechs.join(" ")
                        ),
                    })
                }
            }
        }
    }

    fn login_result(&self, st: Status, how: &'static str) -> Result<&'static str> {
        if st.ok {
            Ok(how)
        } else {
            Err(self.login_error(&st))
        }
    }

    /// One SASL exchange. The initial response goes on the AUTH line when
    /// it fits RFC 5034's 255 octets, otherwise after the first `+`.
    /// Any further challenge (an error report) gets `on_challenge`, then `*`.
    async fn sasl(&mut self, mech: &str, initial: String, on_challenge: &str) -> Result<Status> {
        let mut pending = None;
        if "AUTH  \r\n".len() + mech.len() + initial.len() <= 255 {
            self.send(&[Command::Auth {
                mechanism: mech.into(),
                initial: Some(initial),
            }])
            .await?;
        } else {
            self.send(&[Command::Auth {
                mechanism: mech.into(),
                initial: None,
            }])
            .await?;
            pending = Some(initial);
        }
        let mut answered = false;
        loop {
            match self.event().await? {
                Event::Status(s) => return Ok(s),
                Event::Continuation(_) => {
                    let reply = match pending.take() {
                        Some(ir) => ir,
                        None if !answered => {
                            answered = true;
                            on_challenge.to_string()
                        }
                        None => "*".to_string(),
                    };
                    self.send(&[Command::SaslResponse(reply)]).await?;
                }
                other => {
                    self.broken = true;
                    return Err(self.protocol(format!("unexpected {other:?} during AUTH")));
                }
            }
        }
    }

    /// STAT: (message count, total octets) — a cheap "anything new?".
    pub async fn stat(&mut self) -> Result<(u32, u64)> {
        let st = self.simple(Command::Stat).await?;
        let st = self.ok_or_protocol("STAT", st)?;
        codec::parse_stat(&st.text).map_err(|e| self.codec_error(e))
    }

    /// UIDL for every message; `None` when the server has no UIDL (then
    /// the caller falls back to a header digest, SPEC §2 fetch).
    pub async fn uidl_all(&mut self) -> Result<Option<Vec<(u32, Uidl)>>> {
        match self.multi(Command::Uidl(None)).await? {
            Ok(body) => self.parse_uidl(&body).map(Some),
            Err(_) => Ok(None),
        }
    }

    fn parse_uidl(&self, body: &[u8]) -> Result<Vec<(u32, Uidl)>> {
        codec::lines(body)
            .map(|l| codec::parse_uidl_line(l).map_err(|e| self.protocol(format!("UIDL: {e}"))))
            .collect()
    }

    fn parse_list(&self, body: &[u8]) -> Result<Vec<(u32, u64)>> {
        codec::lines(body)
            .map(|l| codec::parse_list_line(l).map_err(|e| self.protocol(format!("LIST: {e}"))))
            .collect()
    }

    /// LIST for every message: (msgno, size in octets as the server counts
    /// them, CRLF line endings).
    pub async fn list_all(&mut self) -> Result<Vec<(u32, u64)>> {
        match self.multi(Command::List(None)).await? {
            Ok(b) => self.parse_list(&b),
            Err(st) => Err(self.protocol(format!("LIST: {st}"))),
        }
    }

    /// LIST and UIDL together: both commands in one write when the server
    /// pipelines, so a no-op rerun costs one round trip for its listing.
    /// The UIDL part is `None` when the server has no UIDL.
    #[allow(clippy::type_complexity)]
    pub async fn list_and_uidl(&mut self) -> Result<(Vec<(u32, u64)>, Option<Vec<(u32, Uidl)>>)> {
        if self.window <= 1 {
            return Ok((self.list_all().await?, self.uidl_all().await?));
        }
        self.send(&[Command::List(None), Command::Uidl(None)])
            .await?;
        let list = self.read_multi().await?;
        let uidl = self.read_multi().await?;
        let sizes = match list {
            Ok(b) => self.parse_list(&b)?,
            Err(st) => return Err(self.protocol(format!("LIST: {st}"))),
        };
        let ids = match uidl {
            Ok(b) => Some(self.parse_uidl(&b)?),
            Err(_) => None,
        };
        Ok((sizes, ids))
    }

    /// Headers plus `lines` body lines, for a Message-ID/Date without
    /// downloading the message.
    pub async fn top(&mut self, msgno: u32, lines: u32) -> Result<Vec<u8>> {
        match self.multi(Command::Top(msgno, lines)).await? {
            Ok(b) => Ok(b),
            Err(st) => Err(self.protocol(format!("TOP {msgno}: {st}"))),
        }
    }

    /// One whole message, byte-exact. For many, use [`retr_many`](Self::retr_many).
    pub async fn retr(&mut self, msgno: u32) -> Result<Vec<u8>> {
        let cmd = Command::Retr(msgno);
        self.send(std::slice::from_ref(&cmd)).await?;
        let r = self.read_retr(&cmd).await;
        self.lease = Lease::default();
        r
    }

    /// Reads the response to `cmd` (RETR or TOP): Err with `broken` false
    /// is a per-message failure, with `broken` true a lost session.
    async fn read_retr(&mut self, cmd: &Command) -> Result<Vec<u8>> {
        self.lease = Lease::default();
        let st = self.read_status().await?;
        if !st.ok {
            let what = match cmd {
                Command::Retr(n) => format!("RETR {n}"),
                Command::Top(n, l) => format!("TOP {n} {l}"),
                other => format!("{other:?}"),
            };
            return Err(self.protocol(format!("{what}: {st}")));
        }
        // "+OK 1234 octets": presize, but never trust it for more than 16 MiB.
        let hint = st
            .text
            .split_whitespace()
            .next()
            .and_then(|w| w.parse::<usize>().ok())
            .map_or(0, |n| n.min(16 << 20) + 64);
        // A message body is leased from the memory budget before its bytes
        // are read ([`crate::flow`]); a header (TOP) is small.
        if matches!(cmd, Command::Retr(_)) {
            self.lease = crate::flow::global().lease(hint, &[]).await;
        }
        self.collect_body(hint).await
    }

    /// Downloads `msgnos` in order, pipelined when the server allows,
    /// sending each message into `tx` as soon as it is complete (memory:
    /// one message plus what the channel holds). A `-ERR` or oversize
    /// message is reported in its [`Fetched`] and the rest continue; a lost
    /// connection is the `Err` of this call, and messages after it were
    /// not sent. If the receiver goes away, the commands in flight are
    /// drained and the call returns `Ok`.
    pub async fn retr_many(&mut self, msgnos: &[u32], tx: mpsc::Sender<Fetched>) -> Result<()> {
        self.retr_each(msgnos, async |msgno, result, lease| {
            tx.send(Fetched {
                msgno,
                result,
                lease,
            })
            .await
            .is_ok()
        })
        .await
    }

    /// [`retr_many`](Self::retr_many) handing each message to `each`
    /// instead of a channel (a caller that renumbers or tracks messages
    /// needs no task of its own); `each` returns false to stop, and gets
    /// the body's lease to keep as long as it keeps the body.
    pub async fn retr_each(
        &mut self,
        msgnos: &[u32],
        each: impl AsyncFnMut(u32, Result<Vec<u8>>, Lease) -> bool,
    ) -> Result<()> {
        self.pipelined(msgnos, Command::Retr, each).await
    }

    /// `TOP n lines` for each of `msgnos`, pipelined like
    /// [`retr_many`](Self::retr_many); `each` gets every header in order
    /// and returns false to stop. A per-message `-ERR` stops it too and is
    /// the `Err`: every caller (identities without UIDL, prune's dates,
    /// push's matching) needs each header it asked for. One round trip
    /// per window, not per message.
    pub async fn top_each(
        &mut self,
        msgnos: &[u32],
        lines: u32,
        mut each: impl FnMut(u32, Vec<u8>) -> bool,
    ) -> Result<()> {
        let mut refused = None;
        self.pipelined(
            msgnos,
            |n| Command::Top(n, lines),
            async |n, r, _| match r {
                Ok(head) => each(n, head),
                Err(e) => {
                    refused = Some(e);
                    false
                }
            },
        )
        .await?;
        refused.map_or(Ok(()), Err)
    }

    /// Sends `command(n)` for each of `msgnos` through the write-ahead
    /// window and hands each multi-line response to `each` in order; once
    /// `each` returns false the commands in flight are drained. A lost
    /// connection is the `Err`.
    async fn pipelined(
        &mut self,
        msgnos: &[u32],
        command: impl Fn(u32) -> Command,
        mut each: impl AsyncFnMut(u32, Result<Vec<u8>>, Lease) -> bool,
    ) -> Result<()> {
        let mut w = Window::new(msgnos.len(), self.window);
        while let Some(i) = w.next_response() {
            if let Some(range) = w.refill() {
                let cmds: Vec<Command> = msgnos[range].iter().map(|&n| command(n)).collect();
                self.send(&cmds).await?;
            }
            let msgno = msgnos[i];
            let result = self.read_retr(&command(msgno)).await;
            if self.broken {
                return Err(result
                    .err()
                    .unwrap_or_else(|| self.protocol("session lost")));
            }
            let lease = std::mem::take(&mut self.lease);
            if !w.stopped && !each(msgno, result, lease).await {
                w.stopped = true;
            }
        }
        Ok(())
    }

    /// Marks one message for deletion; it is removed only by a successful
    /// [`quit`](Self::quit).
    pub async fn dele(&mut self, msgno: u32) -> Result<()> {
        let st = self.simple(Command::Dele(msgno)).await?;
        self.ok_or_protocol(&format!("DELE {msgno}"), st)
            .map(|_| ())
    }

    /// DELE for many messages, pipelined when allowed. Returns each
    /// message's outcome in order (`Err(status)` for a `-ERR`); still only
    /// committed by [`quit`](Self::quit).
    pub async fn dele_many(
        &mut self,
        msgnos: &[u32],
    ) -> Result<Vec<(u32, std::result::Result<(), Status>)>> {
        let mut out = Vec::with_capacity(msgnos.len());
        let mut w = Window::new(msgnos.len(), self.window);
        while let Some(i) = w.next_response() {
            if let Some(range) = w.refill() {
                let cmds: Vec<Command> = msgnos[range].iter().map(|&n| Command::Dele(n)).collect();
                self.send(&cmds).await?;
            }
            let st = self.read_status().await?;
            out.push((msgnos[i], if st.ok { Ok(()) } else { Err(st) }));
        }
        Ok(out)
    }

    /// Unmarks every DELE of this session.
    pub async fn rset(&mut self) -> Result<()> {
        let st = self.simple(Command::Rset).await?;
        self.ok_or_protocol("RSET", st).map(|_| ())
    }

    /// Keeps an idle session alive (and checks it still is).
    pub async fn noop(&mut self) -> Result<()> {
        let st = self.simple(Command::Noop).await?;
        self.ok_or_protocol("NOOP", st).map(|_| ())
    }

    /// Ends the session. The server's `+OK` to QUIT is what commits the
    /// deletions (RFC 1939 §6), so anything short of it is an `Err`: a
    /// caller must never record a message as deleted unless this is `Ok`.
    pub async fn quit(mut self) -> Result<()> {
        let st = self.simple(Command::Quit).await.map_err(|e| match e {
            Error::Connect { server, msg } => Error::Connect {
                server,
                msg: format!("{msg}; deletions NOT confirmed by QUIT"),
            },
            other => other,
        })?;
        if !st.ok {
            return Err(self.protocol(format!("QUIT failed, deletions were NOT committed: {st}")));
        }
        let _ = tokio::time::timeout(self.timeouts.command, self.stream.shutdown()).await;
        Ok(())
    }
}

/// Bookkeeping for a write-ahead window of commands: which responses are
/// due, and when to send the next batch (when half the window is free, so
/// commands go out in batches rather than one syscall per response).
struct Window {
    n: usize,
    size: usize,
    sent: usize,
    done: usize,
    stopped: bool,
}

impl Window {
    fn new(n: usize, size: usize) -> Window {
        Window {
            n,
            size: size.max(1),
            sent: 0,
            done: 0,
            stopped: false,
        }
    }

    /// The index of the next response to read, advancing past it.
    fn next_response(&mut self) -> Option<usize> {
        let more = self.done < self.sent || (!self.stopped && self.sent < self.n);
        if !more {
            return None;
        }
        self.done += 1;
        Some(self.done - 1)
    }

    /// Commands to send before reading the current response, if any.
    fn refill(&mut self) -> Option<std::ops::Range<usize>> {
        let in_flight = self.sent - (self.done - 1);
        if self.stopped || self.sent >= self.n || in_flight > self.size / 2 {
            return None;
        }
        let end = (self.done - 1 + self.size).min(self.n);
        let r = self.sent..end;
        self.sent = end;
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_batches_and_drains() {
        for (n, size) in [(0, 32), (1, 1), (5, 1), (100, 32), (33, 32), (10, 4)] {
            let mut w = Window::new(n, size);
            let mut sent = Vec::new();
            let mut read = Vec::new();
            while let Some(i) = w.next_response() {
                if let Some(r) = w.refill() {
                    sent.extend(r);
                }
                assert!(sent.contains(&i), "reading {i} before sending it");
                assert!(sent.len() - i <= size);
                read.push(i);
            }
            assert_eq!(read, (0..n).collect::<Vec<_>>());
            assert_eq!(sent, read);
        }
        // Stopping drains what is in flight, sends nothing more.
        let mut w = Window::new(100, 8);
        let mut read = 0;
        while let Some(_i) = w.next_response() {
            w.refill();
            read += 1;
            if read == 3 {
                w.stopped = true;
            }
        }
        assert_eq!(read, 8);
    }

    #[test]
    fn capability_helpers() {
        let caps: Vec<String> = ["TOP", "SASL plain XOAUTH2", "pipelining"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(has_cap(&caps, "PIPELINING"));
        assert!(!has_cap(&caps, "UIDL"));
        assert_eq!(sasl_mechs(&caps), vec!["PLAIN", "XOAUTH2"]);
    }
}
