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
