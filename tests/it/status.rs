//! `mailferry status`: what the state knows after real runs, without
//! asking the server; and `mailferry run` driving a config job.

use crate::cli::Env;
use crate::common::{self, CorpusOpts, Dovecot};

#[test]
fn status_reports_folders_and_runs_of_a_config_job() {
    let dv = Dovecot::start();
    let spread = common::spread(
        common::corpus(31, 30, &CorpusOpts::small()),
        &["INBOX", "Archive/2024"],
    );
    for (f, m) in &spread {
        dv.deliver(dv.user(), f, m);
    }
    let env = Env::new();
    let cfg = env.path("config.toml");
    let to = env.path("mail");
    std::fs::write(
        &cfg,
        format!(
            "[account.test]\nurl = \"{}\"\nca_file = \"{}\"\npassword_env = \"TEST_PW\"\n\n[[job]]\nname = \"backup\"\ncommand = \"fetch\"\nfrom = \"test\"\nto = \"{}\"\n",
            dv.url("imaps"),
            dv.ca_file().display(),
            to.display()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let pw = dv.password().to_string();
    let run = |args: &[&str]| {
        crate::cli::to_run(
            env.cmd("unused")
                .env("TEST_PW", &pw)
                .args(args)
                .output()
                .unwrap(),
        )
    };

    let r = run(&["run", "-c", c, "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json().last().unwrap()["copied"], 30);

    // status of that job, from the state only: stop the server first
    drop(dv);
    let r = run(&["status", "backup", "-c", c, "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let lines = r.json();
    let folders: Vec<_> = lines.iter().filter(|l| l["event"] == "status").collect();
    assert_eq!(folders.len(), 2, "{}", r.stdout);
    for (name, msgs) in &spread {
        let f = folders
            .iter()
            .find(|f| f["folder"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(f["stored"], msgs.len(), "{name}");
        assert_eq!(f["deleted"], 0);
        assert!(f["last_synced"].as_str().unwrap().ends_with('Z'));
    }
    let runs: Vec<_> = lines.iter().filter(|l| l["event"] == "run").collect();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (
            runs[0]["job"].as_str(),
            runs[0]["result"].as_str(),
            runs[0]["copied"].as_u64()
        ),
        (Some("backup"), Some("ok"), Some(30))
    );

    // the human form names the folders and the run
    let r = run(&["status", "-c", c]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("Archive/2024")
            && r.stdout.contains("backup")
            && r.stdout.contains("recent runs"),
        "{}",
        r.stdout
    );
}

#[test]
fn status_without_state_says_so() {
    let env = Env::new();
    let r = env.run("x", &["status"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("no state yet"), "{}", r.stdout);
}

#[test]
fn run_without_config_is_a_usage_error() {
    let env = Env::new();
    let r = env.run("x", &["run"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("config"), "{}", r.stderr);
}

/// A config with an IMAP fetch, a POP3 fetch and a job whose server is a
/// closed port; `run` of the first two, then `status --remote`.
#[test]
fn status_remote_counts_pending_per_folder_and_reports_unreachable_servers() {
    let dv = Dovecot::start();
    let spread = common::spread(
        common::corpus(41, 24, &CorpusOpts::small()),
        &["INBOX", "Archive/2024", "Sent"],
    );
    for (f, m) in &spread {
        dv.deliver(dv.user(), f, m);
    }
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Env::new();
    let cfg = env.path("config.toml");
    let ca = dv.ca_file().display().to_string();
    std::fs::write(
        &cfg,
        format!(
            "[account.imap]\nurl = \"{imap}\"\nca_file = \"{ca}\"\npassword_env = \"TEST_PW\"\n\n\
             [account.pop]\nurl = \"{pop}\"\nca_file = \"{ca}\"\npassword_env = \"TEST_PW\"\n\n\
             [account.gone]\nurl = \"imaps://nobody@127.0.0.1:{closed}\"\nca_file = \"{ca}\"\npassword_env = \"TEST_PW\"\n\n\
             [[job]]\nname = \"mirror\"\ncommand = \"fetch\"\nfrom = \"imap\"\nto = \"{a}\"\n\n\
             [[job]]\nname = \"pop\"\ncommand = \"fetch\"\nfrom = \"pop\"\nto = \"{b}\"\n\n\
             [[job]]\nname = \"offline\"\ncommand = \"fetch\"\nfrom = \"gone\"\nto = \"{c}\"\n\n\
             [[job]]\nname = \"tiny\"\ncommand = \"fetch\"\nfrom = \"imap\"\nto = \"{d}\"\nfolders = [\"INBOX\"]\nmax_size = \"1\"\n",
            imap = dv.url("imaps"),
            pop = dv.url("pop3s"),
            a = env.path("a").display(),
            b = env.path("b").display(),
            c = env.path("c").display(),
            d = env.path("d").display(),
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let pw = dv.password().to_string();
    let run = |args: &[&str]| {
        crate::cli::to_run(
            env.cmd("unused")
                .env("TEST_PW", &pw)
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let r = run(&["run", "mirror", "pop", "-c", c, "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // Nothing new yet: 0 pending everywhere.
    let r = run(&["status", "--remote", "mirror", "pop", "-c", c, "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let remote: Vec<_> = r
        .json()
        .into_iter()
        .filter(|l| l["event"] == "remote")
        .collect();
    assert_eq!(
        remote.len(),
        4,
        "3 IMAP folders and the POP3 INBOX: {}",
        r.stdout
    );
    assert!(remote.iter().all(|l| l["pending"] == 0), "{}", r.stdout);

    // 3 new in INBOX; in Archive/2024 one stored message expunged and one
    // new delivered (same count, so only a UID comparison sees it); Sent
    // gets a new UIDVALIDITY.
    dv.deliver(
        dv.user(),
        "INBOX",
        &common::corpus(42, 3, &CorpusOpts::small()),
    );
    let archive = dv.server_name("Archive/2024");
    dv.doveadm(&["expunge", "-u", dv.user(), "mailbox", &archive, "uid", "1"]);
    dv.deliver(
        dv.user(),
        "Archive/2024",
        &common::corpus(43, 1, &CorpusOpts::small()),
    );
    let new_uv = dv.reset_uidvalidity(dv.user(), "Sent");

    let r = run(&["status", "--remote", "-c", c, "--json"]);
    assert_eq!(
        r.code, 4,
        "unreachable server: exit 4 (connect)\n{}{}",
        r.stdout, r.stderr
    );
    let lines = r.json();
    // The state part still prints.
    assert!(lines.iter().any(|l| l["event"] == "status"), "{}", r.stdout);
    let row = |job: &str, folder: &str| {
        lines
            .iter()
            .find(|l| l["event"] == "remote" && l["job"] == job && l["folder"] == folder)
            .unwrap_or_else(|| panic!("{job} {folder} missing: {}", r.stdout))
            .clone()
    };
    let inbox = row("mirror", "INBOX");
    let n_inbox = spread.iter().find(|(f, _)| f == "INBOX").unwrap().1.len();
    assert_eq!(inbox["pending"], 3, "{}", r.stdout);
    assert_eq!(inbox["messages"], n_inbox + 3);
    assert_eq!(inbox["uidvalidity_changed"], false);
    let arch = row("mirror", "Archive/2024");
    assert_eq!(arch["pending"], 1, "{}", r.stdout);
    let n_arch = spread
        .iter()
        .find(|(f, _)| f == "Archive/2024")
        .unwrap()
        .1
        .len();
    assert_eq!(arch["messages"], n_arch);
    let sent = row("mirror", "Sent");
    assert_eq!(sent["uidvalidity_changed"], true, "{}", r.stdout);
    assert_eq!(sent["uidvalidity"], new_uv);
    assert!(sent["pending"].is_null());
    assert!(sent["note"].as_str().unwrap().contains("UIDVALIDITY"));
    let pop = row("pop", "INBOX");
    assert_eq!(pop["pending"], 3, "{}", r.stdout);
    assert_eq!(pop["messages"], n_inbox + 3);
    // A job that never ran, whose --max-size takes nothing: all skipped.
    let tiny = row("tiny", "INBOX");
    assert_eq!(
        (tiny["pending"].as_u64(), tiny["skipped"].as_u64()),
        (Some(0), Some(n_inbox as u64 + 3)),
        "{}",
        r.stdout
    );
    let err: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "remote_error")
        .collect();
    assert_eq!(err.len(), 1, "{}", r.stdout);
    assert_eq!(err[0]["job"], "offline");
    assert_eq!(err[0]["exit_code"], 4);
    assert!(
        err[0]["error"]
            .as_str()
            .unwrap()
            .contains(&closed.to_string()),
        "{}",
        err[0]
    );

    // The human form: a table per job, the failure on its own line.
    let r = run(&["status", "--remote", "-c", c]);
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("mirror (imap) on the server")
            && r.stdout.contains("pending")
            && r.stdout.contains("UIDVALIDITY changed")
            && r.stdout.contains("offline (gone) on the server:\n  FAILED"),
        "{}",
        r.stdout
    );

    // A fetch takes exactly what status called pending (Sent's stored
    // copies are matched again by Message-ID: nothing to copy there).
    let r = run(&["run", "mirror", "pop", "-c", c, "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.json().last().unwrap()["copied"],
        3 + 1 + 3,
        "{}",
        r.stdout
    );
    let r = run(&["status", "--remote", "mirror", "pop", "-c", c, "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let remote: Vec<_> = r
        .json()
        .into_iter()
        .filter(|l| l["event"] == "remote")
        .collect();
    assert_eq!(remote.len(), 4, "{}", r.stdout);
    assert!(
        remote
            .iter()
            .all(|l| l["pending"] == 0 && l["uidvalidity_changed"] == false),
        "{}",
        r.stdout
    );
}

/// `--remote` for a push job: pending is what the next push copies.
#[test]
fn status_remote_counts_what_a_push_job_has_pending() {
    let (src, dst) = (Dovecot::start(), Dovecot::start());
    let spread = common::spread(
        common::corpus(51, 12, &CorpusOpts::small()),
        &["INBOX", "Archive"],
    );
    for (f, m) in &spread {
        src.deliver(src.user(), f, m);
    }
    let env = Env::new();
    let cfg = env.path("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[account.old]\nurl = \"{}\"\nca_file = \"{}\"\npassword_env = \"SRC_PW\"\n\n\
             [account.new]\nurl = \"{}\"\nca_file = \"{}\"\npassword_env = \"DST_PW\"\n\n\
             [[job]]\nname = \"move\"\ncommand = \"push\"\nfrom = \"old\"\nto = \"new\"\n",
            src.url("imaps"),
            src.ca_file().display(),
            dst.url("imaps"),
            dst.ca_file().display(),
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let run = |args: &[&str]| {
        crate::cli::to_run(
            env.cmd("unused")
                .env("SRC_PW", src.password())
                .env("DST_PW", dst.password())
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let r = run(&["run", "move", "-c", c, "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    src.deliver(
        src.user(),
        "INBOX",
        &common::corpus(52, 2, &CorpusOpts::small()),
    );

    let r = run(&["status", "--remote", "-c", c, "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let pending: std::collections::BTreeMap<String, u64> = r
        .json()
        .into_iter()
        .filter(|l| l["event"] == "remote" && l["job"] == "move")
        .map(|l| {
            (
                l["folder"].as_str().unwrap().to_string(),
                l["pending"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        pending,
        [("Archive".to_string(), 0), ("INBOX".to_string(), 2)].into(),
        "{}",
        r.stdout
    );
}
