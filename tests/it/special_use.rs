//! Issue 13, item 5: `push` creates a missing special-use folder with its
//! role where the target allows it — Cyrus IMAP 3.6 (CREATE-SPECIAL-USE)
//! from a Dovecot with `\Sent`, `\Drafts`, `\Trash`, `\Junk` and
//! `\Archive` folders, and from a Maildir (roles by folder name) — and
//! without one on a Dovecot, which has no way to take it (a plain CREATE),
//! or refuses it (METADATA: `NO [CANNOT]`, a warning, never a failure).

use std::time::{Duration, UNIX_EPOCH};

use crate::cli::{Env, Run, to_run};
use crate::common::{Cyrus, Dovecot, DovecotOpts, Message, cyrus};
use crate::push::{RAWLOG, clear_rawlog, commands, summary};

/// The source folders ('/' separator) and their roles in the harness's
/// Dovecot config.
const FOLDERS: [(&str, Option<&str>); 7] = [
    ("INBOX", None),
    ("Sent", Some("\\Sent")),
    ("Drafts", Some("\\Drafts")),
    ("Trash", Some("\\Trash")),
    ("Junk", Some("\\Junk")),
    ("Archive", Some("\\Archive")),
    ("Archive/2024", None),
];

/// Plain messages every server takes (Cyrus refuses some of the corpus's
/// deliberately odd headers).
pub(crate) fn simple(folder: &str, n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| {
            let mid = format!("<{i}.{}@special-use.test>", folder.replace('/', "-"));
            Message {
                raw: format!(
                    "From: a@example.org\nTo: b@example.org\nSubject: {folder} {i}\nMessage-ID: {mid}\nDate: Thu, 01 Jan 2026 10:00:00 +0000\n\nbody {i}\n"
                )
                .into_bytes(),
                internal_date: UNIX_EPOCH + Duration::from_secs(1_767_261_600 + i as u64),
                flags: "S".into(),
                message_id: Some(mid),
            }
        })
        .collect()
}

/// A Dovecot source ('/' separator) with two messages in each folder.
fn source() -> Dovecot {
    let src = Dovecot::start_with(DovecotOpts::default().separator('/'));
    for (f, _) in FOLDERS {
        src.deliver(src.user(), f, &simple(f, 2));
    }
    let list = src.doveadm(&["mailbox", "list", "-u", src.user()]);
    assert!(
        list.contains("Junk") && list.contains("Archive/2024"),
        "{list}"
    );
    src
}

fn push_to_cyrus(
    env: &Env,
    from: &str,
    from_pw: Option<&str>,
    ca: &str,
    cy: &Cyrus,
    user: &str,
) -> Run {
    let mut c = env.cmd("unused");
    c.env("MAILFERRY_TO_PASSWORD", cyrus::PASSWORD);
    if let Some(pw) = from_pw {
        c.env("MAILFERRY_FROM_PASSWORD", pw);
    }
    to_run(
        c.args([
            "push",
            "--from",
            from,
            "--to",
            &cy.url(user),
            "--ca-file",
            ca,
        ])
        .args(["--insecure-plaintext", "--json"])
        .output()
        .unwrap(),
    )
}

/// Cyrus's folders with their special-use attributes, by wire name.
fn cyrus_roles(cy: &Cyrus, user: &str) -> Vec<(String, Option<String>)> {
    let mut s = cy.session(user);
    let text = s.ok("LIST \"\" \"*\" RETURN (SPECIAL-USE)");
    s.logout();
    let mut out: Vec<(String, Option<String>)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("* LIST (")?;
            let (attrs, tail) = rest.split_once(')')?;
            let name = tail.trim().strip_prefix("\".\"")?.trim().trim_matches('"');
            let role = attrs
                .split_whitespace()
                .find(|a| {
                    ["\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive"]
                        .iter()
                        .any(|r| r.eq_ignore_ascii_case(a))
                })
                .map(str::to_string);
            Some((name.to_string(), role))
        })
        .collect();
    out.sort();
    out
}

fn warnings(r: &Run) -> Vec<String> {
    r.json()
        .into_iter()
        .filter(|e| e["event"] == "warning")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn push_to_cyrus_creates_each_role_on_its_new_folder_from_imap_and_from_a_maildir() {
    let Some(cy) = Cyrus::start(&["alice", "bob", "carol"]) else {
        return;
    };
    let src = source();
    let env = Env::new();
    let ca = src.ca_file().display().to_string();
    let from = src.url("imaps");
    cy.clear_telemetry("alice");
    let r = push_to_cyrus(&env, &from, Some(src.password()), &ca, &cy, "alice");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        summary(&r)["copied"],
        2 * FOLDERS.len() as u64,
        "{}",
        r.stdout
    );
    assert!(warnings(&r).is_empty(), "{}", r.stdout);
    let want: Vec<(String, Option<String>)> = {
        let mut v: Vec<(String, Option<String>)> = FOLDERS
            .iter()
            .map(|(f, role)| {
                let wire = match *f {
                    "INBOX" => "INBOX".to_string(),
                    f => format!("INBOX.{}", f.replace('/', ".")),
                };
                (wire, role.map(str::to_string))
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(cyrus_roles(&cy, "alice"), want);
    // By CREATE … (USE (…)), parents before children.
    let creates: Vec<String> = cy
        .commands("alice")
        .into_iter()
        .filter(|c| c.starts_with("CREATE"))
        .collect();
    assert!(
        creates.contains(&"CREATE \"INBOX.Sent\" (USE (\\Sent))".to_string()),
        "{creates:?}"
    );
    let pos = |w: &str| {
        creates
            .iter()
            .position(|c| c.starts_with(&format!("CREATE \"{w}\"")))
    };
    assert!(
        pos("INBOX.Archive") < pos("INBOX.Archive.2024"),
        "{creates:?}"
    );
    let mut s = cy.session("alice");
    for (f, _) in FOLDERS {
        let wire = want
            .iter()
            .find(|(w, _)| w.ends_with(&f.replace('/', ".")))
            .unwrap();
        assert_eq!(s.message_ids(&wire.0).len(), 2, "{f}");
    }
    s.logout();

    // A Maildir restore: the roles come from the folder names.
    let md = env.path("backup");
    let f = crate::fetch_imap::fetch(&env, &src, &md, &[]);
    assert_eq!(f.code, 0, "{}{}", f.stdout, f.stderr);
    let r = push_to_cyrus(&env, md.to_str().unwrap(), None, &ca, &cy, "bob");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(warnings(&r).is_empty(), "{}", r.stdout);
    assert_eq!(cyrus_roles(&cy, "bob"), want);

    // A target that has its \Sent already (another name): Sent goes
    // there, and no second \Sent is asked for (Cyrus would refuse it).
    let mut s = cy.session("carol");
    s.ok("CREATE \"INBOX.Gesendet\" (USE (\\Sent))");
    s.logout();
    let r = push_to_cyrus(&env, &from, Some(src.password()), &ca, &cy, "carol");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(warnings(&r).is_empty(), "{}", r.stdout);
    let roles = cyrus_roles(&cy, "carol");
    assert!(
        roles.contains(&("INBOX.Gesendet".into(), Some("\\Sent".into())))
            && !roles.iter().any(|(w, _)| w == "INBOX.Sent"),
        "{roles:?}"
    );
    let mut s = cy.session("carol");
    assert_eq!(s.message_ids("INBOX.Gesendet").len(), 2);
    s.logout();
}

#[test]
fn push_to_dovecot_creates_plain_folders_and_a_refused_role_is_only_a_warning() {
    let src = source();
    let roles: Vec<&str> = FOLDERS.iter().filter_map(|(_, r)| *r).collect();
    // Dovecot as it ships: neither CREATE-SPECIAL-USE nor METADATA.
    let plain = Dovecot::start_with(DovecotOpts::default().config(RAWLOG));
    // With METADATA on, Dovecot takes SETMETADATA but refuses
    // /private/specialuse: "NO [CANNOT] … cannot be changed".
    let metadata = Dovecot::start_with(
        DovecotOpts::default()
            .config(RAWLOG)
            .config("imap_metadata = yes\nmail_attribute_dict = file:%h/dovecot-attributes"),
    );
    for (dst, refuses) in [(&plain, false), (&metadata, true)] {
        clear_rawlog(dst);
        let env = Env::new();
        let r = crate::push::push(&env, &src, dst, &[]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert_eq!(
            summary(&r)["copied"],
            2 * FOLDERS.len() as u64,
            "{}",
            r.stdout
        );
        for (f, _) in FOLDERS {
            assert_eq!(dst.status(dst.user(), f).messages, 2, "{f}");
        }
        let creates: Vec<String> = commands(dst)
            .into_iter()
            .filter(|c| c.starts_with("CREATE"))
            .collect();
        assert_eq!(creates.len(), FOLDERS.len() - 1, "{creates:?}");
        assert!(!creates.iter().any(|c| c.contains("USE")), "{creates:?}");
        let input = crate::push::client_input(dst);
        let w = warnings(&r);
        if refuses {
            assert_eq!(input.matches("SETMETADATA").count(), roles.len(), "{input}");
            assert_eq!(w.len(), roles.len(), "{}", r.stdout);
            for role in &roles {
                assert!(
                    w.iter()
                        .any(|m| m.contains(&format!("without the special-use {role}"))
                            && m.contains("CANNOT")),
                    "{role}: {w:?}"
                );
            }
        } else {
            assert!(!input.contains("SETMETADATA"), "{input}");
            assert!(w.is_empty(), "{}", r.stdout);
        }
    }
}
