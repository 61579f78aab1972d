//! Endpoint URLs (SPEC §1) parsed into typed values, so the rest of the code
//! never re-parses strings or guesses about TLS.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::types::FolderName;

/// Which mail protocol a server endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Imap,
    Pop3,
}

/// How the connection is secured. STARTTLS/STLS is *required* when chosen:
/// a server that does not offer it is refused, never silently used in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (imaps, pop3s).
    Implicit,
    /// STARTTLS (IMAP) or STLS (POP3) before authenticating.
    StartTls,
    /// No TLS at all: only with `--insecure-plaintext` / `tls = "none"`.
    Plaintext,
}

/// A server account: where it is, who we are, and which folder if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    pub protocol: Protocol,
    pub security: Security,
    pub host: String,
    pub port: u16,
    /// Percent-decoded user name (`alice@example.com`).
    pub user: String,
    /// Optional folder from the URL path, decoded.
    pub folder: Option<FolderName>,
}

/// Any place mail can come from or go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Server(ServerUrl),
    Maildir(PathBuf),
}

impl Endpoint {
    /// Parses an endpoint as written on the command line or in the config.
    /// `insecure_plaintext` turns `imap://`/`pop3://` into plain text.
    pub fn parse(s: &str, insecure_plaintext: bool) -> Result<Endpoint> {
        if let Some(p) = s.strip_prefix("maildir:") {
            if p.is_empty() {
                return Err(Error::Usage(format!("{s}: empty Maildir path")));
            }
            return Ok(Endpoint::Maildir(PathBuf::from(p)));
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            if s.contains("://") || s.is_empty() {
                return Err(Error::Usage(format!("{s:?}: not an endpoint URL")));
            }
            return Ok(Endpoint::Maildir(PathBuf::from(s)));
        };
        let (protocol, security, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "imaps" => (Protocol::Imap, Security::Implicit, 993),
            "imap" => (Protocol::Imap, Security::StartTls, 143),
            "pop3s" => (Protocol::Pop3, Security::Implicit, 995),
            "pop3" | "pop" => (Protocol::Pop3, Security::StartTls, 110),
            other => {
                return Err(Error::Usage(format!(
                    "{s}: unknown scheme {other:?} (use imaps://, imap://, pop3s://, pop3:// or maildir:PATH)"
                )));
            }
        };
        let security = if insecure_plaintext && security == Security::StartTls {
            Security::Plaintext
        } else {
            security
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let Some((user, hostport)) = authority.rsplit_once('@') else {
            return Err(Error::Usage(format!(
                "{s}: no user name (write {scheme}://USER@HOST; an @ in the user is %40)"
            )));
        };
        if user.contains(':') {
            // `user:password@host`: refused, and never echoed back.
            return Err(Error::Usage(format!(
                "{}: a password in the URL is not accepted; use --password-command/-file/-env",
                redact_userinfo(s)
            )));
        }
        let user = percent_decode(user).map_err(|m| Error::Usage(format!("{s}: user: {m}")))?;
        if user.is_empty() {
            return Err(Error::Usage(format!("{s}: empty user name")));
        }
        let (host, port) = split_host_port(hostport, default_port)
            .map_err(|m| Error::Usage(format!("{s}: {m}")))?;
        let folder = match path {
            Some(p) if !p.is_empty() => {
                if protocol == Protocol::Pop3 {
                    return Err(Error::Usage(format!("{s}: POP3 has no folders")));
                }
                let decoded =
                    percent_decode(p).map_err(|m| Error::Usage(format!("{s}: folder: {m}")))?;
                Some(FolderName::new(decoded.trim_end_matches('/')))
            }
            _ => None,
        };
        Ok(Endpoint::Server(ServerUrl {
            protocol,
            security,
            host,
            port,
            user,
            folder,
        }))
    }
}

impl ServerUrl {
    /// The canonical identity of the account for the state file: scheme,
    /// user, host and port, never a secret. Two spellings of the same
    /// account (default port or not) give the same key.
    pub fn account_key(&self) -> String {
        let scheme = match (self.protocol, self.security) {
            (Protocol::Imap, Security::Implicit) => "imaps",
            (Protocol::Imap, _) => "imap",
            (Protocol::Pop3, Security::Implicit) => "pop3s",
            (Protocol::Pop3, _) => "pop3",
        };
        format!(
            "{scheme}://{}@{}:{}",
            percent_encode_user(&self.user),
            self.host_for_url(),
            self.port
        )
    }

    /// `host:port` for messages.
    pub fn server(&self) -> String {
        format!("{}:{}", self.host_for_url(), self.port)
    }

    fn host_for_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

fn split_host_port(s: &str, default_port: u16) -> std::result::Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((h, after)) = rest.split_once(']') else {
            return Err("unclosed [ in IPv6 host".into());
        };
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected {after:?} after host")),
        };
        (h.to_string(), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (s.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or(format!("bad port {p:?}"))?,
        None => default_port,
    };
    Ok((host, port))
}

fn percent_decode(s: &str) -> std::result::Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("truncated %-escape")?;
            let v = u8::from_str_radix(hex, 16).map_err(|_| format!("bad %-escape %{hex}"))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 after %-decoding".into())
}

fn percent_encode_user(s: &str) -> String {
    let mut out = String::new();
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-._~+".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

fn redact_userinfo(s: &str) -> String {
    match (s.find("://"), s.rfind('@')) {
        (Some(a), Some(b)) if b > a => format!("{}***{}", &s[..a + 3], &s[b..]),
        _ => s.to_string(),
    }
}

/// Certificate trust settings (SPEC §1): system roots plus `--ca-file`,
/// or a pinned SHA-256 fingerprint. There is no "accept anything".
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Extra root certificates (PEM, may hold several).
    pub ca_file: Option<PathBuf>,
    /// Pinned SHA-256 of the server's leaf certificate (DER).
    pub fingerprint: Option<[u8; 32]>,
    /// Refuse anything below TLS 1.3. `check` uses it to tell which version
    /// a server speaks, since the TLS library does not report it.
    pub min_tls13: bool,
}

impl TlsOptions {
    /// Parses `sha256:HEX` (colons allowed between bytes, any case).
    pub fn parse_fingerprint(s: &str) -> Result<[u8; 32]> {
        let bad = || {
            Error::Usage(format!(
                "--tls-fingerprint {s:?}: expected sha256: followed by 64 hex digits"
            ))
        };
        let hex = s
            .strip_prefix("sha256:")
            .or_else(|| s.strip_prefix("SHA256:"))
            .ok_or_else(bad)?;
        let hex: String = hex.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(out)
    }
}

/// Time limits for every network call, so a dead server can never hang a
/// cron job.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connect plus TLS handshake plus greeting.
    pub connect: Duration,
    /// Any single command's response (a large FETCH is measured per
    /// response chunk, not for the whole transfer).
    pub command: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            command: Duration::from_secs(120),
        }
    }
}

/// A secret whose Debug and Display never reveal it, so it cannot leak into
/// logs, errors or `--json` by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The only way to read it: at the moment it goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How to authenticate once connected.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Password: IMAP AUTHENTICATE PLAIN (SASL-IR) or LOGIN; POP3 AUTH PLAIN,
    /// APOP or USER/PASS.
    Password(Secret),
    /// OAuth2 bearer tokens: XOAUTH2 or OAUTHBEARER, whichever is offered.
    /// One [`Bearer`](crate::oauth::Bearer) is shared by all connections of
    /// the account, so a refresh happens once for all of them.
    OAuth2(crate::oauth::Bearer),
}

/// The secret one login attempt sends.
#[derive(Debug, Clone)]
pub enum Login {
    Password(Secret),
    /// An OAuth2 access token, with the handle to report back to.
    Bearer(crate::oauth::LoginToken),
}

impl Credentials {
    /// What the next login sends: the password, or the account's current
    /// access token (a fresh one when the last was spent).
    pub async fn login(&self) -> Result<Login> {
        match self {
            Credentials::Password(p) => Ok(Login::Password(p.clone())),
            Credentials::OAuth2(b) => Ok(Login::Bearer(crate::oauth::LoginToken::next(b).await?)),
        }
    }
}

impl Login {
    /// A connection attempt with this login ended in `r`: the token is
    /// marked accepted or spent, and a refused token becomes
    /// [`crate::Error::TokenRefused`] (the governor's cue to log in once
    /// more) or, when it was already the fresh one, [`crate::Error::OAuth`].
    /// No retry here.
    pub fn outcome<T>(&self, r: Result<T>) -> Result<T> {
        match (self, r) {
            (Login::Bearer(t), Ok(v)) => {
                t.accepted();
                Ok(v)
            }
            (Login::Bearer(t), Err(e)) => Err(t.refused(e)),
            (Login::Password(_), r) => r,
        }
    }

    /// The token a session keeps, to report a BYE that says it expired.
    pub fn token(&self) -> Option<crate::oauth::LoginToken> {
        match self {
            Login::Bearer(t) => Some(t.clone()),
            Login::Password(_) => None,
        }
    }
}

/// Everything needed to open an authenticated session to one server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub url: ServerUrl,
    pub credentials: Credentials,
    pub tls: TlsOptions,
    pub timeouts: Timeouts,
    /// What this server must not be trusted with (a provider profile's
    /// switches; default for any other server).
    pub quirks: crate::imap::Quirks,
    /// A pause every session of this account honours before sending
    /// (set by the throttle governor; clones share it).
    pub pace: crate::imap::Pace,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(s: &str) -> ServerUrl {
        match Endpoint::parse(s, false).unwrap() {
            Endpoint::Server(u) => u,
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn parses_each_scheme_with_default_ports() {
        let u = server("imaps://alice%40example.com@imap.example.com");
        assert_eq!(
            (u.protocol, u.security, u.port),
            (Protocol::Imap, Security::Implicit, 993)
        );
        assert_eq!(u.user, "alice@example.com");
        assert_eq!(server("imap://a@h").port, 143);
        assert_eq!(server("imap://a@h").security, Security::StartTls);
        assert_eq!(server("pop3s://a@h").port, 995);
        assert_eq!(server("pop3://a@h:1110").port, 1110);
    }

    #[test]
    fn folder_and_ipv6() {
        let u = server("imaps://a@[::1]:9993/Archive/2024");
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, 9993);
        assert_eq!(u.folder.unwrap().as_str(), "Archive/2024");
        assert_eq!(
            server("imaps://a@h/Entw%C3%BCrfe").folder.unwrap().as_str(),
            "Entwürfe"
        );
    }

    #[test]
    fn maildir_forms() {
        assert_eq!(
            Endpoint::parse("maildir:~/x", false).unwrap(),
            Endpoint::Maildir("~/x".into())
        );
        assert_eq!(
            Endpoint::parse("/var/mail/x", false).unwrap(),
            Endpoint::Maildir("/var/mail/x".into())
        );
    }

    #[test]
    fn plaintext_only_when_asked() {
        assert_eq!(server("imap://a@h").security, Security::StartTls);
        match Endpoint::parse("imap://a@h", true).unwrap() {
            Endpoint::Server(u) => assert_eq!(u.security, Security::Plaintext),
            _ => unreachable!(),
        }
        // implicit TLS stays TLS
        match Endpoint::parse("imaps://a@h", true).unwrap() {
            Endpoint::Server(u) => assert_eq!(u.security, Security::Implicit),
            _ => unreachable!(),
        }
    }

    #[test]
    fn rejects_bad_urls_without_echoing_passwords() {
        for bad in [
            "ftp://a@h",
            "imaps://h",
            "imaps://a@h:0",
            "imaps://a@h:x",
            "pop3://a@h/INBOX",
            "imaps://@h",
        ] {
            assert!(Endpoint::parse(bad, false).is_err(), "{bad}");
        }
        let e = Endpoint::parse("imaps://alice:hunter2@h", false)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn account_key_is_canonical() {
        assert_eq!(
            server("imaps://alice%40x.org@h").account_key(),
            "imaps://alice%40x.org@h:993"
        );
        assert_eq!(
            server("imaps://alice%40x.org@h:993").account_key(),
            server("imaps://alice%40x.org@h").account_key()
        );
    }

    #[test]
    fn fingerprint_parsing() {
        let hex = "AB".repeat(32);
        assert_eq!(
            TlsOptions::parse_fingerprint(&format!("sha256:{hex}")).unwrap(),
            [0xAB; 32]
        );
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(
            TlsOptions::parse_fingerprint(&format!("sha256:{colons}")).unwrap(),
            [0xAB; 32]
        );
        assert!(TlsOptions::parse_fingerprint("md5:00").is_err());
    }

    #[test]
    fn secret_never_prints() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
