//! `mailferry migrate` over two real Dovecots: 30 accounts, half copied
//! from the first server to the second and half the other way, killed with
//! SIGKILL mid-run and rerun — every target folder must then hold exactly
//! its source's messages, once each. Shards run side by side must split the
//! manifest with no overlap and nothing left out; a bad account must not
//! stop the others, and decides the exit code.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::cli::{Env, Run, to_run};
use crate::common::{self, CorpusOpts, Dovecot, DovecotOpts};
use crate::fetch_imap::wire;

const FOLDERS: [&str; 3] = ["INBOX", "Archive", "Work/2024"];
const PW_A: &str = "pw-of-server-a";
const PW_B: &str = "pw-of-server-b";

fn user(i: usize) -> String {
    format!("u{i:02}")
}

/// Two servers with users u00..u{n-1}, each with its own password.
fn servers(n: usize) -> (Dovecot, Dovecot) {
    let opts = |pw: &str| (0..n).fold(DovecotOpts::default(), |o, i| o.user(&user(i), pw));
    (
        Dovecot::start_with(opts(PW_A)),
        Dovecot::start_with(opts(PW_B)),
    )
}

/// Account `i` copies from A to B when even, from B to A when odd.
fn sides<'a>(i: usize, a: &'a Dovecot, b: &'a Dovecot) -> (&'a Dovecot, &'a Dovecot) {
    if i.is_multiple_of(2) { (a, b) } else { (b, a) }
}

/// Delivers `per` messages per account, spread over [`FOLDERS`].
fn load(a: &Dovecot, b: &Dovecot, n: usize, per: usize) -> usize {
    for i in 0..n {
        let (src, _) = sides(i, a, b);
        let msgs = common::corpus(
            1000 + i as u64,
            per,
            &CorpusOpts::small().max_size(16 * 1024),
        );
        for (f, m) in common::spread(msgs, &FOLDERS) {
            src.deliver(&user(i), &f, &m);
        }
    }
    n * per
}

fn folder_files(dv: &Dovecot, user: &str, folder: &str) -> Vec<PathBuf> {
    let dir = dv.folder_path(user, folder);
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            out.extend(rd.flatten().map(|e| e.path()));
        }
    }
    out
}

/// Messages on every target so far (files, not doveadm: polled often).
fn copied(a: &Dovecot, b: &Dovecot, n: usize) -> usize {
    (0..n)
        .map(|i| {
            let (_, dst) = sides(i, a, b);
            FOLDERS
                .iter()
                .map(|f| folder_files(dst, &user(i), f).len())
                .sum::<usize>()
        })
        .sum()
}

/// Every target folder holds exactly its source's messages (the same bytes,
/// so the same Message-IDs), each once.
fn assert_exact(a: &Dovecot, b: &Dovecot, ids: impl IntoIterator<Item = usize>) {
    for i in ids {
        let (src, dst) = sides(i, a, b);
        for f in FOLDERS {
            let multiset = |dv: &Dovecot| {
                let mut m: HashMap<Vec<u8>, usize> = HashMap::new();
                for p in folder_files(dv, &user(i), f) {
                    *m.entry(wire(&p)).or_default() += 1;
                }
                m
            };
            let (want, got) = (multiset(src), multiset(dst));
            let n = |m: &HashMap<Vec<u8>, usize>| m.values().sum::<usize>();
            assert_eq!(n(&got), n(&want), "{} {f}: message count", user(i));
            assert!(
                got == want,
                "{} {f}: different messages or duplicates",
                user(i)
            );
        }
    }
}

/// A manifest for accounts `0..n` (ids `acct-NN`), secrets by reference:
/// even rows from the environment, odd rows from files.
fn manifest(env: &Env, a: &Dovecot, b: &Dovecot, n: usize, extra: &str) -> PathBuf {
    let (fa, fb) = (env.path("pw-a"), env.path("pw-b"));
    std::fs::write(&fa, format!("{PW_A}\n")).unwrap();
    std::fs::write(&fb, format!("{PW_B}\n")).unwrap();
    let mut csv =
        String::from("# migration wave 1\nid,source,target,source_secret,target_secret\n");
    for i in 0..n {
        let (src, dst) = sides(i, a, b);
        let (sp, tp) = if i.is_multiple_of(2) {
            ("env:PW_A".to_string(), "env:PW_B".to_string())
        } else {
            (
                format!("file:{}", fb.display()),
                format!("file:{}", fa.display()),
            )
        };
        csv.push_str(&format!(
            "acct-{i:02},{},{},{sp},{tp}\n",
            src.url_for("imaps", &user(i)),
            dst.url_for("imaps", &user(i))
        ));
    }
    csv.push_str(extra);
    let p = env.path("accounts.csv");
    std::fs::write(&p, csv).unwrap();
    p
}

fn ca(env: &Env, a: &Dovecot, b: &Dovecot) -> String {
    crate::push::ca(env, a, b)
}

fn migrate_cmd(env: &Env, args: &[&str]) -> std::process::Command {
    let mut c = env.cmd("unused");
    c.env("PW_A", PW_A)
        .env("PW_B", PW_B)
        .arg("migrate")
        .args(args);
    c
}

fn migrate(env: &Env, args: &[&str]) -> Run {
    to_run(migrate_cmd(env, args).output().unwrap())
}

fn account_lines(r: &Run) -> Vec<serde_json::Value> {
    r.json()
        .into_iter()
        .filter(|e| e["event"] == "account")
        .collect()
}

#[test]
fn thirty_accounts_killed_mid_run_and_rerun_are_exact() {
    const N: usize = 30;
    let (a, b) = servers(N);
    let all = load(&a, &b, N, 40);
    let env = Env::new();
    let m = manifest(&env, &a, &b, N, "");
    let (m, ca) = (m.display().to_string(), ca(&env, &a, &b));
    let dir = env.path("migrate-state").display().to_string();
    let args = [
        "--manifest",
        &m,
        "--ca-file",
        &ca,
        "--state-dir",
        &dir,
        "--jobs",
        "6",
        "--per-host-connections",
        "8",
        "--connections",
        "2",
        "--json",
    ];

    // Killed once a tenth of the mail is across: mid-run, several accounts
    // half done, others not started.
    let mut child = migrate_cmd(&env, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while copied(&a, &b, N) < all / 10 && t.elapsed() < Duration::from_secs(120) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    a.wait_for_sessions_to_end();
    b.wait_for_sessions_to_end();
    let after_kill = copied(&a, &b, N);
    assert!(
        after_kill > 0 && after_kill < all,
        "kill not mid-run: {after_kill} of {all}"
    );
    eprintln!("killed with {after_kill} of {all} copied");

    let report = env.path("report.html");
    let mut rerun_args = args.to_vec();
    rerun_args.extend(["--report", report.to_str().unwrap()]);
    let r = migrate(&env, &rerun_args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let lines = account_lines(&r);
    assert_eq!(lines.len(), N, "{}", r.stdout);
    assert!(
        lines
            .iter()
            .all(|l| l["outcome"] == "ok" && l["exit_code"] == 0),
        "{}",
        r.stdout
    );
    let ev = r.json();
    let sum = &ev[ev.len() - 2];
    assert_eq!(sum["event"], "migrate_summary");
    assert_eq!(
        (sum["accounts"].as_u64(), sum["ok"].as_u64()),
        (Some(N as u64), Some(N as u64))
    );
    assert_eq!(ev.last().unwrap()["event"], "summary");
    // What the killed run appended but had not recorded is adopted
    // (counted as matched), never appended again (assert_exact below):
    // the rerun copies at most what was missing at the count (an APPEND
    // the server finished after it is matched), and each account line
    // agrees with the summary.
    let last = ev.last().unwrap();
    let rerun = last["copied"].as_u64().unwrap() as usize;
    let matched = last["matched"].as_u64().unwrap() as usize;
    assert!(rerun <= all - after_kill, "{last}");
    assert!(
        rerun + matched >= all - after_kill && rerun + matched <= all,
        "{last}"
    );
    let per_account = |k: &str| {
        lines
            .iter()
            .map(|l| l[k].as_u64().unwrap() as usize)
            .sum::<usize>()
    };
    assert_eq!(
        (per_account("copied"), per_account("matched")),
        (rerun, matched)
    );
    assert_exact(&a, &b, 0..N);
    let page = std::fs::read_to_string(&report).unwrap();
    assert_eq!(page.matches("<tr class=\"ok\">").count(), N);

    // One state file and lock per account, nothing else written outside.
    let dbs = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "db"))
        .count();
    assert_eq!(dbs, N);

    // A rerun is the no-op push of each account; --skip-done does not even
    // connect.
    let r = migrate(&env, &args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json().last().unwrap()["copied"], 0);
    let mut skip = args.to_vec();
    skip.push("--skip-done");
    let r = migrate(&env, &skip);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        account_lines(&r).iter().all(|l| l["outcome"] == "skipped"),
        "{}",
        r.stdout
    );
    assert_exact(&a, &b, 0..N);
}

#[test]
fn shards_side_by_side_are_disjoint_complete_and_a_bad_account_decides_the_exit_code() {
    const N: usize = 12;
    let (a, b) = servers(N);
    load(&a, &b, N, 8);
    let env = Env::new();
    let wrong = env.path("wrong-pw");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    // A hostile id, and an account whose target password is wrong.
    let extra = format!(
        "../escape,{},{},env:PW_A,env:PW_B\nbad,{},{},env:PW_A,file:{}\n",
        a.url_for("imaps", &user(0)),
        b.url_for("imaps", &user(0)),
        a.url_for("imaps", &user(2)),
        b.url_for("imaps", &user(2)),
        wrong.display()
    );
    let m = manifest(&env, &a, &b, N, &extra).display().to_string();
    let ca = ca(&env, &a, &b);
    let ids: BTreeSet<String> = (0..N)
        .map(|i| format!("acct-{i:02}"))
        .chain(["../escape".to_string(), "bad".to_string()])
        .collect();

    // Three runners at once, each with its own state dir, as three pods of
    // an Indexed Job would; the last takes its index from the environment.
    let children: Vec<_> = (0..3)
        .map(|i| {
            let dir = env.path(&format!("shard{i}")).display().to_string();
            let shard = format!("{i}/3");
            let mut args = vec![
                "--manifest",
                &m,
                "--ca-file",
                &ca,
                "--state-dir",
                &dir,
                "--json",
            ];
            let mut cmd = if i == 2 {
                args.extend(["--shards", "3"]);
                let mut c = migrate_cmd(&env, &args);
                c.env("JOB_COMPLETION_INDEX", "2");
                c
            } else {
                args.extend(["--shard", &shard]);
                migrate_cmd(&env, &args)
            };
            cmd.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|c| to_run(c.wait_with_output().unwrap()))
        .collect();

    let mut union = BTreeSet::new();
    for (i, r) in runs.iter().enumerate() {
        let lines = account_lines(r);
        let mine: BTreeSet<String> = lines
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(mine.len(), lines.len(), "an id twice in shard {i}");
        for id in &mine {
            assert!(union.insert(id.clone()), "{id} in two shards");
        }
        let bad = lines.iter().find(|l| l["id"] == "bad");
        let want = if bad.is_some() { 3 } else { 0 };
        assert_eq!(r.code, want, "shard {i}: {}{}", r.stdout, r.stderr);
        // Also with --json, a failed account is one line on stderr,
        // naming it (issue 13 item 7); the others print nothing there.
        let errs: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        if let Some(bad) = bad {
            assert_eq!(bad["outcome"], "failed");
            assert_eq!(bad["exit_code"], 3);
            assert!(!r.stdout.contains("not-the-password"));
            assert_eq!(errs.len(), 1, "shard {i}: {}", r.stderr);
            assert!(
                errs[0].contains("] bad: failed") && errs[0].contains("authentication failed"),
                "{}",
                r.stderr
            );
        } else {
            assert!(errs.is_empty(), "shard {i}: {}", r.stderr);
        }
        for l in lines.iter().filter(|l| l["id"] != "bad") {
            assert_eq!(l["outcome"], "ok", "shard {i}: {l}");
        }
        assert_eq!(r.json().last().unwrap()["event"], "summary");
    }
    assert_eq!(union, ids, "the shards together are the manifest");
    assert_exact(&a, &b, 0..N);
    // The hostile id's state stayed inside its shard's state dir.
    let inside = (0..3).any(|i| {
        std::fs::read_dir(env.path(&format!("shard{i}")))
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("_.._escape"))
            })
            .unwrap_or(false)
    });
    assert!(inside, "no state file for ../escape in a shard dir");
    assert!(!env.path("escape.db").exists() && !env.path("escape-").exists());
}

#[test]
fn a_manifest_with_an_inline_password_is_refused_before_anything_runs() {
    let env = Env::new();
    let p = env.path("m.csv");
    std::fs::write(
        &p,
        "id,source,target,source_secret\nok,imaps://a@h,imaps://a@g,env:X\ncarol,imaps://c@h,imaps://c@g,hunter2\n",
    )
    .unwrap();
    let r = migrate(&env, &["--manifest", p.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("m.csv:3") && r.stderr.contains("\"carol\""),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("hunter2"));
    assert!(!env.path("state/migrate").exists());
}

#[test]
fn without_a_manifest_the_config_push_jobs_are_the_rows() {
    let (a, b) = servers(2);
    load(&a, &b, 2, 6);
    let env = Env::new();
    let ca = ca(&env, &a, &b);
    let mut toml = String::new();
    for i in 0..2 {
        let (src, dst) = sides(i, &a, &b);
        let pw = |d: &Dovecot| if std::ptr::eq(d, &a) { "PW_A" } else { "PW_B" };
        toml.push_str(&format!(
            "[account.src{i}]\nurl = \"{}\"\npassword_env = \"{}\"\n\
             [account.dst{i}]\nurl = \"{}\"\npassword_env = \"{}\"\n",
            src.url_for("imaps", &user(i)),
            pw(src),
            dst.url_for("imaps", &user(i)),
            pw(dst)
        ));
    }
    toml.push_str(
        "[[job]]\nname = \"move-u00\"\ncommand = \"push\"\nfrom = \"src0\"\nto = \"dst0\"\n\
         [[job]]\nname = \"backup\"\ncommand = \"fetch\"\nfrom = \"src0\"\nto = \"~/Mail/x\"\n\
         [[job]]\nname = \"move-u01\"\ncommand = \"push\"\nfrom = \"src1\"\nto = \"dst1\"\n",
    );
    let cfg = env.path("config/mailferry/config.toml");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, toml).unwrap();
    let r = migrate(&env, &["--ca-file", &ca]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // The table: a header, one line per push job (not the fetch job), a total.
    assert!(r.stdout.starts_with("id "), "{}", r.stdout);
    assert!(
        r.stdout.contains("move-u00") && r.stdout.contains("move-u01"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("backup"), "{}", r.stdout);
    assert!(r.stdout.contains("2 accounts: 2 ok"), "{}", r.stdout);
    assert_exact(&a, &b, 0..2);
    // Filters belong to the jobs, not the command line, here.
    let r = migrate(&env, &["--ca-file", &ca, "--folder", "INBOX"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
}

#[test]
fn the_per_host_cap_bounds_the_connections_of_all_accounts_together() {
    // Both servers behind counting proxies on one host name (localhost):
    // every account's 2 + 2 connections count against one cap of 8, so at
    // most two accounts run at once however many --jobs allow.
    const N: usize = 10;
    const CAP: usize = 8;
    let (a, b) = servers(N);
    load(&a, &b, N, 12);
    let gauge = std::sync::Arc::new(crate::proxy::Gauge::default());
    let pa = crate::proxy::Proxy::counting(a.imaps_port(), gauge.clone());
    let pb = crate::proxy::Proxy::counting(b.imaps_port(), gauge.clone());
    let env = Env::new();
    let mut csv = String::from("id,source,target,source_secret,target_secret\n");
    for i in 0..N {
        let (ps, pt, ss, ts) = if i.is_multiple_of(2) {
            (pa.port, pb.port, "env:PW_A", "env:PW_B")
        } else {
            (pb.port, pa.port, "env:PW_B", "env:PW_A")
        };
        let u = user(i);
        csv.push_str(&format!(
            "acct-{i:02},imaps://{u}@localhost:{ps},imaps://{u}@localhost:{pt},{ss},{ts}\n"
        ));
    }
    let m = env.path("accounts.csv");
    std::fs::write(&m, csv).unwrap();
    let (m, ca) = (m.display().to_string(), ca(&env, &a, &b));
    let dir = env.path("migrate-state").display().to_string();
    let cap = CAP.to_string();
    let r = migrate(
        &env,
        &[
            "--manifest",
            &m,
            "--ca-file",
            &ca,
            "--state-dir",
            &dir,
            "--jobs",
            "8",
            "--connections",
            "2",
            "--per-host-connections",
            &cap,
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(account_lines(&r).len(), N);
    assert_exact(&a, &b, 0..N);
    let peak = gauge.peak();
    assert!(
        (2..=CAP).contains(&peak),
        "{peak} connections open at once through the proxies, cap {CAP}"
    );
}
