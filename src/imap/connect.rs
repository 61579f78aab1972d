//! Connect, secure and authenticate: implicit TLS, STARTTLS (required when
//! chosen, never a silent fallback to clear text) or explicit plain text;
//! then SASL PLAIN / LOGIN / XOAUTH2 / OAUTHBEARER.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::caps::Capabilities;
use super::io::Io;
use super::parse::{self, Resp, Status, Untagged};
use super::session::{Part, Session, Step, astring};
use crate::endpoint::{Login, Security, ServerConfig};
use crate::error::{Error, Result};
use crate::net::{self, MailStream, PeerCert};

/// What `mailferry check` shows about a connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The server's greeting text.
    pub greeting: String,
    /// Capabilities after authentication (the ones that count).
    pub capabilities: Capabilities,
    /// The verified peer certificate, when TLS is used.
    pub cert: Option<PeerCert>,
    pub tls: bool,
}

/// Opens an authenticated session as `cfg` says, every step under its
/// timeout. Also ENABLEs CONDSTORE and QRESYNC when offered, so metadata
/// sync can use CHANGEDSINCE/VANISHED. One attempt: an OAuth2 token the
/// server refuses is spent and reported as [`Error::TokenRefused`]; the
/// caller (the governor) decides whether to log in again
/// ([`crate::endpoint::Login::outcome`]).
pub async fn connect(cfg: &ServerConfig) -> Result<(Session, ConnInfo)> {
    let login = cfg.credentials.login().await?;
    let (mut s, info) = login.outcome(connect_as(cfg, &login).await)?;
    s.token = login.token();
    Ok((s, info))
}

async fn connect_as(cfg: &ServerConfig, login: &Login) -> Result<(Session, ConnInfo)> {
    let url = &cfg.url;
    let server = url.server();
    let t = cfg.timeouts;
    let tcp = net::tcp_connect(&url.host, url.port, t.connect).await?;
    let mut cert = None;
    let stream = match url.security {
        Security::Implicit => {
            let (tls, c) = net::start_tls(tcp, &url.host, url.port, &cfg.tls, t.connect).await?;
            cert = Some(c);
            tls
        }
        Security::StartTls | Security::Plaintext => MailStream::Plain(tcp),
    };
    let mut s = Session::new(
        Io::new(stream, server.clone(), t.command),
        Capabilities::default(),
    );
    s.io.pace = cfg.pace.clone();
    let (greeting, preauth, greet_caps) = net::timed(
        t.connect,
        &server,
        "the IMAP greeting",
        read_greeting(&mut s),
    )
    .await?;
    match greet_caps {
        Some(c) => s.st.caps = c,
        None => {
            s.refresh_capabilities().await?;
        }
    }

    if url.security == Security::StartTls {
        if preauth {
            return Err(Error::connect(
                &server,
                "the server pre-authenticated the connection in clear text, so STARTTLS is impossible; refusing (use imaps://)",
            ));
        }
        if !s.st.caps.starttls {
            return Err(Error::connect(
                &server,
                "the server does not offer STARTTLS; refusing to continue in clear text (use imaps://, or --insecure-plaintext if you accept that risk)",
            ));
        }
        s.simple("STARTTLS").await?;
        let MailStream::Plain(tcp) = s.io.into_stream()? else {
            unreachable!("STARTTLS on a TLS stream")
        };
        let (tls, c) = net::start_tls(tcp, &url.host, url.port, &cfg.tls, t.connect).await?;
        cert = Some(c);
        // No second greeting after STARTTLS; capabilities must be re-read
        // because the clear-text ones may have been tampered with.
        s = Session::new(
            Io::new(tls, server.clone(), t.command),
            Capabilities::default(),
        );
        s.io.pace = cfg.pace.clone();
        s.refresh_capabilities().await?;
    }

    if !preauth {
        authenticate(&mut s, cfg, login).await?;
    }
    s.st.quirks = cfg.quirks;
    if cfg.quirks.no_condstore {
        // Advertised or not, never used: see `Quirks::no_condstore`.
        s.st.caps = s.st.caps.without(&["CONDSTORE", "QRESYNC"]);
    }
    if s.st.caps.appendlimit.is_none() {
        s.st.caps.appendlimit = cfg.quirks.append_limit;
    }
    s.enable(&["CONDSTORE", "QRESYNC"]).await?;
    let info = ConnInfo {
        greeting,
        capabilities: s.st.caps.clone(),
        tls: s.io.is_tls(),
        cert,
    };
    Ok((s, info))
}

/// Reads `* OK`/`* PREAUTH` (or fails on `* BYE`); returns the text,
/// whether we are pre-authenticated, and capabilities if included.
async fn read_greeting(s: &mut Session) -> Result<(String, bool, Option<Capabilities>)> {
    let r = s.io.next().await?;
    let raw = s.io.slice(r);
    let bad = |what: &str| Error::connect(&s.io.server, format!("not an IMAP server? {what}"));
    let Resp::Untagged(u) = parse::classify(raw) else {
        return Err(bad(&String::from_utf8_lossy(&raw[..raw.len().min(100)])));
    };
    match parse::untagged(u) {
        Untagged::Status(st @ (Status::Ok | Status::PreAuth), text) => {
            let caps = match text.code_name().as_deref() {
                Some("CAPABILITY") => Some(Capabilities::parse(text.code_args())),
                _ => None,
            };
            Ok((text.text, st == Status::PreAuth, caps))
        }
        Untagged::Status(Status::Bye, text) => Err(Error::connect(
            &s.io.server,
            format!("server refused the connection: {}", text.display()),
        )),
        _ => Err(bad("unexpected greeting")),
    }
}

async fn authenticate(s: &mut Session, cfg: &ServerConfig, login: &Login) -> Result<()> {
    let user = &cfg.url.user;
    let caps = s.st.caps.clone();
    let server = s.io.server.clone();
    let no_mech = |what: &str| Error::Auth {
        server: server.clone(),
        msg: format!(
            "the server offers no usable {what} mechanism (it offers: {})",
            caps.auth_mechanisms().join(", ")
        ),
    };
    let text = match login {
        Login::Password(p) => {
            if caps.has_auth("PLAIN") {
                let ir = B64.encode(format!("\0{user}\0{}", p.expose()));
                sasl(s, "PLAIN", ir, "*").await?
            } else if !caps.logindisabled {
                let parts = [
                    Part::Text("LOGIN ".into()),
                    astring(user),
                    Part::Text(" ".into()),
                    astring(p.expose()),
                ];
                let (st, text) = s.run_status(&parts, "LOGIN", |_| Ok(false)).await?;
                auth_result(s, "LOGIN", st, text, None)?
            } else {
                return Err(no_mech("password"));
            }
        }
        Login::Bearer(tok) => {
            let tok = tok.secret();
            if caps.has_auth("OAUTHBEARER") {
                let ir = B64.encode(format!(
                    "n,a={},\x01auth=Bearer {}\x01\x01",
                    user.replace('=', "=3D").replace(',', "=2C"),
                    tok.expose()
                ));
                sasl(s, "OAUTHBEARER", ir, "AQ==")
                    .await
                    .map_err(bye_is_refusal)?
            } else if caps.has_auth("XOAUTH2") {
                let ir = B64.encode(format!(
                    "user={user}\x01auth=Bearer {}\x01\x01",
                    tok.expose()
                ));
                sasl(s, "XOAUTH2", ir, "").await.map_err(bye_is_refusal)?
            } else {
                return Err(no_mech("OAuth2 (XOAUTH2/OAUTHBEARER)"));
            }
        }
    };
    match text.code_name().as_deref() {
        Some("CAPABILITY") => s.st.caps = Capabilities::parse(text.code_args()),
        _ => {
            s.refresh_capabilities().await?;
        }
    }
    Ok(())
}

/// A server that answers a token with `BYE` and hangs up instead of a
/// tagged NO (some do for an expired one) has refused the login:
/// the token is then spent and the next login brings a fresh one. A BYE
/// that asks to slow down or speaks of connection limits is the
/// governor's, not a refusal of the token.
fn bye_is_refusal(e: Error) -> Error {
    match e {
        Error::Connect { server, msg }
            if msg.contains("BYE") && crate::error::pacing_of(&msg).is_none() =>
        {
            Error::Auth { server, msg }
        }
        e => e,
    }
}

/// `AUTHENTICATE mech` with the initial response inline (SASL-IR) or after
/// the first `+`. A later `+` is an error challenge (OAuth JSON): we answer
/// `err_reply` as the mechanism requires and report its content.
/// `err_reply == "*"` cancels instead.
async fn sasl(
    s: &mut Session,
    mech: &str,
    ir: String,
    err_reply: &str,
) -> Result<super::parse::RespText> {
    let what = format!("AUTHENTICATE {mech}");
    s.io.ctx = what.clone();
    let tag = s.io.tag();
    let mut pending = if s.st.caps.sasl_ir {
        let ir = if ir.is_empty() { "=".to_string() } else { ir };
        s.io.queue(format!("{tag} {what} {ir}\r\n").as_bytes());
        None
    } else {
        s.io.queue(format!("{tag} {what}\r\n").as_bytes());
        Some(ir)
    };
    s.io.flush().await?;
    let mut challenge: Option<String> = None;
    let mut nocb = |_: &Untagged<'_>| Ok(false);
    loop {
        match s.read_step(&mut nocb).await? {
            Step::Untagged(_) => {}
            Step::Continue(t) => {
                let reply = match pending.take() {
                    Some(ir) => ir,
                    None => {
                        let raw = format!(
                            "{}{}",
                            t.code.map(|c| format!("[{c}]")).unwrap_or_default(),
                            t.text
                        );
                        let decoded = B64
                            .decode(raw.trim())
                            .ok()
                            .and_then(|b| String::from_utf8(b).ok())
                            .unwrap_or(raw);
                        challenge = Some(decoded);
                        err_reply.to_string()
                    }
                };
                s.io.queue(reply.as_bytes());
                s.io.queue(b"\r\n");
                s.io.flush().await?;
            }
            Step::Tagged {
                tag: t,
                status,
                text,
            } if t == tag => return auth_result(s, &what, status, text, challenge),
            Step::Tagged { tag: t, .. } => return Err(s.stray_tag(&t)),
        }
    }
}

fn auth_result(
    s: &Session,
    what: &str,
    status: Status,
    text: super::parse::RespText,
    challenge: Option<String>,
) -> Result<super::parse::RespText> {
    let detail = challenge.map(|c| format!(" ({c})")).unwrap_or_default();
    match status {
        Status::Ok => Ok(text),
        // "Too many simultaneous connections", [THROTTLED], [UNAVAILABLE]:
        // the credentials were not judged. Not an authentication failure
        // (exit 3, no retry) but a refusal for now that the governor
        // handles (fewer connections, or a pause).
        Status::No if crate::error::pacing_of(&text.display()).is_some() => Err(Error::protocol(
            &s.io.server,
            format!("{what}: server said NO: {}{detail}", text.display()),
        )),
        Status::No => Err(Error::Auth {
            server: s.io.server.clone(),
            msg: format!("{what}: {}{detail}", text.display()),
        }),
        _ => Err(Error::protocol(
            &s.io.server,
            format!("{what}: server said BAD: {}{detail}", text.display()),
        )),
    }
}
