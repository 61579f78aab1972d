//! Issue 13, item 7: a fatal error is one clear line on stderr (what cron
//! mails) also with `--json`, where the `error` event goes to stdout
//! (SPEC §4). A refused connection (exit 4) and a wrong password (exit 3,
//! against Dovecot), for one command and for `mailferry run`.

use crate::cli::{Env, Run, to_run};
use crate::common::Dovecot;

/// The one stderr line, checked against the `error` event on stdout.
fn one_line_on_stderr_and_an_event(r: &Run, code: i32) -> String {
    assert_eq!(r.code, code, "{}{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "stderr: {:?}", r.stderr);
    let ev = r.json();
    let errors: Vec<&serde_json::Value> = ev.iter().filter(|e| e["event"] == "error").collect();
    assert_eq!(errors.len(), 1, "{}", r.stdout);
    assert_eq!(errors[0]["exit_code"], code);
    let message = errors[0]["message"].as_str().unwrap();
    assert_eq!(lines[0], format!("mailferry: {message}"));
    assert_eq!(ev.last().unwrap()["event"], "summary", "{}", r.stdout);
    lines[0].to_string()
}

/// A loopback port with nothing listening.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_refused_connection_with_json_is_one_line_on_stderr_and_an_error_event() {
    let env = Env::new();
    let from = format!("imaps://alice@127.0.0.1:{}", closed_port());
    let to = env.path("mail");
    let r = env.run(
        "pw",
        &[
            "fetch",
            "--from",
            &from,
            "--to",
            to.to_str().unwrap(),
            "--json",
        ],
    );
    let line = one_line_on_stderr_and_an_event(&r, 4);
    assert!(line.contains("127.0.0.1"), "{line}");
}

#[test]
fn a_wrong_password_with_json_is_one_line_on_stderr_and_an_error_event() {
    let src = Dovecot::start();
    let dst = Dovecot::start();
    let env = Env::new();
    let ca = crate::push::ca(&env, &src, &dst);
    let r = to_run(
        env.cmd("unused")
            .env("MAILFERRY_FROM_PASSWORD", "not-the-password")
            .env("MAILFERRY_TO_PASSWORD", dst.password())
            .args([
                "push",
                "--from",
                &src.url("imaps"),
                "--to",
                &dst.url("imaps"),
            ])
            .args(["--ca-file", &ca, "--json"])
            .output()
            .unwrap(),
    );
    let line = one_line_on_stderr_and_an_event(&r, 3);
    assert!(line.contains("authentication failed"), "{line}");
    assert!(!r.stderr.contains("not-the-password") && !r.stdout.contains("not-the-password"));
}

#[test]
fn run_with_json_gives_each_failed_job_its_line_and_event() {
    let dv = Dovecot::start();
    let env = Env::new();
    let cfg = env.path("config.toml");
    let job = |name: &str, account: &str, to: &str| {
        format!(
            "[[job]]\nname = \"{name}\"\ncommand = \"fetch\"\nfrom = \"{account}\"\nto = \"{}\"\n",
            env.path(to).display()
        )
    };
    let account = |name: &str, url: &str, env_var: &str| {
        format!(
            "[account.{name}]\nurl = \"{url}\"\nca_file = \"{}\"\npassword_env = \"{env_var}\"\n",
            dv.ca_file().display()
        )
    };
    let closed = format!("imaps://alice@127.0.0.1:{}", closed_port());
    std::fs::write(
        &cfg,
        [
            account("good", &dv.url("imaps"), "GOOD_PW"),
            account("wrong", &dv.url("imaps"), "WRONG_PW"),
            account("gone", &closed, "GOOD_PW"),
            job("ok", "good", "a"),
            job("bad-password", "wrong", "b"),
            job("unreachable", "gone", "c"),
        ]
        .join("\n"),
    )
    .unwrap();
    let r = to_run(
        env.cmd("unused")
            .env("GOOD_PW", dv.password())
            .env("WRONG_PW", "not-the-password")
            .args(["run", "-c", cfg.to_str().unwrap(), "--json"])
            .output()
            .unwrap(),
    );
    // The first failure decides the exit code; each failed job is one
    // line on stderr and one `error` event, the good job still ran.
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 2, "stderr: {:?}", r.stderr);
    assert!(
        lines[0].starts_with("mailferry: job bad-password: "),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("mailferry: job unreachable: "),
        "{lines:?}"
    );
    let ev = r.json();
    let errors: Vec<(String, i64)> = ev
        .iter()
        .filter(|e| e["event"] == "error")
        .map(|e| {
            (
                e["message"].as_str().unwrap().to_string(),
                e["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(errors.len(), 2, "{}", r.stdout);
    assert_eq!(format!("mailferry: {}", errors[0].0), lines[0]);
    assert_eq!((errors[0].1, errors[1].1), (3, 4));
    assert!(env.path("a").join("cur").is_dir(), "the good job ran");
    assert_eq!(ev.last().unwrap()["event"], "summary");
}
