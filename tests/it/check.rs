//! `mailferry check` against the real Dovecot: what it shows, and the
//! exit codes for a wrong password (3), a closed port and an untrusted
//! certificate (4).

use crate::cli::Env;
use crate::common::{self, Dovecot};

fn ca(dv: &Dovecot) -> String {
    dv.ca_file().display().to_string()
}

#[test]
fn imaps_shows_tls_capabilities_and_folders() {
    let dv = Dovecot::start();
    let msgs = common::corpus(7, 3, &common::CorpusOpts::small());
    dv.deliver(dv.user(), "INBOX", &msgs);
    dv.deliver(dv.user(), "Entwürfe", &msgs[..1]);
    dv.create_folder(dv.user(), "Sent");
    let env = Env::new();
    let r = env.run(
        dv.password(),
        &["check", &dv.url("imaps"), "--ca-file", &ca(&dv)],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("TLS 1."), "{}", r.stdout);
    assert!(r.stdout.contains("CN=localhost"), "{}", r.stdout);
    assert!(r.stdout.contains("sha256:"), "{}", r.stdout);
    assert!(r.stdout.contains("CONDSTORE"), "{}", r.stdout);
    assert!(r.stdout.contains("Entwürfe"), "{}", r.stdout);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains("INBOX") && l.contains("3 messages")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains("Sent") && l.contains("\\Sent")),
        "{}",
        r.stdout
    );
}

#[test]
fn json_form_for_imap_starttls_and_pop3s() {
    let dv = Dovecot::start();
    dv.deliver(
        dv.user(),
        "INBOX",
        &common::corpus(8, 2, &common::CorpusOpts::small()),
    );
    let env = Env::new();
    let r = env.run(
        dv.password(),
        &[
            "check",
            &dv.url("imap"),
            &dv.url("pop3s"),
            "--ca-file",
            &ca(&dv),
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let lines = r.json();
    assert_eq!(lines[0]["protocol"], "imap");
    assert_eq!(lines[0]["ok"], true);
    assert!(
        lines[0]["tls"]["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(
        lines[0]["folders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "INBOX" && f["messages"] == 2)
    );
    assert_eq!(lines[1]["protocol"], "pop3");
    assert_eq!(lines[1]["messages"], 2);
    assert_eq!(lines[1]["uidl"], true);
    assert_eq!(lines[1]["pipelining"], true);
    assert_eq!(lines.last().unwrap()["event"], "summary");
}

#[test]
fn wrong_password_exits_3() {
    let dv = Dovecot::start();
    let env = Env::new();
    for scheme in ["imaps", "pop3s"] {
        let r = env.run(
            "not-the-password",
            &["check", &dv.url(scheme), "--ca-file", &ca(&dv)],
        );
        assert_eq!(r.code, 3, "{scheme}: {}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("authentication failed"), "{}", r.stdout);
        assert!(!r.stdout.contains("not-the-password") && !r.stderr.contains("not-the-password"));
    }
}

#[test]
fn closed_port_exits_4() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let env = Env::new();
    let r = env.run("pw", &["check", &format!("imaps://alice@127.0.0.1:{port}")]);
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("cannot connect"), "{}", r.stdout);
}

#[test]
fn untrusted_certificate_exits_4_and_says_how_to_fix() {
    let dv = Dovecot::start();
    let env = Env::new();
    let r = env.run(dv.password(), &["check", &dv.url("imaps")]);
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("not trusted") && r.stdout.contains("--ca-file"),
        "{}",
        r.stdout
    );
    // the certificate's fingerprint is shown, and pinning it works
    let fp = r
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("pin with  --tls-fingerprint "))
        .unwrap_or_else(|| panic!("no fingerprint in {}", r.stdout))
        .to_string();
    let r = env.run(
        dv.password(),
        &["check", &dv.url("imaps"), "--tls-fingerprint", &fp],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // a wrong pin is refused
    let wrong = format!("sha256:{}", "00".repeat(32));
    let r = env.run(
        dv.password(),
        &["check", &dv.url("imaps"), "--tls-fingerprint", &wrong],
    );
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("does not match"), "{}", r.stdout);
}

#[test]
fn plaintext_refused_without_starttls() {
    let dv = Dovecot::start_with(common::DovecotOpts::default().no_tls());
    let env = Env::new();
    let r = env.run(dv.password(), &["check", &dv.url("imap")]);
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("STARTTLS"), "{}", r.stdout);
    let r = env.run(
        dv.password(),
        &["check", &dv.url("imap"), "--insecure-plaintext"],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("plain text"), "{}", r.stdout);
}

/// System trust comes from OpenSSL's default paths (`SSL_CERT_FILE`,
/// `SSL_CERT_DIR`): a hashed directory alone when it holds every
/// certificate of the bundle (read lazily), else bundle and directory.
#[test]
fn system_roots_from_the_bundle_or_the_hashed_directory() {
    let dv = Dovecot::start();
    let env = Env::new();
    let ssl = dv.ca_file().parent().unwrap();
    let ca_pem = std::fs::read(dv.ca_file()).unwrap();
    let leaf_pem = std::fs::read(ssl.join("server.pem")).unwrap();
    // A certificate that is no trust anchor for the server's chain.
    let unrelated = env.path("unrelated.pem");
    std::fs::write(&unrelated, &leaf_pem).unwrap();
    let bundle = env.path("bundle.pem");
    std::fs::write(&bundle, [leaf_pem.clone(), ca_pem.clone()].concat()).unwrap();
    let link = |dir: &std::path::Path, pem: &[u8]| {
        let hash = openssl::x509::X509::from_pem(pem)
            .unwrap()
            .subject_name_hash();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{hash:08x}.0")), pem).unwrap();
    };
    let empty = env.path("empty-dir");
    std::fs::create_dir_all(&empty).unwrap();
    let with_ca = env.path("ca-dir");
    link(&with_ca, &ca_pem);
    let with_leaf = env.path("leaf-dir");
    link(&with_leaf, &leaf_pem);

    let check = |file: &std::path::Path, dir: &std::path::Path| {
        crate::cli::to_run(
            env.cmd(dv.password())
                .env("SSL_CERT_FILE", file)
                .env("SSL_CERT_DIR", dir)
                .args(["check", &dv.url("imaps")])
                .output()
                .unwrap(),
        )
    };
    // The directory has the CA, the bundle has another certificate: both
    // are read, and the directory's CA is enough.
    let r = check(&unrelated, &with_ca);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // No hashed directory: the bundle.
    let r = check(&bundle, &empty);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // A directory without all of the bundle's certificates does not
    // replace it: the CA, only in the bundle, is still trusted.
    let r = check(&bundle, &with_leaf);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // The CA only in the bundle, beside a directory of as many other
    // certificates: the bundle is still read.
    let ca_only = env.path("ca-only.pem");
    std::fs::write(&ca_only, &ca_pem).unwrap();
    let r = check(&ca_only, &with_leaf);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // Neither has the CA.
    let r = check(&unrelated, &with_leaf);
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("not trusted"), "{}", r.stdout);
}
