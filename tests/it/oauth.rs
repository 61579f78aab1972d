//! OAuth2 end to end: `mailferry login` by device code and by loopback
//! redirect against a local provider (common::oauth), then fetch and push
//! against a real Dovecot that checks every token with the provider's
//! introspection endpoint (its oauth2 passdb) — XOAUTH2 and OAUTHBEARER,
//! IMAPS and POP3S; tokens that die during a run, a revoked grant, and
//! the user's own token command.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::{Env, Run};
use crate::common::oauth::{self, CLIENT_ID, OAuthServer, Seen};
use crate::common::{self, CorpusOpts, Dovecot, DovecotOpts};

/// A Dovecot whose bearer logins (`mechs`) are checked by `srv`.
fn dovecot(srv: &OAuthServer, mechs: &str) -> Dovecot {
    Dovecot::start_with(DovecotOpts::default().oauth2(&srv.url("/introspect"), mechs))
}

/// Writes the default config: accounts `imap` and `pop` (IMAPS and POP3S
/// of `dv`, one grant) signing in at `srv` as `provider` with `extra` keys.
fn write_config(env: &Env, dv: &Dovecot, srv: &OAuthServer, provider: &str, extra: &str) {
    let dir = env.path("config/mailferry");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dv.ca_file().display();
    let mut text = String::new();
    for (name, scheme) in [("imap", "imaps"), ("pop", "pop3s")] {
        text.push_str(&format!(
            "[account.{name}]\nurl = \"{}\"\nca_file = \"{ca}\"\nauth = \"oauth2\"\n\
             oauth2_provider = \"{provider}\"\noauth2_client_id = \"{CLIENT_ID}\"\n\
             oauth2_token_url = \"{}\"\n{extra}\n",
            dv.url(scheme),
            srv.url("/token"),
        ));
    }
    std::fs::write(dir.join("config.toml"), text).unwrap();
}

/// A running `mailferry` whose stdout lines arrive on a channel.
struct Live {
    child: Child,
    lines: mpsc::Receiver<String>,
    out: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
}

fn spawn(env: &Env, args: &[&str]) -> Live {
    let mut child = env
        .cmd("unused")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    Live {
        child,
        lines,
        out: Vec::new(),
        stderr,
    }
}

impl Live {
    /// The next JSON event on stdout of this kind (60 s at most).
    fn event(&mut self, kind: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(l) = self.lines.recv_timeout(left) else {
                panic!("no {kind} event; got {:?}", self.out);
            };
            self.out.push(l.clone());
            let v: Value = serde_json::from_str(&l).unwrap();
            if v["event"] == kind {
                return v;
            }
        }
    }

    fn finish(mut self) -> Run {
        let status = self.child.wait().unwrap();
        self.out.extend(self.lines.iter());
        Run {
            code: status.code().unwrap_or(-1),
            stdout: self.out.join("\n") + "\n",
            stderr: self.stderr.join().unwrap(),
        }
    }
}

/// `mailferry login ACCOUNT --json` by device code, approving the code it
/// shows.
fn login_by_device(env: &Env, srv: &OAuthServer, account: &str) -> Run {
    let mut live = spawn(env, &["login", account, "--json"]);
    let ev = live.event("oauth_device");
    assert!(
        ev["verification_uri"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{ev}"
    );
    assert!(srv.approve(ev["user_code"].as_str().unwrap()), "{ev}");
    live.finish()
}

/// The token files (not their `.lock` files).
fn token_files(env: &Env) -> Vec<PathBuf> {
    std::fs::read_dir(env.path("state/tokens"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn fetch(env: &Env, account: &str, to: &Path) -> Run {
    env.run(
        "not-the-password",
        &[
            "fetch",
            "--from",
            account,
            "--to",
            to.to_str().unwrap(),
            "--json",
        ],
    )
}

fn ok(r: &Run) {
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

fn copied(r: &Run) -> u64 {
    r.json().last().unwrap()["copied"].as_u64().unwrap()
}

/// The methods of Dovecot's successful logins (`method=XOAUTH2`, ...).
fn login_methods(dv: &Dovecot) -> Vec<String> {
    dv.log()
        .lines()
        .filter(|l| l.contains("-login: Info: Login: "))
        .filter_map(|l| l.split("method=").nth(1))
        .map(|m| m.split(',').next().unwrap().to_string())
        .collect()
}

#[test]
fn device_login_then_fetch_over_imaps_and_pop3s_with_xoauth2_and_oauthbearer() {
    // Tokens die on the server after 3 s but are advertised for an hour:
    // a refusal, not the clock, must make mailferry refresh.
    let srv = OAuthServer::start("alice", Duration::from_secs(3), 3600);
    srv.slow_down_once();
    srv.rotate_refresh_tokens();
    let dv = dovecot(&srv, "xoauth2");
    let msgs = common::corpus(61, 12, &CorpusOpts::small());
    dv.deliver(dv.user(), "INBOX", &msgs);
    let env = Env::new();
    write_config(
        &env,
        &dv,
        &srv,
        "microsoft",
        &format!("oauth2_device_url = \"{}\"", srv.url("/device")),
    );

    let mut printed = String::new();
    let mut keep = |r: &Run| printed.push_str(&format!("{}{}", r.stdout, r.stderr));
    let r = login_by_device(&env, &srv, "imap");
    keep(&r);
    ok(&r);
    assert!(r.stderr.contains("enter the code UC-"), "{}", r.stderr);
    let done = r
        .json()
        .into_iter()
        .find(|e| e["event"] == "login")
        .unwrap();
    assert_eq!(
        (done["ok"].clone(), done["user"].clone()),
        (Value::Bool(true), "alice".into())
    );
    // Microsoft's default scopes were asked for (with offline_access).
    assert!(srv.seen().iter().any(|s| matches!(s, Seen::Device(sc)
        if sc.contains("IMAP.AccessAsUser.All") && sc.contains("offline_access"))));
    let files = token_files(&env);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(mode(&files[0]), 0o600);
    assert_eq!(mode(files[0].parent().unwrap()), 0o700);
    // login checked the account by logging in once.
    assert_eq!(login_methods(&dv), ["XOAUTH2"]);

    let md = env.path("imap-md");
    let r = fetch(&env, "imap", &md);
    keep(&r);
    ok(&r);
    assert_eq!(copied(&r), 12);
    let refreshed = srv.grants("refresh_token");

    // The access token dies on the server; POP3 is refused, refreshes
    // once, and logs in with the new one.
    while srv.since_last_issue().unwrap() < Duration::from_millis(3200) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = fetch(&env, "pop", &env.path("pop-md"));
    keep(&r);
    ok(&r);
    assert_eq!(copied(&r), 12);
    assert_eq!(srv.grants("refresh_token"), refreshed + 1);
    let verdicts: Vec<bool> = srv
        .seen()
        .iter()
        .filter_map(|s| match s {
            Seen::Introspect(_, a) => Some(*a),
            _ => None,
        })
        .collect();
    assert_eq!(verdicts.last(), Some(&true));
    assert!(verdicts.contains(&false), "{verdicts:?}");

    // The same grant over OAUTHBEARER, on a server offering only that.
    let dv2 = dovecot(&srv, "oauthbearer");
    dv2.deliver(dv2.user(), "INBOX", &msgs[..5]);
    write_config(
        &env,
        &dv2,
        &srv,
        "microsoft",
        &format!("oauth2_device_url = \"{}\"", srv.url("/device")),
    );
    let r = fetch(&env, "imap", &env.path("imap-md2"));
    keep(&r);
    ok(&r);
    assert_eq!(copied(&r), 5);
    let r = fetch(&env, "pop", &env.path("pop-md2"));
    keep(&r);
    ok(&r);
    assert_eq!(copied(&r), 5);
    assert_eq!(login_methods(&dv2), ["OAUTHBEARER", "OAUTHBEARER"]);
    assert!(login_methods(&dv).iter().all(|m| m == "XOAUTH2"));
    // Rotated refresh tokens replaced the stored one; no secret anywhere
    // in what mailferry printed.
    let stored = std::fs::read_to_string(&files[0]).unwrap();
    let last_rt = srv
        .secrets()
        .into_iter()
        .rev()
        .find(|s| s.starts_with("rt-"))
        .unwrap();
    assert!(stored.contains(&last_rt));
    srv.assert_no_secret_in(&printed);
}

#[test]
fn a_token_that_dies_mid_run_is_refreshed_once_and_the_push_lands_every_message_once() {
    // The server honours tokens for 2 s, mailferry believes they last an
    // hour: only the server's refusal tells it.
    let srv = OAuthServer::start("alice", Duration::from_secs(2), 3600);
    let (src, dst) = crate::push::servers_with(
        DovecotOpts::default().oauth2(&srv.url("/introspect"), "xoauth2 oauthbearer"),
    );
    let spread = crate::push::load(&src, 71, 60);
    let env = Env::new();
    write_config(
        &env,
        &dst,
        &srv,
        "microsoft",
        &format!("oauth2_device_url = \"{}\"", srv.url("/device")),
    );
    let r = login_by_device(&env, &srv, "imap");
    ok(&r);
    let mut printed = format!("{}{}", r.stdout, r.stderr);

    // --max-rate spreads the 60 messages over about 4 s, so the copy is
    // still going when the token dies and the server ends every session.
    let from = src.maildir(src.user()).display().to_string();
    let mut live = spawn(
        &env,
        &[
            "push",
            "--from",
            &from,
            "--to",
            "imap",
            "--max-rate",
            "15",
            "--connections",
            "3",
            "--json",
        ],
    );
    loop {
        let landed = crate::push::total(&dst, &spread);
        let dead = srv.since_last_issue().unwrap() > Duration::from_millis(2300);
        if landed >= 8 && dead {
            break;
        }
        assert!(
            live.child.try_wait().unwrap().is_none(),
            "the push ended before its token died ({landed} copied)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let grants_before = srv.grants("refresh_token");
    let seen_before = srv.seen().len();
    dst.kick(dst.user());
    let r = live.finish();
    printed.push_str(&format!("{}{}", r.stdout, r.stderr));
    ok(&r);
    crate::push::assert_exact_copy(&dst, &spread);
    let retries = r
        .json()
        .into_iter()
        .filter(|e| {
            e["event"] == "warning"
                && e["message"]
                    .as_str()
                    .unwrap()
                    .contains("retrying the folder")
        })
        .count();
    assert!(retries >= 1, "no connection was replaced: {}", r.stdout);
    // However many connections came back, one refresh served them all.
    assert_eq!(
        srv.grants("refresh_token"),
        grants_before + 1,
        "{retries} connections reconnected"
    );
    let after: Vec<Seen> = srv.seen()[seen_before..].to_vec();
    let refused = after
        .iter()
        .position(|s| matches!(s, Seen::Introspect(_, false)));
    let granted = after
        .iter()
        .position(|s| matches!(s, Seen::Grant(g, true) if g == "refresh_token"));
    let accepted = after
        .iter()
        .rposition(|s| matches!(s, Seen::Introspect(_, true)));
    assert!(
        refused < granted && granted < accepted && refused.is_some(),
        "refused, refreshed, accepted: {after:?}"
    );
    srv.assert_no_secret_in(&printed);
}

#[test]
fn loopback_login_with_pkce_ignores_a_forged_redirect_and_keeps_the_token_private() {
    let srv = OAuthServer::start("alice", Duration::from_secs(600), 3600);
    srv.require_client_secret();
    let dv = dovecot(&srv, "xoauth2");
    let env = Env::new();
    write_config(
        &env,
        &dv,
        &srv,
        "google",
        &format!(
            "oauth2_auth_url = \"{}\"\noauth2_client_secret_command = \"echo {}\"",
            srv.url("/authorize"),
            oauth::CLIENT_SECRET
        ),
    );
    let mut live = spawn(&env, &["login", "pop", "--json"]);
    let ev = live.event("oauth_authorize");
    let url = ev["url"].as_str().unwrap().to_string();
    let redirect = ev["redirect_uri"].as_str().unwrap().to_string();
    assert!(redirect.starts_with("http://127.0.0.1:"), "{ev}");
    // A page that sends the browser to the listener with a code of its
    // own is turned away; the sign-in goes on.
    let (status, _, _) = oauth::browser_get(&format!("{redirect}?code=forged&state=guess"));
    assert_eq!(status, 400);
    // The user signs in: the provider sends the browser back with a code.
    let (status, location, _) = oauth::browser_get(&url);
    assert_eq!(status, 302);
    let (status, _, page) = oauth::browser_get(&location.unwrap());
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Signed in"), "{page}");
    let r = live.finish();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("open this URL in a browser"),
        "{}",
        r.stderr
    );

    // What the browser was sent to: Google's defaults and PKCE.
    let q = srv
        .seen()
        .into_iter()
        .find_map(|s| match s {
            Seen::Authorize(q) => Some(q),
            _ => None,
        })
        .unwrap();
    let get = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, b)| b.as_str());
    assert_eq!(get("scope"), Some("https://mail.google.com/"));
    assert_eq!(get("access_type"), Some("offline"));
    assert_eq!(get("prompt"), Some("consent"));
    assert_eq!(get("login_hint"), Some("alice"));
    assert_eq!(get("code_challenge_method"), Some("S256"));
    assert_eq!(get("code_challenge").map(str::len), Some(43));
    assert_eq!(srv.grants("authorization_code"), 1);
    assert_eq!(login_methods(&dv), ["XOAUTH2"]);
    let files = token_files(&env);
    assert_eq!(files.len(), 1);
    assert_eq!(mode(&files[0]), 0o600);
    srv.assert_no_secret_in(&format!("{}{}", r.stdout, r.stderr));

    // The next run uses the stored token; `check` shows the account.
    let r = env.run("unused", &["check", "imap"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    srv.assert_no_secret_in(&format!("{}{}", r.stdout, r.stderr));
}

#[test]
fn without_a_usable_grant_runs_exit_3_and_say_to_log_in_and_a_token_command_is_rerun() {
    let srv = OAuthServer::start("alice", Duration::from_secs(600), 3600);
    let dv = dovecot(&srv, "xoauth2 oauthbearer");
    dv.deliver(
        dv.user(),
        "INBOX",
        &common::corpus(62, 3, &CorpusOpts::small()),
    );
    let env = Env::new();
    write_config(
        &env,
        &dv,
        &srv,
        "microsoft",
        &format!("oauth2_device_url = \"{}\"", srv.url("/device")),
    );
    // Not signed in yet.
    for account in ["imap", "pop"] {
        let r = fetch(&env, account, &env.path("md"));
        assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("run `mailferry login "), "{}", r.stdout);
    }
    let r = login_by_device(&env, &srv, "imap");
    ok(&r);
    // The user revokes the grant: the access token is refused, the
    // refresh too, and the run says what to do.
    srv.revoke_all();
    for account in ["imap", "pop"] {
        let r = fetch(&env, account, &env.path("md"));
        assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
        let err = r
            .json()
            .into_iter()
            .find(|e| e["event"] == "error")
            .unwrap();
        let msg = err["message"].as_str().unwrap();
        assert!(
            msg.contains("invalid_grant") && msg.contains("mailferry login "),
            "{msg}"
        );
        srv.assert_no_secret_in(&format!("{}{}", r.stdout, r.stderr));
        // Without --json, one line on stderr.
        let r = env.run(
            "unused",
            &[
                "fetch",
                "--from",
                account,
                "--to",
                env.path("md").to_str().unwrap(),
            ],
        );
        assert_eq!(r.code, 3);
        assert!(r.stderr.contains("mailferry login"), "{}", r.stderr);
    }

    // oauth2_token_command instead: its first token is refused by the
    // server, so it is run again and the second one is used.
    let old = srv.mint_access_token();
    srv.revoke(&old);
    let new = srv.mint_access_token();
    let runs = env.path("runs");
    let cmd = format!(
        "echo x >> {0}; if [ $(wc -l < {0}) -eq 1 ]; then echo {old}; else echo {new}; fi",
        runs.display()
    );
    let ca = dv.ca_file().display().to_string();
    let r = env.run(
        "unused",
        &[
            "fetch",
            "--from",
            &dv.url("imaps"),
            "--to",
            env.path("md").to_str().unwrap(),
            "--ca-file",
            &ca,
            "--oauth2-token-command",
            &cmd,
            "--json",
        ],
    );
    ok(&r);
    assert_eq!(copied(&r), 3);
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 2);
    srv.assert_no_secret_in(&format!("{}{}", r.stdout, r.stderr));
}
