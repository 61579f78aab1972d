//! The POP3 client against a real Dovecot (tests/common): TLS both ways,
//! login failures, listings, byte-exact RETR (dots, big messages),
//! pipelining, and that only QUIT commits DELE.

use crate::common;

use std::time::{Duration, Instant, UNIX_EPOCH};

use common::corpus::{CorpusOpts, Message, corpus};
use common::{Dovecot, DovecotOpts};
use mailferry::Error;
use mailferry::endpoint::{
    Credentials, Protocol, Secret, Security, ServerConfig, ServerUrl, Timeouts, TlsOptions,
};
use mailferry::pop3::{self, Fetched, Pop3Client};
use tokio::sync::mpsc;

fn config(dc: &Dovecot, security: Security, password: &str) -> ServerConfig {
    let port = match security {
        Security::Implicit => dc.pop3s_port(),
        _ => dc.pop3_port(),
    };
    ServerConfig {
        url: ServerUrl {
            protocol: Protocol::Pop3,
            security,
            host: "localhost".into(),
            port,
            user: dc.user().into(),
            folder: None,
        },
        credentials: Credentials::Password(Secret::new(password)),
        tls: TlsOptions {
            ca_file: Some(dc.ca_file().to_path_buf()),
            fingerprint: None,
            ..Default::default()
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(10),
            command: Duration::from_secs(30),
        },
        quirks: Default::default(),
        pace: Default::default(),
    }
}

async fn login(dc: &Dovecot, security: Security) -> Pop3Client {
    let (c, _) = pop3::connect(&config(dc, security, dc.password()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c
}

fn msg(raw: &[u8]) -> Message {
    Message {
        raw: raw.to_vec(),
        internal_date: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        flags: String::new(),
        message_id: None,
    }
}

/// Every line POP3 must stuff, plus a lone dot and a line of only dots.
fn dotted() -> Message {
    msg(b"From: a@example.org\nSubject: dots\nMessage-ID: <dots@example.org>\n\n.hidden\n..two dots\n...three\n.\n..\nend\n")
}

/// What RETR returns for a delivered message: CRLF line ends, and a CRLF
/// the server adds before the terminating dot when the message lacks a
/// final line end (POP3 cannot express a missing one).
fn wire(m: &Message) -> Vec<u8> {
    let mut w = m.raw_crlf();
    if !w.is_empty() && !w.ends_with(b"\n") {
        w.extend_from_slice(b"\r\n");
    }
    w
}

async fn retr_all(c: &mut Pop3Client, msgnos: &[u32]) -> Vec<Fetched> {
    let (tx, mut rx) = mpsc::channel::<Fetched>(8);
    let collect = async {
        let mut v = Vec::new();
        while let Some(mut f) = rx.recv().await {
            // Kept in memory: give its bytes back to the budget.
            f.lease = Default::default();
            v.push(f);
        }
        v
    };
    let (r, v) = tokio::join!(c.retr_many(msgnos, tx), collect);
    r.unwrap_or_else(|e| panic!("{e}"));
    v
}

#[tokio::test]
async fn pop3s_listing_and_byte_exact_retr() {
    let dc = Dovecot::start();
    let mut msgs = vec![dotted()];
    msgs.extend(corpus(7, 40, &CorpusOpts::small()));
    dc.deliver(dc.user(), "INBOX", &msgs);

    let (mut c, info) = pop3::connect(&config(&dc, Security::Implicit, dc.password()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(info.tls && info.cert.is_some());
    assert!(info.pipelining && info.uidl, "{:?}", info.capabilities);
    assert_eq!(info.auth_mechanism, "AUTH PLAIN");

    let n = msgs.len() as u32;
    let (count, total) = c.stat().await.unwrap();
    assert_eq!(count, n);
    let uidl = c.uidl_all().await.unwrap().expect("Dovecot has UIDL");
    let list = c.list_all().await.unwrap();
    assert_eq!(uidl.len(), msgs.len());
    assert_eq!(
        uidl.iter().map(|u| u.0).collect::<Vec<_>>(),
        list.iter().map(|l| l.0).collect::<Vec<_>>()
    );
    let mut ids: Vec<_> = uidl.iter().map(|u| u.1.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), msgs.len(), "UIDLs are unique");
    assert_eq!(list.iter().map(|l| l.1).sum::<u64>(), total);

    for (i, m) in msgs.iter().enumerate() {
        let no = i as u32 + 1;
        let got = c.retr(no).await.unwrap();
        assert_eq!(got, wire(m), "message {no} differs");
        assert_eq!(got.len() as u64, list[i].1, "LIST size of {no}");
    }
    assert_eq!(c.retr(1).await.unwrap(), b"From: a@example.org\r\nSubject: dots\r\nMessage-ID: <dots@example.org>\r\n\r\n.hidden\r\n..two dots\r\n...three\r\n.\r\n..\r\nend\r\n");
    let top = c.top(1, 0).await.unwrap();
    assert!(
        top.starts_with(b"From: a@example.org\r\n") && !top.windows(7).any(|w| w == b"hidden\r")
    );
    assert!(c.retr(n + 1).await.is_err(), "no such message");
    c.noop().await.unwrap();
    c.quit().await.unwrap();
}

#[tokio::test]
async fn stls_on_the_plain_port() {
    let dc = Dovecot::start();
    dc.deliver(dc.user(), "INBOX", &[dotted()]);
    let (mut c, info) = pop3::connect(&config(&dc, Security::StartTls, dc.password()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(info.tls && info.cert.is_some());
    assert!(
        !info.capabilities.iter().any(|c| c == "STLS"),
        "re-CAPA after TLS"
    );
    assert_eq!(c.retr(1).await.unwrap(), wire(&dotted()));
    c.quit().await.unwrap();
}

#[tokio::test]
async fn stls_not_offered_is_refused() {
    let dc = Dovecot::start_with(DovecotOpts::default().no_tls());
    let e = pop3::connect(&config(&dc, Security::StartTls, dc.password()))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    // ...while plain text works when asked for explicitly.
    let (c, info) = pop3::connect(&config(&dc, Security::Plaintext, dc.password()))
        .await
        .unwrap();
    assert!(!info.tls);
    c.quit().await.unwrap();
}

#[tokio::test]
async fn wrong_password_is_an_auth_error() {
    let dc = Dovecot::start();
    for sec in [Security::Implicit, Security::StartTls] {
        let e = pop3::connect(&config(&dc, sec, "not-the-password"))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Auth { .. }), "{e}");
        assert_eq!(e.exit_code() as i32, 3);
        assert!(!e.to_string().contains("not-the-password"));
    }
}

#[tokio::test]
async fn big_message_is_byte_identical() {
    let dc = Dovecot::start();
    let mut raw = b"From: big@example.org\nSubject: big\n\n".to_vec();
    let mut i = 0u64;
    while raw.len() < 5_500_000 {
        if i.is_multiple_of(1000) {
            raw.extend_from_slice(b".dot line in a big message\n");
        }
        i += 1;
        raw.extend_from_slice(format!("{i:076}\n").as_bytes());
    }
    let big = msg(&raw);
    dc.deliver(dc.user(), "INBOX", std::slice::from_ref(&big));
    let mut c = login(&dc, Security::Implicit).await;
    let t = Instant::now();
    let got = c.retr(1).await.unwrap();
    eprintln!("5.5 MB RETR over TLS: {:?}", t.elapsed());
    assert!(got == wire(&big), "big message differs");
    c.quit().await.unwrap();
}

#[tokio::test]
async fn pipelined_retr_many_equals_sequential() {
    let dc = Dovecot::start();
    let mut msgs = corpus(11, 1000, &CorpusOpts::small().max_size(8 * 1024));
    msgs[500] = dotted();
    dc.deliver(dc.user(), "INBOX", &msgs);
    let nums: Vec<u32> = (1..=1000).collect();

    let mut c = login(&dc, Security::Implicit).await;
    assert!(c.window() > 1);
    let piped = retr_all(&mut c, &nums).await;
    c.set_window(1);
    let seq = retr_all(&mut c, &nums).await;
    assert_eq!(piped.len(), 1000);
    for ((p, s), m) in piped.iter().zip(&seq).zip(&msgs) {
        assert_eq!(p.msgno, s.msgno);
        let (p, s) = (p.result.as_ref().unwrap(), s.result.as_ref().unwrap());
        assert!(p == s, "pipelined and sequential differ");
        if *p != wire(m) {
            let w = wire(m);
            let i = p
                .iter()
                .zip(&w)
                .position(|(a, b)| a != b)
                .unwrap_or(p.len().min(w.len()));
            panic!(
                "msg differs at {i} (got {} want {}): got {:?} want {:?}",
                p.len(),
                w.len(),
                String::from_utf8_lossy(&p[i.saturating_sub(20)..(i + 20).min(p.len())]),
                String::from_utf8_lossy(&w[i.saturating_sub(20)..(i + 20).min(w.len())])
            );
        }
    }
    c.quit().await.unwrap();
}

#[tokio::test]
async fn only_quit_commits_dele() {
    let dc = Dovecot::start();
    let msgs = corpus(3, 10, &CorpusOpts::small());
    dc.deliver(dc.user(), "INBOX", &msgs);
    let first: Vec<u32> = (1..=5).collect();

    // DELE, then the connection just goes away: nothing is deleted.
    let mut c = login(&dc, Security::Implicit).await;
    let before = c.uidl_all().await.unwrap().unwrap();
    let r = c.dele_many(&first).await.unwrap();
    assert!(r.iter().all(|(_, r)| r.is_ok()));
    assert_eq!(c.stat().await.unwrap().0, 5, "deleted hidden in-session");
    drop(c);
    let mut c = login(&dc, Security::Implicit).await;
    assert_eq!(c.stat().await.unwrap().0, 10);

    // RSET undoes, QUIT commits.
    c.dele(1).await.unwrap();
    c.rset().await.unwrap();
    c.dele_many(&first).await.unwrap();
    c.quit().await.unwrap();
    let mut c = login(&dc, Security::Implicit).await;
    assert_eq!(c.stat().await.unwrap().0, 5);
    let after = c.uidl_all().await.unwrap().unwrap();
    let want: Vec<_> = before[5..].iter().map(|u| u.1.clone()).collect();
    assert_eq!(after.into_iter().map(|u| u.1).collect::<Vec<_>>(), want);
    c.quit().await.unwrap();
}

/// Throughput of pipelined vs one-at-a-time RETR; run with
/// `cargo test --release --test pop3_client -- --ignored --nocapture bench`.
#[tokio::test]
#[ignore]
async fn bench_pipelined_vs_sequential() {
    let dc = Dovecot::start();
    let msgs = corpus(5, 2000, &CorpusOpts::small().max_size(16 * 1024));
    let bytes: usize = msgs.iter().map(|m| m.raw_crlf().len()).sum();
    dc.deliver(dc.user(), "INBOX", &msgs);
    let nums: Vec<u32> = (1..=msgs.len() as u32).collect();
    for sec in [Security::Implicit, Security::Plaintext] {
        let mut c = login(&dc, sec).await;
        // Warm Dovecot's index and caches once.
        retr_all(&mut c, &nums).await;
        for window in [1usize, 8, 32] {
            c.set_window(window);
            let t = Instant::now();
            let got = retr_all(&mut c, &nums).await;
            let s = t.elapsed().as_secs_f64();
            assert_eq!(got.len(), msgs.len());
            eprintln!(
                "{sec:?} window {window:>2}: {} msgs, {:.1} MB in {s:.3} s = {:.0} msg/s, {:.1} MB/s",
                msgs.len(),
                bytes as f64 / 1e6,
                msgs.len() as f64 / s,
                bytes as f64 / 1e6 / s
            );
        }
        c.quit().await.unwrap();
    }
}
