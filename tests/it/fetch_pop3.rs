//! `mailferry fetch` from POP3 into a Maildir, against the real Dovecot
//! (and a scripted server without UIDL): byte-exact into INBOX `new/`,
//! no-op reruns, STLS, retention (after fetch, after N days, only committed
//! by QUIT), kill-safety, adoption after a lost state, `mailferry run`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::cli::{Env, Run};
use crate::common::{self, CorpusOpts, Dovecot, Message};
use crate::fetch_imap::{assert_landed_mid_copy, kill_while_writing, maildir_files, wire};

/// What RETR serves for a delivered message: CRLF, plus the CRLF Dovecot
/// adds when the message lacks a final line end.
pub(crate) fn served(m: &Message) -> Vec<u8> {
    let mut w = m.raw_crlf();
    if !w.is_empty() && !w.ends_with(b"\n") {
        w.extend_from_slice(b"\r\n");
    }
    w
}

fn fetch_args<'a>(url: &'a str, to: &'a Path, ca: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "fetch",
        "--from",
        url,
        "--to",
        to.to_str().unwrap(),
        "--ca-file",
        ca,
        "--json",
    ];
    args.extend_from_slice(extra);
    args
}

fn fetch(env: &Env, dv: &Dovecot, to: &Path, extra: &[&str]) -> Run {
    let ca = dv.ca_file().display().to_string();
    let url = dv.url("pop3s");
    env.run(dv.password(), &fetch_args(&url, to, &ca, extra))
}

/// `fetch --delete-after-fetch` in plain text through a fault-injecting
/// proxy in front of the server's POP3 port.
fn fetch_through(env: &Env, dv: &Dovecot, proxy: &crate::proxy::Proxy, to: &Path) -> Run {
    let url = format!("pop3://{}@127.0.0.1:{}", dv.user(), proxy.port);
    let to = to.to_str().unwrap();
    let args = [
        "fetch",
        "--from",
        &url,
        "--to",
        to,
        "--insecure-plaintext",
        "--json",
        "--delete-after-fetch",
    ];
    env.run(dv.password(), &args)
}

fn fetch_at(env: &Env, dv: &Dovecot, to: &Path, now: i64, extra: &[&str]) -> Run {
    let ca = dv.ca_file().display().to_string();
    let url = dv.url("pop3s");
    crate::cli::to_run(
        env.cmd(dv.password())
            .env("MAILFERRY_NOW", now.to_string())
            .args(fetch_args(&url, to, &ca, extra))
            .output()
            .unwrap(),
    )
}

fn summary(r: &Run) -> serde_json::Value {
    let last = r
        .json()
        .pop()
        .unwrap_or_else(|| panic!("no output: {}", r.stderr));
    assert_eq!(last["event"], "summary", "{}", r.stdout);
    last
}

fn counts(r: &Run) -> (u64, u64, u64) {
    let s = summary(r);
    (
        s["copied"].as_u64().unwrap(),
        s["deleted"].as_u64().unwrap(),
        s["failed"].as_u64().unwrap(),
    )
}

/// The UIDLs of `delete` events, sorted.
fn deletes(r: &Run, dry_run: bool) -> Vec<String> {
    let mut v: Vec<String> = r
        .json()
        .into_iter()
        .filter(|e| e["event"] == "delete")
        .map(|e| {
            assert_eq!(e["dry_run"], dry_run, "{e}");
            assert!(e.get("uid").is_none(), "{e}");
            e["uidl"].as_str().unwrap().to_string()
        })
        .collect();
    v.sort();
    v
}

fn load(dv: &Dovecot, seed: u64, n: usize) -> Vec<Message> {
    let msgs = common::corpus(seed, n, &CorpusOpts::small());
    dv.deliver(dv.user(), "INBOX", &msgs);
    msgs
}

fn inbox_count(dv: &Dovecot) -> u32 {
    dv.status(dv.user(), "INBOX").messages
}

/// The Maildir's INBOX holds exactly `msgs` as the server served them, once
/// each, all in `new/`, with the Date: header as mtime where there is one.
fn assert_exact(root: &Path, msgs: &[Message]) {
    let files: Vec<PathBuf> = maildir_files(root).remove("INBOX").unwrap_or_default();
    assert_eq!(files.len(), msgs.len(), "message count");
    let mut by_bytes: HashMap<Vec<u8>, Vec<&PathBuf>> = HashMap::new();
    for p in &files {
        assert_eq!(
            p.parent().unwrap().file_name().unwrap(),
            "new",
            "{} not in new/",
            p.display()
        );
        by_bytes.entry(wire(p)).or_default().push(p);
    }
    let mut dated = 0;
    for m in msgs {
        let w = served(m);
        let p = by_bytes
            .get_mut(&w)
            .and_then(|v| v.pop())
            .unwrap_or_else(|| panic!("a message is missing, altered or stored too few times"));
        if let Some(d) = mailferry::exec::MessageHeaders::parse(&w).date {
            let mtime = std::fs::metadata(p)
                .unwrap()
                .modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            assert_eq!(mtime, d, "mtime = Date: of {}", p.display());
            dated += 1;
        }
    }
    assert!(dated * 10 >= msgs.len() * 9, "only {dated} dated messages");
}

#[test]
fn full_fetch_is_exact_into_new_and_rerun_copies_nothing() {
    let dv = Dovecot::start();
    let msgs = load(&dv, 31, 120);
    let env = Env::new();
    let to = env.path("mail");
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(counts(&r), (120, 0, 0), "{}", r.stdout);
    assert!(summary(&r)["bytes"].as_u64().unwrap() > 0);
    assert_exact(&to, &msgs);
    // default retention keeps everything on the server
    assert_eq!(inbox_count(&dv), 120);

    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(counts(&r), (0, 0, 0), "{}", r.stdout);
    assert_exact(&to, &msgs);

    // new mail: only it is fetched; silent without --json on success
    let extra = common::corpus(32, 3, &CorpusOpts::small());
    dv.deliver(dv.user(), "INBOX", &extra);
    let ca = dv.ca_file().display().to_string();
    let url = dv.url("pop3s");
    let r = env.run(
        dv.password(),
        &[
            "fetch",
            "--from",
            &url,
            "--to",
            to.to_str().unwrap(),
            "--ca-file",
            &ca,
        ],
    );
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
    let all: Vec<Message> = msgs.into_iter().chain(extra).collect();
    assert_exact(&to, &all);
}

#[test]
fn stls_on_the_plain_port_works() {
    let dv = Dovecot::start();
    let msgs = load(&dv, 33, 20);
    let env = Env::new();
    let to = env.path("mail");
    let ca = dv.ca_file().display().to_string();
    let url = dv.url("pop3");
    let r = env.run(dv.password(), &fetch_args(&url, &to, &ca, &[]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(counts(&r), (20, 0, 0));
    assert_exact(&to, &msgs);
}

#[test]
fn delete_after_fetch_dry_run_first_then_for_real() {
    let dv = Dovecot::start();
    let msgs = load(&dv, 34, 40);
    let env = Env::new();
    let to = env.path("mail");
    let r = fetch(&env, &dv, &to, &["--delete-after-fetch", "--dry-run"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let planned = deletes(&r, true);
    assert_eq!(planned.len(), 40);
    assert_eq!(counts(&r), (40, 40, 0));
    assert!(!to.exists(), "a dry run created the Maildir");
    assert!(!env.state().exists(), "a dry run created the state");
    assert_eq!(inbox_count(&dv), 40);

    let r = fetch(&env, &dv, &to, &["--delete-after-fetch"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(counts(&r), (40, 40, 0), "{}", r.stdout);
    assert_eq!(deletes(&r, false), planned);
    assert!(
        r.json()
            .iter()
            .filter(|e| e["event"] == "delete")
            .all(|e| e["reason"] == "delete-after-fetch"
                && e["folder"] == "INBOX"
                && e["size"].as_u64().unwrap() > 0)
    );
    assert_eq!(inbox_count(&dv), 0);
    assert_exact(&to, &msgs);
    let r = fetch(&env, &dv, &to, &["--delete-after-fetch"]);
    assert_eq!(counts(&r), (0, 0, 0), "{}", r.stdout);
}

#[test]
fn delete_after_days_counts_from_when_it_was_stored() {
    let dv = Dovecot::start();
    let msgs = load(&dv, 35, 25);
    let env = Env::new();
    let to = env.path("mail");
    let day = 86_400i64;
    let t0 = 2_000_000_000i64;
    let r = fetch_at(&env, &dv, &to, t0, &["--delete-after", "30"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(counts(&r), (25, 0, 0));
    let r = fetch_at(&env, &dv, &to, t0 + 29 * day, &["--delete-after", "30"]);
    assert_eq!(counts(&r), (0, 0, 0), "{}", r.stdout);
    assert_eq!(inbox_count(&dv), 25);

    let r = fetch_at(
        &env,
        &dv,
        &to,
        t0 + 31 * day,
        &["--delete-after", "30", "--dry-run"],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let planned = deletes(&r, true);
    assert_eq!(planned.len(), 25);
    assert_eq!(inbox_count(&dv), 25);

    let r = fetch_at(&env, &dv, &to, t0 + 31 * day, &["--delete-after", "30"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(deletes(&r, false), planned);
    let evs = r.json();
    let dels: Vec<_> = evs.iter().filter(|e| e["event"] == "delete").collect();
    assert!(
        dels.iter().all(
            |e| e["reason"] == "delete-after 30d" && e["date"].as_str().unwrap().ends_with('Z')
        )
    );
    // the state knew Message-ID and Date: for the events
    assert!(dels.iter().filter(|e| e["message_id"].is_string()).count() >= 20);
    assert!(
        dels.iter()
            .filter(|e| !e["date"].as_str().unwrap().starts_with("1970"))
            .count()
            >= 20
    );
    assert_eq!(inbox_count(&dv), 0);
    assert_exact(&to, &msgs);
}

#[test]
fn killed_at_any_point_then_rerun_gives_the_exact_message_set() {
    let dv = Dovecot::start();
    const N: usize = 1000;
    let msgs = load(&dv, 36, N);
    let env = Env::new();
    let to = env.path("mail");
    let ca = dv.ca_file().display().to_string();
    let url = dv.url("pop3s");
    let args = fetch_args(&url, &to, &ca, &[]);
    let kills = kill_while_writing(&env, dv.password(), &args, &to, |_| {});
    assert_landed_mid_copy(&kills, N, 2);
    let r = env.run(dv.password(), &args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_exact(&to, &msgs);
    let t = std::time::Instant::now();
    let r = env.run(dv.password(), &args);
    eprintln!("no-op rerun: {:?}", t.elapsed());
    assert_eq!(counts(&r), (0, 0, 0));
}

#[test]
fn killed_with_delete_after_fetch_then_rerun_is_exact_and_empties_the_server() {
    let dv = Dovecot::start();
    let msgs = load(&dv, 37, 700);
    let env = Env::new();
    let to = env.path("mail");
    let ca = dv.ca_file().display().to_string();
    let url = dv.url("pop3s");
    let args = fetch_args(&url, &to, &ca, &["--delete-after-fetch"]);
    let mut progress: Vec<(usize, u32)> = Vec::new();
    kill_while_writing(&env, dv.password(), &args, &to, |k| {
        progress.push((k.stored, inbox_count(&dv)));
    });
    // (stored locally, left on the server) after each kill
    eprintln!("after each kill: {progress:?}");
    assert!(
        progress
            .iter()
            .all(|&(stored, left)| stored + left as usize >= 700),
        "a message was deleted on the server before it was stored: {progress:?}"
    );
    assert!(
        progress
            .iter()
            .any(|&(stored, _)| stored > 0 && stored < 700),
        "no kill landed mid-copy: {progress:?}"
    );
    let r = env.run(dv.password(), &args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(inbox_count(&dv), 0);
    assert_exact(&to, &msgs);
}

#[test]
fn dropped_connection_mid_retr_deletes_nothing_and_rerun_completes() {
    let dv = Dovecot::start();
    let msgs = load(&dv, 38, 120);
    // Every session is cut after 60 kB from the server: mid-RETR, long
    // before any DELE or QUIT.
    let proxy = crate::proxy::Proxy::start(dv.pop3_port(), 60_000);
    let env = Env::new();
    let to = env.path("mail");
    let fetch_once = || fetch_through(&env, &dv, &proxy, &to);
    let r = fetch_once();
    assert_ne!(r.code, 0, "the cut connection went unnoticed: {}", r.stdout);
    assert!(
        r.stdout.contains("connection") || r.stderr.contains("connection"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(deletes(&r, false).is_empty(), "{}", r.stdout);
    assert_eq!(inbox_count(&dv), 120, "a dropped session deleted mail");
    let stored = maildir_files(&to).values().map(|v| v.len()).sum::<usize>();
    assert!(stored > 0 && stored < 120, "{stored} stored");
    // The state marks nothing deleted.
    let st = mailferry::state::State::open(&env.state()).unwrap();
    let deleted = st
        .folders(&format!(
            "pop3://{}@127.0.0.1:{} maildir:{}",
            dv.user(),
            proxy.port,
            std::fs::canonicalize(&to).unwrap().display()
        ))
        .unwrap()
        .iter()
        .flat_map(|f| st.messages(f.id).unwrap())
        .filter(|m| m.deleted_at.is_some())
        .count();
    assert_eq!(deleted, 0);
    drop(st);

    proxy.set_cut_after(u64::MAX);
    let r = fetch_once();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(deletes(&r, false).len(), 120);
    assert_eq!(inbox_count(&dv), 0);
    assert_exact(&to, &msgs);
}

#[test]
fn lost_state_adopts_what_is_on_disk_instead_of_duplicating() {
    let dv = Dovecot::start();
    let msgs = load(&dv, 39, 50);
    let env = Env::new();
    let to = env.path("mail");
    assert_eq!(fetch(&env, &dv, &to, &[]).code, 0);
    std::fs::remove_dir_all(env.state().parent().unwrap()).unwrap();
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let s = summary(&r);
    assert_eq!(
        (
            s["copied"].as_u64(),
            s["matched"].as_u64(),
            s["bytes"].as_u64()
        ),
        (Some(0), Some(50), Some(0)),
        "adopted (matched), not downloaded: {}",
        r.stdout
    );
    assert_exact(&to, &msgs);
    assert_eq!(counts(&fetch(&env, &dv, &to, &[])), (0, 0, 0));
    // and retention works on adopted messages
    let r = fetch(&env, &dv, &to, &["--delete-after-fetch"]);
    assert_eq!(counts(&r), (0, 50, 0), "{}", r.stdout);
    assert_eq!(inbox_count(&dv), 0);
    assert_exact(&to, &msgs);
}

#[test]
fn plan_creates_nothing() {
    let dv = Dovecot::start();
    load(&dv, 40, 10);
    let env = Env::new();
    let to = env.path("mail");
    let ca = dv.ca_file().display().to_string();
    let url = dv.url("pop3s");
    let mut args = vec!["plan"];
    args.extend(fetch_args(&url, &to, &ca, &["--delete-after", "3"]));
    let r = env.run(dv.password(), &args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(counts(&r), (10, 0, 0));
    assert!(!to.exists() && !env.state().exists());
}

#[test]
fn run_executes_a_config_job_with_a_pop3s_url() {
    let dv = Dovecot::start();
    let msgs = load(&dv, 41, 15);
    let env = Env::new();
    let to = env.path("mail");
    let cfg = env.path("mailferry.toml");
    std::fs::write(
        &cfg,
        format!(
            "[account.x]\nurl = \"{}\"\npassword_env = \"POP_PW\"\nca_file = \"{}\"\n\n\
             [[job]]\nname = \"pop\"\ncommand = \"fetch\"\nfrom = \"x\"\nto = \"{}\"\ndelete_after_fetch = true\n",
            dv.url("pop3s"),
            dv.ca_file().display(),
            to.display()
        ),
    )
    .unwrap();
    let out = env
        .cmd("")
        .env("POP_PW", dv.password())
        .args(["run", "-c", cfg.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let r = crate::cli::to_run(out);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(counts(&r), (15, 15, 0), "{}", r.stdout);
    assert_exact(&to, &msgs);
    assert_eq!(inbox_count(&dv), 0);
}

// ---- a server without UIDL -------------------------------------------------

/// The fake server's messages, as they are after the last QUIT.
type Mailbox = Arc<Mutex<Vec<Vec<u8>>>>;

/// A plain-text POP3 server without UIDL (and without PIPELINING), serving
/// `msgs` on every connection; DELE is applied at QUIT as RFC 1939 says.
/// Returns its port, the mailbox, a switch (while off, QUIT drops the
/// connection without answering or deleting) and the number of TOPs served.
fn no_uidl_server(msgs: Vec<Vec<u8>>) -> (u16, Mailbox, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let mailbox = Arc::new(Mutex::new(msgs));
    let mb = mailbox.clone();
    let quit_ok = Arc::new(AtomicBool::new(true));
    let q = quit_ok.clone();
    let tops = Arc::new(AtomicUsize::new(0));
    let t = tops.clone();
    std::thread::spawn(move || {
        for sock in l.incoming().flatten() {
            let mb = mb.clone();
            let q = q.clone();
            let t = t.clone();
            std::thread::spawn(move || {
                let mut w = sock.try_clone().unwrap();
                let mut r = BufReader::new(sock);
                let msgs = mb.lock().unwrap().clone();
                let mut dele = std::collections::HashSet::new();
                let _ = w.write_all(b"+OK fake ready\r\n");
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut it = line.split_whitespace();
                    let cmd = it.next().unwrap_or("").to_ascii_uppercase();
                    let arg: Option<usize> = it.next().and_then(|a| a.parse().ok());
                    let body = |i: usize| -> Option<&Vec<u8>> {
                        i.checked_sub(1).and_then(|i| msgs.get(i))
                    };
                    let reply: Vec<u8> = match (cmd.as_str(), arg) {
                        ("CAPA", _) => b"+OK\r\nTOP\r\nUSER\r\n.\r\n".to_vec(),
                        ("USER", _) | ("PASS", _) | ("NOOP", _) => b"+OK\r\n".to_vec(),
                        ("STAT", _) => format!("+OK {} 0\r\n", msgs.len()).into_bytes(),
                        ("LIST", None) => {
                            let mut s = String::from("+OK\r\n");
                            for (i, m) in msgs.iter().enumerate() {
                                s += &format!("{} {}\r\n", i + 1, m.len());
                            }
                            (s + ".\r\n").into_bytes()
                        }
                        ("TOP", Some(i)) | ("RETR", Some(i)) if body(i).is_some() => {
                            let m = body(i).unwrap();
                            let part: &[u8] = if cmd == "TOP" {
                                t.fetch_add(1, Ordering::SeqCst);
                                let end = m
                                    .windows(4)
                                    .position(|w| w == b"\r\n\r\n")
                                    .map_or(m.len(), |p| p + 4);
                                &m[..end]
                            } else {
                                m
                            };
                            let mut out = b"+OK\r\n".to_vec();
                            for l in part.split_inclusive(|&b| b == b'\n') {
                                if l.starts_with(b".") {
                                    out.push(b'.');
                                }
                                out.extend_from_slice(l);
                            }
                            out.extend_from_slice(b".\r\n");
                            out
                        }
                        ("DELE", Some(i)) if body(i).is_some() => {
                            dele.insert(i);
                            b"+OK\r\n".to_vec()
                        }
                        ("QUIT", _) if !q.load(Ordering::SeqCst) => return,
                        ("QUIT", _) => {
                            let mut keep = Vec::new();
                            for (i, m) in msgs.iter().enumerate() {
                                if !dele.contains(&(i + 1)) {
                                    keep.push(m.clone());
                                }
                            }
                            *mb.lock().unwrap() = keep;
                            let _ = w.write_all(b"+OK bye\r\n");
                            return;
                        }
                        _ => b"-ERR unknown command\r\n".to_vec(),
                    };
                    if w.write_all(&reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, mailbox, quit_ok, tops)
}

#[test]
fn a_server_without_uidl_falls_back_to_a_header_digest() {
    let msgs: Vec<Vec<u8>> = common::corpus(42, 12, &CorpusOpts::small())
        .iter()
        .map(served)
        .collect();
    // two identical copies: both are stored, once each
    let mut all = msgs.clone();
    all.push(msgs[0].clone());
    let (port, mailbox, _, _) = no_uidl_server(all.clone());
    let env = Env::new();
    let to = env.path("mail");
    let url = format!("pop3://alice@127.0.0.1:{port}");
    let args = [
        "fetch",
        "--from",
        &url,
        "--to",
        to.to_str().unwrap(),
        "--insecure-plaintext",
        "--json",
    ];
    let r = env.run("pw", &args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.json()
            .iter()
            .any(|e| e["event"] == "warning" && e["message"].as_str().unwrap().contains("UIDL")),
        "{}",
        r.stdout
    );
    assert_eq!(counts(&r), (13, 0, 0), "{}", r.stdout);
    let mut got: Vec<Vec<u8>> = maildir_files(&to)["INBOX"]
        .iter()
        .map(|p| wire(p))
        .collect();
    let mut want = all.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    let r = env.run("pw", &args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(counts(&r), (0, 0, 0), "{}", r.stdout);

    // retention by the same identities
    let r = env.run("pw", &[&args[..], &["--delete-after-fetch"]].concat());
    assert_eq!(counts(&r), (0, 13, 0), "{}", r.stdout);
    assert!(mailbox.lock().unwrap().is_empty());
    assert_eq!(maildir_files(&to)["INBOX"].len(), 13);
}

/// `prune` over a server without UIDL: the identities and the dates come
/// from the same `TOP n 0` pass, and only what is old goes.
#[test]
fn prune_on_a_server_without_uidl_deletes_by_the_date_header() {
    let mail = |i: usize, date: &str| -> Vec<u8> {
        format!(
            "Date: {date}\r\nMessage-ID: <m{i}@example.org>\r\nSubject: m{i}\r\n\r\nbody {i}\r\n"
        )
        .into_bytes()
    };
    let old = "Mon, 1 Jan 2018 00:00:00 +0000";
    let recent = "Sat, 1 Nov 2025 00:00:00 +0000";
    let msgs: Vec<Vec<u8>> = (0..10)
        .map(|i| mail(i, if i % 3 == 0 { recent } else { old }))
        .collect();
    let (port, mailbox, _, tops) = no_uidl_server(msgs.clone());
    let env = Env::new();
    let url = format!("pop3://alice@127.0.0.1:{port}");
    let r = crate::cli::to_run(
        env.cmd("pw")
            .env("MAILFERRY_NOW", "1767225600") // 2026-01-01
            .args([
                "prune",
                "--on",
                &url,
                "--older-than",
                "365",
                "--yes",
                "--insecure-plaintext",
                "--json",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(summary(&r)["deleted"], 6, "{}", r.stdout);
    let subjects: Vec<String> = r
        .json()
        .iter()
        .filter(|e| e["event"] == "delete")
        .map(|e| e["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(subjects.len(), 6, "{}", r.stdout);
    assert!(
        subjects.iter().all(|s| s != "m0" && s != "m3"),
        "{subjects:?}"
    );
    let left: Vec<Vec<u8>> = mailbox.lock().unwrap().clone();
    let want: Vec<Vec<u8>> = msgs.into_iter().step_by(3).collect();
    assert_eq!(left, want);
    // One header read per message: the identities' pass gave the dates
    // and the chosen messages' subjects too.
    assert_eq!(tops.load(Ordering::SeqCst), 10);
}

#[test]
fn deletions_count_only_once_quit_is_confirmed() {
    let msgs: Vec<Vec<u8>> = common::corpus(43, 8, &CorpusOpts::small())
        .iter()
        .map(served)
        .collect();
    let (port, mailbox, quit_ok, _) = no_uidl_server(msgs.clone());
    quit_ok.store(false, Ordering::SeqCst);
    let env = Env::new();
    let to = env.path("mail");
    let url = format!("pop3://alice@127.0.0.1:{port}");
    let args = [
        "fetch",
        "--from",
        &url,
        "--to",
        to.to_str().unwrap(),
        "--insecure-plaintext",
        "--json",
        "--delete-after-fetch",
    ];
    // DELE accepted, then the connection drops at QUIT: nothing deleted,
    // and neither the events nor the state may say otherwise.
    let r = env.run("pw", &args);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(counts(&r), (8, 0, 1), "{}", r.stdout);
    assert!(deletes(&r, false).is_empty(), "{}", r.stdout);
    assert!(r.stdout.contains("not deleted"), "{}", r.stdout);
    assert_eq!(mailbox.lock().unwrap().len(), 8);
    let st = mailferry::state::State::open(&env.state()).unwrap();
    let key = format!(
        "pop3://alice@127.0.0.1:{port} maildir:{}",
        std::fs::canonicalize(&to).unwrap().display()
    );
    let rows: Vec<_> = st
        .folders(&key)
        .unwrap()
        .iter()
        .flat_map(|f| st.messages(f.id).unwrap())
        .collect();
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|m| m.deleted_at.is_none()));
    drop(st);

    // Once QUIT is confirmed, the rerun deletes them (and copies nothing).
    quit_ok.store(true, Ordering::SeqCst);
    let r = env.run("pw", &args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(counts(&r), (0, 8, 0), "{}", r.stdout);
    assert!(mailbox.lock().unwrap().is_empty());
    assert_eq!(maildir_files(&to)["INBOX"].len(), 8);
}

/// A big download is split over parallel sessions (Dovecot does not lock a
/// POP3 mailbox); message numbers differ per session in principle, so the
/// copy must still be exact, and `--connections 1` must stay one session.
#[test]
fn large_download_uses_parallel_sessions_and_stays_exact() {
    let dv = Dovecot::start();
    let msgs = load(&dv, 41, 450);
    let logins = |dv: &Dovecot| dv.log().matches("pop3-login: Info: Login:").count();
    let env = Env::new();
    let to = env.path("mail");
    let r = fetch(&env, &dv, &to, &["--connections", "1"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(logins(&dv), 1, "--connections 1 is one session");
    assert_exact(&to, &msgs);

    let env = Env::new();
    let to = env.path("mail");
    let before = logins(&dv);
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        logins(&dv) - before,
        3,
        "450 messages: the first session and two more"
    );
    assert_exact(&to, &msgs);
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json().pop().unwrap()["copied"], 0);
}

/// An extra session lost halfway through its chunk costs a warning, not
/// the run: the sessions left (here only the first) fetch what it had not
/// delivered, the message set is exact, and retention still runs.
#[test]
fn a_lost_extra_session_is_taken_over_by_the_first() {
    let dv = Dovecot::start();
    let msgs = load(&dv, 43, 450);
    // The first connection is whole; every later one is cut after 64 kB
    // from the server: after its login and UIDL, inside its share.
    let proxy = crate::proxy::Proxy::start_sparing_first(dv.pop3_port(), 64 * 1024);
    let env = Env::new();
    let to = env.path("mail");
    let r = fetch_through(&env, &dv, &proxy, &to);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.json().iter().any(|e| e["event"] == "warning"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("extra session was lost"))),
        "no warning about the lost session: {}",
        r.stdout
    );
    assert_exact(&to, &msgs);
    assert_eq!(summary(&r)["copied"], 450);
    assert_eq!(inbox_count(&dv), 0, "retention ran after the takeover");
}

/// The POP3 commands clients sent after login (Dovecot's rawlog), in order.
fn pop3_commands(dv: &Dovecot) -> Vec<String> {
    let dir = dv.dir().join("home").join(dv.user()).join("rawlog");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".in"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        for line in String::from_utf8_lossy(&std::fs::read(f).unwrap()).lines() {
            let line = match line.split_once(' ') {
                Some((ts, rest)) if ts.parse::<f64>().is_ok() => rest,
                _ => line,
            };
            out.push(line.split(' ').next().unwrap_or("").to_ascii_uppercase());
        }
    }
    out
}

#[test]
fn a_rerun_with_nothing_new_asks_uidl_only_and_one_with_new_mail_lists() {
    let dv = Dovecot::start_with(
        common::DovecotOpts::default().config("protocol pop3 {\n  rawlog_dir = %h/rawlog\n}"),
    );
    let first = load(&dv, 38, 30);
    let env = Env::new();
    let to = env.path("mail");
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(counts(&r), (30, 0, 0), "{}{}", r.stdout, r.stderr);

    // Nothing new: after login only CAPA (sent with UIDL), UIDL and QUIT.
    crate::push::clear_rawlog(&dv);
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(counts(&r), (0, 0, 0), "{}{}", r.stdout, r.stderr);
    assert_eq!(pop3_commands(&dv), ["CAPA", "UIDL", "QUIT"]);

    // New mail: the sizes are listed, and only the new message is read.
    let more = load(&dv, 39, 1);
    crate::push::clear_rawlog(&dv);
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(counts(&r), (1, 0, 0), "{}{}", r.stdout, r.stderr);
    assert_eq!(pop3_commands(&dv), ["CAPA", "UIDL", "LIST", "RETR", "QUIT"]);
    let all: Vec<Message> = first.into_iter().chain(more).collect();
    assert_exact(&to, &all);
}
