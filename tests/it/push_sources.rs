//! `mailferry push` and `verify` from the other sources: a Maildir (a
//! backup made by `fetch`, or a Dovecot's own Maildir++) and POP3, into a
//! real Dovecot over IMAP. The restore round trip: fetch A → Maildir →
//! push to B (other separator) → verify clean message by message, then
//! reruns, flag changes, lost state and kills without duplicates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::cli::{Env, Run, to_run};
use crate::common::{self, CorpusOpts, Dovecot, DovecotOpts, Message};
use crate::fetch_imap::wire;
use crate::fetch_pop3::served;
use crate::push::{
    assert_exact_copy, ca, count, files, keywords, kill_until_partial, load, quiet_push, run,
    servers, summary, target_of, total,
};

/// `mailferry CMD --from FROM --to <dst imaps> --ca-file CA --json EXTRA`.
fn go(
    env: &Env,
    cmd: &[&str],
    from: &str,
    from_pw: Option<&str>,
    dst: &Dovecot,
    ca: &str,
    extra: &[&str],
) -> Run {
    let to = dst.url("imaps");
    let mut args: Vec<&str> = cmd.to_vec();
    args.extend(["--from", from, "--to", &to, "--ca-file", ca, "--json"]);
    args.extend_from_slice(extra);
    let mut c = env.cmd("unused");
    c.env("MAILFERRY_TO_PASSWORD", dst.password());
    if let Some(pw) = from_pw {
        c.env("MAILFERRY_FROM_PASSWORD", pw);
    }
    to_run(c.args(&args).output().unwrap())
}

fn ok(r: &Run) {
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

/// The message files of a Maildir folder directory (new/ and cur/).
fn dir_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            out.extend(rd.flatten().map(|e| e.path()));
        }
    }
    out
}

/// Renames a Maildir file to carry these standard flag letters.
fn set_letters(p: &Path, letters: &str) -> PathBuf {
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    let base = name.split_once(':').map_or(name.as_str(), |(b, _)| b);
    let dir = p.parent().unwrap().parent().unwrap().join("cur");
    let to = dir.join(format!("{base}:2,{letters}"));
    std::fs::rename(p, &to).unwrap();
    to
}

#[test]
fn maildir_restore_of_a_fetched_backup_round_trips() {
    let (src, dst) = servers();
    // Seed 41 includes messages without a Message-ID and shared ones, so the
    // lost-state step below also pairs by content digest.
    let mut spread = load(&src, 41, 150);
    let all: Vec<&Message> = spread.iter().flat_map(|(_, m)| m).collect();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for m in &all {
        if let Some(id) = &m.message_id {
            *ids.entry(id.as_str()).or_default() += 1;
        }
    }
    assert!(
        all.iter().any(|m| m.message_id.is_none()) && ids.values().any(|&n| n > 1),
        "the corpus lost its premise (no Message-ID-less or shared Message-IDs)"
    );
    let env = Env::new();
    let md = env.path("backup");
    let f = crate::fetch_imap::fetch(&env, &src, &md, &[]);
    ok(&f);
    let ca = ca(&env, &src, &dst);
    let from = md.to_str().unwrap().to_string();

    // plan: the folder map (Sent by its name to the target's \Sent).
    let r = go(&env, &["plan", "push"], &from, None, &dst, &ca, &[]);
    ok(&r);
    let maps: HashMap<String, serde_json::Value> = r
        .json()
        .into_iter()
        .filter(|e| e["event"] == "folder_map")
        .map(|e| (e["folder"].as_str().unwrap().to_string(), e))
        .collect();
    assert_eq!(maps.len(), spread.len(), "{}", r.stdout);
    assert_eq!(maps["Sent"]["target"], "Sent Items");
    assert_eq!(maps["日本語/子"]["target"], "日本語/子");
    assert_eq!(maps["Archive/2024"]["create"], true);
    assert_eq!(summary(&r)["copied"], count(&spread) as u64);
    assert_eq!(total(&dst, &spread), 0, "plan must not copy");

    // The restore: same bytes (CRLF on the wire from LF files), flags, dates.
    let r = go(&env, &["push"], &from, None, &dst, &ca, &[]);
    ok(&r);
    assert_eq!(summary(&r)["copied"], count(&spread) as u64, "{}", r.stdout);
    assert_exact_copy(&dst, &spread);

    // verify: the Maildir against B, and A against B, both clean.
    for deep in [&[][..], &["--deep"][..]] {
        let r = go(&env, &["verify"], &from, None, &dst, &ca, deep);
        ok(&r);
        assert_eq!(summary(&r)["failed"], 0, "{}", r.stdout);
        let r = run(&env, &["verify"], &src, &dst, deep);
        ok(&r);
        assert_eq!(summary(&r)["failed"], 0, "{}", r.stdout);
    }

    // Rerun: nothing.
    let r = go(&env, &["push"], &from, None, &dst, &ca, &[]);
    ok(&r);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
    assert_eq!(summary(&r)["flags_updated"], 0, "{}", r.stdout);

    // A flag change in the backup and a new file: only those travel.
    let inbox = &mut spread[0];
    assert_eq!(inbox.0, "INBOX");
    let victim = dir_files(&md)
        .into_iter()
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.split_once(":2,").is_some_and(|(_, f)| !f.contains('F'))
        })
        .expect("an unflagged INBOX message");
    let bytes = wire(&victim);
    let m = inbox.1.iter_mut().find(|m| m.raw_crlf() == bytes).unwrap();
    let mut letters: Vec<char> = format!("{}F", m.flags).chars().collect();
    letters.sort_unstable();
    m.flags = letters.into_iter().collect();
    set_letters(&victim, &m.flags);
    let new: Message = common::corpus(82, 1, &CorpusOpts::small()).remove(0);
    let np = md.join("new").join("1700000000.M1P1.restore-test");
    std::fs::write(&np, &new.raw).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&np)
        .unwrap()
        .set_modified(new.internal_date)
        .unwrap();
    inbox.1.push(Message {
        flags: String::new(),
        ..new
    });
    let r = go(&env, &["push"], &from, None, &dst, &ca, &[]);
    ok(&r);
    assert_eq!(summary(&r)["copied"], 1, "{}", r.stdout);
    assert_eq!(summary(&r)["flags_updated"], 1, "{}", r.stdout);
    assert_exact_copy(&dst, &spread);

    // Lost state: everything is found on the target, nothing appended
    // twice: all matched, none copied.
    std::fs::remove_dir_all(env.state().parent().unwrap()).unwrap();
    let r = go(&env, &["push"], &from, None, &dst, &ca, &[]);
    ok(&r);
    assert_exact_copy(&dst, &spread);
    let s = summary(&r);
    assert_eq!(
        (
            s["copied"].as_u64(),
            s["matched"].as_u64(),
            s["bytes"].as_u64()
        ),
        (Some(0), Some(count(&spread) as u64), Some(0)),
        "{}",
        r.stdout
    );
    let r = go(&env, &["push"], &from, None, &dst, &ca, &[]);
    ok(&r);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);

    // verify from the Maildir names what is missing on the target.
    let gone = files(&dst, "Archive/2024").pop().unwrap();
    std::fs::remove_file(&gone).unwrap();
    let r = go(&env, &["verify"], &from, None, &dst, &ca, &[]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let errs: Vec<serde_json::Value> = r
        .json()
        .into_iter()
        .filter(|e| e["event"] == "message_error")
        .collect();
    assert_eq!(errs.len(), 1, "{}", r.stdout);
    assert_eq!(errs[0]["folder"], "Archive/2024");
    assert!(errs[0]["file"].is_string(), "{}", r.stdout);
    assert_eq!(summary(&r)["failed"], 1);
    let _ = target_of;
}

#[test]
fn push_from_a_dovecot_maildir_keeps_flags_keywords_and_dates() {
    let (src, dst) = servers();
    let spread = load(&src, 91, 40);
    // Makes Dovecot write dovecot-keywords and the letter into the name.
    src.doveadm(&[
        "flags",
        "add",
        "-u",
        src.user(),
        "$Forwarded",
        "mailbox",
        "INBOX",
        "uid",
        "1",
    ]);
    let kwfile = src.maildir(src.user()).join("dovecot-keywords");
    assert!(kwfile.exists(), "Dovecot wrote no dovecot-keywords");
    let env = Env::new();
    let ca = dst.ca_file().display().to_string();
    let from = src.maildir(src.user()).display().to_string();
    let r = go(&env, &["push"], &from, None, &dst, &ca, &[]);
    ok(&r);
    assert_eq!(summary(&r)["copied"], count(&spread) as u64, "{}", r.stdout);
    assert_exact_copy(&dst, &spread);
    assert!(
        keywords(&dst, "INBOX").contains("$Forwarded"),
        "keyword carried from dovecot-keywords"
    );
    let r = go(&env, &["verify"], &from, None, &dst, &ca, &["--deep"]);
    ok(&r);
    let r = go(&env, &["push"], &from, None, &dst, &ca, &[]);
    ok(&r);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
}

#[test]
fn maildir_push_killed_at_any_point_then_rerun_gives_the_exact_message_set_under_max_rate() {
    let (src, dst) = servers();
    let spread = load(&src, 95, 400);
    let env = Env::new();
    let md = env.path("backup");
    ok(&crate::fetch_imap::fetch(&env, &src, &md, &[]));
    let ca = ca(&env, &src, &dst);
    let to = dst.url("imaps");
    // --max-rate 100 spreads the copy over seconds: the kills land mid-copy.
    let partial = kill_until_partial(
        &dst,
        || {
            let from = md.to_str().unwrap();
            let args = [
                "--from",
                from,
                "--to",
                &to,
                "--ca-file",
                &ca,
                "--max-rate",
                "100",
            ];
            quiet_push(&env, None, dst.password(), &args)
        },
        || total(&dst, &spread),
        count(&spread),
    );
    assert!(
        partial.iter().any(|&n| n > 0 && n < count(&spread)),
        "no kill landed mid-copy: {partial:?}"
    );
    let r = go(&env, &["push"], md.to_str().unwrap(), None, &dst, &ca, &[]);
    ok(&r);
    assert_exact_copy(&dst, &spread);
}

#[test]
fn pop3_inbox_pushes_to_imap_once() {
    let src = Dovecot::start();
    let dst = Dovecot::start_with(DovecotOpts::default().separator('/'));
    let mut msgs = common::corpus(101, 60, &CorpusOpts::small());
    // Without a final line break: Dovecot sends it with CRLF added but
    // lists it 2 bytes shorter, which verify must not call missing.
    msgs.push(common::corpus::Message {
        raw: b"From: a@example.com\nSubject: cut short\nMessage-ID: <cut@example.com>".to_vec(),
        internal_date: std::time::SystemTime::now(),
        flags: String::new(),
        message_id: Some("<cut@example.com>".into()),
    });
    src.deliver(src.user(), "INBOX", &msgs);
    let env = Env::new();
    let ca = ca(&env, &src, &dst);
    let from = src.url("pop3s");
    let pw = Some(src.password());

    let r = go(&env, &["plan", "push"], &from, pw, &dst, &ca, &[]);
    ok(&r);
    assert_eq!(summary(&r)["copied"], msgs.len() as u64, "{}", r.stdout);
    assert!(files(&dst, "INBOX").is_empty(), "plan must not copy");

    let r = go(&env, &["push"], &from, pw, &dst, &ca, &[]);
    ok(&r);
    assert_eq!(summary(&r)["copied"], msgs.len() as u64, "{}", r.stdout);
    let check = || {
        let got = files(&dst, "INBOX");
        assert_eq!(got.len(), msgs.len(), "INBOX count");
        let mut by_bytes: HashMap<Vec<u8>, Vec<&PathBuf>> = HashMap::new();
        for p in &got {
            by_bytes.entry(wire(p)).or_default().push(p);
        }
        for m in &msgs {
            let p = by_bytes
                .get_mut(&served(m))
                .and_then(|v| v.pop())
                .expect("a message is missing, altered or stored too few times");
            // INTERNALDATE from the Date: header, where there is one.
            if common::corpus::header(&m.raw, "Date").is_some() {
                let mtime = std::fs::metadata(p).unwrap().modified().unwrap();
                assert_eq!(mtime, m.internal_date, "INTERNALDATE of {}", p.display());
            }
        }
    };
    check();

    let r = go(&env, &["push"], &from, pw, &dst, &ca, &[]);
    ok(&r);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);

    for deep in [&[][..], &["--deep"][..]] {
        let r = go(&env, &["verify"], &from, pw, &dst, &ca, deep);
        ok(&r);
        assert_eq!(summary(&r)["failed"], 0, "{}", r.stdout);
        assert!(!r.stdout.contains("extra in"), "{}", r.stdout);
    }

    // verify POP3 against a Maildir that fetch wrote from it.
    let md = env.path("pop3-backup");
    let f = env.run(
        src.password(),
        &[
            "fetch",
            "--from",
            &from,
            "--to",
            md.to_str().unwrap(),
            "--ca-file",
            &ca,
        ],
    );
    ok(&f);
    for deep in [&[][..], &["--deep"][..]] {
        let r = to_run(
            env.cmd(src.password())
                .env("MAILFERRY_FROM_PASSWORD", src.password())
                .args(["verify", "--from", &from, "--to", md.to_str().unwrap()])
                .args(["--ca-file", &ca, "--json"])
                .args(deep)
                .output()
                .unwrap(),
        );
        ok(&r);
        assert_eq!(summary(&r)["failed"], 0, "{}", r.stdout);
        assert!(!r.stdout.contains("extra in"), "{}", r.stdout);
    }

    // Lost state: found on the target by Message-ID + size (or content):
    // matched, not copied.
    std::fs::remove_dir_all(env.state().parent().unwrap()).unwrap();
    let r = go(&env, &["push"], &from, pw, &dst, &ca, &[]);
    ok(&r);
    check();
    let s = summary(&r);
    assert_eq!(
        (
            s["copied"].as_u64(),
            s["matched"].as_u64(),
            s["bytes"].as_u64()
        ),
        (Some(0), Some(msgs.len() as u64), Some(0)),
        "{}",
        r.stdout
    );
    let r = go(&env, &["push"], &from, pw, &dst, &ca, &[]);
    ok(&r);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
}

#[test]
fn pop3_push_killed_then_rerun_has_each_message_once() {
    let src = Dovecot::start();
    let dst = Dovecot::start_with(DovecotOpts::default().separator('/'));
    let msgs = common::corpus(103, 200, &CorpusOpts::small());
    src.deliver(src.user(), "INBOX", &msgs);
    let env = Env::new();
    let ca = ca(&env, &src, &dst);
    let (from, to) = (src.url("pop3s"), dst.url("imaps"));
    let partial = kill_until_partial(
        &dst,
        || {
            let args = [
                "--from",
                &from,
                "--to",
                &to,
                "--ca-file",
                &ca,
                "--max-rate",
                "50",
            ];
            quiet_push(&env, Some(src.password()), dst.password(), &args)
        },
        || files(&dst, "INBOX").len(),
        msgs.len(),
    );
    assert!(
        partial.iter().any(|&n| n > 0 && n < msgs.len()),
        "no kill landed mid-copy: {partial:?}"
    );
    let r = go(&env, &["push"], &from, Some(src.password()), &dst, &ca, &[]);
    ok(&r);
    let mut want: Vec<Vec<u8>> = msgs.iter().map(served).collect();
    let mut got: Vec<Vec<u8>> = files(&dst, "INBOX").iter().map(|p| wire(p)).collect();
    want.sort();
    got.sort();
    assert!(
        got == want,
        "target INBOX is not the POP3 mailbox once over"
    );
}
