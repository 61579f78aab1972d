//! `mailferry push` IMAP → IMAP between two real Dovecots with different
//! hierarchy separators ('/' source, '.' target): exact copy with flags,
//! keywords and dates, folder and special-use mapping, incremental reruns
//! with flag changes, and no duplicates after a kill, a lost state or a
//! UIDVALIDITY change on either side. Also `verify`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::cli::{Env, Run, to_run};
use crate::common::{self, CorpusOpts, Dovecot, DovecotOpts, Message};
use crate::fetch_imap::wire;

/// Source ('/') and target ('.'); the target's `\Sent` is "Sent Items".
pub(crate) fn servers() -> (Dovecot, Dovecot) {
    servers_with(DovecotOpts::default())
}

/// [`servers`] with more settings for both (e.g. [`RAWLOG`]).
pub(crate) fn servers_with(both: DovecotOpts) -> (Dovecot, Dovecot) {
    let src = Dovecot::start_with(both.clone().separator('/'));
    let dst = Dovecot::start_with(both.config(
        "namespace inbox {\n  mailbox Sent {\n    special_use =\n  }\n  mailbox \"Sent Items\" {\n    special_use = \\Sent\n  }\n}",
    ));
    dst.create_folder(dst.user(), "Sent Items");
    (src, dst)
}

/// Both CAs in one file for `--ca-file`.
pub(crate) fn ca(env: &Env, a: &Dovecot, b: &Dovecot) -> String {
    let p = env.path("ca.pem");
    if !p.exists() {
        let mut pem = std::fs::read(a.ca_file()).unwrap();
        pem.extend(std::fs::read(b.ca_file()).unwrap());
        std::fs::write(&p, pem).unwrap();
    }
    p.display().to_string()
}

pub(crate) fn run(env: &Env, cmd: &[&str], src: &Dovecot, dst: &Dovecot, extra: &[&str]) -> Run {
    let ca = ca(env, src, dst);
    let (from, to) = (src.url("imaps"), dst.url("imaps"));
    let mut args: Vec<&str> = cmd.to_vec();
    args.extend(["--from", &from, "--to", &to, "--ca-file", &ca, "--json"]);
    args.extend_from_slice(extra);
    to_run(
        env.cmd("unused")
            .env("MAILFERRY_FROM_PASSWORD", src.password())
            .env("MAILFERRY_TO_PASSWORD", dst.password())
            .args(&args)
            .output()
            .unwrap(),
    )
}

pub(crate) fn push(env: &Env, src: &Dovecot, dst: &Dovecot, extra: &[&str]) -> Run {
    run(env, &["push"], src, dst, extra)
}

pub(crate) fn summary(r: &Run) -> serde_json::Value {
    let last = r
        .json()
        .pop()
        .unwrap_or_else(|| panic!("no output: {}", r.stderr));
    assert_eq!(last["event"], "summary", "{}", r.stdout);
    last
}

pub(crate) fn load(dv: &Dovecot, seed: u64, n: usize) -> Vec<(String, Vec<Message>)> {
    let spread = common::spread(
        common::corpus(seed, n, &CorpusOpts::small()),
        &common::folder_set(),
    );
    for (f, m) in &spread {
        dv.deliver(dv.user(), f, m);
    }
    spread
}

/// Where a source folder lands on the target (the corpus folder set).
pub(crate) fn target_of(folder: &str) -> &str {
    if folder == "Sent" {
        "Sent Items"
    } else {
        folder
    }
}

pub(crate) fn files(dv: &Dovecot, folder: &str) -> Vec<PathBuf> {
    let dir = dv.folder_path(dv.user(), folder);
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            out.extend(rd.flatten().map(|e| e.path()));
        }
    }
    out
}

pub(crate) fn std_flags(p: &Path) -> String {
    let n = p.file_name().unwrap().to_string_lossy().into_owned();
    let mut v: Vec<char> = n
        .split_once(":2,")
        .map(|(_, f)| f.chars().filter(|c| c.is_ascii_uppercase()).collect())
        .unwrap_or_default();
    v.sort_unstable();
    v.into_iter().collect()
}

/// The target holds exactly the delivered messages: same bytes, once each,
/// same standard flags and arrival dates.
pub(crate) fn assert_exact_copy(dst: &Dovecot, spread: &[(String, Vec<Message>)]) {
    for (folder, msgs) in spread {
        let tf = target_of(folder);
        let got = files(dst, tf);
        assert_eq!(got.len(), msgs.len(), "message count in {tf}");
        let mut by_bytes: HashMap<Vec<u8>, Vec<&PathBuf>> = HashMap::new();
        for p in &got {
            by_bytes.entry(wire(p)).or_default().push(p);
        }
        for m in msgs {
            let mut want: Vec<char> = m.flags.chars().collect();
            want.sort_unstable();
            let want: String = want.into_iter().collect();
            let same = by_bytes.get_mut(&m.raw_crlf()).unwrap_or_else(|| {
                panic!("{tf}: a message is missing, altered or stored too few times")
            });
            // Exact copies (the corpus has a few) pair up by their flags.
            let i = same
                .iter()
                .position(|p| std_flags(p) == want)
                .unwrap_or(same.len() - 1);
            let p = same.remove(i);
            if same.is_empty() {
                by_bytes.remove(&m.raw_crlf());
            }
            assert_eq!(std_flags(p), want, "{tf}: flags");
            let mtime = std::fs::metadata(p).unwrap().modified().unwrap();
            assert_eq!(
                mtime,
                m.internal_date,
                "{tf}: INTERNALDATE of {}",
                p.display()
            );
        }
    }
}

pub(crate) fn total(dv: &Dovecot, spread: &[(String, Vec<Message>)]) -> usize {
    spread
        .iter()
        .map(|(f, _)| files(dv, target_of(f)).len())
        .sum()
}

pub(crate) fn count(spread: &[(String, Vec<Message>)]) -> usize {
    spread.iter().map(|(_, m)| m.len()).sum()
}

/// Keywords of the target message with this Message-ID (doveadm).
pub(crate) fn keywords(dv: &Dovecot, folder: &str) -> String {
    dv.doveadm(&[
        "fetch",
        "-u",
        dv.user(),
        "flags",
        "mailbox",
        &dv.server_name(folder),
        "all",
    ])
}

/// Dovecot config: log every IMAP session's client input (rawlog) under
/// the user's home, to see which commands a run sent.
pub(crate) const RAWLOG: &str = "protocol imap {\n  rawlog_dir = %h/rawlog\n}";

/// Empties (and creates) the rawlog directory: the next sessions are the
/// only ones [`commands`] sees. Dovecot writes there only if it exists.
pub(crate) fn clear_rawlog(dv: &Dovecot) {
    let dir = dv.dir().join("home").join(dv.user()).join("rawlog");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Dovecot's mail processes run as nobody when the tests run as root.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
}

/// The command lines (`tag NAME args`) clients sent since [`clear_rawlog`],
/// tag left out, e.g. `EXAMINE "INBOX"`, `UID FETCH 1:* (FLAGS)`.
pub(crate) fn commands(dv: &Dovecot) -> Vec<String> {
    let dir = dv.dir().join("home").join(dv.user()).join("rawlog");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if !e.file_name().to_string_lossy().ends_with(".in") {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
        for line in text.lines() {
            // `1795818205.168329 M5 STATUS …`: timestamp, tag, command.
            let line = match line.split_once(' ') {
                Some((ts, rest)) if ts.parse::<f64>().is_ok() => rest,
                _ => line,
            };
            let Some((_, rest)) = line.split_once(' ') else {
                continue;
            };
            let word = rest.split(' ').next().unwrap_or("");
            if [
                "SELECT",
                "EXAMINE",
                "STATUS",
                "UID",
                "FETCH",
                "APPEND",
                "LIST",
                "SEARCH",
                "STORE",
                "CREATE",
                "NAMESPACE",
                "ENABLE",
                "LOGOUT",
                "CAPABILITY",
                "ID",
            ]
            .contains(&word.to_ascii_uppercase().as_str())
            {
                out.push(rest.to_string());
            }
        }
    }
    out
}

/// All client input since [`clear_rawlog`], raw (message bodies too).
pub(crate) fn client_input(dv: &Dovecot) -> String {
    let dir = dv.dir().join("home").join(dv.user()).join("rawlog");
    let mut out = String::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().ends_with(".in") {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()));
        }
    }
    out
}

/// How often a literal of exactly `size` bytes was announced.
fn literals_of(input: &str, size: usize) -> usize {
    input.matches(&format!("{{{size}+}}")).count()
}

fn selects(cmds: &[String]) -> Vec<&String> {
    cmds.iter()
        .filter(|c| c.starts_with("SELECT ") || c.starts_with("EXAMINE "))
        .collect()
}

#[test]
fn unchanged_rerun_selects_nothing_and_a_changed_one_lists_only_the_changes() {
    let (src, dst) = servers_with(DovecotOpts::default().config(RAWLOG));
    let mut spread = load(&src, 33, 60);
    let env = Env::new();
    let r = push(&env, &src, &dst, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_exact_copy(&dst, &spread);
    let inbox_src = src.status(src.user(), "INBOX").messages;

    // No-op rerun: one LIST and one pipelined STATUS on the source, no
    // folder selected on either server.
    clear_rawlog(&src);
    clear_rawlog(&dst);
    let r = push(&env, &src, &dst, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
    let (sc, dc) = (commands(&src), commands(&dst));
    assert!(
        sc.iter().filter(|c| c.starts_with("STATUS ")).count() >= spread.len(),
        "the rawlog saw the STATUS fast path: {sc:?}"
    );
    assert!(selects(&sc).is_empty(), "source: {sc:?}");
    assert!(selects(&dc).is_empty(), "target: {dc:?}");
    assert!(
        !sc.iter().chain(&dc).any(|c| c.starts_with("UID ")),
        "no listing at all: {sc:?} {dc:?}"
    );
    // Each side: one session, one LIST, one STATUS per folder at most.
    for (side, c) in [("source", &sc), ("target", &dc)] {
        let n = |w: &str| c.iter().filter(|x| x.starts_with(w)).count();
        assert_eq!((n("LIST "), n("LOGOUT")), (1, 1), "{side}: {c:?}");
        assert!(n("STATUS ") <= spread.len(), "{side}: {c:?}");
    }

    // One flag change, one new message: only their folders are opened,
    // the source lists only what changed (CHANGEDSINCE), and the target
    // is searched only above the copies the state knows.
    src.doveadm(&[
        "flags",
        "add",
        "-u",
        src.user(),
        "\\Flagged",
        "mailbox",
        "INBOX",
        "uid",
        "2",
    ]);
    let m = &mut spread[0].1[1];
    m.flags = format!("{}F", m.flags.replace('F', ""));
    let more = common::corpus(34, 1, &CorpusOpts::small());
    src.deliver(src.user(), "Archive/2025", &more);
    spread
        .iter_mut()
        .find(|(f, _)| f == "Archive/2025")
        .unwrap()
        .1
        .extend(more);
    clear_rawlog(&src);
    clear_rawlog(&dst);
    let r = push(&env, &src, &dst, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let s = summary(&r);
    assert_eq!(
        (s["copied"].as_u64(), s["flags_updated"].as_u64()),
        (Some(1), Some(1)),
        "{}",
        r.stdout
    );
    assert_exact_copy(&dst, &spread);
    let (sc, dc) = (commands(&src), commands(&dst));
    let mut opened: Vec<&String> = selects(&sc);
    opened.sort();
    assert_eq!(
        opened.len(),
        2,
        "source opened only the changed folders: {sc:?}"
    );
    assert!(
        opened.iter().any(|c| c.contains("INBOX")) && opened.iter().any(|c| c.contains("2025")),
        "{opened:?}"
    );
    assert_eq!(selects(&dc).len(), 2, "target: {dc:?}");
    let listings: Vec<&String> = sc
        .iter()
        .filter(|c| c.starts_with("UID FETCH") && c.contains("MODSEQ"))
        .collect();
    assert!(
        !listings.is_empty() && listings.iter().all(|c| c.contains("CHANGEDSINCE")),
        "source listings: {listings:?}"
    );
    assert!(
        !dc.iter().any(|c| c.contains("SEARCH ALL")),
        "target: {dc:?}"
    );
    assert_eq!(src.status(src.user(), "INBOX").messages, inbox_src);

    // And that state is again a no-op.
    clear_rawlog(&src);
    clear_rawlog(&dst);
    let r = push(&env, &src, &dst, &[]);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
    assert!(selects(&commands(&src)).is_empty() && selects(&commands(&dst)).is_empty());
}

#[test]
fn push_copies_everything_exactly_maps_folders_and_reruns_incrementally() {
    let (src, dst) = servers();
    let mut spread = load(&src, 31, 60);
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
    let env = Env::new();

    // plan: the folder map first, nothing changed on the target.
    let r = run(&env, &["plan", "push"], &src, &dst, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let maps: HashMap<String, serde_json::Value> = r
        .json()
        .into_iter()
        .filter(|e| e["event"] == "folder_map")
        .map(|e| (e["folder"].as_str().unwrap().to_string(), e))
        .collect();
    assert_eq!(maps.len(), spread.len(), "{}", r.stdout);
    assert_eq!(maps["Sent"]["target"], "Sent Items");
    assert!(
        maps["Sent"]["reason"]
            .as_str()
            .unwrap()
            .contains("special-use")
    );
    assert_eq!(maps["Archive/2024"]["target"], "Archive/2024");
    assert_eq!(maps["Archive/2024"]["create"], true);
    assert_eq!(summary(&r)["copied"], count(&spread) as u64);
    assert_eq!(total(&dst, &spread), 0, "plan must not copy");

    let r = push(&env, &src, &dst, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(summary(&r)["copied"], count(&spread) as u64, "{}", r.stdout);
    assert_exact_copy(&dst, &spread);
    assert!(
        keywords(&dst, "INBOX").contains("$Forwarded"),
        "keyword carried"
    );
    // Created folders are subscribed.
    let subs = dst.doveadm(&["mailbox", "list", "-u", dst.user(), "-s"]);
    assert!(subs.contains("Archive.2024"), "{subs}");

    // No-op rerun.
    let r = push(&env, &src, &dst, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);

    // New mail and a flag change: only those travel.
    let more = common::corpus(32, 5, &CorpusOpts::small());
    src.deliver(src.user(), "Archive/2025", &more);
    spread
        .iter_mut()
        .find(|(f, _)| f == "Archive/2025")
        .unwrap()
        .1
        .extend(more);
    src.doveadm(&[
        "flags",
        "add",
        "-u",
        src.user(),
        "\\Flagged",
        "mailbox",
        "INBOX",
        "uid",
        "2",
    ]);
    let first = spread[0].1[1].clone();
    spread[0].1[1].flags = format!("{}F", first.flags.replace('F', ""));
    let r = push(&env, &src, &dst, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let s = summary(&r);
    assert_eq!(s["copied"], 5, "{}", r.stdout);
    assert_eq!(s["flags_updated"], 1, "{}", r.stdout);
    assert_exact_copy(&dst, &spread);
}

#[test]
fn no_duplicates_after_lost_state_or_uidvalidity_change_on_either_side() {
    let (src, dst) = servers();
    // Includes messages without a Message-ID and shared Message-IDs.
    let spread = load(&src, 41, 150);
    let env = Env::new();
    assert_eq!(push(&env, &src, &dst, &[]).code, 0);
    assert_exact_copy(&dst, &spread);

    // Lost state: everything is found on the target, nothing appended:
    // matched, not copied, per folder and in the summary (issue 13 item 6).
    std::fs::remove_dir_all(env.state().parent().unwrap()).unwrap();
    let r = push(&env, &src, &dst, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
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
    let done: Vec<serde_json::Value> = r
        .json()
        .into_iter()
        .filter(|e| e["event"] == "folder_done")
        .collect();
    assert_eq!(done.len(), spread.len(), "{}", r.stdout);
    for e in &done {
        let (_, msgs) = spread
            .iter()
            .find(|(f, _)| e["folder"] == f.as_str())
            .unwrap();
        let want = (Some(0), Some(msgs.len() as u64));
        assert_eq!((e["copied"].as_u64(), e["matched"].as_u64()), want, "{e}");
    }
    // And the adopted records carry flags on: a flag change still travels.
    src.doveadm(&[
        "flags",
        "add",
        "-u",
        src.user(),
        "\\Answered",
        "mailbox",
        "INBOX",
        "uid",
        "3",
    ]);
    let r = push(&env, &src, &dst, &[]);
    assert_eq!(summary(&r)["flags_updated"], 1, "{}", r.stdout);

    // Source UIDVALIDITY change.
    src.reset_uidvalidity(src.user(), "Archive/2024");
    let r = push(&env, &src, &dst, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(total(&dst, &spread), count(&spread));

    // Target UIDVALIDITY change: the source did not change, but the
    // target's STATUS shows a UIDVALIDITY the records do not have, so the
    // folder is not passed over: a full listing re-identifies the copies
    // (matched, not appended), and then it is passed over again.
    dst.reset_uidvalidity(dst.user(), "INBOX");
    let r = push(&env, &src, &dst, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(total(&dst, &spread), count(&spread));
    let s = summary(&r);
    assert_eq!(
        (s["copied"].as_u64(), s["matched"].as_u64()),
        (Some(0), Some(spread[0].1.len() as u64)),
        "{}",
        r.stdout
    );
    let r = push(&env, &src, &dst, &[]);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
    assert_eq!(summary(&r)["matched"], 0, "{}", r.stdout);
    // Once the source folder changes, its records under the target's new
    // UIDVALIDITY carry the flag change to the right copy.
    src.doveadm(&[
        "flags",
        "add",
        "-u",
        src.user(),
        "\\Flagged",
        "mailbox",
        "INBOX",
        "uid",
        "4",
    ]);
    let r = push(&env, &src, &dst, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(total(&dst, &spread), count(&spread));
    let flagged = dst.doveadm(&["search", "-u", dst.user(), "mailbox", "INBOX", "FLAGGED"]);
    let want = spread[0].1.iter().filter(|m| m.flags.contains('F')).count()
        + usize::from(!spread[0].1[3].flags.contains('F'));
    assert_eq!(flagged.lines().count(), want, "{flagged}");
}

#[test]
fn killed_during_an_incremental_push_then_rerun_has_no_duplicates() {
    // The folder is complete at a recorded sync point, then a run copying
    // new mail is killed between APPEND and the state commit: the rerun
    // lists only the changes and must still find those copies.
    let (src, dst) = servers();
    let mut spread = load(&src, 52, 30);
    let env = Env::new();
    assert_eq!(push(&env, &src, &dst, &[]).code, 0);
    let more = common::corpus(53, 300, &CorpusOpts::small());
    src.deliver(src.user(), "INBOX", &more);
    spread[0].1.extend(more);
    let partial = kill_imap_push_until_partial(&env, &src, &dst, &spread);
    assert!(
        partial.iter().any(|&n| n > 30 && n < count(&spread)),
        "no kill landed mid-copy: {partial:?}"
    );
    let r = push(&env, &src, &dst, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_exact_copy(&dst, &spread);
}

#[test]
fn killed_at_any_point_then_rerun_gives_the_exact_message_set() {
    let (src, dst) = servers();
    let spread = load(&src, 51, 400);
    let env = Env::new();
    let partial = kill_imap_push_until_partial(&env, &src, &dst, &spread);
    // The kills must have hit mid-copy for this test to mean anything.
    assert!(
        partial.iter().any(|&n| n > 0 && n < count(&spread)),
        "no kill landed mid-copy: {partial:?}"
    );
    eprintln!(
        "after the kills ({partial:?}): {} of {} on the target",
        total(&dst, &spread),
        count(&spread)
    );
    let r = push(&env, &src, &dst, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_exact_copy(&dst, &spread);
}

/// [`kill_until_partial`] for an IMAPS → IMAPS push of `spread`; returns
/// the target's message count after each kill.
fn kill_imap_push_until_partial(
    env: &Env,
    src: &Dovecot,
    dst: &Dovecot,
    spread: &[(String, Vec<Message>)],
) -> Vec<usize> {
    let ca = ca(env, src, dst);
    let (from, to) = (src.url("imaps"), dst.url("imaps"));
    kill_until_partial(
        dst,
        || {
            let args = ["--from", &from, "--to", &to, "--ca-file", &ca];
            quiet_push(env, Some(src.password()), dst.password(), &args)
        },
        || total(dst, spread),
        count(spread),
    )
}

/// A `push` with `args`, passwords in the environment, output discarded:
/// a child for [`kill_until_partial`].
pub(crate) fn quiet_push(
    env: &Env,
    from_password: Option<&str>,
    to_password: &str,
    args: &[&str],
) -> std::process::Child {
    let mut cmd = env.cmd("unused");
    if let Some(pw) = from_password {
        cmd.env("MAILFERRY_FROM_PASSWORD", pw);
    }
    cmd.env("MAILFERRY_TO_PASSWORD", to_password)
        .arg("push")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Starts runs and kills each one a growing delay (0 ms, +20 ms each
/// round) after it first added to the target, until one finished the copy
/// or 20 were killed; returns how many messages the target held after each
/// kill. Counting from the first copy, not from the start, finds the
/// mid-copy window however fast or loaded the machine is. After each kill
/// the `target` server finishes what the killed run had sent before the
/// next run starts (see [`Dovecot::wait_for_sessions_to_end`]).
pub(crate) fn kill_until_partial(
    target: &Dovecot,
    spawn: impl Fn() -> std::process::Child,
    done: impl Fn() -> usize,
    all: usize,
) -> Vec<usize> {
    let mut partial = Vec::new();
    for i in 0..20u64 {
        let before = done();
        let mut child = spawn();
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none()
            && started.elapsed() < std::time::Duration::from_secs(60)
        {
            if done() > before {
                std::thread::sleep(std::time::Duration::from_millis(20 * i));
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
        target.wait_for_sessions_to_end();
        let n = done();
        partial.push(n);
        if n >= all {
            break;
        }
    }
    partial
}

/// APPEND throughput with and without MULTIAPPEND on the target (same
/// source, 1,000 small messages). Run by hand:
/// `cargo test --test it push::append_throughput -- --ignored --nocapture`
#[test]
#[ignore]
fn append_throughput() {
    const CAPS: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE";
    let src = Dovecot::start_with(DovecotOpts::default().separator('/'));
    let msgs = common::corpus(61, 1000, &CorpusOpts::small());
    let bytes: usize = msgs.iter().map(|m| m.rfc822_size()).sum();
    src.deliver(src.user(), "INBOX", &msgs);
    // Alternating, so a warm source cache favours neither.
    for multi in [false, true, false, true] {
        let (label, opts) = if multi {
            ("MULTIAPPEND groups", DovecotOpts::default())
        } else {
            (
                "single APPENDs (LITERAL+, 32 in flight)",
                DovecotOpts::default().config(&format!("imap_capability = {CAPS}")),
            )
        };
        let dst = Dovecot::start_with(opts);
        let env = Env::new();
        let t = std::time::Instant::now();
        let r = push(&env, &src, &dst, &["--folder", "INBOX"]);
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert_eq!(summary(&r)["copied"], 1000);
        eprintln!(
            "{label}: 1000 messages, {:.1} MB in {secs:.2} s = {:.0} msg/s",
            bytes as f64 / 1e6,
            1000.0 / secs
        );
    }
}

#[test]
fn verify_lists_missing_and_extra_against_imap_and_maildir() {
    let (src, dst) = servers();
    let spread = load(&src, 71, 40);
    let env = Env::new();
    assert_eq!(push(&env, &src, &dst, &[]).code, 0);
    for deep in [&[][..], &["--deep"][..]] {
        let r = run(&env, &["verify"], &src, &dst, deep);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert_eq!(summary(&r)["failed"], 0);
    }
    // One message gone from the target, one foreign message added.
    let victim = files(&dst, "Archive/2024").pop().unwrap();
    let mid = common::corpus::header(&std::fs::read(&victim).unwrap(), "Message-ID");
    std::fs::remove_file(&victim).unwrap();
    dst.deliver(
        dst.user(),
        "Sent Items",
        &common::corpus(72, 1, &CorpusOpts::small()),
    );
    let r = run(&env, &["verify"], &src, &dst, &["--deep"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let ev = r.json();
    let errs: Vec<&serde_json::Value> = ev
        .iter()
        .filter(|e| e["event"] == "message_error")
        .collect();
    assert_eq!(errs.len(), 1, "{}", r.stdout);
    assert_eq!(errs[0]["folder"], "Archive/2024");
    assert!(errs[0]["uid"].is_u64());
    if let Some(m) = mid {
        assert_eq!(
            errs[0]["message_id"].as_str(),
            Some(m.trim_matches(|c| c == '<' || c == '>'))
        );
    }
    let extra: Vec<&serde_json::Value> = ev
        .iter()
        .filter(|e| e["event"] == "warning" && e["folder"] == "Sent")
        .collect();
    assert_eq!(extra.len(), 1, "{}", r.stdout);
    assert_eq!(summary(&r)["failed"], 1);
    assert_eq!(summary(&r)["matched"], count(&spread) as u64 - 1);
    assert_eq!(summary(&r)["copied"], 0);

    // -v speaks verify's words (issue 13 item 6): per folder what is
    // present, missing and extra, and that as the total; never copies.
    let ca_file = ca(&env, &src, &dst);
    let v = to_run(
        env.cmd("unused")
            .env("MAILFERRY_FROM_PASSWORD", src.password())
            .env("MAILFERRY_TO_PASSWORD", dst.password())
            .args([
                "verify",
                "-v",
                "--from",
                &src.url("imaps"),
                "--to",
                &dst.url("imaps"),
            ])
            .args(["--ca-file", &ca_file])
            .output()
            .unwrap(),
    );
    assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
    let n = spread
        .iter()
        .find(|(f, _)| f == "Archive/2024")
        .unwrap()
        .1
        .len();
    assert!(
        v.stderr.contains(&format!(
            "Archive/2024 → Archive/2024: {} of {n} present ({} in the target), 1 missing, 0 extra",
            n - 1,
            n - 1
        )),
        "{}",
        v.stderr
    );
    assert!(v.stderr.contains("Sent → Sent Items: "), "{}", v.stderr);
    assert!(
        v.stderr.lines().last().unwrap().starts_with(&format!(
            "{} present, 1 missing, 1 extra in ",
            count(&spread) - 1
        )),
        "{}",
        v.stderr
    );
    assert!(
        !v.stderr.contains("copied") && !v.stderr.contains("to copy"),
        "{}",
        v.stderr
    );

    // Against a Maildir written by fetch.
    let md = env.path("backup");
    let ca = ca(&env, &src, &dst);
    let from = src.url("imaps");
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
    assert_eq!(f.code, 0, "{}{}", f.stdout, f.stderr);
    let m = md.to_str().unwrap().to_string();
    let v = |extra: &[&str]| {
        let mut a = vec![
            "verify",
            "--from",
            &from,
            "--to",
            &m,
            "--ca-file",
            &ca,
            "--json",
        ];
        a.extend_from_slice(extra);
        to_run(
            env.cmd("unused")
                .env("MAILFERRY_FROM_PASSWORD", src.password())
                .args(&a)
                .output()
                .unwrap(),
        )
    };
    for deep in [&[][..], &["--deep"][..]] {
        let r = v(deep);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    }
    let _ = spread;
}

#[test]
fn push_retries_a_folder_over_several_dropped_connections() {
    // Every source connection is cut after `cut` bytes; the folder needs
    // about three connections' worth, more than one reconnect gives.
    let src = Dovecot::start_with(DovecotOpts::default().separator('/'));
    let dst = Dovecot::start();
    let msgs = common::corpus(111, 100, &CorpusOpts::small().max_size(16 * 1024));
    src.deliver(src.user(), "INBOX", &msgs);
    let bytes: usize = msgs.iter().map(|m| m.rfc822_size()).sum();
    assert!(bytes > 300_000, "corpus too small for the premise: {bytes}");
    let cut = (bytes as f64 / 2.5) as u64 + 24 * 1024;
    let proxy = crate::proxy::Proxy::start(src.imap_port(), cut);
    let env = Env::new();
    let from = format!("imap://{}@127.0.0.1:{}", src.user(), proxy.port);
    let ca = dst.ca_file().display().to_string();
    let r = to_run(
        env.cmd("unused")
            .env("MAILFERRY_FROM_PASSWORD", src.password())
            .env("MAILFERRY_TO_PASSWORD", dst.password())
            .args(["push", "--from", &from, "--to", &dst.url("imaps")])
            .args(["--ca-file", &ca, "--insecure-plaintext", "--json"])
            .args(["--connections", "1"])
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let retries = r
        .json()
        .into_iter()
        .filter(|e| e["event"] == "warning" && e["message"].as_str().unwrap().contains("retrying"))
        .count();
    assert!(retries >= 2, "expected several retries: {}", r.stdout);
    assert_exact_copy(&dst, &[("INBOX".to_string(), msgs)]);
}

/// A target that refuses messages over `max` bytes (the quota plugin's
/// `quota_max_mail_size`), and says so as `APPENDLIMIT=max` if `advertise`.
fn limited_target(max: usize, advertise: bool) -> Dovecot {
    let mut o = DovecotOpts::default().config(RAWLOG).config(&format!(
        "mail_plugins = $mail_plugins quota\nplugin {{\n  quota = maildir:User quota\n  quota_rule = *:storage=1G\n  quota_max_mail_size = {max}\n}}"
    ));
    if advertise {
        o = o.config(&format!(
            "protocol imap {{\n  imap_capability = +APPENDLIMIT={max}\n}}"
        ));
    }
    Dovecot::start_with(o)
}

/// 120 messages in the source's INBOX (several MULTIAPPEND groups), two
/// of them (UIDs 11 and 71) well over a limit the others are well under,
/// whether a server counts LF or CRLF bytes. Returns the limit and those
/// UIDs.
fn limit_corpus(src: &Dovecot, seed: u64) -> (Vec<Message>, usize, Vec<u32>) {
    const LIMIT: usize = 32 * 1024;
    let mut msgs = common::corpus(seed, 120, &CorpusOpts::small().max_size(16 * 1024));
    let over = vec![11, 71];
    for u in &over {
        let m = &mut msgs[*u as usize - 1];
        m.raw
            .extend(format!("{}\n", "x".repeat(76)).repeat(600).bytes());
        assert!(m.raw.len() > LIMIT + 4096);
    }
    assert!(msgs.iter().filter(|m| m.rfc822_size() > LIMIT).count() == 2);
    src.deliver(src.user(), "INBOX", &msgs);
    (msgs, LIMIT, over)
}

fn errors(r: &Run) -> Vec<serde_json::Value> {
    r.json()
        .into_iter()
        .filter(|e| e["event"] == "message_error")
        .collect()
}

#[test]
fn messages_over_the_targets_appendlimit_are_reported_not_sent_and_the_rest_go_on() {
    let src = Dovecot::start_with(DovecotOpts::default().separator('/'));
    let (msgs, limit, over) = limit_corpus(&src, 81);
    let dst = limited_target(limit, true);
    let env = Env::new();
    clear_rawlog(&dst);
    for _ in 0..2 {
        let r = push(&env, &src, &dst, &["--folder", "INBOX"]);
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
        let errs = errors(&r);
        let mut uids: Vec<u32> = errs
            .iter()
            .map(|e| e["uid"].as_u64().unwrap() as u32)
            .collect();
        uids.sort_unstable();
        assert_eq!(uids, over, "{}", r.stdout);
        for e in &errs {
            assert_eq!(e["folder"], "INBOX");
            assert!(e["error"].as_str().unwrap().contains("APPENDLIMIT"), "{e}");
        }
        assert_eq!(summary(&r)["failed"], 2, "{}", r.stdout);
    }
    let fits: Vec<Message> = msgs
        .iter()
        .enumerate()
        .filter(|(i, _)| !over.contains(&(*i as u32 + 1)))
        .map(|(_, m)| m.clone())
        .collect();
    assert_exact_copy(&dst, &[("INBOX".to_string(), fits)]);
    // Never sent: no literal of that size reached the server.
    let input = client_input(&dst);
    assert!(input.contains("APPEND"));
    for u in &over {
        let size = msgs[*u as usize - 1].rfc822_size();
        assert_eq!(
            literals_of(&input, size),
            0,
            "UID {u} ({size} bytes) was sent"
        );
    }
}

#[test]
fn a_refused_multiappend_group_is_retried_one_by_one_so_only_the_bad_message_fails() {
    // The limit is enforced but not advertised: the client cannot know,
    // the server refuses the whole MULTIAPPEND group ([LIMIT]).
    let src = Dovecot::start_with(DovecotOpts::default().separator('/'));
    let (msgs, limit, over) = limit_corpus(&src, 81);
    let dst = limited_target(limit, false);
    let env = Env::new();
    clear_rawlog(&dst);
    let r = push(&env, &src, &dst, &["--folder", "INBOX"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let errs = errors(&r);
    let mut uids: Vec<u32> = errs
        .iter()
        .map(|e| e["uid"].as_u64().unwrap() as u32)
        .collect();
    uids.sort_unstable();
    assert_eq!(uids, over, "{}", r.stdout);
    for e in &errs {
        assert_eq!(e["folder"], "INBOX");
        assert!(e["error"].as_str().unwrap().contains("NO"), "{e}");
    }
    let s = summary(&r);
    assert_eq!(
        (s["copied"].as_u64(), s["failed"].as_u64()),
        (Some(118), Some(2)),
        "{}",
        r.stdout
    );
    let fits: Vec<Message> = msgs
        .iter()
        .enumerate()
        .filter(|(i, _)| !over.contains(&(*i as u32 + 1)))
        .map(|(_, m)| m.clone())
        .collect();
    assert_exact_copy(&dst, &[("INBOX".to_string(), fits)]);
    // Each refused message went twice: in its group, then on its own.
    let input = client_input(&dst);
    for u in &over {
        let size = msgs[*u as usize - 1].rfc822_size();
        assert_eq!(literals_of(&input, size), 2, "UID {u} ({size} bytes)");
    }
    // A rerun tries only the two again.
    let r = push(&env, &src, &dst, &["--folder", "INBOX"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(errors(&r).len(), 2, "{}", r.stdout);
    assert_eq!(summary(&r)["copied"], 0, "{}", r.stdout);
}
