//! Issue 13, item 3: IMAP keywords survive `fetch` the way Dovecot stores
//! them in a Maildir (`dovecot-keywords` + letters `a`–`z` in the file
//! name), follow the server's changes on a rerun, are what a Dovecot
//! serving the backup shows, and come back with `push` from the Maildir.
//! Against real Dovecots; the keywords are set with IMAP STORE.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use crate::cli::{Env, to_run};
use crate::common::cyrus::Session;
use crate::common::{self, CorpusOpts, Dovecot, Message};
use crate::fetch_imap::{fetch, serve_copy, summary};

/// A corpus where every message has its own Message-ID, to key on it.
fn messages(seed: u64, n: usize) -> Vec<Message> {
    let opts = CorpusOpts {
        malformed_fraction: 0.0,
        duplicate_fraction: 0.0,
        ..CorpusOpts::small()
    };
    let msgs = common::corpus(seed, n, &opts);
    assert!(msgs.iter().all(|m| m.message_id.is_some()), "seed {seed}");
    msgs
}

fn mid(m: &Message) -> String {
    norm(m.message_id.as_deref().unwrap())
}

fn norm(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

fn set(kws: &[&str]) -> BTreeSet<String> {
    kws.iter().map(|s| s.to_string()).collect()
}

/// A Maildir folder directory's `dovecot-keywords`: index → keyword.
fn table(dir: &Path) -> BTreeMap<usize, String> {
    std::fs::read_to_string(dir.join("dovecot-keywords"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (i, k) = l.split_once(' ')?;
            Some((i.parse().ok()?, k.to_string()))
        })
        .collect()
}

/// Message-ID → the keywords its file's letters name, per `dovecot-keywords`
/// (read here independently of mailferry's code).
fn local_keywords(dir: &Path) -> HashMap<String, BTreeSet<String>> {
    let t = table(dir);
    let mut out = HashMap::new();
    for sub in ["cur", "new"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let letters = name.split_once(":2,").map_or("", |(_, f)| f).to_string();
            let kws: BTreeSet<String> = letters
                .chars()
                .filter(char::is_ascii_lowercase)
                .map(|c| {
                    t.get(&((c as u8 - b'a') as usize))
                        .unwrap_or_else(|| panic!("letter {c} of {name} names no keyword"))
                        .clone()
                })
                .collect();
            let raw = std::fs::read(e.path()).unwrap();
            let id = common::corpus::header(&raw, "Message-ID").expect("a Message-ID");
            assert!(out.insert(norm(&id), kws).is_none(), "{id} twice");
        }
    }
    out
}

/// Message-ID → keywords as a Dovecot serves them (`doveadm fetch`).
fn served_keywords(dv: &Dovecot, folder: &str) -> HashMap<String, BTreeSet<String>> {
    let out = dv.doveadm(&[
        "-f",
        "tab",
        "fetch",
        "-u",
        dv.user(),
        "hdr.message-id flags",
        "mailbox",
        &dv.server_name(folder),
        "all",
    ]);
    out.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (id, flags) = l.split_once('\t').unwrap_or((l, ""));
            let kws = flags
                .split_whitespace()
                .filter(|f| !f.starts_with('\\'))
                .map(str::to_string)
                .collect();
            (norm(id), kws)
        })
        .collect()
}

fn store(dv: &Dovecot, folder: &str, cmds: &[&str]) {
    let mut s = Session::login(dv.imap_port(), dv.user(), dv.password()).unwrap();
    s.ok(&format!("SELECT \"{}\"", dv.server_name(folder)));
    for c in cmds {
        s.ok(c);
    }
    s.logout();
}

#[test]
fn keywords_are_stored_as_dovecot_does_carried_on_rerun_and_restored_by_push() {
    let dv = Dovecot::start();
    let msgs = messages(43, 8);
    dv.deliver(dv.user(), "INBOX", &msgs[..5]);
    dv.deliver(dv.user(), "Archive", &msgs[5..]);
    store(
        &dv,
        "INBOX",
        &[
            "UID STORE 1 +FLAGS ($Forwarded Work)",
            "UID STORE 2 +FLAGS (Work)",
            "UID STORE 3 +FLAGS ($Junk \\Flagged)",
        ],
    );
    store(&dv, "Archive", &["UID STORE 1 +FLAGS (Travel)"]);
    let mut inbox: HashMap<String, BTreeSet<String>> =
        msgs[..5].iter().map(|m| (mid(m), set(&[]))).collect();
    inbox.insert(mid(&msgs[0]), set(&["$Forwarded", "Work"]));
    inbox.insert(mid(&msgs[1]), set(&["Work"]));
    inbox.insert(mid(&msgs[2]), set(&["$Junk"]));
    let mut archive: HashMap<String, BTreeSet<String>> =
        msgs[5..].iter().map(|m| (mid(m), set(&[]))).collect();
    archive.insert(mid(&msgs[5]), set(&["Travel"]));
    assert_eq!(
        served_keywords(&dv, "INBOX"),
        inbox,
        "the server's own view"
    );

    // The backup's INBOX already has keywords another client named.
    let env = Env::new();
    let to = env.path("mail");
    std::fs::create_dir_all(&to).unwrap();
    std::fs::write(to.join("dovecot-keywords"), "0 Existing\n1 $Forwarded\n").unwrap();
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(summary(&r)["copied"], 8, "{}", r.stdout);
    let t = table(&to);
    assert_eq!(t.get(&0).map(String::as_str), Some("Existing"), "{t:?}");
    assert_eq!(t.get(&1).map(String::as_str), Some("$Forwarded"), "{t:?}");
    assert_eq!(t.len(), 4, "Work and $Junk added after them: {t:?}");
    assert_eq!(local_keywords(&to), inbox);
    let adir = to.join(".Archive");
    assert_eq!(table(&adir), BTreeMap::from([(0, "Travel".to_string())]));
    assert_eq!(local_keywords(&adir), archive);
    assert!(!to.join("dovecot-keywords.lock").exists());

    // A Dovecot serving the backup sees the very same keywords.
    let served = Dovecot::start();
    serve_copy(&served, &to);
    assert_eq!(served_keywords(&served, "INBOX"), inbox);
    assert_eq!(served_keywords(&served, "Archive"), archive);
    drop(served);

    // Keyword-only changes on the server: carried on the next run. A
    // keyword a local client set that the server never had stays.
    let first = std::fs::read_dir(to.join("cur"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let raw = std::fs::read(p).unwrap();
            common::corpus::header(&raw, "Message-ID").map(|i| norm(&i)) == Some(mid(&msgs[0]))
        })
        .unwrap();
    let local = first.with_file_name(format!("{}a", first.file_name().unwrap().to_string_lossy()));
    std::fs::rename(&first, &local).unwrap();
    store(
        &dv,
        "INBOX",
        &[
            "UID STORE 1 -FLAGS (Work)",
            "UID STORE 1 +FLAGS (Later)",
            "UID STORE 2 -FLAGS (Work)",
            "UID STORE 4 +FLAGS (Work)",
        ],
    );
    inbox.insert(mid(&msgs[0]), set(&["$Forwarded", "Existing", "Later"]));
    inbox.insert(mid(&msgs[1]), set(&[]));
    inbox.insert(mid(&msgs[3]), set(&["Work"]));
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let s = summary(&r);
    assert_eq!(
        (s["copied"].as_u64(), s["flags_updated"].as_u64()),
        (Some(0), Some(3)),
        "{}",
        r.stdout
    );
    assert_eq!(local_keywords(&to), inbox);
    let t2 = table(&to);
    assert_eq!(t2.get(&0).map(String::as_str), Some("Existing"));
    assert!(
        t.iter().all(|(i, k)| t2.get(i) == Some(k)),
        "an index was reused or renumbered: {t:?} → {t2:?}"
    );
    assert!(t2.values().any(|k| k == "Later"), "{t2:?}");
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(summary(&r)["flags_updated"], 0, "{}", r.stdout);

    // Round trip: push the backup to another Dovecot, keywords included.
    let target = Dovecot::start();
    let ca = target.ca_file().display().to_string();
    let r = to_run(
        env.cmd("unused")
            .env("MAILFERRY_TO_PASSWORD", target.password())
            .args([
                "push",
                "--from",
                to.to_str().unwrap(),
                "--to",
                &target.url("imaps"),
                "--ca-file",
                &ca,
                "--json",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(summary(&r)["copied"], 8, "{}", r.stdout);
    assert_eq!(served_keywords(&target, "INBOX"), inbox);
    assert_eq!(served_keywords(&target, "Archive"), archive);
}

#[test]
fn a_keyword_beyond_26_is_kept_in_the_state_with_a_warning() {
    let dv = Dovecot::start();
    let msgs = messages(44, 2);
    dv.deliver(dv.user(), "INBOX", &msgs);
    store(&dv, "INBOX", &["UID STORE 1 +FLAGS (Omega Zeta)"]);
    let env = Env::new();
    let to = env.path("mail");
    std::fs::create_dir_all(&to).unwrap();
    let full: String = (0..25).map(|i| format!("{i} k{i}\n")).collect();
    std::fs::write(to.join("dovecot-keywords"), &full).unwrap();

    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let warned: Vec<serde_json::Value> = r
        .json()
        .into_iter()
        .filter(|e| e["event"] == "warning" && e["message"].as_str().unwrap().contains("Zeta"))
        .collect();
    assert_eq!(warned.len(), 1, "{}", r.stdout);
    assert_eq!(warned[0]["folder"], "INBOX");
    let t = table(&to);
    assert_eq!(t.len(), 26);
    assert_eq!(t[&25], "Omega");
    let mut want: HashMap<String, BTreeSet<String>> =
        msgs.iter().map(|m| (mid(m), set(&[]))).collect();
    want.insert(mid(&msgs[0]), set(&["Omega"]));
    assert_eq!(local_keywords(&to), want);

    // The state knows Zeta: no change seen, no warning again.
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(summary(&r)["flags_updated"], 0, "{}", r.stdout);
    assert!(!r.stdout.contains("Zeta"), "{}", r.stdout);
    // Its removal on the server is a change like any other.
    store(&dv, "INBOX", &["UID STORE 1 -FLAGS (Zeta)"]);
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(summary(&r)["flags_updated"], 1, "{}", r.stdout);
    assert_eq!(local_keywords(&to), want);
    assert_eq!(
        std::fs::read_to_string(to.join("dovecot-keywords")).unwrap(),
        {
            let mut f = full.clone();
            f.push_str("25 Omega\n");
            f
        }
    );
}
