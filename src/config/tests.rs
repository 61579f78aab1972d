use super::*;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

fn write_config(text: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("config.toml");
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    (d, p)
}

fn load(p: &Path) -> Result<Config> {
    Config::load(&GlobalArgs {
        config: Some(p.to_path_buf()),
        state: Some("/tmp/x.db".into()),
        ..Default::default()
    })
}

const GOOD: &str = r#"
state = "/tmp/mf.db"

[account.work]
url = "imaps://alice%40example.com@imap.example.com"
password_command = "pass show work"

[account.pop]
url = "pop3://bob@pop.example.com"
tls = "none"
password = "hunter2"

[[job]]
name = "backup"
command = "fetch"
from = "work"
to = "/tmp/Mail/work"
exclude = ["Trash", "Junk"]
delete_after = 30

[[job]]
name = "pop"
command = "fetch"
from = "pop"
to = "/tmp/Mail/pop"
delete_after_fetch = true
"#;

#[test]
fn good_config_resolves_jobs_in_order() {
    let (_d, p) = write_config(GOOD, 0o600);
    let c = load(&p).unwrap();
    let jobs = c.file_jobs(&[]).unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(),
        ["backup", "pop"]
    );
    let JobKind::Fetch(f) = &jobs[0].kind else {
        panic!()
    };
    assert_eq!(f.retention, Retention::AfterDays(30));
    assert!(matches!(f.from.secret, SecretSource::Command(_)));
    assert!(
        !f.filter
            .wants_folder(&crate::types::FolderName::new("Trash"))
    );
    let JobKind::Fetch(f) = &jobs[1].kind else {
        panic!()
    };
    assert_eq!(
        f.from.server_url("from").unwrap().security,
        Security::Plaintext
    );
    assert_eq!(f.retention, Retention::AfterFetch);
    // only the named job
    assert_eq!(c.file_jobs(&["pop".into()]).unwrap().len(), 1);
    assert!(c.file_jobs(&["nope".into()]).is_err());
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let text = "[account.work]\nurl = \"imaps://a@h\"\npasword_command = \"x\"\n";
    let (_d, p) = write_config(text, 0o600);
    let e = load(&p).unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.exit_code(), crate::ExitCode::Usage);
    assert!(msg.contains("config.toml:3"), "{msg}");
    assert!(msg.contains("pasword_command"), "{msg}");
}

#[test]
fn bad_value_names_line() {
    let text = "[account.work]\nurl = \"ftp://a@h\"\n\n[[job]]\nname = \"j\"\ncommand = \"fetch\"\nfrom = \"work\"\nto = \"/tmp/m\"\n";
    let (_d, p) = write_config(text, 0o600);
    let e = load(&p).unwrap().file_jobs(&[]).unwrap_err().to_string();
    assert!(
        e.contains("config.toml:2") && e.contains("account.work.url"),
        "{e}"
    );
    let text = "[[job]]\nname = \"j\"\ncommand = \"fetch\"\nfrom = \"imaps://a@h\"\nto = \"/tmp/m\"\nmax_size = \"12Q\"\n";
    let (_d, p) = write_config(text, 0o600);
    let e = load(&p).unwrap().file_jobs(&[]).unwrap_err().to_string();
    assert!(e.contains("config.toml:6") && e.contains("max_size"), "{e}");
    let text = "[[job]]\nname = \"j\"\ncommand = \"sync\"\n";
    let (_d, p) = write_config(text, 0o600);
    let e = load(&p).unwrap().file_jobs(&[]).unwrap_err().to_string();
    assert!(e.contains("config.toml:3") && e.contains("sync"), "{e}");
}

#[test]
fn plain_password_in_readable_file_is_refused() {
    let (_d, p) = write_config(GOOD, 0o644);
    let e = load(&p).unwrap_err().to_string();
    assert!(
        e.contains("chmod 600") && e.contains("account.pop.password"),
        "{e}"
    );
    assert!(!e.contains("hunter2"));
}

#[test]
fn urls_and_paths_resolve_without_config() {
    let c = Config::load(&GlobalArgs {
        state: Some("/tmp/s.db".into()),
        config: None,
        ..Default::default()
    })
    .unwrap();
    assert!(matches!(
        c.account("imaps://a@h", SecretSource::Default { env_var: "X" })
            .unwrap()
            .endpoint,
        Endpoint::Server(_)
    ));
    assert!(matches!(
        c.account("./Mail", SecretSource::Default { env_var: "X" })
            .unwrap()
            .endpoint,
        Endpoint::Maildir(_)
    ));
    let e = c
        .account("work", SecretSource::Default { env_var: "X" })
        .unwrap_err();
    assert_eq!(e.exit_code(), crate::ExitCode::Usage);
}

#[test]
fn prune_job_defaults_to_proof_in_the_backup_and_takes_folder_rules() {
    let text = format!(
        "{GOOD}
[[job]]
name = \"tidy\"
command = \"prune\"
on = \"work\"
older_than = 365
max_delete = 50

[[job.rules]]
folder = \"Trash\"
older_than = 30

[[job]]
name = \"tidy-anyway\"
command = \"prune\"
on = \"work\"
keep_last = 10
only_if_stored = false
"
    );
    let (_d, p) = write_config(&text, 0o600);
    let c = load(&p).unwrap();
    let jobs = c.file_jobs(&["tidy".into(), "tidy-anyway".into()]).unwrap();
    let JobKind::Prune(j) = &jobs[0].kind else {
        panic!("not a prune job")
    };
    let store = j
        .only_if_stored_in
        .as_ref()
        .expect("defaults to the backup");
    assert!(matches!(&store.endpoint, Endpoint::Maildir(p) if p == Path::new("/tmp/Mail/work")));
    assert_eq!(j.max_delete, Some(50));
    assert_eq!(
        j.rules_for(&crate::types::FolderName::new("Trash"))
            .older_than_days,
        Some(30)
    );
    assert_eq!(
        j.rules_for(&crate::types::FolderName::inbox())
            .older_than_days,
        Some(365)
    );
    let JobKind::Prune(j) = &jobs[1].kind else {
        panic!("not a prune job")
    };
    assert!(j.only_if_stored_in.is_none());
}

fn oauth_of(text: &str, name: &str) -> Result<crate::oauth::OAuthConfig> {
    let (_d, p) = write_config(text, 0o600);
    let c = load(&p)?;
    match c
        .account(name, SecretSource::Default { env_var: "X" })?
        .secret
    {
        SecretSource::OAuth2(o) => Ok(*o),
        other => panic!("not built-in OAuth2: {other:?}"),
    }
}

#[test]
fn oauth2_accounts_take_the_provider_defaults() {
    use crate::oauth::{Flow, Provider, TokenStore};
    let text = r#"
[account.ms]
url = "imaps://alice%40contoso.com@outlook.office365.com"
auth = "oauth2"
oauth2_provider = "microsoft"
oauth2_client_id = "11111111-2222"
oauth2_tenant = "organizations"

[account.gmail]
url = "pop3s://bob%40gmail.com@pop.gmail.com"
auth = "oauth2"
oauth2_provider = "google"
oauth2_client_id = "123.apps.googleusercontent.com"
oauth2_client_secret_command = "pass show google-client"
token_store_command = "my-keyring"
"#;
    let ms = oauth_of(text, "ms").unwrap();
    assert_eq!((ms.provider, ms.flow), (Provider::Microsoft, Flow::Device));
    assert_eq!(
        ms.device_url.unwrap().target,
        "/organizations/oauth2/v2.0/devicecode"
    );
    assert_eq!(ms.token_url.host, "login.microsoftonline.com");
    assert!(ms.scopes.contains(&"offline_access".to_string()));
    assert_eq!(ms.user, "alice@contoso.com");
    // Tokens beside the state file (/tmp/x.db), never in it.
    let TokenStore::File(f) = &ms.store else {
        panic!("{:?}", ms.store)
    };
    assert!(
        f.to_string_lossy()
            .starts_with("/tmp/tokens/alice@contoso.com-"),
        "{f:?}"
    );
    let g = oauth_of(text, "gmail").unwrap();
    assert_eq!((g.provider, g.flow), (Provider::Google, Flow::Loopback));
    assert_eq!(g.scopes, ["https://mail.google.com/"]);
    assert_eq!(g.auth_url.unwrap().host, "accounts.google.com");
    assert_eq!(g.store, TokenStore::Command("my-keyring".into()));
    assert!(g.client_secret.is_some());
}

/// `provider = "gmail"` (or a URL on a provider's host) with `auth =
/// "oauth2"` needs no `oauth2_provider`: the profile names it.
#[test]
fn a_provider_profile_names_the_oauth2_provider() {
    use crate::oauth::{Flow, Provider};
    let text = r#"
[account.g]
provider = "gmail"
user = "alice@gmail.com"
auth = "oauth2"
oauth2_client_id = "123.apps.googleusercontent.com"
oauth2_client_secret_command = "pass show google-client"

[account.ms]
provider = "microsoft365"
user = "bob@contoso.com"
protocol = "pop3"
auth = "oauth2"
oauth2_client_id = "11111111-2222"
oauth2_tenant = "organizations"

[account.host]
url = "imaps://carol%40outlook.com@outlook.office365.com"
auth = "oauth2"
oauth2_client_id = "x"

[account.own]
provider = "gmail"
user = "dave@example.com"
auth = "oauth2"
oauth2_provider = "microsoft"
oauth2_client_id = "x"

[account.y]
provider = "yahoo"
user = "erin@yahoo.com"
auth = "oauth2"
oauth2_client_id = "x"
"#;
    let g = oauth_of(text, "g").unwrap();
    assert_eq!((g.provider, g.flow), (Provider::Google, Flow::Loopback));
    assert_eq!(g.user, "alice@gmail.com");
    assert_eq!(g.scopes, ["https://mail.google.com/"]);
    let ms = oauth_of(text, "ms").unwrap();
    assert_eq!((ms.provider, ms.flow), (Provider::Microsoft, Flow::Device));
    assert_eq!(
        ms.device_url.unwrap().target,
        "/organizations/oauth2/v2.0/devicecode"
    );
    assert_eq!(ms.user, "bob@contoso.com");
    // Found by host works the same.
    assert_eq!(
        oauth_of(text, "host").unwrap().provider,
        Provider::Microsoft
    );
    // The account's own oauth2_provider wins over its profile's.
    assert_eq!(oauth_of(text, "own").unwrap().provider, Provider::Microsoft);
    // Yahoo has no OAuth2 for other programs: the message says what to do.
    let e = oauth_of(text, "y").unwrap_err();
    assert_eq!(e.exit_code(), crate::ExitCode::Usage, "{e}");
    let e = e.to_string();
    assert!(
        e.contains("config.toml:32") && e.contains("account.y.auth") && e.contains("app password"),
        "{e}"
    );
}

#[test]
fn oauth2_mistakes_name_the_key() {
    let base = "[account.a]\nurl = \"imaps://a@h\"\n";
    for (extra, want) in [
        ("oauth2_client_id = \"x\"\n", "needs auth = \"oauth2\""),
        ("auth = \"oauth\"\n", "account.a.auth"),
        ("auth = \"oauth2\"\n", "oauth2_provider"),
        (
            "auth = \"oauth2\"\noauth2_provider = \"yahoo\"\noauth2_client_id = \"x\"\n",
            "yahoo",
        ),
        (
            "auth = \"oauth2\"\noauth2_provider = \"google\"\n",
            "oauth2_client_id",
        ),
        (
            "auth = \"oauth2\"\noauth2_provider = \"custom\"\noauth2_client_id = \"x\"\n",
            "oauth2_token_url",
        ),
        (
            "auth = \"oauth2\"\noauth2_provider = \"custom\"\noauth2_client_id = \"x\"\noauth2_token_url = \"http://example.com/t\"\n",
            "only for 127.0.0.1",
        ),
        (
            "auth = \"oauth2\"\noauth2_provider = \"google\"\noauth2_client_id = \"x\"\npassword_command = \"p\"\n",
            "exclude each other",
        ),
        (
            "auth = \"oauth2\"\noauth2_provider = \"google\"\noauth2_client_id = \"x\"\noauth2_tenant = \"t\"\n",
            "oauth2_tenant",
        ),
        (
            "auth = \"oauth2\"\noauth2_provider = \"google\"\noauth2_client_id = \"x\"\noauth2_flow = \"device\"\n",
            "oauth2_device_url",
        ),
        (
            "auth = \"oauth2\"\noauth2_token_command = \"t\"\noauth2_client_id = \"x\"\n",
            "oauth2_token_command",
        ),
    ] {
        let e = oauth_of(&format!("{base}{extra}"), "a").unwrap_err();
        assert_eq!(e.exit_code(), crate::ExitCode::Usage, "{e}");
        assert!(e.to_string().contains(want), "{extra}: {e}");
        assert!(e.to_string().contains("config.toml:"), "{e}");
    }
    // A client secret in a readable file is refused like a password.
    let text = format!(
        "{base}auth = \"oauth2\"\noauth2_provider = \"google\"\noauth2_client_id = \"x\"\noauth2_client_secret = \"s3cr3t\"\n"
    );
    let (_d, p) = write_config(&text, 0o644);
    let e = load(&p).unwrap_err().to_string();
    assert!(
        e.contains("account.a.oauth2_client_secret") && e.contains("chmod 600"),
        "{e}"
    );
    assert!(!e.contains("s3cr3t"));
    // auth = "oauth2" with the user's own token command stays that.
    let (_d, p) = write_config(
        &format!("{base}auth = \"oauth2\"\noauth2_token_command = \"t\"\n"),
        0o600,
    );
    let a = load(&p)
        .unwrap()
        .account("a", SecretSource::Default { env_var: "X" })
        .unwrap();
    assert!(matches!(a.secret, SecretSource::OAuth2Command(_)));
}

fn acct(c: &Config, name: &str) -> Result<Account> {
    c.account(name, SecretSource::Default { env_var: "X" })
}

#[test]
fn a_provider_and_a_user_are_an_account() {
    let text = "[account.g]\nprovider = \"gmail\"\nuser = \"alice@gmail.com\"\npassword_command = \"x\"\n\n\
        [account.gp]\nprovider = \"gmail\"\nuser = \"alice@gmail.com\"\nprotocol = \"pop3\"\n\n\
        [account.ms]\nurl = \"imaps://bob%40contoso.com@outlook.office365.com\"\n\n\
        [account.plain]\nurl = \"imaps://a@imap.example.com\"\n";
    let (_d, p) = write_config(text, 0o600);
    let c = load(&p).unwrap();
    let g = acct(&c, "g").unwrap();
    let u = g.server_url("x").unwrap();
    assert_eq!(
        u.account_key(),
        "imaps://alice%40gmail.com@imap.gmail.com:993"
    );
    let pu = g.profile.unwrap();
    assert_eq!(
        (pu.profile.name, pu.applied),
        ("gmail", crate::provider::Applied::Named)
    );
    assert_eq!(
        (g.daily_download, g.daily_upload),
        (Some(2_500_000_000), Some(500_000_000))
    );
    assert_eq!(g.budget_key().as_deref(), Some("gmail:alice@gmail.com"));
    let gp = acct(&c, "gp").unwrap();
    assert_eq!(
        gp.server_url("x").unwrap().account_key(),
        "pop3s://alice%40gmail.com@pop.gmail.com:995"
    );
    // IMAP and POP3 of one Gmail account share a budget.
    assert_eq!(gp.budget_key(), g.budget_key());

    // Found by host, with its quirks on the connection.
    let ms = acct(&c, "ms").unwrap();
    let pu = ms.profile.unwrap();
    assert_eq!(
        (pu.profile.name, pu.applied),
        ("microsoft365", crate::provider::Applied::ByHost)
    );
    let cfg = ms.server_config("x", Default::default());
    // The secret is resolved from the environment, which is unset here.
    assert!(cfg.is_err() || cfg.unwrap().quirks.flag_after_append);
    assert!(acct(&c, "plain").unwrap().profile.is_none());
    // A command-line URL is detected too.
    let cli = acct(&c, "imaps://x@imap.mail.me.com").unwrap();
    assert_eq!(cli.profile.unwrap().profile.name, "icloud");
}

#[test]
fn explicit_settings_win_over_the_profile() {
    let text = "[account.g]\nprovider = \"gmail\"\nurl = \"imap://a@127.0.0.1:1143\"\ntls = \"none\"\n\
        daily_download = \"10MB\"\ndaily_upload = \"none\"\nconnections = 12\n\n\
        [account.h]\nurl = \"imaps://a@imap.gmail.com\"\n\n\
        [account.x]\nurl = \"imaps://a@imap.example.com\"\ndaily_upload = \"1k\"\n";
    let (_d, p) = write_config(text, 0o600);
    let c = load(&p).unwrap();
    let g = acct(&c, "g").unwrap();
    // The URL decides where; the profile still decides how.
    assert_eq!(g.server_url("x").unwrap().host, "127.0.0.1");
    assert_eq!(g.profile.unwrap().profile.name, "gmail");
    assert_eq!((g.daily_download, g.daily_upload), (Some(10 << 20), None));
    assert_eq!(g.max_connections(4), 4, "never above the run's");
    assert_eq!(g.max_connections(20), 12, "its own cap, not Gmail's 10");
    let h = acct(&c, "h").unwrap();
    assert_eq!(h.max_connections(4), 4);
    assert_eq!(h.max_connections(40), 10, "Gmail's cap");
    let x = acct(&c, "x").unwrap();
    assert_eq!((x.daily_download, x.daily_upload), (None, Some(1024)));
    assert_eq!(x.budget_key().as_deref(), Some("imap.example.com:a"));
    assert_eq!(x.max_connections(40), 40);
}

#[test]
fn provider_mistakes_name_the_line() {
    let bad = [
        (
            "[account.a]\nprovider = \"aol\"\nuser = \"u\"\n",
            "config.toml:2",
            "\"gmail\"",
        ),
        (
            "[account.a]\nprovider = \"icloud\"\nuser = \"u\"\nprotocol = \"pop3\"\n",
            "config.toml:1",
            "no POP3 server",
        ),
        (
            "[account.a]\nprovider = \"gmail\"\n",
            "config.toml:1",
            "needs user",
        ),
        ("[account.a]\nuser = \"u\"\n", "config.toml:1", "needs url"),
        (
            "[account.a]\nurl = \"imaps://a@h\"\nuser = \"u\"\n",
            "config.toml:3",
            "goes in the url",
        ),
        (
            "[account.a]\nurl = \"imaps://a@h\"\ndaily_download = \"lots\"\n",
            "config.toml:3",
            "daily_download",
        ),
    ];
    for (text, line, what) in bad {
        let (_d, p) = write_config(text, 0o600);
        let c = load(&p).unwrap();
        let e = acct(&c, "a").unwrap_err().to_string();
        assert!(e.contains(line) && e.contains(what), "{text:?}: {e}");
    }
}
