//! Issue 13, item 4: every selectable server folder the filters take is a
//! Maildir++ folder of the backup after a fetch, also when it has no mail
//! (a new account's Drafts, Trash, Sent), also on the no-op fast path.
//! Against a real Dovecot.

use std::path::Path;

use crate::cli::Env;
use crate::common::{self, CorpusOpts, Dovecot};
use crate::fetch_imap::{fetch, serve_copy, summary};

fn is_maildir_folder(dir: &Path) -> bool {
    ["cur", "new", "tmp"].iter().all(|s| dir.join(s).is_dir())
        && dir.join("maildirfolder").is_file()
}

fn folder_dirs(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && root.join(n).join("cur").is_dir())
        .collect();
    v.sort();
    v
}

#[test]
fn empty_folders_exist_in_the_backup_and_the_fast_path_keeps_them() {
    let dv = Dovecot::start();
    dv.deliver(
        dv.user(),
        "INBOX",
        &common::corpus(51, 3, &CorpusOpts::small()),
    );
    for f in ["Drafts", "Trash", "Sent", "Junk", "Projects/2025/Q1"] {
        dv.create_folder(dv.user(), f);
    }
    let env = Env::new();
    let to = env.path("mail");
    let r = fetch(&env, &dv, &to, &["--exclude", "Junk"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(summary(&r)["copied"], 3, "{}", r.stdout);
    assert_eq!(
        folder_dirs(&to),
        [".Drafts", ".Projects.2025.Q1", ".Sent", ".Trash"],
        "{}",
        r.stdout
    );
    for d in folder_dirs(&to) {
        assert!(is_maildir_folder(&to.join(&d)), "{d}");
    }

    // A Dovecot serving the backup lists them (and the filtered one not).
    let served = Dovecot::start();
    serve_copy(&served, &to);
    let list = served.doveadm(&["mailbox", "list", "-u", served.user()]);
    for f in ["Drafts", "Trash", "Sent", "Projects.2025.Q1"] {
        assert!(list.lines().any(|l| l == f), "{f} not in {list}");
    }
    assert!(!list.lines().any(|l| l == "Junk"), "{list}");
    drop(served);

    // No-op rerun: no folder selected, yet a folder missing locally (an
    // older version skipped empty ones; or removed by hand) comes back.
    std::fs::remove_dir_all(to.join(".Trash")).unwrap();
    std::fs::remove_dir_all(to.join(".Projects.2025.Q1")).unwrap();
    let r = fetch(&env, &dv, &to, &["--exclude", "Junk"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(summary(&r)["copied"], 0);
    assert!(
        !r.stdout.contains("folder_start"),
        "the rerun was not a no-op:\n{}",
        r.stdout
    );
    assert!(is_maildir_folder(&to.join(".Trash")));
    assert!(is_maildir_folder(&to.join(".Projects.2025.Q1")));

    // A folder created on the server later appears on the next run.
    dv.create_folder(dv.user(), "Archive");
    let r = fetch(&env, &dv, &to, &["--exclude", "Junk"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(is_maildir_folder(&to.join(".Archive")));
    assert!(!to.join(".Junk").exists());

    // A dry run creates nothing.
    let env2 = Env::new();
    let dry = env2.path("dry");
    let r = fetch(&env2, &dv, &dry, &["--dry-run"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!dry.exists());
}
