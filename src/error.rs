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
            Error::Auth { .. } | Error::OAuth { .. } => ExitCode::Auth,
            Error::Connect { .. } | Error::Timeout { .. } => ExitCode::Connect,
            Error::Protocol { .. } => ExitCode::Connect,
            Error::Io { .. } | Error::State(_) => ExitCode::Partial,
            Error::Locked { .. } => ExitCode::Locked,
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
    /// [UNAVAILABLE]` (RFC 5530) or `NO [THROTTLED]` (rate limits). The
    /// same command may succeed after a pause.
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Protocol { msg, .. }
            if msg.contains("NO: [UNAVAILABLE]") || msg.contains("NO: [THROTTLED]"))
    }
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
