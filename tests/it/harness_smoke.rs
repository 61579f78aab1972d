//! Checks the test harness itself (tests/common): a real Dovecot starts,
//! speaks IMAP/POP3 with and without TLS, takes delivered mail with the
//! right dates, flags, sizes and UID order, and changes UIDVALIDITY on
//! request; the corpus is deterministic and has the advertised mix.

use crate::common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::corpus::{CorpusOpts, Message, corpus, folder_set, header, rfc2822_date, spread};
use common::{Dovecot, DovecotOpts, mutf7};
use openssl::ssl::{SslConnector, SslMethod, SslStream};

fn tcp(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads one CRLF line.
fn line<S: Read>(r: &mut BufReader<S>) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l
}

/// Sends an IMAP command with tag `t` and returns all lines up to and
/// including the tagged completion.
fn imap<S: Read + Write>(r: &mut BufReader<S>, cmd: &str) -> String {
    write!(r.get_mut(), "t {cmd}\r\n").unwrap();
    r.get_mut().flush().unwrap();
    let mut out = String::new();
    loop {
        let l = line(r);
        assert!(!l.is_empty(), "EOF after {cmd}: {out}");
        out.push_str(&l);
        if l.starts_with("t ") {
            return out;
        }
    }
}

/// The tagged completion line of an [`imap`] answer.
fn tagged(answer: &str) -> &str {
    answer.lines().last().unwrap_or("")
}

/// Sends a POP3 command; multi-line answers are read up to the lone ".".
fn pop3<S: Read + Write>(r: &mut BufReader<S>, cmd: &str, multi: bool) -> String {
    write!(r.get_mut(), "{cmd}\r\n").unwrap();
    r.get_mut().flush().unwrap();
    let mut out = line(r);
    if multi && out.starts_with("+OK") {
        loop {
            let l = line(r);
            assert!(!l.is_empty(), "EOF after {cmd}");
            out.push_str(&l);
            if l == ".\r\n" {
                break;
            }
        }
    }
    out
}

fn connector(ca: Option<&Path>) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
    if let Some(ca) = ca {
        b.set_ca_file(ca).unwrap();
    }
    b.build()
}

fn tls(ca: Option<&Path>, host: &str, s: TcpStream) -> Result<SslStream<TcpStream>, String> {
    connector(ca).connect(host, s).map_err(|e| e.to_string())
}

#[test]
fn imap_and_pop3_greet_and_advertise() {
    let d = Dovecot::start();
    let mut r = BufReader::new(tcp(d.imap_port()));
    assert!(line(&mut r).starts_with("* OK"));
    let caps = imap(&mut r, "CAPABILITY");
    assert!(caps.contains(" STARTTLS"), "{caps}");
    let login = imap(&mut r, &format!("LOGIN {} {}", d.user(), d.password()));
    assert!(tagged(&login).starts_with("t OK"), "{login}");
    for cap in ["CONDSTORE", "QRESYNC", "UIDPLUS", "LITERAL+", "MOVE"] {
        assert!(login.contains(cap), "{cap} missing: {login}");
    }

    let mut r = BufReader::new(tcp(d.pop3_port()));
    assert!(line(&mut r).starts_with("+OK"));
    let capa = pop3(&mut r, "CAPA", true);
    for cap in ["PIPELINING", "UIDL", "STLS", "USER"] {
        assert!(capa.lines().any(|l| l == cap), "{cap} missing: {capa}");
    }
    assert!(pop3(&mut r, &format!("USER {}", d.user()), false).starts_with("+OK"));
    assert!(pop3(&mut r, &format!("PASS {}", d.password()), false).starts_with("+OK"));
    assert!(pop3(&mut r, "UIDL", true).starts_with("+OK"));
}

#[test]
fn tls_verifies_only_with_the_generated_ca() {
    let d = Dovecot::start();
    let ca = Some(d.ca_file());
    for host in ["localhost", "127.0.0.1"] {
        let s = tls(ca, host, tcp(d.imaps_port())).unwrap();
        assert!(line(&mut BufReader::new(s)).starts_with("* OK"));
    }
    let s = tls(ca, "localhost", tcp(d.pop3s_port())).unwrap();
    assert!(line(&mut BufReader::new(s)).starts_with("+OK"));

    let err = tls(None, "localhost", tcp(d.imaps_port())).unwrap_err();
    assert!(err.contains("certificate verify failed"), "{err}");
    let err = tls(ca, "mail.example.com", tcp(d.imaps_port())).unwrap_err();
    assert!(err.contains("certificate verify failed"), "{err}");

    // STARTTLS and STLS upgrade to the same certificate.
    let mut r = BufReader::new(tcp(d.imap_port()));
    line(&mut r);
    assert!(imap(&mut r, "STARTTLS").starts_with("t OK"));
    let mut r = BufReader::new(tls(ca, "localhost", r.into_inner()).unwrap());
    let login = imap(&mut r, &format!("LOGIN {} {}", d.user(), d.password()));
    assert!(tagged(&login).starts_with("t OK"), "{login}");

    let mut r = BufReader::new(tcp(d.pop3_port()));
    line(&mut r);
    assert!(pop3(&mut r, "STLS", false).starts_with("+OK"));
    let mut r = BufReader::new(tls(ca, "localhost", r.into_inner()).unwrap());
    assert!(pop3(&mut r, "CAPA", true).contains("UIDL"));
}

#[test]
fn wrong_password_fails_fast_and_urls_name_the_ports() {
    let d = Dovecot::start_with(DovecotOpts::default().user("bob@example.com", "hunter2"));
    let mut r = BufReader::new(tcp(d.imap_port()));
    line(&mut r);
    let t = Instant::now();
    assert!(imap(&mut r, "LOGIN alice nope").starts_with("t NO"));
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "auth_failure_delay not 0"
    );
    let ok = imap(&mut r, "LOGIN bob@example.com hunter2");
    assert!(tagged(&ok).starts_with("t OK"), "{ok}");
    assert_eq!(d.password_of("bob@example.com"), "hunter2");

    assert_eq!(
        d.url("imaps"),
        format!("imaps://alice@localhost:{}", d.imaps_port())
    );
    assert_eq!(
        d.url("pop3"),
        format!("pop3://alice@localhost:{}", d.pop3_port())
    );
    assert_eq!(
        d.url_for("imap", "bob@example.com"),
        format!("imap://bob%40example.com@localhost:{}", d.imap_port())
    );
}

fn flag_names(letters: &str) -> Vec<&'static str> {
    let mut v: Vec<&str> = letters
        .chars()
        .map(|c| match c {
            'S' => "\\Seen",
            'R' => "\\Answered",
            'F' => "\\Flagged",
            'T' => "\\Deleted",
            'D' => "\\Draft",
            _ => panic!("flag {c}"),
        })
        .collect();
    v.sort();
    v
}

/// (uid, unixtime, physical size, flags without \Recent, message-id) per
/// message, in UID order.
fn fetch_meta(d: &Dovecot, folder: &str) -> Vec<(u32, u64, usize, Vec<String>, String)> {
    let out = d.doveadm(&[
        "-f",
        "tab",
        "fetch",
        "-u",
        d.user(),
        "uid date.received.unixtime size.physical flags hdr.message-id",
        "mailbox",
        &d.server_name(folder),
    ]);
    out.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let mut flags: Vec<String> = f[3]
                .split_whitespace()
                .filter(|f| *f != "\\Recent")
                .map(String::from)
                .collect();
            flags.sort();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                flags,
                f.get(4).unwrap_or(&"").to_string(),
            )
        })
        .collect()
}

fn assert_folder_matches(d: &Dovecot, folder: &str, msgs: &[Message]) {
    let meta = fetch_meta(d, folder);
    assert_eq!(meta.len(), msgs.len(), "{folder}");
    for ((uid, date, size, flags, mid), m) in meta.iter().zip(msgs) {
        let want_date = m
            .internal_date
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(*date, want_date, "{folder} uid {uid} INTERNALDATE");
        assert_eq!(*size, m.raw.len(), "{folder} uid {uid} size");
        assert_eq!(flags, &flag_names(&m.flags), "{folder} uid {uid} flags");
        assert_eq!(
            mid,
            m.message_id.as_deref().unwrap_or(""),
            "{folder} uid {uid}"
        );
    }
}

#[test]
fn delivered_mail_has_counts_dates_sizes_flags_and_order() {
    let d = Dovecot::start();
    let folders = ["INBOX", "Archive/2024", "Entwürfe", "日本語/子"];
    let msgs = corpus(7, 50, &CorpusOpts::small());
    let spread = spread(msgs, &folders);
    for (folder, msgs) in &spread {
        d.deliver(d.user(), folder, msgs);
    }
    let mut total = 0;
    for (folder, msgs) in &spread {
        assert!(!msgs.is_empty());
        assert_eq!(
            d.status(d.user(), folder).messages as usize,
            msgs.len(),
            "{folder}"
        );
        assert_folder_matches(&d, folder, msgs);
        total += msgs.len();
    }
    assert_eq!(total, 50);
    let listing = d.doveadm(&["mailbox", "status", "-u", d.user(), "messages", "*"]);
    assert!(listing.contains("Entwürfe messages="), "{listing}");
    assert!(listing.contains("日本語.子 messages="), "{listing}");

    // Visible over IMAP under the mUTF-7 name, and a second delivery into
    // an already indexed folder continues the UID order.
    let mut r = BufReader::new(tcp(d.imap_port()));
    line(&mut r);
    imap(&mut r, &format!("LOGIN {} {}", d.user(), d.password()));
    let n = spread[2].1.len();
    let sel = imap(&mut r, "SELECT \"Entw&APw-rfe\"");
    assert!(sel.contains(&format!("* {n} EXISTS")), "{sel}");
    imap(&mut r, "CLOSE");
    let more = corpus(8, 3, &CorpusOpts::small());
    d.deliver(d.user(), "Entwürfe", &more);
    let mut all = spread[2].1.clone();
    all.extend(more);
    assert_folder_matches(&d, "Entwürfe", &all);
    let sel = imap(&mut r, "SELECT \"Entw&APw-rfe\"");
    assert!(sel.contains(&format!("* {} EXISTS", n + 3)), "{sel}");
}

#[test]
fn folder_paths_match_dovecots_own_names_with_slash_separator() {
    let d = Dovecot::start_with(DovecotOpts::default().separator('/'));
    for f in folder_set() {
        if f != "INBOX" {
            d.create_folder(d.user(), f);
        }
        assert!(
            d.folder_path(d.user(), f).is_dir(),
            "{f}: {:?}",
            d.folder_path(d.user(), f)
        );
    }
    assert!(d.maildir(d.user()).join(".Archive.2024").is_dir());
    assert!(d.maildir(d.user()).join(".&ZeVnLIqe-.&W1A-").is_dir());
    let mut r = BufReader::new(tcp(d.imap_port()));
    line(&mut r);
    imap(&mut r, &format!("LOGIN {} {}", d.user(), d.password()));
    let list = imap(&mut r, "LIST \"\" \"*\"");
    assert!(list.contains("\"/\" Archive/2024"), "{list}");
    assert!(list.contains("\"/\" a&-b\r\n"), "{list}");
    assert!(list.contains("\\Sent) \"/\" Sent"), "{list}");
    // deliver() into a folder Dovecot created itself.
    d.deliver(d.user(), "a&b", &corpus(1, 2, &CorpusOpts::small()));
    assert_eq!(d.status(d.user(), "a&b").messages, 2);
}

#[test]
fn reset_uidvalidity_changes_it_and_keeps_the_mail() {
    let d = Dovecot::start();
    let msgs = corpus(3, 5, &CorpusOpts::small());
    d.deliver(d.user(), "Archive/2024", &msgs);
    let before = d.status(d.user(), "Archive/2024");
    assert_eq!(before.messages, 5);
    let new = d.reset_uidvalidity(d.user(), "Archive/2024");
    let after = d.status(d.user(), "Archive/2024");
    assert_ne!(before.uidvalidity, after.uidvalidity);
    assert_eq!(after.uidvalidity, new);
    assert_eq!(after.messages, 5);
    // Twice in a row (same second) still changes it.
    assert_ne!(d.reset_uidvalidity(d.user(), "Archive/2024"), new);
    d.deliver(d.user(), "INBOX", &msgs[..1]);
    let inbox = d.status(d.user(), "INBOX").uidvalidity;
    assert_ne!(d.reset_uidvalidity(d.user(), "INBOX"), inbox);
}

#[test]
fn no_tls_and_extra_config_options() {
    let d = Dovecot::start_with(
        DovecotOpts::default()
            .no_tls()
            .config("imap_capability = IMAP4rev1 LITERAL+ UIDPLUS"),
    );
    let mut r = BufReader::new(tcp(d.imap_port()));
    let greeting = line(&mut r);
    assert!(greeting.starts_with("* OK"), "{greeting}");
    assert!(!greeting.contains("STARTTLS"), "{greeting}");
    let login = imap(&mut r, &format!("LOGIN {} {}", d.user(), d.password()));
    assert!(tagged(&login).starts_with("t OK"), "{login}");
    let caps = imap(&mut r, "CAPABILITY");
    assert!(!caps.contains("CONDSTORE"), "{caps}");

    let mut r = BufReader::new(tcp(d.pop3_port()));
    line(&mut r);
    let capa = pop3(&mut r, "CAPA", true);
    assert!(!capa.contains("STLS"), "{capa}");
    let stls = pop3(&mut r, "STLS", false);
    assert!(stls.starts_with("-ERR"), "{stls}");
}

#[test]
fn many_instances_in_parallel_get_distinct_ports() {
    let ds: Vec<Dovecot> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3).map(|_| s.spawn(Dovecot::start)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ports: Vec<u16> = ds
        .iter()
        .flat_map(|d| [d.imap_port(), d.imaps_port(), d.pop3_port(), d.pop3s_port()])
        .collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 12);
    let dirs: Vec<_> = ds.iter().map(|d| d.dir().to_path_buf()).collect();
    for d in ds {
        d.stop();
    }
    for dir in dirs {
        assert!(!dir.exists(), "{dir:?} left behind");
    }
}

#[test]
fn corpus_is_deterministic_and_has_the_advertised_mix() {
    let opts = CorpusOpts::default().max_size(400_000);
    let a = corpus(42, 600, &opts);
    assert_eq!(a[..100], corpus(42, 100, &opts)[..]);
    assert_ne!(a[0].raw, corpus(43, 1, &opts)[0].raw);

    let sizes: Vec<usize> = a.iter().map(|m| m.raw.len()).collect();
    assert!(sizes.iter().all(|&s| s <= 400_000));
    let typical = sizes
        .iter()
        .filter(|&&s| (2_000..=20_500).contains(&s))
        .count();
    assert!(typical > 360, "only {typical} of 600 are 2–20 KB");
    let big = sizes.iter().filter(|&&s| s >= 250_000).count();
    assert!((8..=40).contains(&big), "{big} big messages");

    let texts: Vec<&str> = a
        .iter()
        .map(|m| std::str::from_utf8(&m.raw).unwrap())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("\n.\n")),
        "no lone dot line"
    );
    assert!(texts.iter().any(|t| t.contains("\n..")));
    assert!(
        a.iter()
            .any(|m| m.subject().is_some_and(|s| s.starts_with("=?UTF-8?B?")))
    );
    assert!(
        a.iter()
            .any(|m| m.subject().is_some_and(|s| s.starts_with("=?UTF-8?Q?")))
    );
    assert!(a.iter().any(|m| m.subject().is_some_and(|s| !s.is_ascii())));
    assert!(texts.iter().any(|t| t.contains("multipart/mixed")));
    assert!(a.iter().all(|m| !m.raw.contains(&b'\r')));
    assert!(
        a.iter().any(|m| m.message_id.is_none()),
        "no message without Message-ID"
    );
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for id in a.iter().filter_map(|m| m.message_id.as_deref()) {
        *ids.entry(id).or_default() += 1;
    }
    assert!(ids.values().any(|&n| n > 1), "no duplicate Message-ID");
    for m in &a {
        assert_eq!(
            header(&m.raw, "Message-ID"),
            m.message_id,
            "message_id field"
        );
        if let Some(date) = header(&m.raw, "Date") {
            let secs = m
                .internal_date
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let zone = &date[date.len() - 5..];
            let min = zone[1..3].parse::<i32>().unwrap() * 60 + zone[3..].parse::<i32>().unwrap();
            let min = if zone.starts_with('-') { -min } else { min };
            assert_eq!(date, rfc2822_date(secs, min));
        }
    }
    let years: std::collections::BTreeSet<String> = a
        .iter()
        .filter_map(|m| header(&m.raw, "Date"))
        .map(|d| d.split(' ').nth(3).unwrap().to_string())
        .collect();
    assert!(years.len() >= 5, "{years:?}");
    let malformed = a
        .iter()
        .zip(&texts)
        .filter(|(m, t)| {
            header(&m.raw, "Date").is_none()
                || t.contains("no colon")
                || t.contains("-broken")
                || !t.contains("\n\n")
                || t.lines().any(|l| l.len() > 998)
        })
        .count();
    assert!((2..=20).contains(&malformed), "{malformed} malformed");

    let spread = spread(a, &folder_set());
    assert_eq!(spread.len(), 7);
    assert!(spread.iter().all(|(_, m)| !m.is_empty()));
    assert!(spread[0].1.len() > spread[1].1.len());
    assert_eq!(spread.iter().map(|(_, m)| m.len()).sum::<usize>(), 600);
}

#[test]
fn unlimited_corpus_has_multi_megabyte_attachments() {
    let a = corpus(5, 120, &CorpusOpts::default());
    let max = a.iter().map(|m| m.raw.len()).max().unwrap();
    assert!(max > 1_000_000, "largest message only {max} bytes");
    assert!(a.iter().all(|m| m.raw.len() < 5_100_000));
}

#[test]
fn mutf7_encodes_like_dovecot() {
    assert_eq!(mutf7::encode("INBOX"), "INBOX");
    assert_eq!(mutf7::encode("Entwürfe"), "Entw&APw-rfe");
    assert_eq!(mutf7::encode("a&b"), "a&-b");
    assert_eq!(mutf7::encode("日本語"), "&ZeVnLIqe-");
    assert_eq!(
        mutf7::encode("Отправленные"),
        "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"
    );
}
