//! Provider profiles, quirks and the throttle governor (issue 14), against
//! the scripted quirk server (`common/quirk_imap.rs`) for what Dovecot
//! cannot do, and a real Dovecot on the other side: every quirk is
//! fetched into a Maildir, pushed to and from Dovecot and verified, with
//! exact message sets (bytes, flags, arrival dates, each once).
//!
//! The governor is judged by the quirk server's own log: commands that
//! arrived on a connection told to wait, or logins while a pause ran, are
//! in `early()`; no test measures time itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::cli::{Env, Run, to_run};
use crate::common::quirk_imap::{Msg, PASSWORD};
use crate::common::{
    self, CorpusOpts, Dovecot, Message, QuirkOpts, QuirkServer, Throttle, ThrottleStyle,
};
use crate::fetch_imap::{maildir_files, wire};

/// (content digest, sorted Maildir flag letters, arrival date): what a
/// copy keeps. The digest keeps failure messages readable.
type Copy = (String, String, i64);

fn digest(bytes: &[u8]) -> String {
    mailferry::net::sha256(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn letters(flags: impl IntoIterator<Item = String>) -> String {
    let mut v: Vec<char> = flags
        .into_iter()
        .filter_map(|f| match f.to_ascii_lowercase().as_str() {
            "\\seen" => Some('S'),
            "\\answered" => Some('R'),
            "\\flagged" => Some('F'),
            "\\deleted" => Some('T'),
            "\\draft" => Some('D'),
            _ => None,
        })
        .collect();
    v.sort_unstable();
    v.into_iter().collect()
}

fn sorted(s: &str) -> String {
    let mut v: Vec<char> = s.chars().filter(|c| c.is_ascii_uppercase()).collect();
    v.sort_unstable();
    v.into_iter().collect()
}

fn secs(t: std::time::SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn of_corpus(msgs: &[Message]) -> Vec<Copy> {
    let mut v: Vec<Copy> = msgs
        .iter()
        .map(|m| {
            (
                digest(&m.raw_crlf()),
                sorted(&m.flags),
                secs(m.internal_date),
            )
        })
        .collect();
    v.sort();
    v
}

fn of_quirk(msgs: &[Msg]) -> Vec<Copy> {
    let mut v: Vec<Copy> = msgs
        .iter()
        .map(|m| (digest(&m.body), letters(m.flags.iter().cloned()), m.date))
        .collect();
    v.sort();
    v
}

fn of_files(files: &[PathBuf]) -> Vec<Copy> {
    let mut v: Vec<Copy> = files
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let flags = name
                .split_once(":2,")
                .map(|(_, f)| sorted(f))
                .unwrap_or_default();
            let mtime = secs(std::fs::metadata(p).unwrap().modified().unwrap());
            (digest(&wire(p)), flags, mtime)
        })
        .collect();
    v.sort();
    v
}

/// A Maildir folder's copies: INBOX is the root, `A` is `.A`.
fn maildir(root: &Path, folder: &str) -> Vec<Copy> {
    let key = if folder == "INBOX" {
        "INBOX".to_string()
    } else {
        format!(".{folder}")
    };
    of_files(maildir_files(root).get(&key).map_or(&[][..], |v| v))
}

/// A Dovecot folder's copies.
fn dovecot(dv: &Dovecot, folder: &str) -> Vec<Copy> {
    of_files(&crate::push::files(dv, folder))
}

/// The folders every test uses (no special-use, ASCII: the quirk server
/// does not encode names).
const FOLDERS: [&str; 3] = ["INBOX", "Archive", "Work"];

fn spread(seed: u64, n: usize) -> Vec<(String, Vec<Message>)> {
    common::spread(common::corpus(seed, n, &CorpusOpts::small()), &FOLDERS)
}

fn seed_quirk(q: &QuirkServer, spread: &[(String, Vec<Message>)]) {
    for (f, m) in spread {
        q.deliver(f, m);
    }
}

fn seed_dovecot(dv: &Dovecot, spread: &[(String, Vec<Message>)]) {
    for (f, m) in spread {
        dv.deliver(dv.user(), f, m);
    }
}

/// `[account.NAME]` for a quirk server under a provider profile.
fn quirk_account(name: &str, q: &QuirkServer, provider: &str, extra: &str) -> String {
    format!(
        "[account.{name}]\nprovider = \"{provider}\"\nurl = \"{}\"\ntls = \"none\"\npassword_env = \"QUIRK_PW\"\n{extra}\n",
        q.url()
    )
}

fn dovecot_account(name: &str, dv: &Dovecot) -> String {
    format!(
        "[account.{name}]\nurl = \"{}\"\nca_file = \"{}\"\npassword_env = \"DV_PW\"\n\n",
        dv.url("imaps"),
        dv.ca_file().display()
    )
}

struct T {
    env: Env,
    cfg: PathBuf,
    dv_pw: String,
}

impl T {
    fn new(accounts: &[String], dv: Option<&Dovecot>) -> T {
        let env = Env::new();
        let cfg = env.path("config.toml");
        std::fs::write(&cfg, accounts.concat()).unwrap();
        T {
            env,
            cfg,
            dv_pw: dv.map(|d| d.password().to_string()).unwrap_or_default(),
        }
    }

    /// `mailferry ARGS -c CFG --json` with both passwords and `vars`.
    fn run_with(&self, args: &[&str], vars: &[(&str, String)]) -> Run {
        let mut c = self.env.cmd("unused");
        c.env("QUIRK_PW", PASSWORD).env("DV_PW", &self.dv_pw);
        for (k, v) in vars {
            c.env(k, v);
        }
        c.args(args).arg("-c").arg(&self.cfg).arg("--json");
        to_run(c.output().unwrap())
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    fn maildir(&self) -> PathBuf {
        self.env.path("Mail")
    }

    fn fetch(&self, from: &str, extra: &[&str]) -> Run {
        let to = self.maildir();
        let mut a = vec!["fetch", "--from", from, "--to", to.to_str().unwrap()];
        a.extend_from_slice(extra);
        self.run(&a)
    }
}

fn summary(r: &Run) -> serde_json::Value {
    let last = r
        .json()
        .pop()
        .unwrap_or_else(|| panic!("no output: {}", r.stderr));
    assert_eq!(last["event"], "summary", "{}", r.stdout);
    last
}

fn ok(r: &Run) -> serde_json::Value {
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    summary(r)
}

fn warnings(r: &Run) -> Vec<String> {
    r.json()
        .iter()
        .filter(|e| e["event"] == "warning")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The body-fetching commands the server saw (UID FETCH of whole messages).
fn body_fetches(q: &QuirkServer) -> Vec<String> {
    q.log()
        .into_iter()
        .map(|e| e.line)
        .filter(|l| {
            l.starts_with("UID FETCH")
                && (l.contains("BODY.PEEK[]") || l.split([' ', '(', ')']).any(|w| w == "RFC822"))
        })
        .collect()
}

fn assert_quirk_holds(q: &QuirkServer, spread: &[(String, Vec<Message>)]) {
    for (f, m) in spread {
        assert_eq!(of_quirk(&q.messages(f)), of_corpus(m), "quirk server {f}");
    }
}

fn assert_dovecot_holds(dv: &Dovecot, spread: &[(String, Vec<Message>)]) {
    for (f, m) in spread {
        assert_eq!(dovecot(dv, f), of_corpus(m), "Dovecot {f}");
    }
}

fn assert_maildir_holds(root: &Path, spread: &[(String, Vec<Message>)]) {
    for (f, m) in spread {
        assert_eq!(maildir(root, f), of_corpus(m), "Maildir {f}");
    }
}

/// iCloud: whole messages are fetched with BODY.PEEK[], never RFC822
/// (which it answers without the data), as source and as target.
#[test]
fn icloud_fetch_push_and_verify_use_body_peek_never_rfc822() {
    let src = QuirkServer::start(QuirkOpts {
        icloud: true,
        ..Default::default()
    });
    let dst = QuirkServer::start(QuirkOpts {
        icloud: true,
        ..Default::default()
    });
    let dv = Dovecot::start();
    let s = spread(1401, 30);
    seed_quirk(&src, &s);
    let t = T::new(
        &[
            quirk_account("icloud", &src, "icloud", ""),
            quirk_account("icloud2", &dst, "icloud", ""),
            dovecot_account("dv", &dv),
        ],
        Some(&dv),
    );
    // iCloud → Maildir
    let sum = ok(&t.fetch("icloud", &[]));
    assert_eq!(sum["copied"], 30);
    assert_maildir_holds(&t.maildir(), &s);
    // iCloud → Dovecot, and verify it
    ok(&t.run(&["push", "--from", "icloud", "--to", "dv"]));
    assert_dovecot_holds(&dv, &s);
    let v = ok(&t.run(&["verify", "--from", "icloud", "--to", "dv", "--deep"]));
    assert_eq!(v["failed"], 0);
    // Dovecot → iCloud, and verify it (reads the target's bodies)
    ok(&t.run(&["push", "--from", "dv", "--to", "icloud2"]));
    assert_quirk_holds(&dst, &s);
    ok(&t.run(&["verify", "--from", "dv", "--to", "icloud2", "--deep"]));
    let bodies = [body_fetches(&src), body_fetches(&dst)].concat();
    assert!(!bodies.is_empty());
    for l in &bodies {
        assert!(l.contains("BODY.PEEK[]"), "{l}");
        assert!(!l.split([' ', '(', ')']).any(|w| w == "RFC822"), "{l}");
    }
}

fn plain_cfg(
    q: &QuirkServer,
    quirks: mailferry::imap::Quirks,
) -> mailferry::endpoint::ServerConfig {
    use mailferry::endpoint::*;
    ServerConfig {
        url: ServerUrl {
            protocol: Protocol::Imap,
            security: Security::Plaintext,
            host: "127.0.0.1".into(),
            port: q.port,
            user: common::quirk_imap::USER.into(),
            folder: None,
        },
        credentials: Credentials::Password(Secret::new(PASSWORD)),
        tls: TlsOptions::default(),
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            command: Duration::from_secs(10),
        },
        quirks,
        pace: Default::default(),
    }
}

/// Why the iCloud profile pins BODY.PEEK[]: fetched with RFC822, iCloud's
/// answer has no message, and every one is reported failed — none is
/// taken for an empty message.
#[tokio::test]
async fn icloud_answers_rfc822_without_the_message_which_is_reported_not_stored() {
    use mailferry::imap::{self, BodyItem, Quirks};
    let q = QuirkServer::start(QuirkOpts {
        icloud: true,
        ..Default::default()
    });
    let msgs = common::corpus(1403, 5, &CorpusOpts::small());
    q.deliver("INBOX", &msgs);
    let fetch = async |item: BodyItem| {
        let quirks = Quirks {
            body_item: item,
            ..Default::default()
        };
        let (mut s, _) = imap::connect(&plain_cfg(&q, quirks)).await.unwrap();
        s.examine("INBOX").await.unwrap();
        let uids = s.uid_search_all().await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let got = tokio::spawn(async move {
            let mut v = Vec::new();
            while let Some(m) = rx.recv().await {
                v.push(m);
            }
            v
        });
        let r = s.fetch_bodies(&uids, &tx).await.unwrap();
        drop(tx);
        (r, got.await.unwrap())
    };
    let (r, got) = fetch(BodyItem::Rfc822).await;
    assert!(got.is_empty(), "nothing to store");
    assert_eq!(r.failed.len(), 5, "{r:?}");
    assert!(
        r.failed
            .iter()
            .all(|(_, why)| why.contains("without BODY[]"))
    );
    let (r, got) = fetch(BodyItem::BodyPeek).await;
    assert!(r.failed.is_empty() && r.missing.is_empty());
    let mut bodies: Vec<Vec<u8>> = got.into_iter().map(|m| m.body).collect();
    let mut want: Vec<Vec<u8>> = msgs.iter().map(|m| m.raw_crlf()).collect();
    bodies.sort();
    want.sort();
    assert_eq!(bodies, want);
}

/// Yahoo: RFC822.SIZE is 0 for every message and HIGHESTMODSEQ never
/// moves (here it even claims CONDSTORE). Sizes come from the bodies, so
/// the state, a push after a lost state (matched by Message-ID + size)
/// and verify all see real sizes; every run is a full UID scan, so a flag
/// change that the modseq hides is still carried.
#[test]
fn yahoo_zero_sizes_and_a_stale_modseq_fetch_push_and_verify() {
    let q = QuirkServer::start(QuirkOpts {
        yahoo: true,
        lying_condstore: true,
        ..Default::default()
    });
    let dv = Dovecot::start();
    let mut s = spread(1404, 30);
    seed_quirk(&q, &s);
    let t = T::new(
        &[
            quirk_account("yahoo", &q, "yahoo", ""),
            dovecot_account("dv", &dv),
        ],
        Some(&dv),
    );
    assert_eq!(ok(&t.fetch("yahoo", &[]))["copied"], 30);
    assert_maildir_holds(&t.maildir(), &s);
    // The state recorded the real sizes, not 0.
    let st = t.run(&["status"]);
    for (f, m) in &s {
        let row = st
            .json()
            .into_iter()
            .find(|e| e["event"] == "status" && e["folder"] == f.as_str())
            .unwrap_or_else(|| panic!("{f}: {}", st.stdout));
        let bytes: usize = m.iter().map(|m| m.raw_crlf().len()).sum();
        assert_eq!(row["bytes"], bytes, "{f}");
    }
    // Another client flags a message and a new one arrives; the stale
    // HIGHESTMODSEQ says nothing changed, the UID scan sees both.
    let first = q.messages("INBOX")[0].uid;
    q.set_flags("INBOX", first, &["\\Seen", "\\Flagged"]);
    let extra = common::corpus(1405, 1, &CorpusOpts::small());
    q.deliver("INBOX", &extra);
    let inbox = &mut s.iter_mut().find(|(f, _)| f == "INBOX").unwrap().1;
    inbox[0].flags = "FS".into();
    inbox.extend(extra);
    let sum = ok(&t.fetch("yahoo", &[]));
    assert_eq!(
        (sum["copied"].as_u64(), sum["flags_updated"].as_u64()),
        (Some(1), Some(1))
    );
    assert_maildir_holds(&t.maildir(), &s);
    for l in q.log().iter().map(|e| &e.line) {
        assert!(
            !l.contains("CHANGEDSINCE") && !l.contains("HIGHESTMODSEQ"),
            "{l}"
        );
        assert!(!l.starts_with("ENABLE"), "{l}");
    }

    // Yahoo → Dovecot; a lost state costs a header listing, not copies.
    ok(&t.run(&["push", "--from", "yahoo", "--to", "dv"]));
    assert_dovecot_holds(&dv, &s);
    std::fs::remove_dir_all(t.env.state().parent().unwrap()).unwrap();
    let sum = ok(&t.run(&["push", "--from", "yahoo", "--to", "dv"]));
    assert_eq!(
        (sum["copied"].as_u64(), sum["matched"].as_u64()),
        (Some(0), Some(31)),
        "all recorded as already there"
    );
    assert_dovecot_holds(&dv, &s);
    // verify compares Message-ID + size: the sizes are real on both sides.
    assert_eq!(
        ok(&t.run(&["verify", "--from", "yahoo", "--to", "dv"]))["failed"],
        0
    );
    assert_eq!(
        ok(&t.run(&["verify", "--from", "yahoo", "--to", "dv", "--deep"]))["failed"],
        0
    );
}

/// Yahoo as the target: its listing of what is there has sizes of 0, so
/// a push after a lost state must size them by their bodies to match.
#[test]
fn yahoo_as_a_target_is_matched_by_real_sizes_after_a_lost_state() {
    let q = QuirkServer::start(QuirkOpts {
        yahoo: true,
        ..Default::default()
    });
    let dv = Dovecot::start();
    let s = spread(1406, 25);
    seed_dovecot(&dv, &s);
    let t = T::new(
        &[
            quirk_account("yahoo", &q, "yahoo", ""),
            dovecot_account("dv", &dv),
        ],
        Some(&dv),
    );
    assert_eq!(
        ok(&t.run(&["push", "--from", "dv", "--to", "yahoo"]))["copied"],
        25
    );
    assert_quirk_holds(&q, &s);
    std::fs::remove_dir_all(t.env.state().parent().unwrap()).unwrap();
    ok(&t.run(&["push", "--from", "dv", "--to", "yahoo"]));
    assert_quirk_holds(&q, &s);
    assert_eq!(
        ok(&t.run(&["verify", "--from", "dv", "--to", "yahoo"]))["failed"],
        0
    );
    // And back: Yahoo → Maildir.
    ok(&t.fetch("yahoo", &[]));
    assert_maildir_holds(&t.maildir(), &s);
}

/// Exchange / Microsoft 365: APPEND drops \Flagged (set again by UID
/// STORE on the APPENDUID and read back), PERMANENTFLAGS keeps only
/// $MDNSent among keywords (others reported), no CONDSTORE.
#[test]
fn exchange_gets_flagged_by_store_after_append_and_keeps_only_mdnsent() {
    let q = QuirkServer::start(QuirkOpts {
        exchange: true,
        ..Default::default()
    });
    let dv = Dovecot::start();
    let s = spread(1407, 30);
    seed_dovecot(&dv, &s);
    assert!(
        s.iter().flat_map(|(_, m)| m).any(|m| m.flags.contains('F')),
        "the corpus has flagged mail"
    );
    dv.doveadm(&[
        "flags",
        "add",
        "-u",
        dv.user(),
        "$MDNSent Work",
        "mailbox",
        "INBOX",
        "uid",
        "1",
    ]);
    let t = T::new(
        &[
            quirk_account("o365", &q, "microsoft365", ""),
            dovecot_account("dv", &dv),
        ],
        Some(&dv),
    );
    let r = t.run(&["push", "--from", "dv", "--to", "o365"]);
    assert_eq!(ok(&r)["copied"], 30);
    // Exact, \Flagged included.
    assert_quirk_holds(&q, &s);
    let inbox = q.messages("INBOX");
    assert!(inbox.iter().any(|m| m.has("$MDNSent")), "$MDNSent kept");
    assert!(
        !inbox.iter().any(|m| m.has("Work")),
        "Work is not kept there"
    );
    let w = warnings(&r);
    assert!(
        w.iter()
            .any(|m| m.contains("Work") && m.contains("not kept")),
        "{w:?}"
    );
    assert!(!w.iter().any(|m| m.contains("\\Flagged")), "{w:?}");
    let stores: Vec<String> = q
        .log()
        .into_iter()
        .map(|e| e.line)
        .filter(|l| l.starts_with("UID STORE") && l.contains("\\Flagged"))
        .collect();
    assert!(!stores.is_empty(), "\\Flagged was set by STORE");
    assert_eq!(
        ok(&t.run(&["verify", "--from", "dv", "--to", "o365", "--deep"]))["failed"],
        0
    );

    // Exchange as the source: → Maildir and → a second Dovecot folder set.
    let q2 = QuirkServer::start(QuirkOpts {
        exchange: true,
        ..Default::default()
    });
    let s2 = spread(1408, 20);
    seed_quirk(&q2, &s2);
    let dv2 = Dovecot::start();
    let t2 = T::new(
        &[
            quirk_account("o365", &q2, "microsoft365", ""),
            dovecot_account("dv", &dv2),
        ],
        Some(&dv2),
    );
    assert_eq!(ok(&t2.fetch("o365", &[]))["copied"], 20);
    assert_maildir_holds(&t2.maildir(), &s2);
    ok(&t2.run(&["push", "--from", "o365", "--to", "dv"]));
    assert_dovecot_holds(&dv2, &s2);
    assert_eq!(
        ok(&t2.run(&["verify", "--from", "o365", "--to", "dv", "--deep"]))["failed"],
        0
    );
}

/// Gmail by `provider = "gmail"` (the host here is loopback): check says
/// which profile applied and what it sets, X-GM-EXT-1 is advertised, and
/// fetch, push and verify work, a rerun taking the CONDSTORE no-op path.
#[test]
fn gmail_profile_applies_by_config_and_check_says_so() {
    let q = QuirkServer::start(QuirkOpts {
        gmail: true,
        ..Default::default()
    });
    let dv = Dovecot::start();
    let s = spread(1409, 20);
    seed_quirk(&q, &s);
    let t = T::new(
        &[
            quirk_account("gmail", &q, "gmail", ""),
            dovecot_account("dv", &dv),
        ],
        Some(&dv),
    );
    let c = t.run(&["check", "gmail"]);
    assert_eq!(c.code, 0, "{}{}", c.stdout, c.stderr);
    let ev = &c.json()[0];
    assert_eq!(ev["provider"]["name"], "gmail");
    assert_eq!(ev["provider"]["applied"], "config");
    assert_eq!(ev["provider"]["daily_download"], 2_500_000_000u64);
    assert_eq!(ev["provider"]["daily_upload"], 500_000_000u64);
    assert_eq!(ev["provider"]["append_limit"], 35_651_584);
    assert_eq!(ev["provider"]["oauth"], "google");
    assert!(
        ev["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "X-GM-EXT-1"),
        "{}",
        c.stdout
    );
    // The same in words.
    let mut plain = t.env.cmd("unused");
    plain
        .env("QUIRK_PW", PASSWORD)
        .args(["check", "gmail", "-c"])
        .arg(&t.cfg);
    let out = to_run(plain.output().unwrap());
    assert!(
        out.stdout
            .contains("profile   gmail (provider = \"gmail\")"),
        "{}",
        out.stdout
    );

    assert_eq!(ok(&t.fetch("gmail", &[]))["copied"], 20);
    assert_maildir_holds(&t.maildir(), &s);
    let before = q.log().len();
    assert_eq!(ok(&t.fetch("gmail", &[]))["copied"], 0);
    let rerun: Vec<String> = q.log()[before..].iter().map(|e| e.line.clone()).collect();
    assert!(
        !rerun
            .iter()
            .any(|l| l.starts_with("EXAMINE") || l.starts_with("UID")),
        "a no-op rerun selects nothing: {rerun:?}"
    );
    ok(&t.run(&["push", "--from", "gmail", "--to", "dv"]));
    assert_dovecot_holds(&dv, &s);
    assert_eq!(
        ok(&t.run(&["verify", "--from", "gmail", "--to", "dv", "--deep"]))["failed"],
        0
    );
}

/// Microsoft's "Suggested Backoff Time" in a NO: the run pauses for the
/// time asked (the server saw nothing on that connection, and no login,
/// before it was over) and then completes, every message once.
#[test]
fn suggested_backoff_is_obeyed_then_the_push_completes() {
    let q = QuirkServer::start(QuirkOpts {
        exchange: true,
        throttle: Some(Throttle {
            on: "SELECT",
            every: 2,
            times: 2,
            backoff: Duration::from_millis(700),
            style: ThrottleStyle::SuggestedNo,
        }),
        ..Default::default()
    });
    let dv = Dovecot::start();
    let s = spread(1410, 30);
    seed_dovecot(&dv, &s);
    let t = T::new(
        &[
            quirk_account("o365", &q, "microsoft365", ""),
            dovecot_account("dv", &dv),
        ],
        Some(&dv),
    );
    let r = t.run(&["push", "--from", "dv", "--to", "o365", "--connections", "2"]);
    assert_eq!(ok(&r)["copied"], 30);
    assert_quirk_holds(&q, &s);
    assert_eq!(q.throttled(), 2);
    assert_eq!(q.early(), Vec::<String>::new());
    let w = warnings(&r);
    assert!(
        w.iter()
            .filter(|m| m.contains("Suggested Backoff Time") && m.contains("in 0.7 s"))
            .count()
            == 2,
        "{w:?}"
    );
}

/// "BAD Request is throttled…" and a BYE in the middle of a download: the
/// connection is gone; no new one logs in before the pause is over, and
/// the fetch goes on from what it had stored.
#[test]
fn throttled_bad_and_bye_mid_fetch_is_obeyed_then_the_fetch_completes() {
    let q = QuirkServer::start(QuirkOpts {
        throttle: Some(Throttle {
            on: "FETCH",
            every: 3,
            times: 2,
            backoff: Duration::from_millis(500),
            style: ThrottleStyle::SuggestedBadBye,
        }),
        ..Default::default()
    });
    let s = spread(1411, 40);
    seed_quirk(&q, &s);
    let t = T::new(&[quirk_account("o365", &q, "microsoft365", "")], None);
    let r = t.fetch("o365", &["--connections", "2"]);
    assert_eq!(ok(&r)["copied"], 40);
    assert_maildir_holds(&t.maildir(), &s);
    assert_eq!(q.throttled(), 2);
    assert_eq!(q.early(), Vec::<String>::new());
}

/// Gmail's `NO [THROTTLED]` names no time: the run backs off (1 s) and
/// completes.
#[test]
fn gmail_throttled_without_a_time_backs_off_and_completes() {
    let q = QuirkServer::start(QuirkOpts {
        gmail: true,
        throttle: Some(Throttle {
            on: "FETCH",
            every: 2,
            times: 1,
            backoff: Duration::ZERO,
            style: ThrottleStyle::Throttled,
        }),
        ..Default::default()
    });
    let s = spread(1412, 20);
    seed_quirk(&q, &s);
    let t = T::new(&[quirk_account("gmail", &q, "gmail", "")], None);
    let r = t.fetch("gmail", &[]);
    assert_eq!(ok(&r)["copied"], 20);
    assert_maildir_holds(&t.maildir(), &s);
    assert_eq!(q.throttled(), 1);
    let w = warnings(&r);
    assert!(
        w.iter()
            .any(|m| m.contains("[THROTTLED]") && m.contains("in 1.0 s")),
        "{w:?}"
    );
}

/// Gmail's "Too many simultaneous connections" for the extra connections
/// of a run: it goes on with the ones it got (never more at once than
/// the server allows), exit 0.
#[test]
fn too_many_connections_lowers_the_pool_and_the_run_completes() {
    let q = QuirkServer::start(QuirkOpts {
        gmail: true,
        max_sessions: Some(2),
        ..Default::default()
    });
    let s = spread(1413, 30);
    seed_quirk(&q, &s);
    let dv = Dovecot::start();
    let t = T::new(
        &[
            quirk_account("gmail", &q, "gmail", ""),
            dovecot_account("dv", &dv),
        ],
        Some(&dv),
    );
    let r = t.fetch("gmail", &["--connections", "4"]);
    assert_eq!(ok(&r)["copied"], 30);
    assert_maildir_holds(&t.maildir(), &s);
    assert!(q.refused() >= 1, "the server refused some");
    assert_eq!(q.max_sessions_seen(), 2);
    let w = warnings(&r);
    assert!(
        w.iter()
            .any(|m| m.contains("takes no more connections") && m.contains("continuing with 2")),
        "{w:?}"
    );
    // The same as a push target.
    let before = q.refused();
    let t2 = T::new(
        &[
            quirk_account("gmail", &q, "gmail", ""),
            dovecot_account("dv", &dv),
        ],
        Some(&dv),
    );
    let s2 = spread(1414, 20);
    seed_dovecot(&dv, &s2);
    let r = t2.run(&[
        "push",
        "--from",
        "dv",
        "--to",
        "gmail",
        "--connections",
        "4",
    ]);
    assert_eq!(ok(&r)["copied"], 20);
    assert!(q.refused() > before);
    assert_eq!(q.max_sessions_seen(), 2);
}

/// A worker whose new connection is refused (too many connections) stops,
/// and its folder is done by the others: one connection fewer, exit 0.
/// Here each session's token "expires" after a few commands (the
/// AccessTokenExpired BYE), and the first reconnection is refused.
#[test]
fn a_refused_reconnection_retires_a_worker_and_its_folder_is_done_by_another() {
    let q = QuirkServer::start(QuirkOpts {
        gmail: true,
        expire_after: Some(3),
        refuse_logins: vec![3],
        ..Default::default()
    });
    let s = spread(1415, 30);
    seed_quirk(&q, &s);
    let t = T::new(&[quirk_account("gmail", &q, "gmail", "")], None);
    let r = t.fetch("gmail", &["--connections", "2"]);
    assert_eq!(ok(&r)["copied"], 30);
    assert_maildir_holds(&t.maildir(), &s);
    assert_eq!(q.refused(), 1);
    let w = warnings(&r);
    assert!(
        w.iter().any(|m| m.contains("one connection fewer")),
        "{w:?}"
    );
    assert!(w.iter().any(|m| m.contains("AccessTokenExpired")), "{w:?}");
}

/// An expired token's BYE in the middle of a session (Microsoft 365 after
/// an hour): a new session picks up where the state says, fetch and push,
/// and logs in with a fresh token: the server refuses an expired token
/// from then on, as a provider does. The BYE itself spent the token, so
/// the reconnection does not try it first: with one connection no login
/// is refused, and the token command runs once per session.
#[test]
fn an_expired_token_mid_session_reconnects_and_completes() {
    let q = QuirkServer::start(QuirkOpts {
        exchange: true,
        expire_after: Some(4),
        oauth: true,
        ..Default::default()
    });
    let s = spread(1416, 30);
    seed_quirk(&q, &s);
    let dv = Dovecot::start();
    let t = T::new(&[], Some(&dv));
    // Prints tok-1, tok-2, … one per run.
    let runs = t.env.path("token-runs");
    let cmd = format!(
        "n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; echo tok-$n",
        runs.display()
    );
    std::fs::write(
        &t.cfg,
        format!(
            "[account.o365]\nprovider = \"microsoft365\"\nurl = \"{}\"\ntls = \"none\"\noauth2_token_command = '{cmd}'\n\n{}",
            q.url(),
            dovecot_account("dv", &dv)
        ),
    )
    .unwrap();
    let token_runs = || {
        std::fs::read_to_string(&runs)
            .unwrap()
            .trim()
            .parse::<usize>()
            .unwrap()
    };

    assert_eq!(ok(&t.fetch("o365", &["--connections", "1"]))["copied"], 30);
    assert_maildir_holds(&t.maildir(), &s);
    let tokens = q.tokens();
    assert!(q.expired() >= 2, "sessions ended: {}", q.expired());
    assert_eq!(
        q.stale_logins(),
        0,
        "an expired token was tried: {tokens:?}"
    );
    let mut distinct = tokens.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        tokens.len(),
        "a session per token: {tokens:?}"
    );
    assert_eq!(token_runs(), tokens.len(), "one refresh per session");

    // Several connections: one may still log in with a token another
    // session's end spent; the server refuses it, and the governor's
    // next login brings a fresh one.
    ok(&t.run(&["push", "--from", "o365", "--to", "dv"]));
    assert_dovecot_holds(&dv, &s);
    let logins = q
        .log()
        .iter()
        .filter(|e| e.line.starts_with("AUTHENTICATE"))
        .count();
    assert!(logins > 3, "sessions ended and were replaced: {logins}");
    assert!(token_runs() > tokens.len(), "the push refreshed too");
}

/// Parses `2026-12-03T10:00:00Z`.
fn unix(rfc3339: &str) -> i64 {
    let (d, t) = rfc3339.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = d.split('-').map(|x| x.parse().unwrap()).collect();
    let t: Vec<i64> = t.split(':').map(|x| x.parse().unwrap()).collect();
    mailferry::date::days_from_civil(d[0], d[1] as u32, d[2] as u32) * 86_400
        + t[0] * 3600
        + t[1] * 60
        + t[2]
}

/// Gmail-style daily download budget (here a small one): the fetch copies
/// what fits, records it, and stops with exit 5 and when to resume; a
/// rerun before then copies nothing; one at that time goes on; in the end
/// every message is there once.
#[test]
fn daily_download_budget_stops_with_exit_5_and_resumes_when_it_said() {
    let q = QuirkServer::start(QuirkOpts {
        gmail: true,
        ..Default::default()
    });
    let msgs = common::corpus(1417, 30, &CorpusOpts::small());
    q.deliver("INBOX", &msgs);
    let total: usize = msgs.iter().map(|m| m.raw_crlf().len()).sum();
    let budget = total * 6 / 10;
    let t = T::new(
        &[quirk_account(
            "gmail",
            &q,
            "gmail",
            &format!("daily_download = \"{budget}\""),
        )],
        None,
    );
    let t0: i64 = 1_800_000_000;
    let fetch = |now: i64| {
        let to = t.maildir();
        t.run_with(
            &[
                "fetch",
                "--from",
                "gmail",
                "--to",
                to.to_str().unwrap(),
                "--connections",
                "1",
            ],
            &[("MAILFERRY_NOW", now.to_string())],
        )
    };
    let r = fetch(t0);
    assert_eq!(r.code, 5, "{}{}", r.stdout, r.stderr);
    let ev = r.json();
    let err = ev
        .iter()
        .find(|e| e["event"] == "error")
        .expect("an error event");
    assert_eq!(err["exit_code"], 5);
    let resume = err["resume_at"].as_str().unwrap().to_string();
    // The hour it was spent in, plus a day.
    assert_eq!(unix(&resume), (t0 / 3600 + 1) * 3600 + 86_400, "{resume}");
    assert!(err["message"].as_str().unwrap().contains(&resume));
    let first = summary(&r)["copied"].as_u64().unwrap() as usize;
    let fits = {
        let mut sum = 0;
        msgs.iter()
            .take_while(|m| {
                sum += m.raw_crlf().len();
                sum <= budget
            })
            .count()
    };
    assert_eq!(first, fits, "what fits, in UID order");
    assert_eq!(maildir(&t.maildir(), "INBOX").len(), fits);
    let bytes_asked: usize = q
        .log()
        .iter()
        .filter(|e| e.line.starts_with("UID FETCH") && e.line.contains("BODY.PEEK[]"))
        .count();
    assert_eq!(bytes_asked, 1, "one body download, only of what fits");

    // Before the resume time: nothing more.
    let r = fetch(t0 + 3600);
    assert_eq!(r.code, 5, "{}{}", r.stdout, r.stderr);
    assert_eq!(summary(&r)["copied"], 0);
    // At it, and at each time the next run names: the rest.
    let mut copied = fits;
    let mut at = unix(&resume);
    for _ in 0..4 {
        let r = fetch(at);
        copied += summary(&r)["copied"].as_u64().unwrap() as usize;
        if r.code == 0 {
            break;
        }
        assert_eq!(r.code, 5, "{}{}", r.stdout, r.stderr);
        let ev = r.json();
        let err = ev.iter().find(|e| e["event"] == "error").unwrap();
        at = unix(err["resume_at"].as_str().unwrap());
    }
    assert_eq!(copied, 30);
    assert_maildir_holds(&t.maildir(), &[("INBOX".to_string(), msgs)]);
}

/// The upload budget of a Gmail target: push stops with exit 5, state
/// consistent; at the resume time it finishes, nothing twice on the target.
#[test]
fn daily_upload_budget_stops_the_push_and_it_resumes_without_duplicates() {
    let q = QuirkServer::start(QuirkOpts {
        gmail: true,
        ..Default::default()
    });
    let dv = Dovecot::start();
    let s = spread(1418, 30);
    seed_dovecot(&dv, &s);
    let total: usize = s
        .iter()
        .flat_map(|(_, m)| m)
        .map(|m| m.raw_crlf().len())
        .sum();
    let t = T::new(
        &[
            quirk_account(
                "gmail",
                &q,
                "gmail",
                &format!("daily_upload = \"{}\"", total / 2),
            ),
            dovecot_account("dv", &dv),
        ],
        Some(&dv),
    );
    let t0: i64 = 1_800_000_000;
    let push = |now: i64| {
        t.run_with(
            &[
                "push",
                "--from",
                "dv",
                "--to",
                "gmail",
                "--connections",
                "1",
            ],
            &[("MAILFERRY_NOW", now.to_string())],
        )
    };
    let r = push(t0);
    assert_eq!(r.code, 5, "{}{}", r.stdout, r.stderr);
    let ev = r.json();
    let err = ev.iter().find(|e| e["event"] == "error").unwrap();
    let resume = unix(err["resume_at"].as_str().unwrap());
    let first = summary(&r)["copied"].as_u64().unwrap() as usize;
    assert!(first > 0 && first < 30, "{first}");
    let stored: usize = FOLDERS.iter().map(|f| q.messages(f).len()).sum();
    assert_eq!(stored, first, "what the summary says is what is there");
    let up: usize = FOLDERS
        .iter()
        .flat_map(|f| q.messages(f))
        .map(|m| m.body.len())
        .sum();
    assert!(up <= total / 2, "{up} > {}", total / 2);
    // An early rerun adds nothing; later ones finish, nothing twice.
    let r = push(t0 + 60);
    assert_eq!((r.code, summary(&r)["copied"].as_u64()), (5, Some(0)));
    let mut at = resume;
    for _ in 0..4 {
        let r = push(at);
        if r.code == 0 {
            break;
        }
        assert_eq!(r.code, 5, "{}{}", r.stdout, r.stderr);
        let ev = r.json();
        let err = ev.iter().find(|e| e["event"] == "error").unwrap();
        at = unix(err["resume_at"].as_str().unwrap());
    }
    assert_quirk_holds(&q, &s);
}

/// The first connection refused for too many connections (the user's
/// phone holds them all): not an authentication failure (exit 3) but a
/// wait and another try.
#[test]
fn the_first_connection_refused_for_too_many_is_tried_again() {
    let q = QuirkServer::start(QuirkOpts {
        gmail: true,
        refuse_logins: vec![1],
        ..Default::default()
    });
    let s = spread(1419, 10);
    seed_quirk(&q, &s);
    let t = T::new(&[quirk_account("gmail", &q, "gmail", "")], None);
    let r = t.fetch("gmail", &[]);
    assert_eq!(ok(&r)["copied"], 10);
    assert_maildir_holds(&t.maildir(), &s);
    assert_eq!(q.refused(), 1);
    let w = warnings(&r);
    assert!(
        w.iter()
            .any(|m| m.contains("Too many simultaneous connections")
                && m.contains("connecting again")),
        "{w:?}"
    );
}

/// Gmail's download budget covers POP3 too (here against Dovecot's POP3
/// under `provider = "gmail"`): stop with exit 5, go on at the time named,
/// every message once.
#[test]
fn daily_download_budget_holds_for_pop3_too() {
    let dv = Dovecot::start();
    let msgs = common::corpus(1420, 20, &CorpusOpts::small());
    dv.deliver(dv.user(), "INBOX", &msgs);
    let total: usize = msgs.iter().map(|m| m.raw_crlf().len()).sum();
    let account = format!(
        "[account.gpop]\nprovider = \"gmail\"\nurl = \"{}\"\nca_file = \"{}\"\npassword_env = \"DV_PW\"\ndaily_download = \"{}\"\n",
        dv.url("pop3s"),
        dv.ca_file().display(),
        total / 2
    );
    let t = T::new(&[account], Some(&dv));
    let to = t.maildir();
    let fetch = |now: i64| {
        t.run_with(
            &["fetch", "--from", "gpop", "--to", to.to_str().unwrap()],
            &[("MAILFERRY_NOW", now.to_string())],
        )
    };
    let mut at: i64 = 1_800_000_000;
    let mut runs = Vec::new();
    for _ in 0..5 {
        let r = fetch(at);
        runs.push((r.code, summary(&r)["copied"].as_u64().unwrap()));
        if r.code == 0 {
            break;
        }
        assert_eq!(r.code, 5, "{}{}", r.stdout, r.stderr);
        let ev = r.json();
        let err = ev.iter().find(|e| e["event"] == "error").unwrap();
        at = unix(err["resume_at"].as_str().unwrap());
    }
    assert_eq!(runs[0].0, 5, "the first run stops: {runs:?}");
    assert!(runs[0].1 > 0, "{runs:?}");
    assert_eq!(runs.last().unwrap().0, 0, "{runs:?}");
    assert_eq!(runs.iter().map(|r| r.1).sum::<u64>(), 20, "{runs:?}");
    let files = maildir_files(&to).remove("INBOX").unwrap_or_default();
    let mut got: Vec<String> = files.iter().map(|p| digest(&wire(p))).collect();
    let mut want: Vec<String> = msgs
        .iter()
        .map(|m| digest(&crate::fetch_pop3::served(m)))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}
