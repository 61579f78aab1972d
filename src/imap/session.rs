//! The authenticated session and its checked command runner: every command
//! is read up to *its* tagged completion, NO/BAD become errors with the
//! server's text and context, EOF before completion is "connection lost",
//! and unsolicited responses are recorded, never dropped (crates.md §2
//! bugs 1, 2, 4).

use std::time::Duration;

use super::caps::Capabilities;
use super::codec::{UidSet, quotable, quote};
use super::io::Io;
use super::parse::{self, Resp, RespText, Status, Untagged};
use crate::error::{Error, Result};
use crate::net;
use crate::types::{Flags, ModSeq, Uid};

/// One piece of a command line: text, or a string that must travel as a
/// literal (8-bit or CR/LF content).
#[derive(Debug, Clone)]
pub(crate) enum Part {
    Text(String),
    Lit(Vec<u8>),
}

/// An astring argument: quoted when possible, else a literal.
pub(crate) fn astring(s: &str) -> Part {
    if quotable(s.as_bytes()) {
        Part::Text(quote(s))
    } else {
        Part::Lit(s.as_bytes().to_vec())
    }
}

/// A flag change another client (or our own STORE without .SILENT) made,
/// reported by the server on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagChange {
    pub seq: u32,
    /// Present when the server includes it (always with QRESYNC enabled).
    pub uid: Option<Uid>,
    pub flags: Flags,
    pub modseq: Option<ModSeq>,
}

/// Everything the server told us unprompted since the last
/// [`Session::take_changes`]: kept in full (async-imap keeps 100 and drops
/// the rest, crates.md §2 bug 4), so a caller can react to expunges and
/// flag changes that happen during a long run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerChanges {
    /// Latest EXISTS count.
    pub exists: Option<u32>,
    /// Number of EXPUNGE responses (sequence numbers are not stable).
    pub expunged: u32,
    /// UIDs reported by unsolicited VANISHED (QRESYNC).
    pub vanished: UidSet,
    pub flags: Vec<FlagChange>,
    /// `[ALERT]` texts, which RFC 9051 says must be shown to the user.
    pub alerts: Vec<String>,
}

/// The currently selected mailbox, as the session tracks it.
#[derive(Debug, Clone)]
pub(crate) struct SelectedState {
    pub wire: String,
    pub read_only: bool,
    pub permanent_flags: Vec<String>,
    pub exists: u32,
}

/// Session state apart from the transport, so the runner can borrow both.
pub(crate) struct State {
    pub caps: Capabilities,
    pub enabled: Vec<String>,
    pub selected: Option<SelectedState>,
    pub changes: ServerChanges,
    /// Hierarchy delimiter once learned from LIST/NAMESPACE.
    pub delimiter: Option<Option<char>>,
    /// The provider's quirks, applied by every command that they concern.
    pub quirks: super::quirks::Quirks,
}

impl State {
    pub fn new(caps: Capabilities) -> State {
        State {
            caps,
            enabled: Vec::new(),
            selected: None,
            changes: ServerChanges::default(),
            delimiter: None,
            quirks: Default::default(),
        }
    }

    pub fn is_enabled(&self, ext: &str) -> bool {
        self.enabled.iter().any(|e| e.eq_ignore_ascii_case(ext))
    }

    /// Bookkeeping every untagged response goes through; `consumed` says
    /// whether the running command already used it as its own data.
    fn note(&mut self, u: &Untagged<'_>, consumed: bool) -> Option<String> {
        match u {
            Untagged::Exists(n) => {
                if let Some(s) = &mut self.selected {
                    s.exists = *n;
                }
                self.changes.exists = Some(*n);
            }
            Untagged::Expunge(_) => {
                if let Some(s) = &mut self.selected {
                    s.exists = s.exists.saturating_sub(1);
                }
                self.changes.expunged += 1;
            }
            Untagged::Vanished {
                earlier: false,
                uids,
            } => {
                let set = UidSet::from_ranges(uids.iter().copied());
                if let Some(s) = &mut self.selected {
                    s.exists = s.exists.saturating_sub(set.len() as u32);
                }
                let mut all: Vec<(u32, u32)> = self.changes.vanished.ranges().to_vec();
                all.extend(set.ranges());
                self.changes.vanished = UidSet::from_ranges(all);
            }
            Untagged::Status(Status::Bye, t) => return Some(t.display()),
            Untagged::Status(_, t) if t.code_name().as_deref() == Some("ALERT") => {
                self.changes.alerts.push(t.text.clone())
            }
            Untagged::Fetch(seq, c) if !consumed => {
                let mut ch = FlagChange {
                    seq: *seq,
                    uid: None,
                    flags: Flags::default(),
                    modseq: None,
                };
                let mut has_flags = false;
                for (k, v) in parse::fetch_items(c.clone()) {
                    match k.as_str() {
                        "UID" => ch.uid = v.number().map(|n| Uid(n as u32)),
                        "FLAGS" => {
                            has_flags = true;
                            let f = parse::atoms_of(Some(&v));
                            ch.flags = Flags::from_imap(f.iter().map(|s| s.as_str()));
                        }
                        "MODSEQ" => {
                            ch.modseq = v
                                .list()
                                .and_then(|l| l.first())
                                .and_then(|x| x.number())
                                .map(ModSeq)
                        }
                        _ => {}
                    }
                }
                if has_flags {
                    self.changes.flags.push(ch);
                }
            }
            _ => {}
        }
        None
    }
}

/// An authenticated IMAP connection. Not `Clone`: one command stream.
pub struct Session {
    pub(crate) io: Io,
    pub(crate) st: State,
    /// The OAuth2 token it logged in with: a BYE saying it expired spends
    /// it, so the reconnection logs in with a fresh one.
    pub(crate) token: Option<crate::oauth::LoginToken>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("server", &self.io.server)
            .field("selected", &self.st.selected.as_ref().map(|s| &s.wire))
            .finish()
    }
}

impl Session {
    pub(crate) fn new(io: Io, caps: Capabilities) -> Session {
        Session {
            io,
            st: State::new(caps),
            token: None,
        }
    }

    /// The capabilities as of the last refresh (after auth/STARTTLS).
    pub fn capabilities(&self) -> &Capabilities {
        &self.st.caps
    }

    /// The quirk switches this session applies.
    pub fn quirks(&self) -> super::quirks::Quirks {
        self.st.quirks
    }

    /// Extensions the server confirmed with ENABLED.
    pub fn enabled(&self) -> &[String] {
        &self.st.enabled
    }

    /// `host:port`, for messages.
    pub fn server(&self) -> &str {
        &self.io.server
    }

    /// Wire name of the selected mailbox, if any.
    pub fn selected(&self) -> Option<&str> {
        self.st.selected.as_ref().map(|s| s.wire.as_str())
    }

    /// Bytes received and sent so far, for throughput reporting.
    pub fn traffic(&self) -> (u64, u64) {
        (self.io.bytes_in, self.io.bytes_out)
    }

    /// True once the connection failed; every later call fails fast and a
    /// caller should reconnect.
    pub fn is_broken(&self) -> bool {
        self.io.broken
    }

    /// Changes the server reported unprompted since the last call.
    pub fn take_changes(&mut self) -> ServerChanges {
        std::mem::take(&mut self.st.changes)
    }

    /// "UID FETCH … in folder X", the context every error carries.
    pub(crate) fn ctx(&self, what: &str) -> String {
        match &self.st.selected {
            Some(s) => format!("{what} in folder {}", s.wire),
            None => what.to_string(),
        }
    }

    /// Turns a non-OK completion into `Error::Protocol` with context.
    pub(crate) fn check(&self, what: &str, status: Status, text: RespText) -> Result<RespText> {
        match status {
            Status::Ok => Ok(text),
            s => Err(Error::protocol(
                &self.io.server,
                format!(
                    "{}: server said {}: {}",
                    self.ctx(what),
                    if s == Status::No { "NO" } else { "BAD" },
                    text.display()
                ),
            )),
        }
    }

    /// Queues one command (tag + parts + CRLF) using only non-synchronizing
    /// literals; the caller must have checked that is allowed.
    pub(crate) fn queue_cmd(&mut self, parts: &[Part]) -> String {
        let tag = self.io.tag();
        self.io.queue(tag.as_bytes());
        self.io.queue(b" ");
        for p in parts {
            match p {
                Part::Text(t) => self.io.queue(t.as_bytes()),
                Part::Lit(b) => {
                    self.io.queue(format!("{{{}+}}\r\n", b.len()).as_bytes());
                    self.io.queue(b);
                }
            }
        }
        self.io.queue(b"\r\n");
        tag
    }

    /// Whether a literal of `len` bytes may be sent without waiting for `+`.
    pub(crate) fn nonsync_ok(&self, len: usize) -> bool {
        self.st.caps.literal_plus || (self.st.caps.literal_minus && len <= 4096)
    }

    /// Reads one response and routes it: untagged ones go to `cb` (returns
    /// whether it used it) and to the bookkeeping; tagged and continuation
    /// responses are returned.
    pub(crate) async fn read_step<F>(&mut self, cb: &mut F) -> Result<Step>
    where
        F: FnMut(&Untagged<'_>) -> Result<bool>,
    {
        let r = self.io.next().await?;
        let raw = self.io.slice(r);
        match parse::classify(raw) {
            Resp::Untagged(u) => {
                let u = parse::untagged(u);
                let consumed = cb(&u);
                // The callback error is reported after the tagged
                // completion so the stream stays in sync.
                let (consumed, err) = match consumed {
                    Ok(c) => (c, None),
                    Err(e) => (true, Some(e)),
                };
                if let Some(bye) = self.st.note(&u, consumed) {
                    if let Some(t) = &self.token {
                        t.session_ended(&bye);
                    }
                    self.io.bye = Some(bye);
                }
                Ok(Step::Untagged(err))
            }
            Resp::Continue(t) => Ok(Step::Continue(parse::parse_resp_text(t))),
            Resp::Tagged { tag, status, text } => Ok(Step::Tagged {
                tag: String::from_utf8_lossy(tag).into_owned(),
                status,
                text,
            }),
            Resp::Garbage(g) => {
                let g = String::from_utf8_lossy(&g[..g.len().min(200)]).into_owned();
                self.io.broken = true;
                Err(Error::protocol(
                    &self.io.server,
                    format!("{}: unparseable server response {g:?}", self.io.ctx),
                ))
            }
        }
    }

    /// Runs one command to its tagged completion and returns the status
    /// without judging it (for callers that treat some NOs as normal).
    pub(crate) async fn run_status<F>(
        &mut self,
        parts: &[Part],
        what: &str,
        mut cb: F,
    ) -> Result<(Status, RespText)>
    where
        F: FnMut(&Untagged<'_>) -> Result<bool>,
    {
        if self.io.broken {
            return Err(Error::connect(
                &self.io.server,
                format!("connection already lost; cannot run {}", self.ctx(what)),
            ));
        }
        self.io.ctx = self.ctx(what);
        let tag = self.io.tag();
        self.io.queue(tag.as_bytes());
        self.io.queue(b" ");
        let mut cb_err: Option<Error> = None;
        for p in parts {
            match p {
                Part::Text(t) => self.io.queue(t.as_bytes()),
                Part::Lit(b) if self.nonsync_ok(b.len()) => {
                    self.io.queue(format!("{{{}+}}\r\n", b.len()).as_bytes());
                    self.io.queue(b);
                }
                Part::Lit(b) => {
                    self.io.queue(format!("{{{}}}\r\n", b.len()).as_bytes());
                    self.io.flush().await?;
                    loop {
                        match self.read_step(&mut cb).await? {
                            Step::Continue(_) => break,
                            Step::Untagged(e) => {
                                cb_err = cb_err.or(e);
                            }
                            Step::Tagged {
                                tag: t,
                                status,
                                text,
                            } if t == tag => {
                                return Ok((status, text));
                            }
                            Step::Tagged { tag: t, .. } => return Err(self.stray_tag(&t)),
                        }
                    }
                    self.io.queue(b);
                }
            }
        }
        self.io.queue(b"\r\n");
        self.io.flush().await?;
        loop {
            match self.read_step(&mut cb).await? {
                Step::Untagged(e) => cb_err = cb_err.or(e),
                Step::Continue(_) => {
                    self.io.broken = true;
                    return Err(Error::protocol(
                        &self.io.server,
                        format!("{}: unexpected continuation request", self.io.ctx),
                    ));
                }
                Step::Tagged {
                    tag: t,
                    status,
                    text,
                } if t == tag => {
                    if let Some(e) = cb_err {
                        return Err(e);
                    }
                    return Ok((status, text));
                }
                Step::Tagged { tag: t, .. } => return Err(self.stray_tag(&t)),
            }
        }
    }

    pub(crate) fn stray_tag(&mut self, t: &str) -> Error {
        self.io.broken = true;
        Error::protocol(
            &self.io.server,
            format!("{}: completion for unknown tag {t:?}", self.io.ctx),
        )
    }

    /// Runs one command; NO/BAD → `Error::Protocol` with the server text.
    pub(crate) async fn run<F>(&mut self, parts: &[Part], what: &str, cb: F) -> Result<RespText>
    where
        F: FnMut(&Untagged<'_>) -> Result<bool>,
    {
        let (status, text) = self.run_status(parts, what, cb).await?;
        self.check(what, status, text)
    }

    /// Runs a plain-text command with no data of interest.
    pub(crate) async fn simple(&mut self, cmd: &str) -> Result<RespText> {
        self.run(&[Part::Text(cmd.to_string())], cmd, |_| Ok(false))
            .await
    }

    /// Re-reads CAPABILITY, e.g. after the server changed state.
    pub async fn refresh_capabilities(&mut self) -> Result<&Capabilities> {
        let mut atoms: Option<Vec<String>> = None;
        self.run(&[Part::Text("CAPABILITY".into())], "CAPABILITY", |u| {
            if let Untagged::Capability(a) = u {
                atoms = Some(a.clone());
                return Ok(true);
            }
            Ok(false)
        })
        .await?;
        if let Some(a) = atoms {
            self.st.caps = Capabilities::from_atoms(a);
        }
        Ok(&self.st.caps)
    }

    /// `ENABLE ext…` (RFC 5161), only for extensions the server offers;
    /// returns what it confirmed. CONDSTORE/QRESYNC change how the server
    /// reports expunges (VANISHED), which this session handles.
    pub async fn enable(&mut self, exts: &[&str]) -> Result<Vec<String>> {
        let want: Vec<&str> = exts
            .iter()
            .copied()
            .filter(|e| self.st.caps.has(e))
            .collect();
        if want.is_empty() || !self.st.caps.enable {
            return Ok(Vec::new());
        }
        let cmd = format!("ENABLE {}", want.join(" "));
        let mut got = Vec::new();
        self.run(&[Part::Text(cmd.clone())], &cmd, |u| {
            if let Untagged::Enabled(e) = u {
                got.extend(e.iter().map(|s| s.to_ascii_uppercase()));
                return Ok(true);
            }
            Ok(false)
        })
        .await?;
        for g in &got {
            if !self.st.is_enabled(g) {
                self.st.enabled.push(g.clone());
            }
        }
        Ok(got)
    }

    /// NOOP: keeps the connection alive and collects pending changes.
    pub async fn noop(&mut self) -> Result<()> {
        self.simple("NOOP").await.map(|_| ())
    }

    /// LOGOUT, bounded by `limit`; errors are ignored because the server
    /// may close first, and nothing depends on it.
    pub async fn logout(mut self, limit: Duration) {
        let server = self.io.server.clone();
        let _ = net::timed(limit, &server, "LOGOUT", async {
            let _ = self.simple("LOGOUT").await;
            self.io.shutdown().await;
            Ok(())
        })
        .await;
    }
}

/// One routed response from [`Session::read_step`].
pub(crate) enum Step {
    /// Handled; carries the callback's error if it failed.
    Untagged(Option<Error>),
    Continue(RespText),
    Tagged {
        tag: String,
        status: Status,
        text: RespText,
    },
}
