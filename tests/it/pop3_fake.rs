//! The POP3 client against a scripted fake server, for what a real Dovecot
//! will not do: no UIDL, a connection cut mid-RETR, no PIPELINING, bytes
//! injected after STLS, odd login replies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use mailferry::Error;
use mailferry::endpoint::{
    Credentials, Protocol, Secret, Security, ServerConfig, ServerUrl, Timeouts, TlsOptions,
};
use mailferry::pop3::{self, Fetched, Limits, Pop3Client};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// What the fake server does with one command line.
enum Reply {
    Send(Vec<u8>),
    SendAndClose(Vec<u8>),
    /// Never answer (for timeouts).
    Hang,
}

fn send(s: &str) -> Reply {
    Reply::Send(s.as_bytes().to_vec())
}

/// What the fake server saw: every command line, and whether a command
/// was already waiting when it answered the previous one (= pipelined).
#[derive(Default)]
struct Seen {
    lines: Vec<String>,
    pipelined: bool,
}

/// Starts a one-connection fake server; `script` maps a command line to a
/// reply.
async fn fake(
    greeting: &str,
    mut script: impl FnMut(&str) -> Reply + Send + 'static,
) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let seen2 = seen.clone();
    let greeting = greeting.to_string();
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        w.write_all(greeting.as_bytes()).await.unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let cmd = line.trim_end().to_string();
            {
                let mut s = seen2.lock().unwrap();
                s.lines.push(cmd.clone());
                if !r.buffer().is_empty() {
                    s.pipelined = true;
                }
            }
            match script(&cmd) {
                Reply::Send(b) => {
                    if w.write_all(&b).await.is_err() {
                        return;
                    }
                }
                Reply::SendAndClose(b) => {
                    let _ = w.write_all(&b).await;
                    return;
                }
                Reply::Hang => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
            }
        }
    });
    (port, seen)
}

fn config(port: u16, security: Security, creds: Credentials) -> ServerConfig {
    ServerConfig {
        url: ServerUrl {
            protocol: Protocol::Pop3,
            security,
            host: "127.0.0.1".into(),
            port,
            user: "alice".into(),
            folder: None,
        },
        credentials: creds,
        tls: TlsOptions::default(),
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            command: Duration::from_secs(5),
        },
        quirks: Default::default(),
        pace: Default::default(),
    }
}

fn plain(port: u16) -> ServerConfig {
    config(
        port,
        Security::Plaintext,
        Credentials::Password(Secret::new("s3cret-pw")),
    )
}

/// A message with dot-leading lines, numbered so each is distinct.
fn message(n: u32) -> Vec<u8> {
    format!("Subject: m{n}\r\n\r\n.leading dot\r\n..two\r\n.\r\nlast line {n}\r\n").into_bytes()
}

fn stuffed(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in msg.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A mailbox of `n` messages; `caps` is the CAPA list; `bad` gets -ERR to
/// RETR; UIDL answers only when `uidl`.
fn mailbox(caps: &'static str, n: u32, bad: Option<u32>, uidl: bool) -> impl FnMut(&str) -> Reply {
    move |cmd: &str| {
        let mut w = cmd.split(' ');
        match (w.next().unwrap(), w.next()) {
            ("CAPA", _) => send(&format!("+OK\r\n{caps}.\r\n")),
            ("USER", _) => send("+OK\r\n"),
            ("PASS", _) => send("+OK Logged in.\r\n"),
            ("STAT", _) => send(&format!("+OK {n} 1000\r\n")),
            ("UIDL", _) if !uidl => send("-ERR unknown command\r\n"),
            ("UIDL", _) => {
                let mut s = "+OK\r\n".to_string();
                for i in 1..=n {
                    s += &format!("{i}  uid-{i:04}\r\n");
                }
                send(&(s + ".\r\n"))
            }
            ("LIST", None) => {
                let mut s = "+OK\r\n".to_string();
                for i in 1..=n {
                    s += &format!("{i} {}\r\n", message(i).len());
                }
                send(&(s + ".\r\n"))
            }
            ("RETR", Some(i)) => {
                let i: u32 = i.parse().unwrap();
                if Some(i) == bad || i > n {
                    send("-ERR no such message\r\n")
                } else {
                    let m = message(i);
                    let mut r = format!("+OK {} octets\r\n", m.len()).into_bytes();
                    r.extend(stuffed(&m));
                    Reply::Send(r)
                }
            }
            ("DELE", Some(i)) if i.parse::<u32>().unwrap() <= n => send("+OK Marked\r\n"),
            ("DELE", _) => send("-ERR no such message\r\n"),
            ("QUIT", _) => Reply::SendAndClose(b"+OK Logging out.\r\n".to_vec()),
            _ => send("-ERR what?\r\n"),
        }
    }
}

async fn retr_all(c: &mut Pop3Client, msgnos: &[u32]) -> (mailferry::Result<()>, Vec<Fetched>) {
    let (tx, mut rx) = mpsc::channel::<Fetched>(4);
    let collect = async {
        let mut v = Vec::new();
        while let Some(mut f) = rx.recv().await {
            f.lease = Default::default();
            v.push(f);
        }
        v
    };
    let (r, v) = tokio::join!(c.retr_many(msgnos, tx), collect);
    (r, v)
}

const CAPS: &str = "TOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nUSER\r\n";
const CAPS_NO_PIPE: &str = "TOP\r\nUIDL\r\nUSER\r\n";

#[tokio::test]
async fn no_uidl_support_gives_none() {
    let (port, _) = fake("+OK ready\r\n", mailbox("USER\r\n", 3, None, false)).await;
    let (mut c, info) = pop3::connect(&plain(port)).await.unwrap();
    assert!(!info.uidl && !info.pipelining && !info.tls);
    assert_eq!(info.auth_mechanism, "USER/PASS");
    assert!(c.uidl_all().await.unwrap().is_none());
    // The session is still fine afterwards.
    assert_eq!(c.list_all().await.unwrap().len(), 3);
    assert_eq!(c.stat().await.unwrap(), (3, 1000));
    c.quit().await.unwrap();
}

#[tokio::test]
async fn uidl_with_odd_spacing_parses() {
    let (port, _) = fake("+OK ready\r\n", mailbox(CAPS, 3, None, true)).await;
    let (mut c, info) = pop3::connect(&plain(port)).await.unwrap();
    assert!(info.uidl && info.pipelining);
    let u = c.uidl_all().await.unwrap().unwrap();
    assert_eq!(u.len(), 3);
    assert_eq!(u[2].0, 3);
    assert_eq!(u[2].1.0, "uid-0003");
}

#[tokio::test]
async fn connection_cut_mid_retr_is_an_error_not_a_short_message() {
    let script = move |cmd: &str| match cmd {
        "CAPA" => send("+OK\r\nUSER\r\n.\r\n"),
        "USER alice" | "PASS s3cret-pw" => send("+OK\r\n"),
        _ => Reply::SendAndClose(b"+OK 500 octets\r\nSubject: x\r\n\r\nhalf a mess".to_vec()),
    };
    let (port, _) = fake("+OK\r\n", script).await;
    let (mut c, _) = pop3::connect(&plain(port)).await.unwrap();
    let e = c.retr(1).await.unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    assert!(e.to_string().contains("middle of message 1"), "{e}");
    // Anything afterwards fails fast instead of misreading the stream.
    assert!(c.noop().await.is_err());
}

#[tokio::test]
async fn connection_cut_mid_retr_many_fails_the_call() {
    let mut served = 0;
    let script = move |cmd: &str| match cmd {
        "CAPA" => send(&format!("+OK\r\n{CAPS}.\r\n")),
        "USER alice" | "PASS s3cret-pw" => send("+OK\r\n"),
        _ => {
            served += 1;
            if served < 3 {
                let mut r = b"+OK\r\n".to_vec();
                r.extend(stuffed(&message(served)));
                Reply::Send(r)
            } else {
                Reply::SendAndClose(b"+OK\r\nSubject: cut\r\n".to_vec())
            }
        }
    };
    let (port, _) = fake("+OK\r\n", script).await;
    let (mut c, _) = pop3::connect(&plain(port)).await.unwrap();
    let (r, got) = retr_all(&mut c, &[1, 2, 3, 4, 5]).await;
    assert!(r.is_err());
    assert!(r.unwrap_err().to_string().contains("message 3"));
    // Only the two complete messages were handed over, both intact.
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].result.as_ref().unwrap(), &message(2));
}

#[tokio::test]
async fn without_pipelining_commands_go_one_at_a_time() {
    let (port, seen) = fake("+OK\r\n", mailbox(CAPS_NO_PIPE, 20, Some(7), true)).await;
    let (mut c, info) = pop3::connect(&plain(port)).await.unwrap();
    assert!(!info.pipelining);
    assert_eq!(c.window(), 1);
    c.set_window(32);
    assert_eq!(c.window(), 1, "never pipelines unless offered");
    let nums: Vec<u32> = (1..=20).collect();
    let (r, got) = retr_all(&mut c, &nums).await;
    r.unwrap();
    assert_eq!(got.len(), 20);
    for f in &got {
        if f.msgno == 7 {
            let e = f.result.as_ref().unwrap_err().to_string();
            assert!(e.contains("RETR 7") && e.contains("no such message"), "{e}");
        } else {
            assert_eq!(f.result.as_ref().unwrap(), &message(f.msgno));
        }
    }
    let d = c.dele_many(&[1, 2, 99]).await.unwrap();
    assert!(d[0].1.is_ok() && d[1].1.is_ok() && d[2].1.is_err());
    c.quit().await.unwrap();
    assert!(!seen.lock().unwrap().pipelined);
}

#[tokio::test]
async fn pipelined_retr_many_reports_one_err_and_continues() {
    let (port, seen) = fake("+OK\r\n", mailbox(CAPS, 100, Some(50), true)).await;
    let (mut c, info) = pop3::connect(&plain(port)).await.unwrap();
    assert!(info.pipelining);
    let nums: Vec<u32> = (1..=100).collect();
    let (r, got) = retr_all(&mut c, &nums).await;
    r.unwrap();
    assert_eq!(got.iter().map(|f| f.msgno).collect::<Vec<_>>(), nums);
    assert!(got[49].result.is_err());
    assert_eq!(got.iter().filter(|f| f.result.is_ok()).count(), 99);
    assert_eq!(got[99].result.as_ref().unwrap(), &message(100));
    let d = c.dele_many(&nums).await.unwrap();
    assert!(d.iter().all(|(_, r)| r.is_ok()));
    c.quit().await.unwrap();
    assert!(seen.lock().unwrap().pipelined, "window was never used");
}

#[tokio::test]
async fn dropped_receiver_drains_and_keeps_the_session() {
    let (port, _) = fake("+OK\r\n", mailbox(CAPS, 100, None, true)).await;
    let (mut c, _) = pop3::connect(&plain(port)).await.unwrap();
    let (tx, mut rx) = mpsc::channel(1);
    let nums: Vec<u32> = (1..=100).collect();
    let reader = async {
        let first = rx.recv().await.unwrap();
        drop(rx);
        first
    };
    let (r, first) = tokio::join!(c.retr_many(&nums, tx), reader);
    r.unwrap();
    assert_eq!(first.msgno, 1);
    assert_eq!(c.retr(5).await.unwrap(), message(5));
}

#[tokio::test]
async fn oversize_message_fails_alone() {
    let (port, _) = fake("+OK\r\n", mailbox(CAPS, 5, None, true)).await;
    let limits = Limits {
        max_message: 40,
        ..Limits::default()
    };
    let (mut c, _) = pop3::client::connect_with_limits(&plain(port), limits)
        .await
        .unwrap();
    // message(n) is ~57 bytes: all over the cap, each reported, session fine.
    let (r, got) = retr_all(&mut c, &[1, 2, 3]).await;
    r.unwrap();
    assert_eq!(got.len(), 3);
    for f in &got {
        let e = f.result.as_ref().unwrap_err().to_string();
        assert!(e.contains(&format!("message {}", f.msgno)), "{e}");
    }
    assert_eq!(c.stat().await.unwrap().0, 5);
}

#[tokio::test]
async fn stls_injection_is_refused() {
    let script = |cmd: &str| match cmd {
        "CAPA" => send("+OK\r\nSTLS\r\nUSER\r\n.\r\n"),
        "STLS" => send("+OK Begin TLS negotiation now.\r\n+OK injected\r\n"),
        _ => send("-ERR\r\n"),
    };
    let (port, seen) = fake("+OK\r\n", script).await;
    let cfg = config(
        port,
        Security::StartTls,
        Credentials::Password(Secret::new("s3cret-pw")),
    );
    let e = pop3::connect(&cfg).await.unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    assert!(e.to_string().contains("injection"), "{e}");
    assert_eq!(seen.lock().unwrap().lines, vec!["CAPA", "STLS"]);
}

#[tokio::test]
async fn missing_stls_is_refused_before_any_credentials() {
    let (port, seen) = fake("+OK\r\n", mailbox(CAPS, 1, None, true)).await;
    let cfg = config(
        port,
        Security::StartTls,
        Credentials::Password(Secret::new("s3cret-pw")),
    );
    let e = pop3::connect(&cfg).await.unwrap_err();
    assert_eq!(e.exit_code(), mailferry::ExitCode::Connect);
    assert!(e.to_string().contains("STLS"), "{e}");
    assert_eq!(seen.lock().unwrap().lines, vec!["CAPA"]);
}

#[tokio::test]
async fn wrong_password_is_auth_and_in_use_is_not() {
    for (reply, auth) in [
        ("-ERR [AUTH] Authentication failed.\r\n", true),
        ("-ERR Authentication failed.\r\n", true),
        ("-ERR [IN-USE] Mailbox locked by another session\r\n", false),
        ("-ERR [SYS/TEMP] Try later\r\n", false),
    ] {
        let script = move |cmd: &str| match cmd {
            "CAPA" => send("+OK\r\nUSER\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n.\r\n"),
            "USER alice" => send("+OK\r\n"),
            _ => send(reply),
        };
        let (port, _) = fake("+OK\r\n", script).await;
        let e = pop3::connect(&plain(port)).await.unwrap_err();
        let s = e.to_string();
        assert!(!s.contains("s3cret-pw"), "{s}");
        if auth {
            assert!(matches!(e, Error::Auth { .. }), "{s}");
            assert_eq!(e.exit_code() as i32, 3);
        } else {
            assert!(matches!(e, Error::Connect { .. }), "{s}");
            assert!(e.is_transient() && s.contains("try later"), "{s}");
        }
    }
}

#[tokio::test]
async fn auth_plain_uses_sasl_ir() {
    let script = |cmd: &str| {
        if cmd == "CAPA" {
            send("+OK\r\nSASL PLAIN\r\nUSER\r\n.\r\n")
        } else if let Some(b64) = cmd.strip_prefix("AUTH PLAIN ") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            if raw == b"\0alice\0s3cret-pw" {
                send("+OK Logged in.\r\n")
            } else {
                send("-ERR [AUTH] bad\r\n")
            }
        } else {
            send("-ERR no\r\n")
        }
    };
    let (port, seen) = fake("+OK\r\n", script).await;
    let (_c, info) = pop3::connect(&plain(port)).await.unwrap();
    assert_eq!(info.auth_mechanism, "AUTH PLAIN");
    assert!(
        !seen
            .lock()
            .unwrap()
            .lines
            .iter()
            .any(|l| l.starts_with("USER"))
    );
}

#[tokio::test]
async fn apop_only_when_user_is_not_offered() {
    // RFC 1939 §7's example: this timestamp and secret give this digest.
    let script = |cmd: &str| match cmd {
        "CAPA" => send("+OK\r\nTOP\r\n.\r\n"),
        "APOP alice c4c9334bac560ecc979e58001b3e22fb" => send("+OK maildrop has 0 messages\r\n"),
        _ => send("-ERR no\r\n"),
    };
    let (port, _) = fake(
        "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n",
        script,
    )
    .await;
    let cfg = config(
        port,
        Security::Plaintext,
        Credentials::Password(Secret::new("tanstaaf")),
    );
    let (_c, info) = pop3::connect(&cfg).await.unwrap();
    assert_eq!(info.auth_mechanism, "APOP");
}

#[tokio::test]
async fn xoauth2_error_challenge_is_answered_and_is_auth() {
    let script = |cmd: &str| {
        if cmd == "CAPA" {
            send("+OK\r\nSASL XOAUTH2\r\n.\r\n")
        } else if cmd.starts_with("AUTH XOAUTH2 ") {
            send("+ eyJzdGF0dXMiOiI0MDEifQ==\r\n")
        } else if cmd.is_empty() {
            send("-ERR [AUTH] invalid token\r\n")
        } else {
            send("-ERR protocol\r\n")
        }
    };
    let (port, seen) = fake("+OK\r\n", script).await;
    let cfg = config(
        port,
        Security::Plaintext,
        Credentials::OAuth2(mailferry::oauth::Bearer::fixed(Secret::new("tok-123"))),
    );
    let e = pop3::connect(&cfg).await.unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(!e.to_string().contains("tok-123"));
    assert_eq!(seen.lock().unwrap().lines.last().unwrap(), "");
}

#[tokio::test]
async fn quit_without_ok_is_an_error() {
    let script = |cmd: &str| match cmd {
        "CAPA" => send("+OK\r\nUSER\r\n.\r\n"),
        "QUIT" => Reply::SendAndClose(Vec::new()),
        _ => send("+OK\r\n"),
    };
    let (port, _) = fake("+OK\r\n", script).await;
    let (mut c, _) = pop3::connect(&plain(port)).await.unwrap();
    c.dele(1).await.unwrap();
    let e = c.quit().await.unwrap_err();
    assert!(e.to_string().contains("NOT"), "{e}");

    let script = |cmd: &str| match cmd {
        "CAPA" => send("+OK\r\nUSER\r\n.\r\n"),
        "QUIT" => send("-ERR [SYS/TEMP] could not remove messages\r\n"),
        _ => send("+OK\r\n"),
    };
    let (port, _) = fake("+OK\r\n", script).await;
    let (c, _) = pop3::connect(&plain(port)).await.unwrap();
    assert!(c.quit().await.is_err());
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let script = |cmd: &str| match cmd {
        "CAPA" => send("+OK\r\nUSER\r\n.\r\n"),
        "RETR 1" => Reply::Hang,
        _ => send("+OK\r\n"),
    };
    let (port, _) = fake("+OK\r\n", script).await;
    let mut cfg = plain(port);
    cfg.timeouts.command = Duration::from_millis(300);
    let (mut c, _) = pop3::connect(&cfg).await.unwrap();
    let e = c.retr(1).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
}

#[tokio::test]
async fn err_greeting_is_a_connect_error() {
    let (port, _) = fake("-ERR [SYS/TEMP] too busy\r\n", |_: &str| send("-ERR\r\n")).await;
    let e = pop3::connect(&plain(port)).await.unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
}
