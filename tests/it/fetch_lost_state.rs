//! Issue 13, item 2: a fetch whose state does not know a folder's
//! messages — state file lost, Maildir copied, folder recreated on the
//! server with a new UIDVALIDITY, or a Maildir another tool made — pairs
//! the server's messages with the files already there (Message-ID + size,
//! content digest where the Message-ID is missing or shared) and downloads
//! only what is really new. Against Dovecot and Cyrus IMAP 3.6.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::cli::{Env, Run};
use crate::common::{self, CorpusOpts, Cyrus, Dovecot, Message};
use crate::fetch_imap::{
    assert_exact_copy, copy_dir, dir_of, fetch, load, maildir_files, summary, wire,
};

/// The per-folder "already in the Maildir" events: folder → message.
fn matched(r: &Run) -> HashMap<String, String> {
    r.json()
        .into_iter()
        .filter(|e| e["event"] == "warning")
        .filter_map(|e| {
            let m = e["message"].as_str()?.to_string();
            m.contains("already in the Maildir")
                .then(|| (e["folder"].as_str().unwrap().to_string(), m))
        })
        .collect()
}

/// The number written before `what` in an event message ("12 by …").
fn count_of(msg: &str, what: &str) -> usize {
    let head = &msg[..msg
        .find(what)
        .unwrap_or_else(|| panic!("no {what:?} in {msg:?}"))];
    head.trim_end()
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no count before {what:?} in {msg:?}"))
}

/// Message-IDs (sorted, `None` for files without one) of a folder directory.
fn message_ids_on_disk(files: &[PathBuf]) -> Vec<Option<String>> {
    let mut v: Vec<Option<String>> = files
        .iter()
        .map(|p| common::corpus::header(&std::fs::read(p).unwrap(), "Message-ID"))
        .collect();
    v.sort();
    v
}

fn message_ids(msgs: &[Message]) -> Vec<Option<String>> {
    let mut v: Vec<Option<String>> = msgs
        .iter()
        .map(|m| common::corpus::header(&m.raw, "Message-ID"))
        .collect();
    v.sort();
    v
}

fn rfc822_bytes(msgs: &[Message]) -> u64 {
    msgs.iter().map(|m| m.rfc822_size() as u64).sum()
}

#[test]
fn copied_maildir_fresh_state_and_new_uidvalidity_store_every_message_once() {
    let dv = Dovecot::start();
    // Messages without a Message-ID and with shared ones: the digest path.
    let opts = CorpusOpts {
        malformed_fraction: 0.15,
        duplicate_fraction: 0.15,
        ..CorpusOpts::small()
    };
    let mut spread = load(&dv, 61, 120, &opts);
    let all: Vec<&Message> = spread.iter().flat_map(|(_, m)| m).collect();
    assert!(
        all.iter().any(|m| m.message_id.is_none())
            && all
                .iter()
                .filter_map(|m| m.message_id.as_ref())
                .any(|id| all
                    .iter()
                    .filter(|m| m.message_id.as_ref() == Some(id))
                    .count()
                    > 1),
        "the corpus lost its premise"
    );
    let env = Env::new();
    let mail = env.path("mail");
    let r = fetch(&env, &dv, &mail, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let copy = env.path("copy");
    copy_dir(&mail, &copy);

    // INBOX and Archive/2024 recreated on the server: new UIDVALIDITY, new
    // UIDs; a flag changed meanwhile; a few new messages in both.
    let recreated = ["INBOX", "Archive/2024"];
    for f in recreated {
        dv.reset_uidvalidity(dv.user(), f);
    }
    let inbox = &mut spread[0].1;
    let pick = (0..inbox.len())
        .find(|&i| {
            let id = &inbox[i].message_id;
            id.is_some()
                && !inbox[i].flags.contains('F')
                && inbox.iter().filter(|m| &m.message_id == id).count() == 1
        })
        .unwrap();
    let id = inbox[pick].message_id.clone().unwrap();
    dv.doveadm(&[
        "flags",
        "add",
        "-u",
        dv.user(),
        "\\Flagged",
        "mailbox",
        "INBOX",
        "header",
        "Message-ID",
        &id,
    ]);
    let mut f: Vec<char> = format!("{}F", inbox[pick].flags).chars().collect();
    f.sort_unstable();
    inbox[pick].flags = f.into_iter().collect();
    let old: HashMap<String, usize> = spread.iter().map(|(f, m)| (f.clone(), m.len())).collect();
    let new = common::corpus(62, 5, &CorpusOpts::small());
    dv.deliver(dv.user(), "INBOX", &new[..3]);
    dv.deliver(dv.user(), "Archive/2024", &new[3..]);
    for (f, m) in &mut spread {
        match f.as_str() {
            "INBOX" => m.extend_from_slice(&new[..3]),
            "Archive/2024" => m.extend_from_slice(&new[3..]),
            _ => {}
        }
    }

    // One file of the copy belongs to another account feeding the same
    // Maildir: never claimed, so its message is downloaded for this one.
    let archive = copy.join(dir_of(&dv, "Archive/2024"));
    let theirs = maildir_files(&copy)[&dir_of(&dv, "Archive/2024")][0].clone();
    let name = theirs.file_name().unwrap().to_string_lossy().into_owned();
    let at = name.find(",X=").unwrap();
    let foreign = archive
        .join("cur")
        .join(format!("{},X=00000000-i1-1:2,S", &name[..at]));
    std::fs::rename(&theirs, &foreign).unwrap();
    let foreign_bytes = std::fs::read(&foreign).unwrap();
    let foreign_size = wire(&foreign).len() as u64;

    // A fresh state (lost, or a new machine) on the copy.
    let env2 = Env::new();
    let r = fetch(&env2, &dv, &copy, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let s = summary(&r);
    let total: usize = spread.iter().map(|(_, m)| m.len()).sum();
    // Downloaded: the new mail and the other account's message (its file
    // is not ours to claim); everything else matched on disk.
    assert_eq!(s["copied"], new.len() as u64 + 1, "{}", r.stdout);
    assert_eq!(s["matched"], (total - new.len() - 1) as u64, "{}", r.stdout);
    assert_eq!(
        s["bytes"],
        rfc822_bytes(&new) + foreign_size,
        "only the new messages (and the foreign file's) downloaded: {}",
        r.stdout
    );
    let ev = matched(&r);
    eprintln!("{ev:#?}");
    let mut by_digest = 0;
    for f in recreated {
        let m = &ev[f];
        let n = count_of(m, "by Message-ID") + count_of(m, "by content digest");
        let want = old[f] - usize::from(f == "Archive/2024");
        assert_eq!(n, want, "{f}: {m}");
        by_digest += count_of(m, "by content digest");
    }
    assert!(by_digest > 0, "no message needed its digest: {ev:?}");
    // The plain lost state (same UIDVALIDITY): found by the names.
    for (f, m) in &spread {
        if !recreated.contains(&f.as_str()) {
            let e = &ev[f];
            assert!(
                e.contains("by the identity in their file names"),
                "{f}: {e}"
            );
            assert_eq!(count_of(e, "messages"), m.len(), "{f}: {e}");
        }
    }

    assert_eq!(std::fs::read(&foreign).unwrap(), foreign_bytes);
    std::fs::remove_file(&foreign).unwrap();
    assert_exact_copy(&dv, &copy, &spread);
    let files = maildir_files(&copy);
    for (f, m) in &spread {
        assert_eq!(
            message_ids_on_disk(&files[&dir_of(&dv, f)]),
            message_ids(m),
            "{f}: Message-IDs"
        );
    }
    let r = fetch(&env2, &dv, &copy, &[]);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
    assert!(!r.stdout.contains("folder_start"), "{}", r.stdout);
}

#[test]
fn a_maildir_another_tool_wrote_is_adopted_by_content_not_downloaded() {
    let dv = Dovecot::start();
    let opts = CorpusOpts {
        duplicate_fraction: 0.15,
        ..CorpusOpts::small()
    };
    let spread = load(&dv, 63, 60, &opts);
    // Dovecot's own Maildir as the backup: names without `,W=` or our
    // identity, LF line ends.
    let env = Env::new();
    let to = env.path("theirs");
    copy_dir(&dv.maildir(dv.user()), &to);
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let s = summary(&r);
    let total: usize = spread.iter().map(|(_, m)| m.len()).sum();
    assert_eq!(
        (
            s["copied"].as_u64(),
            s["matched"].as_u64(),
            s["bytes"].as_u64()
        ),
        (Some(0), Some(total as u64), Some(0)),
        "{}",
        r.stdout
    );
    assert_eq!(matched(&r).len(), spread.len(), "{}", r.stdout);
    assert_exact_copy(&dv, &to, &spread);
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
}

/// Cyrus: `STATUS folder (UIDVALIDITY)`.
fn uidvalidity(s: &mut common::cyrus::Session, folder: &str) -> u64 {
    let text = s.ok(&format!("STATUS \"{folder}\" (UIDVALIDITY)"));
    let at = text.find("UIDVALIDITY ").expect("UIDVALIDITY") + 12;
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn cyrus_fetch(env: &Env, cy: &Cyrus, to: &Path) -> Run {
    let r = env.run(
        common::cyrus::PASSWORD,
        &[
            "fetch",
            "--from",
            &cy.url("alice"),
            "--to",
            to.to_str().unwrap(),
            "--insecure-plaintext",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    r
}

fn count(dir: &Path) -> usize {
    ["cur", "new"]
        .iter()
        .map(|s| std::fs::read_dir(dir.join(s)).map_or(0, |d| d.count()))
        .sum()
}

#[test]
fn cyrus_folder_recreated_with_a_fresh_state_stores_every_message_once() {
    let Some(cy) = Cyrus::start(&["alice"]) else {
        return;
    };
    let opts = CorpusOpts {
        malformed_fraction: 0.0,
        duplicate_fraction: 0.2,
        ..CorpusOpts::small()
    };
    let mut msgs = common::corpus(64, 40, &opts);
    // Two in Archive without a Message-ID: the digest path on Cyrus too.
    for m in msgs.iter_mut().skip(10).take(2) {
        let text = String::from_utf8_lossy(&m.raw).into_owned();
        m.raw = text
            .lines()
            .filter(|l| !l.starts_with("Message-ID:"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes();
        m.message_id = None;
    }
    let (inbox, archive) = msgs.split_at(10);
    let mut s = cy.session("alice");
    s.ok("CREATE INBOX.Archive");
    assert_eq!(s.append("INBOX", inbox), inbox.len());
    assert_eq!(s.append("INBOX.Archive", archive), archive.len());
    let env = Env::new();
    let mail = env.path("mail");
    cyrus_fetch(&env, &cy, &mail);
    assert_eq!(count(&mail.join(".Archive")), archive.len());
    let copy = env.path("copy");
    copy_dir(&mail, &copy);

    // Archive deleted and created again with the same mail and 3 new.
    let before = uidvalidity(&mut s, "INBOX.Archive");
    s.ok("DELETE INBOX.Archive");
    s.ok("CREATE INBOX.Archive");
    let new = common::corpus(65, 3, &CorpusOpts::small());
    assert_eq!(s.append("INBOX.Archive", archive), archive.len());
    assert_eq!(s.append("INBOX.Archive", &new), new.len());
    assert_ne!(uidvalidity(&mut s, "INBOX.Archive"), before);
    let on_server = s.message_ids("INBOX.Archive");
    s.logout();

    let env2 = Env::new();
    let r = cyrus_fetch(&env2, &cy, &copy);
    let sum = summary(&r);
    assert_eq!(
        (sum["copied"].as_u64(), sum["matched"].as_u64()),
        (Some(new.len() as u64), Some(msgs.len() as u64)),
        "{}",
        r.stdout
    );
    assert_eq!(
        sum["bytes"],
        new.iter().map(|m| m.raw_crlf().len() as u64).sum::<u64>(),
        "only the new messages downloaded: {}",
        r.stdout
    );
    let ev = matched(&r);
    eprintln!("{ev:#?}");
    let a = &ev["Archive"];
    assert_eq!(
        count_of(a, "by Message-ID") + count_of(a, "by content digest"),
        archive.len(),
        "{a}"
    );
    assert!(count_of(a, "by content digest") >= 2, "{a}");
    assert!(ev["INBOX"].contains("by the identity in their file names"));

    // Every message once: files and Message-IDs as on the server.
    assert_eq!(count(&copy), inbox.len());
    assert_eq!(count(&copy.join(".Archive")), archive.len() + new.len());
    let files = maildir_files(&copy);
    let mut local: Vec<String> = files[".Archive"]
        .iter()
        .filter_map(|p| common::corpus::header(&std::fs::read(p).unwrap(), "Message-ID"))
        .collect();
    local.sort();
    assert_eq!(local, on_server);
    let mut want: Vec<Vec<u8>> = archive.iter().chain(&new).map(Message::raw_crlf).collect();
    let mut got: Vec<Vec<u8>> = files[".Archive"].iter().map(|p| wire(p)).collect();
    want.sort();
    got.sort();
    assert!(
        got == want,
        "the Archive copy is not the server's mail, once each"
    );
    let r = cyrus_fetch(&env2, &cy, &copy);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
}
