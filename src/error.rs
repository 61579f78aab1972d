//! One error type for the whole tool, so every failure maps to a stable exit
//! code (SPEC §4) and a message that says what, where, and what to do.

use std::fmt;

/// The exit codes scripts rely on (SPEC §4). Kept in one place so a new
/// error kind cannot silently invent a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Ok = 0,
    Partial = 1,
    Usage = 2,
    Auth = 3,
    Connect = 4,
    /// A daily transfer budget is used up; a rerun after the printed time
    /// continues (`Error::Budget`).
    Budget = 5,
    Locked = 75,
    Interrupted = 130,
}

/// Every way mailferry can fail. Each variant carries enough context
/// (server, folder, UID, file) for a one-line message a user can act on.
#[derive(Debug)]
pub enum Error {
    /// Bad flags, bad URL, bad config value: the user must change the command.
    Usage(String),
    /// Config file problem, with file, line and key where known.
    Config {
        file: String,
        line: Option<usize>,
        msg: String,
    },
    /// The server rejected our credentials.
    Auth { server: String, msg: String },
    /// A server refused an OAuth2 access token that can be replaced (it
    /// died early, or expired): the token is spent, so the next login
    /// brings a fresh one. The governor logs in once more; exit 3 if this
    /// is where a run ends.
    TokenRefused { server: String, msg: String },
    /// No usable OAuth2 token: not signed in yet, the refresh token was
    /// refused, or a server refused even a fresh token. Exit 3 like
    /// [`Error::Auth`]; the message says what to do (mostly `mailferry login`).
    OAuth { account: String, msg: String },
    /// TCP connect, DNS, TLS handshake or certificate failure.
    Connect { server: String, msg: String },
    /// The server said something we did not expect, or NO/BAD to a command.
    Protocol { server: String, msg: String },
    /// A network call took longer than its timeout.
    Timeout { server: String, what: String },
    /// Local file system trouble (Maildir, state file, config file).
    Io { path: String, err: std::io::Error },
    /// The state database failed.
    State(String),
    /// Another run holds the state lock.
    Locked { path: String },
    /// A daily transfer budget (`daily_download`/`daily_upload`, or the
    /// provider's) would be exceeded by the next message: the run stopped
    /// cleanly and may continue at `resume_at`.
    Budget {
        /// The budget's key, e.g. `gmail:alice@gmail.com`.
        account: String,
        /// `download` or `upload`.
        direction: &'static str,
        /// Bytes allowed in any 24 hours.
        limit: u64,
        /// Unix seconds from when the next message fits again.
        resume_at: i64,
    },
    /// SIGINT/SIGTERM: state is saved, a rerun continues.
    Interrupted,
    /// A command that is declared but not built yet.
    NotImplemented(&'static str),
    /// An error already shown to the user (per account, per folder); it
    /// only decides the exit code now.
    Reported(Box<Error>),
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The exit code for this error (SPEC §4).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) | Error::Config { .. } | Error::NotImplemented(_) => ExitCode::Usage,
            Error::Auth { .. } | Error::TokenRefused { .. } | Error::OAuth { .. } => ExitCode::Auth,
            Error::Connect { .. } | Error::Timeout { .. } => ExitCode::Connect,
            Error::Protocol { .. } => ExitCode::Connect,
            Error::Io { .. } | Error::State(_) => ExitCode::Partial,
            Error::Locked { .. } => ExitCode::Locked,
            Error::Budget { .. } => ExitCode::Budget,
            Error::Interrupted => ExitCode::Interrupted,
            Error::Reported(e) => e.exit_code(),
        }
    }

    /// Helper for I/O errors on a path.
    pub fn io(path: impl AsRef<std::path::Path>, err: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().display().to_string(),
            err,
        }
    }

    /// Helper for protocol errors.
    pub fn protocol(server: impl Into<String>, msg: impl Into<String>) -> Error {
        Error::Protocol {
            server: server.into(),
            msg: msg.into(),
        }
    }

    /// Helper for connection errors.
    pub fn connect(server: impl Into<String>, msg: impl Into<String>) -> Error {
        Error::Connect {
            server: server.into(),
            msg: msg.into(),
        }
    }

    /// True when retrying the same operation later may succeed (dropped
    /// connection, timeout), as opposed to a refusal that will repeat.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Connect { .. } | Error::Timeout { .. })
    }

    /// True when the server refused for now, not for good: `NO
    /// [UNAVAILABLE]` (RFC 5530), `NO [THROTTLED]` (rate limits), or a
    /// Microsoft "Suggested Backoff Time". The same command may succeed
    /// after a pause ([`Error::pacing`] says how long, if the server did).
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Protocol { .. }) && self.pacing().is_some_and(|p| !p.conn_limit)
    }

    /// What the server's words say about pacing, for the throttle governor
    /// (`exec/governor.rs`): a refusal to work this fast, with the wait it
    /// asked for, or to open one more connection. Read from the server
    /// text every protocol and connection error carries.
    pub fn pacing(&self) -> Option<Pacing> {
        match self {
            Error::Protocol { msg, .. } | Error::Connect { msg, .. } => pacing_of(msg),
            Error::Reported(e) => e.pacing(),
            _ => None,
        }
    }

    /// The resume time of a budget stop, RFC 3339, for `--json`.
    pub fn resume_at(&self) -> Option<String> {
        match self {
            Error::Budget { resume_at, .. } => Some(crate::date::rfc3339(*resume_at)),
            Error::Reported(e) => e.resume_at(),
            _ => None,
        }
    }
}

/// A server's request to slow down, as read from its reply text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// The wait it asked for (`Suggested Backoff Time: N milliseconds`).
    pub backoff: Option<std::time::Duration>,
    /// It refused another connection ("Too many simultaneous
    /// connections", `[LIMIT]`): use fewer, not a later retry of the same.
    pub conn_limit: bool,
}

/// Recognises pacing refusals in server text: `[THROTTLED]`,
/// `[UNAVAILABLE]`, `[LIMIT]` (RFC 5530), Microsoft 365's "Request is
/// throttled. Suggested Backoff Time: N milliseconds" (in NO, BAD or BYE),
/// Gmail's "Too many simultaneous connections", Dovecot's "Maximum number
/// of connections … exceeded" and a BYE that speaks of connections.
pub fn pacing_of(text: &str) -> Option<Pacing> {
    let lower = text.to_ascii_lowercase();
    let backoff = lower.find("suggested backoff time:").and_then(|i| {
        let rest = lower[i + "suggested backoff time:".len()..].trim_start();
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let n: u64 = digits.parse().ok()?;
        let unit = rest[digits.len()..].trim_start();
        Some(if unit.starts_with("s") && !unit.starts_with("ms") {
            std::time::Duration::from_secs(n)
        } else {
            std::time::Duration::from_millis(n)
        })
    });
    let conn_limit = lower.contains("too many simultaneous connections")
        || lower.contains("too many connections")
        || lower.contains("maximum number of connections")
        || lower.contains("[limit]")
        || (lower.contains("bye") && lower.contains("connections"));
    let busy = lower.contains("[throttled]")
        || lower.contains("[unavailable]")
        || lower.contains("request is throttled");
    (backoff.is_some() || conn_limit || busy).then_some(Pacing {
        backoff,
        conn_limit,
    })
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "{m}"),
            Error::Config {
                file,
                line: Some(l),
                msg,
            } => write!(f, "{file}:{l}: {msg}"),
            Error::Config {
                file,
                line: None,
                msg,
            } => write!(f, "{file}: {msg}"),
            Error::Auth { server, msg } => write!(
                f,
                "{server}: authentication failed: {msg} (check the user name and the password source)"
            ),
            Error::TokenRefused { server, msg } => write!(
                f,
                "{server}: the OAuth2 access token was refused: {msg} (the next login gets a fresh one)"
            ),
            Error::OAuth { account, msg } => write!(f, "{account}: OAuth2: {msg}"),
            Error::Connect { server, msg } => write!(f, "{server}: {msg}"),
            Error::Protocol { server, msg } => write!(f, "{server}: {msg}"),
            Error::Timeout { server, what } => {
                write!(
                    f,
                    "{server}: timed out waiting for {what} (server slow or unreachable; rerun continues where this stopped)"
                )
            }
            Error::Io { path, err } => write!(f, "{path}: {err}"),
            Error::State(m) => write!(f, "state: {m}"),
            Error::Locked { path } => write!(
                f,
                "{path}: another mailferry run holds this state's lock; try again when it has finished"
            ),
            Error::Budget {
                account,
                direction,
                limit,
                resume_at,
            } => write!(
                f,
                "{account}: the {direction} budget of {} a day is used up (rolling 24 hours); stopped cleanly, everything copied so far is recorded; run again after {} to continue",
                crate::report::human_bytes(*limit),
                crate::date::rfc3339(*resume_at)
            ),
            Error::Interrupted => write!(f, "interrupted; state saved, a rerun continues"),
            Error::NotImplemented(what) => write!(f, "{what}: not implemented yet"),
            Error::Reported(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::State(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pacing_reads_the_servers_words() {
        let o365 = "APPEND to INBOX: message #3 (12 bytes): server said NO: Request is throttled. Suggested Backoff Time: 299609 milliseconds";
        assert_eq!(
            pacing_of(o365),
            Some(Pacing {
                backoff: Some(Duration::from_millis(299_609)),
                conn_limit: false
            })
        );
        let bye = "connection lost during UID FETCH (server said BYE: Request is throttled. Suggested Backoff Time: 1500 milliseconds)";
        assert_eq!(
            pacing_of(bye).unwrap().backoff,
            Some(Duration::from_millis(1500))
        );
        let gmail = "AUTHENTICATE PLAIN: server said NO: [ALERT] Too many simultaneous connections. (Failure)";
        assert!(pacing_of(gmail).unwrap().conn_limit);
        assert!(
            pacing_of("NO [LIMIT] too many sessions")
                .unwrap()
                .conn_limit
        );
        let dovecot = "connection lost during LOGIN (server said BYE: Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10))";
        assert!(pacing_of(dovecot).unwrap().conn_limit);
        assert_eq!(
            pacing_of("connection lost (server said BYE: Connection closed. 14)"),
            None
        );
        let t = pacing_of("SELECT: server said NO: [THROTTLED] slow down").unwrap();
        assert_eq!((t.backoff, t.conn_limit), (None, false));
        assert_eq!(pacing_of("server said NO: [OVERQUOTA] full"), None);
        assert_eq!(pacing_of("AUTHENTICATE failed."), None);
    }

    #[test]
    fn busy_is_a_protocol_refusal_not_a_connection_limit() {
        let p = |m: &str| Error::protocol("s", m);
        assert!(p("APPEND: server said NO: Request is throttled. Suggested Backoff Time: 5 milliseconds").is_busy());
        assert!(p("x: server said NO: [UNAVAILABLE] later").is_busy());
        assert!(!p("LOGIN: server said NO: Too many simultaneous connections").is_busy());
        assert!(!Error::connect("s", "reset [THROTTLED]").is_busy());
    }

    #[test]
    fn a_budget_stop_has_its_own_code_and_says_when_to_resume() {
        let e = Error::Budget {
            account: "gmail:alice@gmail.com".into(),
            direction: "download",
            limit: 2_500_000_000,
            resume_at: 86_400,
        };
        assert_eq!(e.exit_code() as i32, 5);
        assert_eq!(e.resume_at().as_deref(), Some("1970-01-02T00:00:00Z"));
        assert!(e.to_string().contains("1970-01-02T00:00:00Z"), "{e}");
        assert_eq!(
            Error::Reported(Box::new(e)).resume_at().as_deref(),
            Some("1970-01-02T00:00:00Z")
        );
    }
}
