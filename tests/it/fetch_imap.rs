//! `mailferry fetch` from IMAP into a Maildir, against the real Dovecot:
//! complete and byte-exact, incremental (new mail, flag changes), no-op
//! reruns, UIDVALIDITY reset, retention, kill-safety, and Dovecot reading
//! the result.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::cli::{Env, Run};
use crate::common::{self, CorpusOpts, Dovecot, Message};

/// What one killed (or finished) run of [`kill_while_writing`] left.
pub struct Kill {
    /// Message files in the Maildir afterwards.
    pub stored: usize,
    /// It was killed after it had started writing, not finished.
    pub while_writing: bool,
}

/// Runs `args` again and again, each run killed (SIGKILL) a little later
/// after it started writing than the one before, until one finishes: the
/// kills land at many points of the copy whatever the speed of the machine
/// (a fixed schedule from the start of the process missed the copy once
/// the copy became short). Each run resumes from what the last one stored;
/// once kills start landing after a commit, the delay grows more slowly,
/// so that several land between commits. `after` sees each run's outcome
/// right after it ended (to look at the server then).
pub fn kill_while_writing(
    env: &Env,
    password: &str,
    args: &[&str],
    to: &Path,
    mut after: impl FnMut(&Kill),
) -> Vec<Kill> {
    let stored = || maildir_files(to).values().map(|v| v.len()).sum::<usize>();
    let in_tmp = || std::fs::read_dir(to.join("tmp")).map_or(0, |d| d.count());
    let mut kills = Vec::new();
    let mut delay_ms = 3;
    for _ in 1..=300 {
        let (stored_before, tmp_before) = (stored(), in_tmp());
        let mut child = env
            .cmd(password)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        let mut done = false;
        while !done
            && in_tmp() == tmp_before
            && stored() == stored_before
            && started.elapsed() < std::time::Duration::from_secs(30)
        {
            done = child.try_wait().unwrap().is_some();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let done = done || child.try_wait().unwrap().is_some();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let kill = Kill {
            stored: stored(),
            while_writing: !done,
        };
        after(&kill);
        kills.push(kill);
        if done {
            break;
        }
        delay_ms += if stored() > stored_before { 1 } else { 3 };
    }
    kills
}

/// The kills meant something: at least `min` hit a run that was writing,
/// and one left part of the `total` messages stored.
pub fn assert_landed_mid_copy(kills: &[Kill], total: usize, min: usize) {
    let progress: Vec<usize> = kills.iter().map(|k| k.stored).collect();
    eprintln!("stored after each kill: {progress:?}");
    assert!(
        kills.iter().filter(|k| k.while_writing).count() >= min,
        "too few kills landed mid-copy: {progress:?}"
    );
    assert!(
        progress.iter().any(|&n| n > 0 && n < total),
        "no kill left a partly stored copy: {progress:?}"
    );
}

/// Every message file below a Maildir root, by folder directory name.
pub fn maildir_files(root: &Path) -> HashMap<String, Vec<PathBuf>> {
    let mut out: HashMap<String, Vec<PathBuf>> = HashMap::new();
    let mut dirs = vec![(String::from("INBOX"), root.to_path_buf())];
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') && e.path().join("cur").is_dir() {
                dirs.push((n, e.path()));
            }
        }
    }
    for (name, d) in dirs {
        for sub in ["cur", "new"] {
            if let Ok(rd) = std::fs::read_dir(d.join(sub)) {
                for e in rd.flatten() {
                    out.entry(name.clone()).or_default().push(e.path());
                }
            }
        }
    }
    out
}

/// The server's bytes for a stored file (LF on disk → CRLF).
pub fn wire(path: &Path) -> Vec<u8> {
    mailferry::exec::wire_bytes(&std::fs::read(path).unwrap()).into_owned()
}

pub fn fetch(env: &Env, dv: &Dovecot, to: &Path, extra: &[&str]) -> Run {
    let ca = dv.ca_file().display().to_string();
    let url = dv.url("imaps");
    let mut args = vec![
        "fetch",
        "--from",
        &url,
        "--to",
        to.to_str().unwrap(),
        "--ca-file",
        &ca,
        "--json",
    ];
    args.extend_from_slice(extra);
    env.run(dv.password(), &args)
}

pub(crate) fn summary(r: &Run) -> serde_json::Value {
    let last = r
        .json()
        .pop()
        .unwrap_or_else(|| panic!("no output: {}", r.stderr));
    assert_eq!(last["event"], "summary", "{}", r.stdout);
    last
}

/// Delivers a corpus over the standard folder set; returns what went where.
pub(crate) fn load(
    dv: &Dovecot,
    seed: u64,
    n: usize,
    opts: &CorpusOpts,
) -> Vec<(String, Vec<Message>)> {
    let spread = common::spread(common::corpus(seed, n, opts), &common::folder_set());
    for (f, m) in &spread {
        dv.deliver(dv.user(), f, m);
    }
    spread
}

/// The Maildir directory name of a folder (same encoding as Dovecot's).
pub(crate) fn dir_of(dv: &Dovecot, folder: &str) -> String {
    if folder == "INBOX" {
        return "INBOX".into();
    }
    dv.folder_path(dv.user(), folder)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Maildir flag letters of a file name.
pub(crate) fn flags_of(p: &Path) -> String {
    let n = p.file_name().unwrap().to_string_lossy().into_owned();
    n.split_once(":2,")
        .map(|(_, f)| f.to_string())
        .unwrap_or_default()
}

pub(crate) fn sorted(s: &str) -> String {
    let mut v: Vec<char> = s.chars().collect();
    v.sort_unstable();
    v.into_iter().collect()
}

/// Asserts that the Maildir holds exactly the delivered messages: same
/// bytes as the server serves them, once each, with flags and dates.
pub(crate) fn assert_exact_copy(dv: &Dovecot, root: &Path, spread: &[(String, Vec<Message>)]) {
    let files = maildir_files(root);
    for (folder, msgs) in spread {
        let got = files.get(&dir_of(dv, folder)).cloned().unwrap_or_default();
        assert_eq!(got.len(), msgs.len(), "message count in {folder}");
        let mut by_bytes: HashMap<Vec<u8>, Vec<&PathBuf>> = HashMap::new();
        for p in &got {
            by_bytes.entry(wire(p)).or_default().push(p);
        }
        for m in msgs {
            let ps = by_bytes
                .get_mut(&m.raw_crlf())
                .unwrap_or_else(|| panic!("{folder}: a message is missing or altered"));
            if ps.is_empty() {
                panic!("{folder}: a message is stored fewer times than delivered");
            }
            // Exact copies of one message may carry different flags: any
            // file of those bytes with the message's flags is its copy.
            let at = ps
                .iter()
                .position(|p| sorted(&flags_of(p)) == sorted(&m.flags))
                .unwrap_or(ps.len() - 1);
            let p = ps.swap_remove(at);
            assert_eq!(
                sorted(&flags_of(p)),
                sorted(&m.flags),
                "{folder}: flags of {}",
                p.display()
            );
            let mtime = std::fs::metadata(p).unwrap().modified().unwrap();
            let want = m
                .internal_date
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert_eq!(
                mtime
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs(),
                want,
                "mtime = INTERNALDATE"
            );
        }
    }
}

#[test]
fn full_fetch_is_exact_and_rerun_is_a_no_op() {
    let dv = Dovecot::start();
    let spread = load(&dv, 11, 150, &CorpusOpts::small());
    let env = Env::new();
    let to = env.path("mail");
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let s = summary(&r);
    assert_eq!(
        (s["copied"].as_u64(), s["failed"].as_u64()),
        (Some(150), Some(0))
    );
    assert_exact_copy(&dv, &to, &spread);
    // Maildir++ layout as Dovecot expects it
    assert!(to.join(".Archive.2024/maildirfolder").exists());
    assert!(to.join(format!("{}/cur", dir_of(&dv, "Entwürfe"))).is_dir());

    // No-op rerun: nothing copied, and no folder even selected (the
    // STATUS fast path emits no folder events).
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(summary(&r)["copied"], 0);
    assert!(
        !r.stdout.contains("folder_start"),
        "a no-op rerun selected folders:\n{}",
        r.stdout
    );
    assert_exact_copy(&dv, &to, &spread);
    // Silent on success without a terminal and without --json.
    let ca = dv.ca_file().display().to_string();
    let r = env.run(
        dv.password(),
        &[
            "fetch",
            "--from",
            &dv.url("imaps"),
            "--to",
            to.to_str().unwrap(),
            "--ca-file",
            &ca,
        ],
    );
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
}

#[test]
fn new_mail_and_server_flag_changes_are_carried_over() {
    let dv = Dovecot::start();
    let mut spread = load(&dv, 12, 60, &CorpusOpts::small());
    let env = Env::new();
    let to = env.path("mail");
    assert_eq!(fetch(&env, &dv, &to, &[]).code, 0);

    let extra = common::corpus(99, 3, &CorpusOpts::small());
    dv.deliver(dv.user(), "INBOX", &extra);
    spread
        .iter_mut()
        .find(|(f, _)| f == "INBOX")
        .unwrap()
        .1
        .extend(extra);
    // Flag the first message of Archive/2024 and unflag nothing else.
    let folder = dv.server_name("Archive/2024");
    dv.doveadm(&[
        "flags",
        "add",
        "-u",
        dv.user(),
        "\\Flagged \\Answered",
        "mailbox",
        &folder,
        "uid",
        "1",
    ]);
    let m = &mut spread
        .iter_mut()
        .find(|(f, _)| f == "Archive/2024")
        .unwrap()
        .1[0];
    m.flags = sorted(&format!("{}FR", m.flags.replace(['F', 'R'], "")));

    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let s = summary(&r);
    assert_eq!(
        (s["copied"].as_u64(), s["flags_updated"].as_u64()),
        (Some(3), Some(1)),
        "{}",
        r.stdout
    );
    assert_exact_copy(&dv, &to, &spread);
}

/// Makes a copy of `maildir` the mail of `dv`'s user, so Dovecot itself
/// serves what mailferry wrote.
pub(crate) fn serve_copy(dv: &Dovecot, maildir: &Path) {
    let home = dv.maildir(dv.user());
    let _ = std::fs::remove_dir_all(&home);
    copy_dir(maildir, &home);
    let owner = {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(home.parent().unwrap()).unwrap();
        format!("{}:{}", m.uid(), m.gid())
    };
    std::process::Command::new("chown")
        .args(["-R", &owner])
        .arg(&home)
        .status()
        .unwrap();
}

/// `cp -a from to`: a copy with names, modes and mtimes kept.
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

#[test]
fn dovecot_serves_the_fetched_maildir() {
    let dv = Dovecot::start();
    let spread = load(&dv, 13, 80, &CorpusOpts::small());
    let env = Env::new();
    let to = env.path("mail");
    assert_eq!(fetch(&env, &dv, &to, &[]).code, 0);

    // A second Dovecot whose user's mail is our Maildir.
    let dv2 = Dovecot::start();
    serve_copy(&dv2, &to);
    for (folder, msgs) in &spread {
        let st = dv2.status(dv2.user(), folder);
        assert_eq!(
            st.messages as usize,
            msgs.len(),
            "{folder}: count as Dovecot sees it"
        );
        let server = dv2.server_name(folder);
        let seen = dv2
            .doveadm(&["search", "-u", dv2.user(), "mailbox", &server, "SEEN"])
            .lines()
            .count();
        assert_eq!(
            seen,
            msgs.iter().filter(|m| m.flags.contains('S')).count(),
            "{folder}: \\Seen as Dovecot sees it"
        );
        let flagged = dv2
            .doveadm(&["search", "-u", dv2.user(), "mailbox", &server, "FLAGGED"])
            .lines()
            .count();
        assert_eq!(
            flagged,
            msgs.iter().filter(|m| m.flags.contains('F')).count(),
            "{folder}: \\Flagged"
        );
    }
    assert!(!dv2.log().contains("Broken physical size"), "{}", dv2.log());
}

#[test]
fn uidvalidity_reset_is_recovered_without_downloading_again() {
    let dv = Dovecot::start();
    // Many messages without Message-ID and with duplicates, so the digest
    // path is exercised too.
    let opts = CorpusOpts {
        malformed_fraction: 0.2,
        duplicate_fraction: 0.1,
        ..CorpusOpts::small()
    };
    let mut spread = load(&dv, 14, 80, &opts);
    let env = Env::new();
    let to = env.path("mail");
    assert_eq!(fetch(&env, &dv, &to, &[]).code, 0);
    dv.reset_uidvalidity(dv.user(), "INBOX");
    dv.reset_uidvalidity(dv.user(), "Archive/2024");

    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
    let warnings: Vec<_> = r
        .json()
        .into_iter()
        .filter(|e| e["event"] == "warning")
        .collect();
    let recovered: Vec<&str> = warnings
        .iter()
        .filter_map(|w| w["message"].as_str())
        .filter(|m| m.contains("UIDVALIDITY changed"))
        .collect();
    assert_eq!(recovered.len(), 2, "{warnings:?}");
    eprintln!("{recovered:#?}");
    // every stored message re-identified, none treated as new
    assert!(
        recovered.iter().all(|m| m.contains("; 0 new, 0 no longer")),
        "{recovered:?}"
    );
    // messages without a unique Message-ID needed their content digest
    assert!(
        recovered
            .iter()
            .any(|m| !m.contains("(0 by content digest)")),
        "{recovered:?}"
    );
    assert_exact_copy(&dv, &to, &spread);

    // After recovery, new mail is fetched as usual and old mail is not.
    let extra = common::corpus(98, 2, &CorpusOpts::small());
    dv.deliver(dv.user(), "INBOX", &extra);
    spread
        .iter_mut()
        .find(|(f, _)| f == "INBOX")
        .unwrap()
        .1
        .extend(extra);
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(summary(&r)["copied"], 2, "{}", r.stdout);
    assert_exact_copy(&dv, &to, &spread);
}

#[test]
fn delete_after_fetch_removes_from_the_server_only_what_is_stored() {
    let dv = Dovecot::start();
    let spread = load(&dv, 15, 40, &CorpusOpts::small());
    let env = Env::new();
    let to = env.path("mail");
    // dry run first: lists every deletion, changes nothing
    let r = fetch(&env, &dv, &to, &["--delete-after-fetch", "--dry-run"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let planned = r
        .json()
        .into_iter()
        .filter(|e| e["event"] == "delete" && e["dry_run"] == true)
        .count();
    assert_eq!(planned, 40);
    assert!(!to.exists(), "a dry run created the Maildir");
    assert!(!env.state().exists(), "a dry run created the state");

    let r = fetch(&env, &dv, &to, &["--delete-after-fetch"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let s = summary(&r);
    assert_eq!(
        (s["copied"].as_u64(), s["deleted"].as_u64()),
        (Some(40), Some(40))
    );
    let deletes: Vec<_> = r
        .json()
        .into_iter()
        .filter(|e| e["event"] == "delete")
        .collect();
    assert_eq!(deletes.len(), 40);
    assert!(deletes.iter().all(|d| d["reason"] == "delete-after-fetch"
        && d["dry_run"] == false
        && d["uid"].is_u64()));
    for (folder, _) in &spread {
        assert_eq!(
            dv.status(dv.user(), folder).messages,
            0,
            "{folder} still has mail on the server"
        );
    }
    assert_exact_copy(&dv, &to, &spread);
    let r = fetch(&env, &dv, &to, &["--delete-after-fetch"]);
    assert_eq!(
        (
            summary(&r)["copied"].as_u64(),
            summary(&r)["deleted"].as_u64()
        ),
        (Some(0), Some(0))
    );
}

#[test]
fn delete_after_days_counts_from_when_it_was_stored() {
    let dv = Dovecot::start();
    let spread = load(&dv, 16, 30, &CorpusOpts::small());
    let env = Env::new();
    let to = env.path("mail");
    let day = 86_400i64;
    let t0 = 2_000_000_000i64;
    let at = |t: i64, extra: &[&str]| {
        let ca = dv.ca_file().display().to_string();
        let url = dv.url("imaps");
        let mut args = vec![
            "fetch",
            "--from",
            &url,
            "--to",
            to.to_str().unwrap(),
            "--ca-file",
            &ca,
            "--json",
            "--delete-after",
            "30",
        ];
        args.extend_from_slice(extra);
        crate::cli::to_run(
            env.cmd(dv.password())
                .env("MAILFERRY_NOW", t.to_string())
                .args(&args)
                .output()
                .unwrap(),
        )
    };
    let total = |dv: &Dovecot| {
        spread
            .iter()
            .map(|(f, _)| dv.status(dv.user(), f).messages)
            .sum::<u32>()
    };
    let r = at(t0, &[]);
    assert_eq!(
        (
            summary(&r)["copied"].as_u64(),
            summary(&r)["deleted"].as_u64()
        ),
        (Some(30), Some(0))
    );
    let r = at(t0 + 29 * day, &[]);
    assert_eq!(summary(&r)["deleted"], 0);
    assert_eq!(total(&dv), 30);
    // the dry run lists exactly what the real run then deletes
    let r = at(t0 + 31 * day, &["--dry-run"]);
    let mut planned: Vec<(String, u64)> = r
        .json()
        .into_iter()
        .filter(|e| e["event"] == "delete")
        .map(|e| {
            (
                e["folder"].as_str().unwrap().to_string(),
                e["uid"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(total(&dv), 30);
    let r = at(t0 + 31 * day, &[]);
    let mut done: Vec<(String, u64)> = r
        .json()
        .into_iter()
        .filter(|e| e["event"] == "delete")
        .map(|e| {
            (
                e["folder"].as_str().unwrap().to_string(),
                e["uid"].as_u64().unwrap(),
            )
        })
        .collect();
    planned.sort();
    done.sort();
    assert_eq!(planned.len(), 30);
    assert_eq!(planned, done);
    assert!(
        r.json()
            .iter()
            .filter(|e| e["event"] == "delete")
            .all(
                |e| e["reason"] == "delete-after 30d" && e["date"].as_str().unwrap().ends_with('Z')
            )
    );
    assert_eq!(total(&dv), 0);
    assert_exact_copy(&dv, &to, &spread);
}

#[test]
fn killed_at_any_point_then_rerun_gives_the_exact_message_set() {
    let dv = Dovecot::start();
    let spread = load(&dv, 17, 400, &CorpusOpts::small());
    let env = Env::new();
    let to = env.path("mail");
    let ca = dv.ca_file().display().to_string();
    let url = dv.url("imaps");
    let args = [
        "fetch",
        "--from",
        &url,
        "--to",
        to.to_str().unwrap(),
        "--ca-file",
        &ca,
    ];
    let kills = kill_while_writing(&env, dv.password(), &args, &to, |_| {});
    assert_landed_mid_copy(&kills, 400, 3);
    let r = env.run(dv.password(), &[&args[..], &["--json"]].concat());
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_exact_copy(&dv, &to, &spread);
    let r = env.run(dv.password(), &[&args[..], &["--json"]].concat());
    assert_eq!(summary(&r)["copied"], 0);
}

#[test]
fn lost_state_adopts_what_is_on_disk_instead_of_duplicating() {
    let dv = Dovecot::start();
    let spread = load(&dv, 21, 50, &CorpusOpts::small());
    let env = Env::new();
    let to = env.path("mail");
    assert_eq!(fetch(&env, &dv, &to, &[]).code, 0);
    // What a kill between the Maildir commit and the state commit leaves,
    // for every message at once: files on disk the state does not know.
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
    assert_exact_copy(&dv, &to, &spread);
    assert_eq!(summary(&fetch(&env, &dv, &to, &[]))["copied"], 0);
}

#[test]
fn second_run_on_a_locked_state_exits_75() {
    let dv = Dovecot::start();
    let env = Env::new();
    std::fs::create_dir_all(env.state().parent().unwrap()).unwrap();
    let _held = mailferry::state::State::lock(&env.state()).unwrap();
    let r = fetch(&env, &dv, &env.path("mail"), &[]);
    assert_eq!(r.code, 75, "{}{}", r.stdout, r.stderr);
}

#[test]
fn verify_runs_while_a_fetch_holds_the_lock() {
    let dv = Dovecot::start();
    load(&dv, 19, 12, &CorpusOpts::small());
    let env = Env::new();
    let to = env.path("mail");
    assert_eq!(fetch(&env, &dv, &to, &[]).code, 0);
    let _held = mailferry::state::State::lock(&env.state()).unwrap();
    assert_eq!(fetch(&env, &dv, &to, &[]).code, 75, "fetch still waits");
    let ca = dv.ca_file().display().to_string();
    let r = crate::cli::to_run(
        env.cmd("unused")
            .env("MAILFERRY_FROM_PASSWORD", dv.password())
            .args([
                "verify",
                "--from",
                &dv.url("imaps"),
                "--to",
                to.to_str().unwrap(),
                "--ca-file",
                &ca,
                "--json",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let last = r.json().pop().unwrap();
    assert_eq!(last["event"], "summary", "{}", r.stdout);
}

#[test]
fn plan_changes_nothing_and_counts_what_would_happen() {
    let dv = Dovecot::start();
    load(&dv, 18, 20, &CorpusOpts::small());
    let env = Env::new();
    let to = env.path("mail");
    let ca = dv.ca_file().display().to_string();
    let r = env.run(
        dv.password(),
        &[
            "plan",
            "fetch",
            "--from",
            &dv.url("imaps"),
            "--to",
            to.to_str().unwrap(),
            "--ca-file",
            &ca,
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(summary(&r)["copied"], 20);
    assert!(!to.exists() && !env.state().exists());
}

#[test]
fn dropped_connection_mid_fetch_then_rerun_completes_without_duplicates() {
    let dv = Dovecot::start();
    let spread = load(&dv, 19, 120, &CorpusOpts::small());
    let proxy = crate::proxy::Proxy::start(dv.imap_port(), 60_000);
    let env = Env::new();
    let to = env.path("mail");
    let url = format!("imap://{}@127.0.0.1:{}", dv.user(), proxy.port);
    let args = [
        "fetch",
        "--from",
        &url,
        "--to",
        to.to_str().unwrap(),
        "--insecure-plaintext",
        "--json",
        "--connections",
        "1",
    ];
    let r = env.run(dv.password(), &args);
    assert_ne!(r.code, 0, "the cut connection went unnoticed: {}", r.stdout);
    assert!(
        r.stdout.contains("connection") || r.stderr.contains("connection"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    proxy.set_cut_after(u64::MAX);
    let r = env.run(dv.password(), &args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_exact_copy(&dv, &to, &spread);
}

#[test]
fn malformed_messages_are_stored_not_fatal() {
    let dv = Dovecot::start();
    let opts = CorpusOpts {
        malformed_fraction: 0.5,
        ..CorpusOpts::small()
    };
    let spread = load(&dv, 20, 40, &opts);
    let env = Env::new();
    let to = env.path("mail");
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(summary(&r)["failed"], 0);
    assert_exact_copy(&dv, &to, &spread);
}

#[test]
fn without_uidplus_retention_refuses_unless_allowed() {
    let caps = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ NAMESPACE CONDSTORE LIST-EXTENDED SPECIAL-USE";
    let dv = Dovecot::start_with(
        common::DovecotOpts::default().config(&format!("imap_capability = {caps}")),
    );
    let spread = load(&dv, 22, 12, &CorpusOpts::small());
    let env = Env::new();
    let to = env.path("mail");
    let total = |dv: &Dovecot| {
        spread
            .iter()
            .map(|(f, _)| dv.status(dv.user(), f).messages)
            .sum::<u32>()
    };
    let r = fetch(&env, &dv, &to, &["--delete-after-fetch"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("UIDPLUS") && r.stdout.contains("--allow-expunge-all"),
        "{}",
        r.stdout
    );
    assert_eq!(summary(&r)["copied"], 12);
    assert_eq!(total(&dv), 12, "deleted without UIDPLUS");
    let r = fetch(
        &env,
        &dv,
        &to,
        &["--delete-after-fetch", "--allow-expunge-all"],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(summary(&r)["deleted"], 12);
    assert_eq!(total(&dv), 0);
    assert_exact_copy(&dv, &to, &spread);
}

#[test]
fn messages_held_back_by_max_size_are_fetched_by_a_later_run_without_it() {
    // A run with --max-size leaves the big messages on the server; a later
    // run without the filter must not take the STATUS fast path past them.
    let dv = Dovecot::start();
    let spread = load(&dv, 12, 60, &CorpusOpts::small());
    let sizes: Vec<usize> = spread
        .iter()
        .flat_map(|(_, m)| m.iter().map(|m| m.rfc822_size()))
        .collect();
    let mut sorted_sizes = sizes.clone();
    sorted_sizes.sort_unstable();
    let cut = sorted_sizes[sorted_sizes.len() / 2];
    let held = sizes.iter().filter(|&&s| s > cut).count();
    assert!(held > 0);
    let env = Env::new();
    let to = env.path("mail");
    let r = fetch(&env, &dv, &to, &["--max-size", &cut.to_string()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let s = summary(&r);
    assert_eq!(s["copied"].as_u64(), Some((60 - held) as u64));
    assert_eq!(s["skipped"].as_u64(), Some(held as u64));
    let r = fetch(&env, &dv, &to, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(summary(&r)["copied"].as_u64(), Some(held as u64));
    assert_exact_copy(&dv, &to, &spread);
    // Now complete: the next rerun is a no-op again.
    let r = fetch(&env, &dv, &to, &[]);
    assert!(!r.stdout.contains("folder_start"), "{}", r.stdout);
}
