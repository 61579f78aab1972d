//! The IMAP client layer against a real Dovecot (tests/common): TLS trust,
//! STARTTLS, auth errors, LIST decoding, STATUS/EXAMINE, CHANGEDSINCE and
//! VANISHED, byte-exact body fetches, APPEND with APPENDUID, UID EXPUNGE,
//! and a proxy that cuts the connection mid-FETCH.

use crate::common;

use std::time::{Duration, Instant, UNIX_EPOCH};

use common::corpus::{CorpusOpts, corpus, folder_set};
use common::{Dovecot, DovecotOpts};
use mailferry::Error;
use mailferry::endpoint::{
    Credentials, Protocol, Secret, Security, ServerConfig, ServerUrl, Timeouts, TlsOptions,
};
use mailferry::imap::{self, AppendMsg, Session, StoreMode};
use mailferry::types::{Flags, ModSeq, Uid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

fn cfg(dv: &Dovecot, security: Security, port: u16, ca: bool) -> ServerConfig {
    ServerConfig {
        url: ServerUrl {
            protocol: Protocol::Imap,
            security,
            host: "localhost".into(),
            port,
            user: dv.user().into(),
            folder: None,
        },
        credentials: Credentials::Password(Secret::new(dv.password())),
        tls: TlsOptions {
            ca_file: ca.then(|| dv.ca_file().to_path_buf()),
            fingerprint: None,
            ..Default::default()
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(10),
            command: Duration::from_secs(20),
        },
        quirks: Default::default(),
        pace: Default::default(),
    }
}

async fn imaps(dv: &Dovecot) -> Session {
    imap::connect(&cfg(dv, Security::Implicit, dv.imaps_port(), true))
        .await
        .unwrap()
        .0
}

/// Fetches everything in the selected folder through the channel API.
async fn fetch_all(
    s: &mut Session,
    uids: &[Uid],
) -> (imap::FetchReport, Vec<imap::FetchedMessage>) {
    let (tx, mut rx) = mpsc::channel::<imap::FetchedMessage>(16);
    let collector = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(mut m) = rx.recv().await {
            // Kept in memory: give its bytes back to the budget.
            m.lease = Default::default();
            v.push(m);
        }
        v
    });
    let r = s.fetch_bodies(uids, &tx).await;
    drop(tx);
    let got = collector.await.unwrap();
    (r.unwrap(), got)
}

#[tokio::test]
async fn imaps_needs_the_ca_and_starttls_works() {
    let dv = Dovecot::start();
    let (s, info) = imap::connect(&cfg(&dv, Security::Implicit, dv.imaps_port(), true))
        .await
        .unwrap();
    assert!(info.tls && info.cert.is_some());
    assert!(info.capabilities.uidplus && info.capabilities.condstore);
    assert!(
        s.enabled().iter().any(|e| e == "QRESYNC"),
        "{:?}",
        s.enabled()
    );
    s.logout(Duration::from_secs(2)).await;

    let e = imap::connect(&cfg(&dv, Security::Implicit, dv.imaps_port(), false))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    assert!(e.to_string().contains("not trusted"), "{e}");

    // The name is checked, not just the chain: "127.1" reaches the same
    // server, but the certificate names only localhost and 127.0.0.1.
    let mut other_name = cfg(&dv, Security::Implicit, dv.imaps_port(), true);
    other_name.url.host = "127.1".into();
    let e = imap::connect(&other_name).await.unwrap_err();
    assert!(
        e.to_string().contains("not trusted") && e.to_string().contains("mismatch"),
        "{e}"
    );

    let (_, info) = imap::connect(&cfg(&dv, Security::StartTls, dv.imap_port(), true))
        .await
        .unwrap();
    assert!(info.tls && info.cert.is_some());
    // capabilities were refreshed after STARTTLS and auth
    assert!(!info.capabilities.starttls && info.capabilities.move_);
}

#[tokio::test]
async fn starttls_refused_when_not_offered_and_wrong_password() {
    let dv = Dovecot::start_with(DovecotOpts::default().no_tls());
    let e = imap::connect(&cfg(&dv, Security::StartTls, dv.imap_port(), false))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    assert!(e.to_string().contains("does not offer STARTTLS"), "{e}");

    let mut c = cfg(&dv, Security::Plaintext, dv.imap_port(), false);
    c.credentials = Credentials::Password(Secret::new("wrong-password-xyz"));
    let e = imap::connect(&c).await.unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert_eq!(e.exit_code() as i32, 3);
    assert!(!e.to_string().contains("wrong-password-xyz"), "{e}");
}

#[tokio::test]
async fn list_decodes_nested_and_non_ascii_folders() {
    for sep in ['.', '/'] {
        let dv = Dovecot::start_with(DovecotOpts::default().separator(sep));
        for f in folder_set() {
            if f != "INBOX" {
                dv.create_folder(dv.user(), f);
            }
        }
        let mut s = imaps(&dv).await;
        let l = s.list_folders().await.unwrap();
        let names: Vec<&str> = l.iter().map(|f| f.name.as_str()).collect();
        for f in folder_set() {
            assert!(names.contains(&f), "{f} missing from {names:?} (sep {sep})");
        }
        assert!(
            l.iter()
                .all(|f| f.warning.is_none() && f.delimiter == Some(sep))
        );
        // the wire name goes back to the server as is
        let jp = l.iter().find(|f| f.name.as_str() == "日本語/子").unwrap();
        s.examine(&jp.wire).await.unwrap();
        // and create() encodes the same way
        let w = s
            .create(&mailferry::types::FolderName::new("Neu/Größe"))
            .await
            .unwrap();
        assert_eq!(w, format!("Neu{sep}Gr&APYA3w-e"));
        assert!(
            s.create(&mailferry::types::FolderName::new("Neu/Größe"))
                .await
                .is_ok()
        );
        let ns = s.namespace().await.unwrap();
        assert_eq!(ns.delimiter, Some(sep));
    }
}

#[tokio::test]
async fn status_examine_changedsince_vanished_and_expunge() {
    let dv = Dovecot::start();
    let msgs = corpus(7, 5, &CorpusOpts::small());
    dv.deliver(dv.user(), "INBOX", &msgs);
    let mut s = imaps(&dv).await;
    let want = dv.status(dv.user(), "INBOX");
    let st = s.status("INBOX").await.unwrap();
    assert_eq!(st.messages, 5);
    assert_eq!(st.uidvalidity.unwrap().0, want.uidvalidity);
    assert_eq!(st.uidnext.unwrap().0, want.uidnext);
    assert_eq!(st.highestmodseq.unwrap().0, want.highestmodseq);
    let many = s.status_many(&["INBOX", "NoSuchFolder"]).await.unwrap();
    assert_eq!(many[0].as_ref().unwrap(), &st);
    assert!(many[1].is_err());

    let ex = s.examine("INBOX").await.unwrap();
    assert_eq!(
        (ex.exists, ex.uidvalidity.0, ex.read_only),
        (5, want.uidvalidity, true)
    );
    assert!(ex.highestmodseq.is_some() && !ex.nomodseq);
    // writes are refused on an EXAMINEd folder before anything is sent
    assert!(s.uid_expunge(&[Uid(1)]).await.is_err());

    let sel = s.select("INBOX").await.unwrap();
    let hms = sel.highestmodseq.unwrap();
    let all = s.uid_fetch_meta(None, None).await.unwrap();
    assert_eq!(all.messages.len(), 5);
    for (m, d) in all.messages.iter().zip(&msgs) {
        assert_eq!(m.size as usize, d.rfc822_size());
        let t = d
            .internal_date
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert_eq!(m.internal_date, t);
        assert_eq!(m.flags.to_maildir(), {
            let mut f: Vec<char> = d.flags.chars().collect();
            f.sort();
            f.into_iter().collect::<String>()
        });
    }
    assert_eq!(
        s.uid_search_all().await.unwrap(),
        (1..=5).map(Uid).collect::<Vec<_>>()
    );

    // someone else marks UID 3 \Deleted; we change UID 2 and expunge UID 1
    let deleted = Flags {
        deleted: true,
        ..Flags::default()
    };
    s.uid_store_flags(&[Uid(3)], StoreMode::Add, &deleted)
        .await
        .unwrap();
    let fl = Flags {
        flagged: true,
        keywords: vec!["$Label1".into()],
        ..Flags::default()
    };
    s.uid_store_flags(&[Uid(2)], StoreMode::Add, &fl)
        .await
        .unwrap();
    s.uid_expunge(&[Uid(1)]).await.unwrap();
    assert_eq!(
        s.uid_search_all().await.unwrap(),
        vec![Uid(2), Uid(3), Uid(4), Uid(5)]
    );

    let changed = s.uid_fetch_meta(None, Some(hms)).await.unwrap();
    let uids: Vec<u32> = changed.messages.iter().map(|m| m.uid.0).collect();
    assert_eq!(uids, vec![2, 3], "only changed messages");
    assert!(changed.messages[0].flags.flagged);
    assert_eq!(
        changed.messages[0].flags.keywords,
        vec!["$Label1".to_string()]
    );
    assert!(changed.vanished.contains(Uid(1)), "{:?}", changed.vanished);
    let hs = s
        .fetch_headers(&[Uid(2), Uid(4)], &["MESSAGE-ID"])
        .await
        .unwrap();
    assert_eq!(hs.len(), 2);
    assert_eq!(hs[0].message_id, msgs[1].message_id);
    assert_eq!(hs[0].size as usize, msgs[1].rfc822_size());
    let _ = s.take_changes();
}

#[tokio::test]
async fn tagged_no_is_surfaced() {
    let dv = Dovecot::start();
    let mut s = imaps(&dv).await;
    let e = s.uid_fetch_meta(None, None).await.unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e}");
    assert!(
        e.to_string().contains("BAD") || e.to_string().contains("NO"),
        "{e}"
    );
    let e = s.examine("NoSuchFolder").await.unwrap_err();
    assert!(e.to_string().contains("NoSuchFolder"), "{e}");
    assert!(s.selected().is_none());
    s.noop().await.unwrap();
}

#[tokio::test]
async fn fetch_bodies_is_byte_identical() {
    let dv = Dovecot::start();
    let msgs = corpus(11, 150, &CorpusOpts::default().max_size(3 << 20));
    dv.deliver(dv.user(), "INBOX", &msgs);
    let mut s = imaps(&dv).await;
    s.examine("INBOX").await.unwrap();
    let uids: Vec<Uid> = (1..=152).map(Uid).collect(); // 151, 152 do not exist
    let (rep, got) = fetch_all(&mut s, &uids).await;
    assert_eq!(rep.delivered, 150);
    assert_eq!(rep.missing, vec![Uid(151), Uid(152)]);
    assert!(rep.failed.is_empty());
    for (m, d) in got.iter().zip(&msgs) {
        assert_eq!(m.body, d.raw_crlf(), "UID {}", m.uid);
        assert_eq!(m.size as usize, d.rfc822_size());
        let t = d
            .internal_date
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert_eq!(m.internal_date, t);
    }
    // EXAMINE + BODY.PEEK: nothing became \Seen
    let meta = s.uid_fetch_meta(None, None).await.unwrap();
    let seen_before = msgs.iter().filter(|m| m.flags.contains('S')).count();
    assert_eq!(
        meta.messages.iter().filter(|m| m.flags.seen).count(),
        seen_before
    );
}

#[tokio::test]
async fn append_batch_keeps_flags_date_and_returns_appenduid() {
    let dv = Dovecot::start();
    dv.create_folder(dv.user(), "Archive");
    let mut s = imaps(&dv).await;
    let msgs = corpus(3, 40, &CorpusOpts::small());
    let flags = Flags {
        seen: true,
        answered: true,
        keywords: vec!["$Forwarded".into()],
        ..Flags::default()
    };
    let batch = msgs.iter().enumerate().map(|(i, m)| AppendMsg {
        body: m.raw_crlf(),
        flags: flags.clone(),
        internal_date: Some(1_514_858_645 + i as i64),
    });
    let res = s.append_batch("Archive", None, batch).await.unwrap();
    let uids: Vec<(u32, Uid)> = res
        .iter()
        .map(|r| {
            let a = r.as_ref().unwrap();
            assert!(a.dropped_keywords.is_empty());
            let (uv, u) = a.uid.unwrap();
            (uv.0, u)
        })
        .collect();
    let sel = s.examine("Archive").await.unwrap();
    assert!(uids.iter().all(|(uv, _)| *uv == sel.uidvalidity.0));
    let (rep, got) = fetch_all(&mut s, &uids.iter().map(|x| x.1).collect::<Vec<_>>()).await;
    assert_eq!(rep.delivered, 40);
    for (i, (m, d)) in got.iter().zip(&msgs).enumerate() {
        assert_eq!(m.uid, uids[i].1);
        assert_eq!(m.body, d.raw_crlf());
        assert_eq!(m.internal_date, 1_514_858_645 + i as i64);
        assert!(m.flags.seen && m.flags.answered && !m.flags.flagged);
        assert_eq!(m.flags.keywords, vec!["$Forwarded".to_string()]);
    }
    // a keyword the target does not keep is dropped and reported
    let perm = vec!["\\Seen".to_string()];
    let one = AppendMsg {
        body: msgs[0].raw_crlf(),
        flags: flags.clone(),
        internal_date: None,
    };
    let r = s.append_batch("Archive", Some(&perm), [one]).await.unwrap();
    assert_eq!(
        r[0].as_ref().unwrap().dropped_keywords,
        vec!["$Forwarded".to_string()]
    );
    // a missing target is a per-message error, not a batch failure
    let one = AppendMsg {
        body: msgs[0].raw_crlf(),
        flags: Flags::default(),
        internal_date: None,
    };
    let r = s
        .append_batch("Nope", None, [one.clone(), one])
        .await
        .unwrap();
    assert!(
        r.iter()
            .all(|x| x.as_ref().unwrap_err().to_string().contains("TRYCREATE"))
    );
}

#[tokio::test]
async fn uid_move_moves_only_given_uids() {
    let dv = Dovecot::start();
    dv.deliver(dv.user(), "INBOX", &corpus(5, 4, &CorpusOpts::small()));
    dv.create_folder(dv.user(), "Trash");
    let mut s = imaps(&dv).await;
    s.select("INBOX").await.unwrap();
    let c = s
        .uid_move(&[Uid(2), Uid(4)], "Trash")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.map.iter().map(|p| p.0.0).collect::<Vec<_>>(), vec![2, 4]);
    assert_eq!(s.uid_search_all().await.unwrap(), vec![Uid(1), Uid(3)]);
    assert_eq!(s.status("Trash").await.unwrap().messages, 2);
}

/// Forwards client↔server and closes both sides once `cut_after` bytes
/// came from the server.
async fn cutting_proxy(target: u16, cut_after: usize) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (client, _) = l.accept().await.unwrap();
        let server = TcpStream::connect(("127.0.0.1", target)).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let up = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut cr, &mut sw).await;
        });
        let mut sent = 0usize;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let n = n.min(cut_after - sent);
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            sent += n;
            if sent >= cut_after {
                break;
            }
        }
        up.abort();
        let _ = cw.shutdown().await;
    });
    port
}

#[tokio::test]
async fn connection_cut_mid_fetch_is_an_error() {
    let dv = Dovecot::start();
    let msgs = corpus(13, 200, &CorpusOpts::small());
    dv.deliver(dv.user(), "INBOX", &msgs);
    let total: usize = msgs.iter().map(|m| m.rfc822_size()).sum();
    let proxy = cutting_proxy(dv.imap_port(), 2000 + total / 2).await;
    let (mut s, _) = imap::connect(&cfg(&dv, Security::Plaintext, proxy, false))
        .await
        .unwrap();
    s.examine("INBOX").await.unwrap();
    let (tx, mut rx) = mpsc::channel(1000);
    let uids: Vec<Uid> = (1..=200).map(Uid).collect();
    let e = s.fetch_bodies(&uids, &tx).await.unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    let m = e.to_string();
    assert!(
        m.contains("connection lost during UID FETCH") && m.contains("INBOX"),
        "{m}"
    );
    drop(tx);
    let mut n = 0;
    while let Some(m) = rx.recv().await {
        assert_eq!(
            m.body,
            msgs[m.uid.0 as usize - 1].raw_crlf(),
            "delivered ones are whole"
        );
        n += 1;
    }
    assert!(n > 0 && n < 200, "{n}");
}

/// Throughput on loopback; run with `--nocapture` to see the numbers.
#[tokio::test]
async fn throughput_fetch_and_append_2000() {
    let dv = Dovecot::start();
    let msgs = corpus(21, 2000, &CorpusOpts::small());
    dv.deliver(dv.user(), "INBOX", &msgs);
    dv.create_folder(dv.user(), "Copy");
    let bytes: usize = msgs.iter().map(|m| m.rfc822_size()).sum();
    let mut s = imaps(&dv).await;
    s.examine("INBOX").await.unwrap();
    let _ = s.uid_fetch_meta(None, None).await.unwrap(); // warm the index

    let t = Instant::now();
    let meta = s.uid_fetch_meta(None, None).await.unwrap();
    let meta_s = t.elapsed().as_secs_f64();
    assert_eq!(meta.messages.len(), 2000);

    let t = Instant::now();
    let uids: Vec<Uid> = meta.messages.iter().map(|m| m.uid).collect();
    let (rep, got) = fetch_all(&mut s, &uids).await;
    let fetch_s = t.elapsed().as_secs_f64();
    assert_eq!(rep.delivered, 2000);

    let t = Instant::now();
    let batch = got.into_iter().map(|m| AppendMsg {
        body: m.body,
        flags: m.flags,
        internal_date: Some(m.internal_date),
    });
    let r = s.append_batch("Copy", None, batch).await.unwrap();
    let append_s = t.elapsed().as_secs_f64();
    assert!(r.iter().all(|x| x.is_ok()));

    let t = Instant::now();
    let st = s.status_many(&["INBOX", "Copy"]).await.unwrap();
    let status_s = t.elapsed().as_secs_f64();
    assert_eq!(st[1].as_ref().unwrap().messages, 2000);
    let _ = ModSeq(0);
    println!(
        "2000 msgs, {:.1} MB: meta {:.3}s; fetch_bodies {:.3}s = {:.0} msg/s, {:.1} MB/s; \
         append_batch {:.3}s = {:.0} msg/s; STATUS x2 {:.1} ms",
        bytes as f64 / 1e6,
        meta_s,
        fetch_s,
        2000.0 / fetch_s,
        bytes as f64 / 1e6 / fetch_s,
        append_s,
        2000.0 / append_s,
        status_s * 1e3
    );
}
