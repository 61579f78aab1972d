//! Recorded-exchange tests: a scripted fake server on loopback drives the
//! real client stack (framing, runner, commands) through odd and hostile
//! server behaviour that Dovecot will not produce on demand.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use crate::endpoint::{Credentials, Protocol, Secret, Security, ServerConfig, ServerUrl, Timeouts};
use crate::error::Error;
use crate::types::{Flags, Uid};

const CAPS: &str = "IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN UIDPLUS MOVE CONDSTORE ENABLE";

/// What the fake server does after one client command.
enum Act {
    Reply(String),
    /// Write these bytes, then close the connection.
    ReplyAndClose(Vec<u8>),
}

/// Serves one connection: greeting, then for each complete command
/// (literals included) calls `h(tag, command)`.
async fn fake<F>(greeting: &str, mut h: F) -> u16
where
    F: FnMut(&str, &str) -> Act + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let greeting = greeting.to_string();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.write_all(greeting.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let mut cmd = Vec::new();
        loop {
            // read one line
            let line = loop {
                if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                    break buf.drain(..=i).collect::<Vec<u8>>();
                }
                let mut tmp = [0u8; 65536];
                let n = match s.read(&mut tmp).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&tmp[..n]);
            };
            cmd.extend_from_slice(&line);
            let text = String::from_utf8_lossy(&line).to_string();
            let t = text.trim_end();
            if let Some(open) = t.rfind('{')
                && t.ends_with('}')
            {
                let spec = &t[open + 1..t.len() - 1];
                let sync = !spec.ends_with('+');
                let n: usize = spec.trim_end_matches('+').parse().unwrap();
                if sync {
                    s.write_all(b"+ go\r\n").await.unwrap();
                }
                while buf.len() < n {
                    let mut tmp = [0u8; 65536];
                    let k = s.read(&mut tmp).await.unwrap();
                    if k == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..k]);
                }
                cmd.extend(buf.drain(..n));
                continue;
            }
            let full = String::from_utf8_lossy(&cmd).to_string();
            cmd.clear();
            let (tag, rest) = full.split_once(' ').unwrap_or((&full, ""));
            match h(tag, rest.trim_end()) {
                Act::Reply(r) => {
                    if s.write_all(r.as_bytes()).await.is_err() {
                        return;
                    }
                }
                Act::ReplyAndClose(b) => {
                    let _ = s.write_all(&b).await;
                    return;
                }
            }
        }
    });
    port
}

fn cfg(port: u16, security: Security) -> ServerConfig {
    ServerConfig {
        url: ServerUrl {
            protocol: Protocol::Imap,
            security,
            host: "127.0.0.1".into(),
            port,
            user: "alice".into(),
            folder: None,
        },
        credentials: Credentials::Password(Secret::new("hunter2")),
        tls: Default::default(),
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            command: Duration::from_secs(2),
        },
        quirks: Default::default(),
        pace: Default::default(),
    }
}

/// Standard login handling; returns None for other commands.
fn login(tag: &str, cmd: &str) -> Option<Act> {
    if cmd.starts_with("AUTHENTICATE PLAIN ") {
        return Some(Act::Reply(format!(
            "{tag} OK [CAPABILITY {CAPS}] Logged in\r\n"
        )));
    }
    if cmd.starts_with("ENABLE") {
        return Some(Act::Reply(format!(
            "* ENABLED CONDSTORE\r\n{tag} OK Enabled\r\n"
        )));
    }
    if cmd == "SELECT \"INBOX\""
        || cmd == "EXAMINE \"INBOX\""
        || cmd.starts_with("SELECT \"INBOX\" ")
    {
        return Some(Act::Reply(format!(
            "* FLAGS (\\Seen \\Deleted)\r\n* 3 EXISTS\r\n* OK [UIDVALIDITY 42] v\r\n* OK [UIDNEXT 9] n\r\n\
             * OK [HIGHESTMODSEQ 77] h\r\n* OK [PERMANENTFLAGS (\\Seen \\Deleted $Fwd)] p\r\n{tag} OK [READ-WRITE] done\r\n"
        )));
    }
    None
}

fn greeting() -> String {
    format!("* OK [CAPABILITY {CAPS}] fake ready\r\n")
}

#[tokio::test]
async fn tagged_no_on_fetch_is_an_error_not_empty_ok() {
    let port = fake(&greeting(), |tag, cmd| {
        login(tag, cmd).unwrap_or_else(|| {
            Act::Reply(format!(
                "{tag} BAD Error in IMAP command UID FETCH: Unknown parameter\r\n"
            ))
        })
    })
    .await;
    let (mut s, info) = connect(&cfg(port, Security::Plaintext)).await.unwrap();
    assert!(!info.tls && info.capabilities.uidplus);
    assert_eq!(s.enabled(), ["CONDSTORE"]);
    s.select("INBOX").await.unwrap();
    let e = s.uid_fetch_meta(None, None).await.unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, Error::Protocol { .. }), "{m}");
    assert!(
        m.contains("BAD") && m.contains("Unknown parameter") && m.contains("in folder INBOX"),
        "{m}"
    );
    // the session is still usable after a NO/BAD
    assert!(!s.is_broken());
}

#[tokio::test]
async fn connection_cut_mid_fetch_is_connection_lost() {
    let port = fake(&greeting(), |tag, cmd| {
        login(tag, cmd).unwrap_or_else(|| {
            let mut b = b"* 1 FETCH (UID 1 FLAGS () INTERNALDATE \"01-Jan-2020 00:00:00 +0000\" RFC822.SIZE 5 BODY[] {5}\r\nhello)\r\n".to_vec();
            b.extend_from_slice(b"* 2 FETCH (UID 2 FLAGS () INTERNALDATE \"01-Jan-2020 00:00:00 +0000\" RFC822.SIZE 500 BODY[] {500}\r\npartial");
            Act::ReplyAndClose(b)
        })
    })
    .await;
    let (mut s, _) = connect(&cfg(port, Security::Plaintext)).await.unwrap();
    s.select("INBOX").await.unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    let e = s
        .fetch_bodies(&[Uid(1), Uid(2), Uid(3)], &tx)
        .await
        .unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, Error::Connect { .. }), "{m}");
    assert!(
        m.contains("connection lost during UID FETCH 1:3") && m.contains("INBOX"),
        "{m}"
    );
    drop(tx);
    let first = rx.recv().await.unwrap();
    assert_eq!((first.uid, first.body.as_slice()), (Uid(1), &b"hello"[..]));
    assert!(rx.recv().await.is_none());
    assert!(s.is_broken());
    assert!(s.noop().await.is_err());
}

#[tokio::test]
async fn fetch_bodies_reports_missing_nil_and_unsolicited() {
    let port = fake(&greeting(), |tag, cmd| {
        login(tag, cmd).unwrap_or_else(|| {
            assert_eq!(cmd, "UID FETCH 1:2,5 (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])");
            Act::Reply(format!(
                "* 1 FETCH (UID 1 FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 3 BODY[] {{3}}\r\na\r\n)\r\n\
                 * 9 FETCH (FLAGS (\\Flagged) UID 77)\r\n\
                 * 3 EXPUNGE\r\n\
                 * 2 FETCH (UID 5 FLAGS () INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 0 BODY[] NIL)\r\n\
                 {tag} OK Fetch completed.\r\n"
            ))
        })
    })
    .await;
    let (mut s, _) = connect(&cfg(port, Security::Plaintext)).await.unwrap();
    s.select("INBOX").await.unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    let r = s
        .fetch_bodies(&[Uid(5), Uid(2), Uid(1)], &tx)
        .await
        .unwrap();
    assert_eq!(r.delivered, 1);
    assert_eq!(r.missing, vec![Uid(2)]);
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].0, Uid(5));
    let m = rx.recv().await.unwrap();
    assert_eq!(m.body, b"a\r\n");
    assert_eq!(m.internal_date, 837596665);
    assert!(m.flags.seen);
    let ch = s.take_changes();
    assert_eq!(ch.expunged, 1);
    assert_eq!(ch.flags.len(), 1);
    assert_eq!(ch.flags[0].uid, Some(Uid(77)));
    assert!(ch.flags[0].flags.flagged);
}

/// A body of `n` bytes with a pattern that shows any byte out of place.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| match i % 80 {
            78 => b'\r',
            79 => b'\n',
            k => b'!' + ((i / 80 + k) as u8 ^ seed) % 90,
        })
        .collect()
}

#[tokio::test]
async fn large_bodies_are_read_into_their_own_buffers_byte_for_byte() {
    // Bodies above and below the detach size, back to back in one reply
    // (so reads end inside literals and bring the next response with
    // them), a server text that looks like our own marker, and a second
    // literal in one response.
    let big1 = pattern(300_000, 1);
    let big2 = pattern(65 * 1024, 2);
    let small = pattern(1000, 3);
    let (b1, b2, sm) = (big1.clone(), big2.clone(), small.clone());
    let port = fake(&greeting(), move |tag, cmd| {
        login(tag, cmd).unwrap_or_else(|| {
            let date = "\"17-Jul-1996 02:44:25 -0700\"";
            let mut r = Vec::new();
            for (uid, body) in [(1, &b1), (2, &sm), (3, &b2)] {
                r.extend_from_slice(
                    format!(
                        "* {uid} FETCH (UID {uid} FLAGS ({{@0}}) INTERNALDATE {date} BODY[] {{{}}}\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
                r.extend_from_slice(body);
                r.extend_from_slice(format!(" BODY[HEADER] {{{}}}\r\n", b2.len()).as_bytes());
                r.extend_from_slice(&b2);
                r.extend_from_slice(b")\r\n");
            }
            r.extend_from_slice(format!("{tag} OK done\r\n").as_bytes());
            Act::Reply(String::from_utf8(r).unwrap())
        })
    })
    .await;
    let (mut s, _) = connect(&cfg(port, Security::Plaintext)).await.unwrap();
    s.select("INBOX").await.unwrap();
    let (tx, mut rx) = mpsc::channel(8);
    let r = s
        .fetch_bodies(&[Uid(1), Uid(2), Uid(3)], &tx)
        .await
        .unwrap();
    drop(tx);
    assert_eq!(r.delivered, 3, "{r:?}");
    let mut got = Vec::new();
    while let Some(m) = rx.recv().await {
        got.push((m.uid, m.size, m.body));
    }
    assert_eq!(
        got,
        vec![
            (Uid(1), big1.len() as u64, big1),
            (Uid(2), small.len() as u64, small),
            (Uid(3), big2.len() as u64, big2),
        ],
        "bodies differ"
    );
    // The session is in step: the next command works.
    s.noop().await.unwrap();
}

#[tokio::test]
async fn a_connection_cut_inside_a_large_body_is_connection_lost() {
    let port = fake(&greeting(), |tag, cmd| {
        login(tag, cmd).unwrap_or_else(|| {
            let mut b = b"* 1 FETCH (UID 1 FLAGS () INTERNALDATE \"01-Jan-2020 00:00:00 +0000\" RFC822.SIZE 500000 BODY[] {500000}\r\n".to_vec();
            b.extend_from_slice(&pattern(200_000, 4));
            Act::ReplyAndClose(b)
        })
    })
    .await;
    let (mut s, _) = connect(&cfg(port, Security::Plaintext)).await.unwrap();
    s.select("INBOX").await.unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    let e = s.fetch_bodies(&[Uid(1)], &tx).await.unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    drop(tx);
    assert!(rx.recv().await.is_none(), "a partial body was delivered");
}

#[tokio::test]
async fn starttls_not_offered_is_refused() {
    let port = fake("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n", |tag, _| {
        Act::Reply(format!("{tag} OK\r\n"))
    })
    .await;
    let e = connect(&cfg(port, Security::StartTls)).await.unwrap_err();
    assert!(matches!(e, Error::Connect { .. }));
    assert!(e.to_string().contains("does not offer STARTTLS"), "{e}");
}

#[tokio::test]
async fn starttls_injection_is_refused() {
    let port = fake("* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n", |tag, _| {
        Act::Reply(format!("{tag} OK Begin TLS\r\n* OK injected\r\n"))
    })
    .await;
    let e = connect(&cfg(port, Security::StartTls)).await.unwrap_err();
    assert!(e.to_string().contains("possible injection"), "{e}");
}

#[tokio::test]
async fn auth_no_is_auth_error_without_secret() {
    let port = fake(&greeting(), |tag, cmd| {
        assert!(cmd.starts_with("AUTHENTICATE PLAIN "));
        Act::Reply(format!(
            "{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
        ))
    })
    .await;
    let e = connect(&cfg(port, Security::Plaintext)).await.unwrap_err();
    assert!(matches!(e, Error::Auth { .. }));
    let m = format!("{e} {e:?}");
    assert!(
        m.contains("Authentication failed") && !m.contains("hunter2"),
        "{m}"
    );
}

#[tokio::test]
async fn login_fallback_uses_literal_for_8bit_password() {
    let port = fake("* OK [CAPABILITY IMAP4rev1] hi\r\n", |tag, cmd| {
        if cmd.starts_with("LOGIN") {
            assert_eq!(cmd, "LOGIN \"alice\" {7}\r\npässwd");
            return Act::Reply(format!("{tag} OK [CAPABILITY IMAP4rev1 UIDPLUS] ok\r\n"));
        }
        Act::Reply(format!("{tag} OK\r\n"))
    })
    .await;
    let mut c = cfg(port, Security::Plaintext);
    c.credentials = Credentials::Password(Secret::new("pässwd"));
    let (s, _) = connect(&c).await.unwrap();
    assert!(s.capabilities().uidplus);
}

#[tokio::test]
async fn silent_server_times_out_per_read() {
    let port = fake(&greeting(), |tag, cmd| {
        login(tag, cmd).unwrap_or(Act::Reply(String::new()))
    })
    .await;
    let (mut s, _) = connect(&cfg(port, Security::Plaintext)).await.unwrap();
    let e = s.noop().await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("NOOP"), "{e}");
}

#[tokio::test]
async fn list_decodes_escapes_mutf7_and_special_use() {
    let port = fake(&greeting(), |tag, cmd| {
        login(tag, cmd).unwrap_or_else(|| {
            assert_eq!(cmd, "LIST \"\" \"*\"");
            Act::Reply(format!(
                "* LIST (\\HasNoChildren) \".\" INBOX\r\n\
                 * LIST (\\HasNoChildren \\Sent) \".\" \"INBOX.Gesendete Objekte\"\r\n\
                 * LIST (\\HasNoChildren) \".\" \"Quote\\\"Back\\\\slash\"\r\n\
                 * LIST (\\Noselect \\HasChildren) \".\" \"Entw&APw-rfe\"\r\n\
                 * LIST (\\HasNoChildren) \".\" \"Entw&APw-rfe.a/b\"\r\n\
                 * LIST (\\HasNoChildren) \".\" \"Bad&Jjo!-name\"\r\n\
                 {tag} OK List completed.\r\n"
            ))
        })
    })
    .await;
    let (mut s, _) = connect(&cfg(port, Security::Plaintext)).await.unwrap();
    let l = s.list_folders().await.unwrap();
    let names: Vec<&str> = l.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "INBOX",
            "INBOX/Gesendete Objekte",
            "Quote\"Back\\slash",
            "Entwürfe",
            "Entwürfe/a\u{2215}b",
            "Bad&Jjo!-name"
        ]
    );
    assert_eq!(l[1].special_use, Some(SpecialUse::Sent));
    assert_eq!(l[2].wire, "Quote\"Back\\slash");
    assert!(!l[3].selectable && l[4].selectable);
    assert!(l[4].warning.is_some() && l[5].warning.is_some() && l[0].warning.is_none());
    assert_eq!(l[0].delimiter, Some('.'));
}

#[tokio::test]
async fn append_pipelines_and_reports_per_message() {
    let port = fake(&greeting(), |tag, cmd| {
        login(tag, cmd).unwrap_or_else(|| {
            assert!(cmd.starts_with("APPEND \"INBOX\""), "{cmd}");
            if cmd.contains("reject-me") {
                Act::Reply(format!("{tag} NO [OVERQUOTA] Quota exceeded\r\n"))
            } else {
                assert!(
                    cmd.contains("(\\Seen $Fwd) \"02-Jan-2018 02:04:05 +0000\" {"),
                    "{cmd}"
                );
                let n: u32 = tag[1..].parse().unwrap();
                Act::Reply(format!("{tag} OK [APPENDUID 42 {n}] Append completed.\r\n"))
            }
        })
    })
    .await;
    let (mut s, _) = connect(&cfg(port, Security::Plaintext)).await.unwrap();
    s.select("INBOX").await.unwrap();
    let flags = Flags {
        seen: true,
        keywords: vec!["$Fwd".into(), "NotPermanent".into()],
        ..Flags::default()
    };
    let msgs = (0..40).map(|i| AppendMsg {
        body: if i == 7 {
            b"Subject: reject-me\r\n\r\nx\r\n".to_vec()
        } else {
            format!("Subject: {i}\r\n\r\nbody\r\n").into_bytes()
        },
        flags: flags.clone(),
        internal_date: Some(1514858645),
    });
    let r = s.append_batch("INBOX", None, msgs).await.unwrap();
    assert_eq!(r.len(), 40);
    let e = r[7].as_ref().unwrap_err().to_string();
    assert!(e.contains("OVERQUOTA") && e.contains("message #7"), "{e}");
    let ok = r[8].as_ref().unwrap();
    assert_eq!(ok.dropped_keywords, vec!["NotPermanent".to_string()]);
    let uids: Vec<u32> = r
        .iter()
        .filter_map(|x| x.as_ref().ok()?.uid.map(|u| u.1.0))
        .collect();
    assert_eq!(uids.len(), 39);
    assert!(
        uids.windows(2).all(|w| w[0] < w[1]),
        "results in input order"
    );
}

#[tokio::test]
async fn expunge_refused_without_uidplus() {
    let port = fake(
        "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] hi\r\n",
        |tag, cmd| {
            if cmd.starts_with("AUTHENTICATE") {
                return Act::Reply(format!("{tag} OK [CAPABILITY IMAP4rev1] in\r\n"));
            }
            login(tag, cmd).unwrap_or_else(|| panic!("unexpected command {cmd}"))
        },
    )
    .await;
    let (mut s, _) = connect(&cfg(port, Security::Plaintext)).await.unwrap();
    s.select("INBOX").await.unwrap();
    let e = s.uid_expunge(&[Uid(1)]).await.unwrap_err();
    assert!(e.to_string().contains("UIDPLUS"), "{e}");
    let e = s.uid_move(&[Uid(1)], "Trash").await.unwrap_err();
    assert!(e.to_string().contains("neither MOVE nor UIDPLUS"), "{e}");
}

#[tokio::test]
async fn status_many_is_pipelined_and_matched_by_name() {
    let port = fake(&greeting(), |tag, cmd| {
        login(tag, cmd).unwrap_or_else(|| {
            let name = cmd
                .strip_prefix("STATUS \"")
                .and_then(|r| r.split('"').next())
                .unwrap();
            if name == "Gone" {
                return Act::Reply(format!("{tag} NO [NONEXISTENT] Mailbox doesn't exist: Gone\r\n"));
            }
            Act::Reply(format!(
                "* STATUS \"{name}\" (MESSAGES {} UIDNEXT 10 UIDVALIDITY 5 HIGHESTMODSEQ 3)\r\n{tag} OK done\r\n",
                name.len()
            ))
        })
    })
    .await;
    let (mut s, _) = connect(&cfg(port, Security::Plaintext)).await.unwrap();
    let r = s.status_many(&["INBOX", "Gone", "Archive"]).await.unwrap();
    assert_eq!(r[0].as_ref().unwrap().messages, 5);
    assert!(
        r[1].as_ref()
            .unwrap_err()
            .to_string()
            .contains("NONEXISTENT")
    );
    let a = r[2].as_ref().unwrap();
    assert_eq!((a.messages, a.highestmodseq.map(|m| m.0)), (7, Some(3)));
}

/// Microsoft's way with an expired token, which Dovecot will not show: a
/// session is ended mid-run with `* BYE … AccessTokenExpired`, and a
/// login with a dead token may get `BYE` instead of NO. The first is a
/// dropped connection (the governor retries the folder on a new one) that
/// spends the session's token, so the new login brings a fresh one
/// without being refused first; the second is a refusal
/// ([`Error::TokenRefused`], the governor's cue to log in once more),
/// and the next login brings a fresh token. Nothing here retries.
#[tokio::test]
async fn an_expired_token_bye_mid_session_and_at_login_spends_the_token() {
    use base64::Engine;
    // Connection 1 takes any token and ends the session at the first
    // command; the others take only tokens this server has not seen
    // before and answer a used one with BYE.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let logins = seen.clone();
    tokio::spawn(async move {
        for conn in 1.. {
            let (s, _) = l.accept().await.unwrap();
            let logins = logins.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut lines = tokio::io::BufReader::new(r);
                w.write_all(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 ENABLE] hi\r\n")
                    .await
                    .unwrap();
                let bye = b"* BYE Session invalidated - AccessTokenExpired\r\n";
                loop {
                    let mut line = String::new();
                    if tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line)
                        .await
                        .unwrap_or(0)
                        == 0
                    {
                        return;
                    }
                    let (tag, cmd) = line.trim_end().split_once(' ').unwrap();
                    let reply = if let Some(ir) = cmd.strip_prefix("AUTHENTICATE XOAUTH2 ") {
                        let ir = base64::engine::general_purpose::STANDARD
                            .decode(ir)
                            .unwrap();
                        let ir = String::from_utf8(ir).unwrap();
                        let tok = ir.split("auth=Bearer ").nth(1).unwrap();
                        let tok = tok.trim_end_matches('\x01').to_string();
                        let used = {
                            let mut l = logins.lock().unwrap();
                            let used = l.contains(&tok);
                            l.push(tok);
                            used
                        };
                        if conn == 1 || !used {
                            format!("{tag} OK [CAPABILITY IMAP4rev1 ENABLE] Logged in\r\n")
                        } else {
                            let _ = w.write_all(bye).await;
                            return;
                        }
                    } else if cmd.starts_with("ENABLE") {
                        format!("{tag} OK\r\n")
                    } else if conn == 1 {
                        let _ = w.write_all(bye).await;
                        return;
                    } else {
                        format!("{tag} OK done\r\n")
                    };
                    w.write_all(reply.as_bytes()).await.unwrap();
                }
            });
        }
    });
    let d = tempfile::tempdir().unwrap();
    let n = d.path().join("n");
    let cmd = format!(
        "n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; echo tok-$n",
        n.display()
    );
    let runs = || std::fs::read_to_string(&n).unwrap().trim().to_string();
    let mut c = cfg(port, Security::Plaintext);
    c.credentials = Credentials::OAuth2(crate::oauth::Bearer::command(&cmd, "bye-test"));
    let (mut s, _) = connect(&c).await.unwrap();
    let e = s.noop().await.unwrap_err();
    assert!(
        e.is_transient() && e.to_string().contains("AccessTokenExpired"),
        "{e}"
    );
    // The BYE spent tok-1: the new session logs in with tok-2 at once.
    let (mut s, _) = connect(&c).await.unwrap();
    s.noop().await.unwrap();
    assert_eq!(*seen.lock().unwrap(), ["tok-1", "tok-2"]);
    assert_eq!(runs(), "2");

    // A login with a token the server takes for dead (here: one it has
    // seen) gets BYE: a refusal of a token that can be replaced.
    let bearer = |who: &str| {
        Credentials::OAuth2(crate::oauth::Bearer::command(
            &format!("{cmd} # {who}"),
            who,
        ))
    };
    c.credentials = bearer("bye-refused");
    std::fs::write(&n, "1").unwrap();
    let e = connect(&c).await.unwrap_err();
    assert!(matches!(e, Error::TokenRefused { .. }), "{e}");
    assert_eq!(e.exit_code(), crate::ExitCode::Auth);
    // The next login brings a fresh token (tok-3).
    let (mut s, _) = connect(&c).await.unwrap();
    s.noop().await.unwrap();
    assert_eq!(runs(), "3");
    // A fresh token refused too: nothing better to try, say what to do.
    c.credentials = bearer("bye-refused-again");
    std::fs::write(&n, "0").unwrap();
    let e = connect(&c).await.unwrap_err();
    assert!(matches!(e, Error::TokenRefused { .. }), "{e}");
    let e = connect(&c).await.unwrap_err();
    assert!(matches!(e, Error::OAuth { .. }), "{e}");
    assert_eq!(runs(), "2");
    assert_eq!(
        *seen.lock().unwrap(),
        ["tok-1", "tok-2", "tok-2", "tok-3", "tok-1", "tok-2"]
    );
}

/// A fake target for [`Session::create_with_role`]: `caps` after login,
/// the hierarchy delimiter `.`, and `reply(command)` for everything else:
/// the response lines, `TAG` standing for the command's tag. Returns the
/// port and the commands it saw.
async fn role_target(
    caps: &'static str,
    reply: fn(&str) -> &'static str,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let port = fake(
        &format!("* OK [CAPABILITY {caps}] fake\r\n"),
        move |tag, cmd| {
            if cmd.starts_with("AUTHENTICATE PLAIN ") {
                return Act::Reply(format!("{tag} OK [CAPABILITY {caps}] in\r\n"));
            }
            if cmd == "LIST \"\" \"\"" {
                return Act::Reply(format!(
                    "* LIST (\\Noselect) \".\" \"\"\r\n{tag} OK done\r\n"
                ));
            }
            log.lock().unwrap().push(cmd.to_string());
            Act::Reply(format!("{}\r\n", reply(cmd).replace("TAG", tag)))
        },
    )
    .await;
    (port, seen)
}

#[tokio::test]
async fn create_with_role_uses_create_special_use_then_metadata_and_survives_a_refusal() {
    const BASE: &str = "IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN";
    const USE: &str = "IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN CREATE-SPECIAL-USE METADATA";
    const MD: &str = "IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN METADATA";
    let sent = crate::types::FolderName::new("Sent");
    let run = async |caps: &'static str, reply: fn(&str) -> &'static str, role| {
        let (port, seen) = role_target(caps, reply).await;
        let (mut s, _) = connect(&cfg(port, Security::Plaintext)).await.unwrap();
        let r = s.create_with_role(&sent, role).await;
        let seen = seen.lock().unwrap().clone();
        (r, seen)
    };

    // CREATE-SPECIAL-USE: one CREATE with the role.
    let (r, seen) = run(USE, |_| "TAG OK done", Some(SpecialUse::Sent)).await;
    assert_eq!(r.unwrap(), ("Sent".into(), RoleOutcome::CreateUse));
    assert_eq!(seen, ["CREATE \"Sent\" (USE (\\Sent))"]);

    // The role refused (Cyrus, for a second \Sent): created without it,
    // after LIST showed the refusal was not about an existing folder.
    let (r, seen) = run(
        USE,
        |c| match c.contains("USE") {
            true => "TAG NO [USEATTR] SPECIAL-USE flag conflict",
            false => "TAG OK done",
        },
        Some(SpecialUse::Sent),
    )
    .await;
    let (_, outcome) = r.unwrap();
    assert_eq!(
        outcome,
        RoleOutcome::Refused("[USEATTR] SPECIAL-USE flag conflict".into())
    );
    assert_eq!(
        seen,
        [
            "CREATE \"Sent\" (USE (\\Sent))",
            "LIST \"\" \"Sent\"",
            "CREATE \"Sent\""
        ]
    );

    // Refused, and the plain CREATE too: that is the error.
    let (r, _) = run(USE, |_| "TAG NO [NOPERM] no", Some(SpecialUse::Sent)).await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("CREATE Sent") && e.contains("NOPERM"), "{e}");

    // Cyrus names an existing folder without [ALREADYEXISTS]: LIST tells.
    let (r, _) = run(
        USE,
        |c| match c.starts_with("LIST") {
            true => "* LIST (\\HasChildren) \".\" Sent\r\nTAG OK done",
            false => "TAG NO Mailbox already exists",
        },
        Some(SpecialUse::Sent),
    )
    .await;
    assert_eq!(r.unwrap().1, RoleOutcome::Existed);

    // METADATA only: CREATE, then SETMETADATA with the value quoted.
    let (r, seen) = run(MD, |_| "TAG OK done", Some(SpecialUse::Drafts)).await;
    assert_eq!(r.unwrap().1, RoleOutcome::Metadata);
    assert_eq!(
        seen,
        [
            "CREATE \"Sent\"",
            "SETMETADATA \"Sent\" (/private/specialuse \"\\\\Drafts\")"
        ]
    );

    // Neither: a plain CREATE. An existing folder is fine either way.
    let (r, seen) = run(BASE, |_| "TAG OK done", Some(SpecialUse::Trash)).await;
    assert_eq!((r.unwrap().1, seen.len()), (RoleOutcome::Unsupported, 1));
    let (r, _) = run(BASE, |_| "TAG NO [ALREADYEXISTS] exists", None).await;
    assert_eq!(r.unwrap().1, RoleOutcome::NotAsked);
}
