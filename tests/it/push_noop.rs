//! Issue 13, item 9: a `push` rerun with nothing to do costs one LIST
//! (+ NAMESPACE) and at most one pipelined STATUS on each side — no
//! SELECT, EXAMINE or FETCH, one session — from an IMAP server (Dovecot,
//! Cyrus), a Maildir (by its folders' change stamps) and POP3 (one LIST +
//! UIDL); what changed is opened, and only that. Counted in Dovecot's
//! rawlog and Cyrus's telemetry.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::cli::{Env, Run, to_run};
use crate::common::{self, CorpusOpts, Cyrus, Dovecot, DovecotOpts, cyrus};
use crate::push::{RAWLOG, ca, clear_rawlog, commands, count, load, summary};

/// Dovecot's rawlog of POP3 sessions too.
const POP3_RAWLOG: &str = "protocol pop3 {\n  rawlog_dir = %h/rawlog\n}";

fn ok(r: &Run) {
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

/// The commands a rerun may send and no more: one LIST, NAMESPACE, one
/// STATUS per folder at most, in one session; nothing that opens a folder.
fn assert_noop_cost(side: &str, cmds: &[String], folders: usize) {
    let n = |w: &str| cmds.iter().filter(|c| c.starts_with(w)).count();
    assert_eq!(n("LIST "), 1, "{side}: {cmds:#?}");
    assert!(n("NAMESPACE") <= 1, "{side}: {cmds:#?}");
    assert!(n("STATUS ") <= folders, "{side}: {cmds:#?}");
    assert_eq!(n("LOGOUT"), 1, "{side}: one session: {cmds:#?}");
    for w in [
        "SELECT", "EXAMINE", "FETCH", "UID ", "SEARCH", "APPEND", "CREATE",
    ] {
        assert_eq!(n(w), 0, "{side}: {cmds:#?}");
    }
}

fn opened(cmds: &[String]) -> Vec<String> {
    let mut v: Vec<String> = cmds
        .iter()
        .filter(|c| c.starts_with("SELECT ") || c.starts_with("EXAMINE "))
        .cloned()
        .collect();
    v.sort();
    v
}

/// Puts the mtimes of every `cur/`, `new/` and `dovecot-keywords` below
/// `root` `secs` seconds back: as if the last change was that long ago
/// (a change stamp younger than a few seconds is not trusted).
fn settle(root: &Path, secs: u64) {
    let t = SystemTime::now() - Duration::from_secs(secs);
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if ["cur", "new", "dovecot-keywords"].contains(&name.as_str()) {
                std::fs::File::open(&p).unwrap().set_modified(t).unwrap();
            } else if p.is_dir() && name.starts_with('.') {
                stack.push(p);
            }
        }
    }
}

fn push_from(env: &Env, from: &str, from_pw: Option<&str>, dst: &Dovecot, ca: &str) -> Run {
    let mut c = env.cmd("unused");
    c.env("MAILFERRY_TO_PASSWORD", dst.password());
    if let Some(pw) = from_pw {
        c.env("MAILFERRY_FROM_PASSWORD", pw);
    }
    to_run(
        c.args([
            "push",
            "--from",
            from,
            "--to",
            &dst.url("imaps"),
            "--ca-file",
            ca,
        ])
        .arg("--json")
        .output()
        .unwrap(),
    )
}

#[test]
fn a_noop_push_from_a_maildir_opens_no_folder_and_a_change_opens_only_its_folder() {
    let (src, dst) = crate::push::servers_with(DovecotOpts::default().config(RAWLOG));
    let mut spread = load(&src, 121, 60);
    let env = Env::new();
    let md = env.path("backup");
    ok(&crate::fetch_imap::fetch(&env, &src, &md, &[]));
    let ca = ca(&env, &src, &dst);
    let from = md.to_str().unwrap().to_string();
    settle(&md, 60);
    let r = push_from(&env, &from, None, &dst, &ca);
    ok(&r);
    assert_eq!(summary(&r)["copied"], count(&spread) as u64);

    clear_rawlog(&dst);
    let r = push_from(&env, &from, None, &dst, &ca);
    ok(&r);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
    assert_noop_cost("target", &commands(&dst), spread.len());

    // A flag change in INBOX and a new message in Archive/2024, half a
    // minute ago: those two folders are opened, no other.
    let victim = std::fs::read_dir(md.join("cur"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.split_once(":2,").is_some_and(|(_, f)| !f.contains('F'))
        })
        .expect("an unflagged INBOX message");
    let bytes = crate::fetch_imap::wire(&victim);
    let m = spread[0]
        .1
        .iter_mut()
        .find(|m| m.raw_crlf() == bytes)
        .unwrap();
    let mut letters: Vec<char> = format!("{}F", m.flags).chars().collect();
    letters.sort_unstable();
    m.flags = letters.into_iter().collect();
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    let base = name.split_once(":2,").unwrap().0;
    std::fs::rename(
        &victim,
        md.join("cur").join(format!("{base}:2,{}", m.flags)),
    )
    .unwrap();
    let new = common::corpus(122, 1, &CorpusOpts::small()).remove(0);
    let archive = md.join(".Archive.2024");
    let file = archive.join("new/1700000000.M9P9.noop-test");
    std::fs::write(&file, &new.raw).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(new.internal_date)
        .unwrap();
    spread
        .iter_mut()
        .find(|(f, _)| f == "Archive/2024")
        .unwrap()
        .1
        .push(common::Message {
            flags: String::new(),
            ..new
        });
    for d in [md.join("cur"), archive.join("new")] {
        let t = SystemTime::now() - Duration::from_secs(30);
        std::fs::File::open(&d).unwrap().set_modified(t).unwrap();
    }
    clear_rawlog(&dst);
    let r = push_from(&env, &from, None, &dst, &ca);
    ok(&r);
    let s = summary(&r);
    assert_eq!(
        (s["copied"].as_u64(), s["flags_updated"].as_u64()),
        (Some(1), Some(1)),
        "{}",
        r.stdout
    );
    assert_eq!(
        opened(&commands(&dst)),
        ["SELECT \"Archive.2024\"", "SELECT \"INBOX\""],
        "{:#?}",
        commands(&dst)
    );
    crate::push::assert_exact_copy(&dst, &spread);

    // And that is again a no-op.
    clear_rawlog(&dst);
    let r = push_from(&env, &from, None, &dst, &ca);
    ok(&r);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
    assert_noop_cost("target", &commands(&dst), spread.len());
}

/// The lines POP3 clients sent since [`clear_rawlog`] (a source with
/// only the POP3 rawlog on).
fn pop3_commands(dv: &Dovecot) -> Vec<String> {
    let dir = dv.dir().join("home").join(dv.user()).join("rawlog");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".in") {
            let text = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
            out.extend(
                text.lines()
                    .map(|l| l.split_once(' ').map_or(l, |(_, c)| c).to_string()),
            );
        }
    }
    out
}

#[test]
fn a_noop_push_from_pop3_lists_once_and_selects_nothing() {
    let src = Dovecot::start_with(DovecotOpts::default().config(POP3_RAWLOG));
    let dst = Dovecot::start_with(DovecotOpts::default().separator('/').config(RAWLOG));
    src.deliver(
        src.user(),
        "INBOX",
        &common::corpus(131, 30, &CorpusOpts::small()),
    );
    let env = Env::new();
    let ca = ca(&env, &src, &dst);
    let from = src.url("pop3s");
    let pw = Some(src.password());
    ok(&push_from(&env, &from, pw, &dst, &ca));

    clear_rawlog(&src);
    clear_rawlog(&dst);
    let r = push_from(&env, &from, pw, &dst, &ca);
    ok(&r);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
    assert_noop_cost("target", &commands(&dst), 1);
    let sc = pop3_commands(&src);
    assert_eq!(sc, ["CAPA", "LIST", "UIDL", "QUIT"], "one listing: {sc:?}");

    // A new message: INBOX is opened, and only it is copied, listed once.
    src.deliver(
        src.user(),
        "INBOX",
        &common::corpus(132, 1, &CorpusOpts::small()),
    );
    clear_rawlog(&src);
    clear_rawlog(&dst);
    let r = push_from(&env, &from, pw, &dst, &ca);
    ok(&r);
    assert_eq!(summary(&r)["copied"], 1, "{}", r.stdout);
    assert_eq!(opened(&commands(&dst)), ["SELECT \"INBOX\""]);
    let sc = pop3_commands(&src);
    assert_eq!(sc.iter().filter(|c| *c == "UIDL").count(), 1, "{sc:?}");
    assert_eq!(dst.status(dst.user(), "INBOX").messages, 31);
}

#[test]
fn a_run_that_held_messages_back_does_not_let_the_next_one_pass_over_them() {
    // --max-size skips the large messages; a rerun without it must copy
    // them, although the source did not change in between.
    let (src, dst) = crate::push::servers();
    let msgs = common::corpus(141, 40, &CorpusOpts::small());
    let sizes: Vec<usize> = msgs.iter().map(|m| m.rfc822_size()).collect();
    let mut sorted = sizes.clone();
    sorted.sort_unstable();
    let cut = sorted[sorted.len() / 2];
    let big = sizes.iter().filter(|&&s| s > cut).count();
    assert!(big > 0 && big < msgs.len());
    src.deliver(src.user(), "INBOX", &msgs);
    let env = Env::new();
    let max = cut.to_string();
    let args = ["--folder", "INBOX"];
    let r = crate::push::push(
        &env,
        &src,
        &dst,
        &[&args[..], &["--max-size", &max]].concat(),
    );
    ok(&r);
    let s = summary(&r);
    assert_eq!(s["skipped"], big as u64, "{}", r.stdout);
    assert_eq!(
        dst.status(dst.user(), "INBOX").messages as usize,
        msgs.len() - big
    );
    let r = crate::push::push(&env, &src, &dst, &args);
    ok(&r);
    assert_eq!(summary(&r)["copied"], big as u64, "{}", r.stdout);
    assert_eq!(
        dst.status(dst.user(), "INBOX").messages as usize,
        msgs.len()
    );
    let r = crate::push::push(&env, &src, &dst, &args);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
}

#[test]
fn a_noop_push_to_and_from_cyrus_opens_no_folder() {
    let Some(cy) = Cyrus::start(&["alice"]) else {
        return;
    };
    let dv = Dovecot::start_with(DovecotOpts::default().separator('/').config(RAWLOG));
    // Plain messages: Cyrus refuses some of the corpus's odd headers, and
    // a folder with a refused message is rightly opened again.
    let folders = ["INBOX", "Sent", "Archive/2024", "Entwürfe"];
    for f in folders {
        dv.deliver(dv.user(), f, &crate::special_use::simple(f, 3));
    }
    let ca = dv.ca_file().display().to_string();
    let to_cyrus = |env: &Env| {
        to_run(
            env.cmd("unused")
                .env("MAILFERRY_FROM_PASSWORD", dv.password())
                .env("MAILFERRY_TO_PASSWORD", cyrus::PASSWORD)
                .args(["push", "--from", &dv.url("imaps"), "--to", &cy.url("alice")])
                .args(["--ca-file", &ca, "--insecure-plaintext", "--json"])
                .output()
                .unwrap(),
        )
    };
    let env = Env::new();
    let r = to_cyrus(&env);
    ok(&r);
    assert_eq!(
        summary(&r)["copied"],
        3 * folders.len() as u64,
        "{}",
        r.stdout
    );
    clear_rawlog(&dv);
    cy.clear_telemetry("alice");
    let r = to_cyrus(&env);
    ok(&r);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
    assert_noop_cost("Cyrus target", &cy.commands("alice"), folders.len());
    assert_noop_cost("Dovecot source", &commands(&dv), folders.len());

    // Cyrus as the source: the same on both sides (Cyrus also lists the
    // parent INBOX.Archive it made for INBOX.Archive.2024).
    let back = Dovecot::start_with(DovecotOpts::default().config(RAWLOG));
    let bca = back.ca_file().display().to_string();
    let from_cyrus = |env: &Env| {
        to_run(
            env.cmd("unused")
                .env("MAILFERRY_FROM_PASSWORD", cyrus::PASSWORD)
                .env("MAILFERRY_TO_PASSWORD", back.password())
                .args([
                    "push",
                    "--from",
                    &cy.url("alice"),
                    "--to",
                    &back.url("imaps"),
                ])
                .args(["--ca-file", &bca, "--insecure-plaintext", "--json"])
                .output()
                .unwrap(),
        )
    };
    let env = Env::new();
    let r = from_cyrus(&env);
    ok(&r);
    assert_eq!(
        summary(&r)["copied"],
        3 * folders.len() as u64,
        "{}",
        r.stdout
    );
    clear_rawlog(&back);
    cy.clear_telemetry("alice");
    let r = from_cyrus(&env);
    ok(&r);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
    let n = folders.len() + 1;
    assert_noop_cost("Cyrus source", &cy.commands("alice"), n);
    assert_noop_cost("Dovecot target", &commands(&back), n);
    let statuses = cy
        .commands("alice")
        .iter()
        .filter(|c| c.starts_with("STATUS "))
        .count();
    assert_eq!(statuses, n, "{:#?}", cy.commands("alice"));
}

#[test]
fn a_folder_mapped_to_another_existing_folder_is_not_passed_over() {
    // The sync point belongs to the source folder: pushed to INBOX, then
    // mapped to a folder the target already has, it must be copied there
    // although the source did not change.
    let (src, dst) = crate::push::servers();
    let msgs = common::corpus(161, 12, &CorpusOpts::small());
    src.deliver(src.user(), "INBOX", &msgs);
    dst.create_folder(dst.user(), "Copy");
    let env = Env::new();
    let r = crate::push::push(&env, &src, &dst, &["--folder", "INBOX"]);
    ok(&r);
    let args = ["--folder", "INBOX", "--map", "INBOX=Copy"];
    let r = crate::push::push(&env, &src, &dst, &args);
    ok(&r);
    assert_eq!(summary(&r)["copied"], msgs.len() as u64, "{}", r.stdout);
    assert_eq!(dst.status(dst.user(), "Copy").messages as usize, msgs.len());
    let r = crate::push::push(&env, &src, &dst, &args);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
}
