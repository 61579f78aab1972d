//! Issue 13, item 1: fetch names Maildir folders below the server's
//! personal namespace (`INBOX.Archive` on Cyrus/Courier is `.Archive`),
//! and `--folder` matches that name. Against Cyrus IMAP 3.6 (its native
//! layout) and against Dovecot configured with the same `INBOX.` prefix.

use std::path::Path;

use crate::cli::Env;
use crate::common::{self, CorpusOpts, Cyrus, Dovecot, DovecotOpts};

fn folder_dirs(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && root.join(n).join("cur").is_dir())
        .collect();
    v.sort();
    v
}

fn count(dir: &Path) -> usize {
    ["cur", "new"]
        .iter()
        .map(|s| {
            std::fs::read_dir(dir.join(s))
                .map(|d| d.count())
                .unwrap_or(0)
        })
        .sum()
}

fn fetch(env: &Env, pw: &str, url: &str, to: &Path, extra: &[&str]) -> crate::cli::Run {
    let mut args = vec![
        "fetch",
        "--from",
        url,
        "--to",
        to.to_str().unwrap(),
        "--insecure-plaintext",
        "--json",
    ];
    args.extend_from_slice(extra);
    let r = env.run(pw, &args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    r
}

#[test]
fn fetch_from_cyrus_strips_the_inbox_prefix_and_filters_on_the_stripped_name() {
    let Some(cy) = Cyrus::start(&["alice"]) else {
        return;
    };
    let mut s = cy.session("alice");
    s.ok("CREATE INBOX.Archive");
    s.ok("CREATE INBOX.Sent (USE (\\Sent))");
    let msgs = common::corpus(31, 12, &CorpusOpts::small());
    let n_inbox = s.append("INBOX", &msgs[..4]);
    let n_archive = s.append("INBOX.Archive", &msgs[4..9]);
    let n_sent = s.append("INBOX.Sent", &msgs[9..]);
    assert!(n_inbox > 0 && n_archive > 0 && n_sent > 0);
    s.logout();

    let env = Env::new();
    let to = env.path("mail");
    fetch(&env, common::cyrus::PASSWORD, &cy.url("alice"), &to, &[]);
    assert_eq!(folder_dirs(&to), vec![".Archive", ".Sent"]);
    assert_eq!(count(&to), n_inbox);
    assert_eq!(count(&to.join(".Archive")), n_archive);
    assert_eq!(count(&to.join(".Sent")), n_sent);

    // The filter sees the stripped name: `Archive` matches, alone.
    let env2 = Env::new();
    let only = env2.path("only");
    fetch(
        &env2,
        common::cyrus::PASSWORD,
        &cy.url("alice"),
        &only,
        &["--folder", "Archive"],
    );
    assert_eq!(folder_dirs(&only), vec![".Archive"]);
    assert_eq!(count(&only.join(".Archive")), n_archive);
    assert_eq!(count(&only), 0);
}

#[test]
fn fetch_from_dovecot_with_an_inbox_prefix_strips_it() {
    let dv = Dovecot::start_with(
        DovecotOpts::default().config("namespace inbox {\n  prefix = INBOX.\n}"),
    );
    let msgs = common::corpus(32, 9, &CorpusOpts::small());
    dv.deliver(dv.user(), "INBOX", &msgs[..3]);
    dv.deliver(dv.user(), "Archive", &msgs[3..]);
    let env = Env::new();
    let to = env.path("mail");
    let r = fetch(
        &env,
        dv.password(),
        &dv.url("imap"),
        &to,
        &["--folder", "Archive", "--folder", "INBOX"],
    );
    let list = dv.doveadm(&["mailbox", "list", "-u", dv.user()]);
    assert!(list.contains("INBOX.Archive"), "prefix in effect: {list}");
    assert!(
        folder_dirs(&to).contains(&".Archive".to_string()),
        "{}",
        r.stdout
    );
    assert!(!folder_dirs(&to).iter().any(|d| d.starts_with(".INBOX")));
    assert_eq!(count(&to.join(".Archive")), 6);
    assert_eq!(count(&to), 3);
    // A rerun finds everything under the same names: nothing new.
    let r = fetch(
        &env,
        dv.password(),
        &dv.url("imap"),
        &to,
        &["--folder", "Archive", "--folder", "INBOX"],
    );
    let last = r.json().pop().unwrap();
    assert_eq!(last["copied"], 0, "{}", r.stdout);
}
