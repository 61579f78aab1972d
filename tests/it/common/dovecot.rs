//! A real Dovecot per test, entirely inside a temp dir, on free loopback
//! ports, killed and removed on drop.
//!
//! Why a real server: the product's IMAP/POP3 code must be judged against
//! what a production server actually sends (literals, STARTTLS, UIDVALIDITY,
//! CONDSTORE), not against a mock written by the same people.
//!
//! Root vs. unprivileged: Dovecot refuses mail access as UID 0
//! ("userdb returned 0 as uid"), so as root the mail user is `nobody`
//! (`deliver` chowns what it writes) while login/internal processes use
//! the package's `dovenull`/`dovecot` users. Unprivileged, every service
//! runs as the current user. `chroot` is off for all services either way
//! (unprivileged processes cannot chroot).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::corpus::Message;
use super::mutf7;

/// The default test user and password.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "secret-pw";

/// Options for [`Dovecot::start_with`].
#[derive(Clone, Debug)]
pub struct DovecotOpts {
    /// Hierarchy separator clients see: `'.'` (default) or `'/'`. The
    /// on-disk layout is Maildir++ (`.A.B`) either way.
    pub separator: char,
    /// Users besides alice: (name, password).
    pub users: Vec<(String, String)>,
    /// Lines appended at the end of dovecot.conf (later settings win),
    /// e.g. `imap_capability = IMAP4rev1 LITERAL+` to hide capabilities.
    pub extra_config: Vec<String>,
    /// `false`: `ssl = no`, no IMAPS/POP3S listeners, no STARTTLS/STLS
    /// offered (for "refuse if STARTTLS is not offered" tests).
    pub tls: bool,
    /// OAuth2 logins: (introspection URL, SASL mechanisms), see
    /// [`DovecotOpts::oauth2`].
    pub oauth2: Option<(String, String)>,
}

impl Default for DovecotOpts {
    fn default() -> Self {
        DovecotOpts {
            separator: '.',
            users: Vec::new(),
            extra_config: Vec::new(),
            tls: true,
            oauth2: None,
        }
    }
}

impl DovecotOpts {
    pub fn separator(mut self, sep: char) -> Self {
        assert!(sep == '.' || sep == '/', "separator must be '.' or '/'");
        self.separator = sep;
        self
    }
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_string(), password.to_string()));
        self
    }
    pub fn config(mut self, line: &str) -> Self {
        self.extra_config.push(line.to_string());
        self
    }
    pub fn no_tls(mut self) -> Self {
        self.tls = false;
        self
    }
    /// Bearer-token logins with `mechanisms` (e.g. `"xoauth2 oauthbearer"`)
    /// through Dovecot's oauth2 passdb: every login POSTs the token to
    /// `introspection_url` (RFC 7662, `token=…`) and is accepted when the
    /// answer has `"active": true` and `"username"` = the login name.
    /// Password logins keep the passwd-file passdb.
    pub fn oauth2(mut self, introspection_url: &str, mechanisms: &str) -> Self {
        self.oauth2 = Some((introspection_url.to_string(), mechanisms.to_string()));
        self
    }
}

/// STATUS of one mailbox as Dovecot reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MailboxStatus {
    pub messages: u32,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
}

#[derive(Clone, Copy, Debug)]
struct Ports {
    imap: u16,
    imaps: u16,
    pop3: u16,
    pop3s: u16,
}

/// Who owns the mail files and which users Dovecot's services run as.
#[derive(Clone, Debug)]
struct Identity {
    mail_uid: u32,
    mail_gid: u32,
    /// `Some` when running as root: files written by the harness must be
    /// chowned to the mail user.
    chown: bool,
    /// Unprivileged: `default_internal_user` etc. set to the current user.
    service_user: Option<(String, String)>,
}

pub struct Dovecot {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    child: Option<Child>,
    ports: Ports,
    tls: bool,
    separator: char,
    users: Vec<(String, String)>,
    id: Identity,
    ca_file: PathBuf,
}

impl Dovecot {
    /// Starts a Dovecot with alice/secret-pw, separator '.', TLS on.
    pub fn start() -> Dovecot {
        Dovecot::start_with(DovecotOpts::default())
    }

    pub fn start_with(opts: DovecotOpts) -> Dovecot {
        let id = identity();
        let dir = tempfile::Builder::new()
            .prefix("mailferry-dovecot-")
            .tempdir_in(temp_parent())
            .expect("create Dovecot temp dir");
        let root = dir.path().to_path_buf();
        // The auth process (user dovecot) and mail processes (nobody) must
        // reach the passwd file and the mail dirs when we run as root.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();

        let mut users = vec![(USER.to_string(), PASSWORD.to_string())];
        users.extend(opts.users.iter().cloned());

        let certs = certs();
        let ssl = root.join("ssl");
        fs::create_dir(&ssl).unwrap();
        fs::set_permissions(&ssl, fs::Permissions::from_mode(0o755)).unwrap();
        write_mode(&ssl.join("ca.pem"), &certs.ca_pem, 0o644);
        write_mode(&ssl.join("server.pem"), &certs.cert_pem, 0o644);
        write_mode(&ssl.join("server.key"), &certs.key_pem, 0o600);

        let mut passwd = String::new();
        for (name, pw) in &users {
            assert!(
                !name.contains(':') && !pw.contains(':') && !name.contains('/'),
                "user names and passwords must not contain ':' (or '/' in names)"
            );
            let home = root.join("home").join(name);
            passwd.push_str(&format!(
                "{name}:{{PLAIN}}{pw}:{}:{}::{}::\n",
                id.mail_uid,
                id.mail_gid,
                home.display()
            ));
        }
        write_mode(&root.join("passwd"), passwd.as_bytes(), 0o644);
        if let Some((url, _)) = &opts.oauth2 {
            let conf = format!(
                "introspection_mode = post\nintrospection_url = {url}\n\
                 username_attribute = username\nactive_attribute = active\nactive_value = true\n"
            );
            write_mode(&root.join("oauth2.conf"), conf.as_bytes(), 0o644);
        }
        for sub in ["run", "state"] {
            fs::create_dir(root.join(sub)).unwrap();
        }
        for sub in ["mail", "home"] {
            let d = root.join(sub);
            fs::create_dir(&d).unwrap();
            fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
            if id.chown {
                chown(&d, Some(id.mail_uid), Some(id.mail_gid)).unwrap();
            }
        }

        let mut dc = Dovecot {
            dir: Some(dir),
            root: root.clone(),
            child: None,
            ports: Ports {
                imap: 0,
                imaps: 0,
                pop3: 0,
                pop3s: 0,
            },
            tls: opts.tls,
            separator: opts.separator,
            users,
            id,
            ca_file: ssl.join("ca.pem"),
        };
        for user in dc.users.clone() {
            dc.ensure_maildir(&dc.root.join("home").join(&user.0));
            dc.ensure_folder(&user.0, "INBOX");
        }

        let mut last_err = String::new();
        for _attempt in 0..8 {
            let [imap, imaps, pop3, pop3s] = free_ports();
            dc.ports = Ports {
                imap,
                imaps,
                pop3,
                pop3s,
            };
            fs::write(dc.config_path(), dc.config(&opts)).unwrap();
            let _ = fs::remove_file(dc.log_path());
            match dc.spawn_and_wait() {
                Ok(()) => return dc,
                Err(StartError::PortInUse(e)) => last_err = e,
                Err(StartError::Failed(e)) => panic!("Dovecot failed to start: {e}"),
            }
        }
        panic!("Dovecot failed to start, ports kept being taken: {last_err}");
    }

    pub fn imap_port(&self) -> u16 {
        self.ports.imap
    }
    pub fn imaps_port(&self) -> u16 {
        assert!(self.tls, "this Dovecot was started without TLS");
        self.ports.imaps
    }
    pub fn pop3_port(&self) -> u16 {
        self.ports.pop3
    }
    pub fn pop3s_port(&self) -> u16 {
        assert!(self.tls, "this Dovecot was started without TLS");
        self.ports.pop3s
    }
    /// PEM of the CA that signed the server certificate
    /// (SAN DNS:localhost, IP:127.0.0.1).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }
    pub fn user(&self) -> &str {
        USER
    }
    pub fn password(&self) -> &str {
        PASSWORD
    }
    /// Password of any configured user.
    pub fn password_of(&self, user: &str) -> &str {
        &self
            .users
            .iter()
            .find(|(n, _)| n == user)
            .unwrap_or_else(|| panic!("no such test user {user}"))
            .1
    }
    /// The hierarchy separator IMAP clients see.
    pub fn separator(&self) -> char {
        self.separator
    }
    /// The temp dir holding everything of this instance.
    pub fn dir(&self) -> &Path {
        &self.root
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join("dovecot.conf")
    }
    pub fn log_path(&self) -> PathBuf {
        self.root.join("dovecot.log")
    }
    /// The Dovecot log so far (for assertion messages).
    pub fn log(&self) -> String {
        let mut s = fs::read_to_string(self.log_path()).unwrap_or_default();
        if let Ok(e) = fs::read_to_string(self.root.join("dovecot.stderr")) {
            s.push_str(&e);
        }
        s
    }

    /// Waits (up to 20 s) until every logged-in IMAP/POP3 session has
    /// ended. A client killed mid-APPEND leaves its last commands in the
    /// server's buffers, and Dovecot still carries them out: a rerun that
    /// looked at the folder before that would not see those copies.
    pub fn wait_for_sessions_to_end(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let log = fs::read_to_string(self.log_path()).unwrap_or_default();
            let logins = log.matches("-login: Info: Login: ").count();
            let ended = log
                .lines()
                .filter(|l| {
                    (l.contains(" imap(") || l.contains(" pop3("))
                        && l.contains(": Info: Disconnected")
                })
                .count();
            if ended >= logins || std::time::Instant::now() > deadline {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The user's Maildir++ root (INBOX) that Dovecot serves.
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.root.join("mail").join(user)
    }

    /// Directory of a folder given with '/' as separator ("INBOX",
    /// "Archive/2024", "Entwürfe"): Maildir++ `.Archive.2024`, names in
    /// modified UTF-7 as Dovecot stores them.
    pub fn folder_path(&self, user: &str, folder: &str) -> PathBuf {
        let root = self.maildir(user);
        if folder == "INBOX" {
            return root;
        }
        let mut name = String::new();
        for part in folder.split('/') {
            assert!(
                !part.is_empty() && !part.contains('.'),
                "folder {folder:?}: empty component or '.' cannot be stored in Maildir++"
            );
            name.push('.');
            name.push_str(&mutf7::encode(part));
        }
        root.join(name)
    }

    /// `scheme://user@localhost:PORT` for imap, imaps, pop3, pop3s.
    pub fn url(&self, scheme: &str) -> String {
        self.url_for(scheme, USER)
    }

    pub fn url_for(&self, scheme: &str, user: &str) -> String {
        let port = match scheme {
            "imap" => self.imap_port(),
            "imaps" => self.imaps_port(),
            "pop3" => self.pop3_port(),
            "pop3s" => self.pop3s_port(),
            _ => panic!("unknown scheme {scheme}"),
        };
        let mut enc = String::new();
        for b in user.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                enc.push(b as char);
            } else {
                enc.push_str(&format!("%{b:02X}"));
            }
        }
        format!("{scheme}://{enc}@localhost:{port}")
    }

    /// Runs `doveadm -c <config> ARGS`; panics with stderr on failure.
    pub fn doveadm(&self, args: &[&str]) -> String {
        self.try_doveadm(args)
            .unwrap_or_else(|e| panic!("doveadm {args:?} failed: {e}"))
    }

    pub fn try_doveadm(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(find_bin("doveadm"))
            .arg("-c")
            .arg(self.config_path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run doveadm");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() && !stderr.contains("Error:") {
            Ok(stdout)
        } else {
            Err(format!(
                "{}\nstdout: {stdout}\nstderr: {stderr}",
                out.status
            ))
        }
    }

    /// Ends every IMAP and POP3 session of `user` now (`doveadm kick`):
    /// the server says `* BYE` and closes, as a provider does when a
    /// session's token expires.
    pub fn kick(&self, user: &str) -> String {
        self.doveadm(&["kick", user])
    }

    /// Folder name ('/'-separated) as the server names it.
    pub fn server_name(&self, folder: &str) -> String {
        folder.replace('/', &self.separator.to_string())
    }

    /// `doveadm mailbox create`; `folder` uses '/' as separator.
    pub fn create_folder(&self, user: &str, folder: &str) {
        self.doveadm(&["mailbox", "create", "-u", user, &self.server_name(folder)]);
    }

    /// STATUS of a folder ('/' separator).
    pub fn status(&self, user: &str, folder: &str) -> MailboxStatus {
        let out = self.doveadm(&[
            "-f",
            "tab",
            "mailbox",
            "status",
            "-u",
            user,
            "messages uidvalidity uidnext highestmodseq",
            &self.server_name(folder),
        ]);
        let mut lines = out.lines();
        let head: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
        let vals: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
        let get = |k: &str| -> u64 {
            let i = head
                .iter()
                .position(|h| *h == k)
                .unwrap_or_else(|| panic!("no {k} in doveadm output {out:?}"));
            vals[i].parse().unwrap()
        };
        MailboxStatus {
            messages: get("messages") as u32,
            uidvalidity: get("uidvalidity") as u32,
            uidnext: get("uidnext") as u32,
            highestmodseq: get("highestmodseq"),
        }
    }

    /// Writes messages straight into the folder's `cur/` (flags in the
    /// `:2,` suffix, mtime = internal date, `S=` size), creating the
    /// Maildir++ folder if needed. Dovecot indexes them on next access and
    /// assigns UIDs in the order given here. Returns the file paths.
    pub fn deliver(&self, user: &str, folder: &str, msgs: &[Message]) -> Vec<PathBuf> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        static BASE: OnceLock<u64> = OnceLock::new();
        // Dovecot sorts new files by the time stamp in their name, so a
        // shared base second plus increasing "microseconds" keeps the UID
        // order equal to delivery order.
        let base = *BASE.get_or_init(now_secs);
        let dir = self.ensure_folder(user, folder);
        let pid = std::process::id();
        let mut paths = Vec::with_capacity(msgs.len());
        for m in msgs {
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            let mut flags: Vec<char> = m.flags.chars().collect();
            assert!(
                flags.iter().all(|c| c.is_ascii_uppercase()),
                "only maildir flag letters A-Z supported: {:?}",
                m.flags
            );
            flags.sort_unstable();
            flags.dedup();
            let flags: String = flags.into_iter().collect();
            let base_name = format!("{base}.M{seq}P{pid}.mailferry-test,S={}", m.raw.len());
            let tmp = dir.join("tmp").join(&base_name);
            let dst = dir.join("cur").join(format!("{base_name}:2,{flags}"));
            {
                let mut f = fs::File::create(&tmp).unwrap();
                f.write_all(&m.raw).unwrap();
                f.set_modified(m.internal_date).unwrap();
            }
            self.own(&tmp);
            fs::rename(&tmp, &dst).unwrap();
            paths.push(dst);
        }
        paths
    }

    /// Makes Dovecot assign a new UIDVALIDITY (and renumber UIDs from 1) by
    /// deleting the folder's `dovecot-uidlist` and index files; checks that
    /// it changed and returns the new value. Call it with no client having
    /// the folder selected.
    pub fn reset_uidvalidity(&self, user: &str, folder: &str) -> u32 {
        let before = self.status(user, folder).uidvalidity;
        let dir = self.folder_path(user, folder);
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "dovecot-uidlist" || name.starts_with("dovecot.index") {
                fs::remove_file(entry.path()).unwrap();
            }
        }
        let after = self.status(user, folder).uidvalidity;
        assert_ne!(
            before, after,
            "UIDVALIDITY of {folder} did not change after reset"
        );
        after
    }

    /// Stops Dovecot and removes the temp dir (Drop does the same).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(child) = self.child.take() {
            stop_watchdog(child);
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if dir.close().is_err() {
                // A child still exiting may have created a file meanwhile.
                for _ in 0..20 {
                    std::thread::sleep(Duration::from_millis(50));
                    if fs::remove_dir_all(&path).is_ok() || !path.exists() {
                        break;
                    }
                }
            }
        }
    }

    fn ensure_maildir(&self, dir: &Path) {
        if !dir.exists() {
            fs::create_dir_all(dir).unwrap();
            self.own(dir);
        }
    }

    fn ensure_folder(&self, user: &str, folder: &str) -> PathBuf {
        let dir = self.folder_path(user, folder);
        self.ensure_maildir(&dir);
        for sub in ["cur", "new", "tmp"] {
            self.ensure_maildir(&dir.join(sub));
        }
        if folder != "INBOX" {
            let mf = dir.join("maildirfolder");
            if !mf.exists() {
                fs::write(&mf, b"").unwrap();
                self.own(&mf);
            }
        }
        dir
    }

    fn own(&self, path: &Path) {
        if self.id.chown {
            chown(path, Some(self.id.mail_uid), Some(self.id.mail_gid)).unwrap();
        }
    }

    fn config(&self, opts: &DovecotOpts) -> String {
        let r = self.root.display();
        let p = self.ports;
        let mut c = format!(
            r#"# generated by tests/common/dovecot.rs
instance_name = mailferry-test
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
info_log_path = {r}/dovecot.log
debug_log_path = {r}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
disable_plaintext_auth = no
auth_mechanisms = plain login {oauth2_mechanisms}
auth_failure_delay = 0
auth_verbose = yes
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{r}/mail/%u
mail_fsync = never
mail_max_userip_connections = 100
pop3_uidl_format = %08Xu%08Xv
{oauth2_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {r}/passwd
}}
namespace inbox {{
  inbox = yes
  prefix =
  separator = {sep}
  mailbox Drafts {{
    special_use = \Drafts
  }}
  mailbox Junk {{
    special_use = \Junk
  }}
  mailbox Trash {{
    special_use = \Trash
  }}
  mailbox Sent {{
    special_use = \Sent
  }}
  mailbox Archive {{
    special_use = \Archive
  }}
}}
service anvil {{
  chroot =
  # No growing delay for logins after a failed one (auth-failure tests).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
    ssl = yes
  }}
}}
"#,
            sep = self.separator,
            oauth2_mechanisms = opts.oauth2.as_ref().map_or("", |o| o.1.as_str()),
            oauth2_passdb = match &opts.oauth2 {
                Some((_, mechs)) => format!(
                    "passdb {{\n  driver = oauth2\n  mechanisms = {mechs}\n  args = {r}/oauth2.conf\n}}\n"
                ),
                None => String::new(),
            },
            imap = p.imap,
            imaps = if self.tls { p.imaps } else { 0 },
            pop3 = p.pop3,
            pop3s = if self.tls { p.pop3s } else { 0 },
        );
        if self.tls {
            c.push_str(&format!(
                "ssl = yes\nssl_cert = <{r}/ssl/server.pem\nssl_key = <{r}/ssl/server.key\n"
            ));
        } else {
            c.push_str("ssl = no\n");
        }
        if let Some((user, group)) = &self.id.service_user {
            c.push_str(&format!(
                "default_internal_user = {user}\ndefault_internal_group = {group}\n\
                 default_login_user = {user}\n"
            ));
        }
        for line in &opts.extra_config {
            c.push_str(line);
            c.push('\n');
        }
        c
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        let stderr = fs::File::create(self.root.join("dovecot.stderr")).unwrap();
        // A watchdog shell between us and Dovecot: it SIGKILLs Dovecot as
        // soon as its stdin (a pipe from this process) closes, i.e. on
        // Drop but also when the test process is killed (timeouts, ^C) and
        // no Drop runs. SIGKILL because SIGTERM costs Dovecot ~1 s; its
        // children notice the dead master and exit by themselves.
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(
                r#"exec 3<&0
"$0" -F -c "$1" </dev/null 3<&- &
pid=$!
{ read _ <&3; kill -KILL "$pid" 2>/dev/null; } &
exec 3<&-
wait "$pid""#,
            )
            .arg(find_bin("dovecot"))
            .arg(self.config_path())
            .stdin(Stdio::piped())
            .stdout(stderr.try_clone().unwrap())
            .stderr(stderr)
            .spawn()
            .expect("spawn dovecot");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                stop_watchdog(self.child.take().unwrap());
                let log = self.log();
                let msg = format!("dovecot exited with {status}; log:\n{log}");
                return Err(if log.contains("Address already in use") {
                    StartError::PortInUse(msg)
                } else {
                    StartError::Failed(msg)
                });
            }
            if self.ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                stop_watchdog(self.child.take().unwrap());
                return Err(StartError::Failed(format!(
                    "not ready after 20 s; log:\n{}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// All listeners accept, IMAP greets "* OK", POP3 greets "+OK".
    fn ready(&self) -> bool {
        let greets = |port: u16, want: &str| -> bool {
            let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
                return false;
            };
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with(want)
        };
        if !greets(self.ports.imap, "* OK") || !greets(self.ports.pop3, "+OK") {
            return false;
        }
        !self.tls
            || (TcpStream::connect(("127.0.0.1", self.ports.imaps)).is_ok()
                && TcpStream::connect(("127.0.0.1", self.ports.pop3s)).is_ok())
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "---- Dovecot log ({}), last 60 lines ----",
                self.log_path().display()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
            eprintln!("---- end of Dovecot log ----");
        }
        self.shutdown();
    }
}

/// Closes the watchdog's stdin (it then kills Dovecot) and reaps it.
fn stop_watchdog(mut child: Child) {
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

enum StartError {
    PortInUse(String),
    Failed(String),
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Four distinct free loopback ports (bound together, then released).
fn free_ports() -> [u16; 4] {
    let ls: Vec<TcpListener> = (0..4)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    let p: Vec<u16> = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
    [p[0], p[1], p[2], p[3]]
}

fn write_mode(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// `dovecot` lives in /usr/sbin, which is not on an ordinary user's PATH.
fn find_bin(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/sbin",
                "/usr/bin",
                "/usr/local/sbin",
                "/usr/local/bin",
                "/sbin",
            ]
            .map(PathBuf::from),
        )
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found; install dovecot-imapd and dovecot-pop3d (see .ci/run)")
        })
}

/// Where temp dirs go: $TMPDIR unless its path is too long for Dovecot's
/// unix sockets (108 bytes) or, as root, not traversable by `nobody`.
fn temp_parent() -> PathBuf {
    let t = std::env::temp_dir();
    let short = t.as_os_str().len() <= 48;
    let traversable = !identity().chown
        || t.ancestors().all(|a| {
            fs::metadata(a)
                .map(|m| m.permissions().mode() & 0o001 != 0)
                .unwrap_or(false)
        });
    if short && traversable {
        t
    } else {
        PathBuf::from("/tmp")
    }
}

fn identity() -> Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
        let field = |k: &str| -> u32 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.split_whitespace().nth(1)) // effective id
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k} in /proc/self/status"))
        };
        let (uid, gid) = (field("Uid:"), field("Gid:"));
        let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
        let group = fs::read_to_string("/etc/group").unwrap_or_default();
        let entry = |file: &str, pred: &dyn Fn(&[&str]) -> bool| -> Option<Vec<String>> {
            file.lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 4 && pred(f))
                .map(|f| f.iter().map(|s| s.to_string()).collect())
        };
        if uid == 0 {
            let nobody = entry(&passwd, &|f| f[0] == "nobody")
                .expect("running as root needs user 'nobody' as the mail user");
            Identity {
                mail_uid: nobody[2].parse().unwrap(),
                mail_gid: nobody[3].parse().unwrap(),
                chown: true,
                service_user: None,
            }
        } else {
            let user = entry(&passwd, &|f| f[2] == uid.to_string()).unwrap_or_else(|| {
                panic!("uid {uid} has no /etc/passwd entry; Dovecot needs a user name")
            });
            let grp = entry(&group, &|f| f[2] == gid.to_string())
                .map(|g| g[0].clone())
                .unwrap_or_else(|| panic!("gid {gid} has no /etc/group entry"));
            Identity {
                mail_uid: uid,
                mail_gid: gid,
                chown: false,
                service_user: Some((user[0].clone(), grp)),
            }
        }
    })
    .clone()
}

struct Certs {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

/// CA and server certificate, generated once per test binary with the
/// openssl CLI (EC P-256: fast).
fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        let d = dir.path();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .stdin(Stdio::null())
                .output()
                .expect("run openssl (install the openssl package)");
            assert!(
                out.status.success(),
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "3650",
            "-subj",
            "/CN=mailferry test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        run(&csr);
        fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "3650",
            "-extfile",
            "ext.cnf",
        ]);
        let read = |n: &str| {
            let mut v = Vec::new();
            fs::File::open(d.join(n))
                .unwrap()
                .read_to_end(&mut v)
                .unwrap();
            v
        };
        Certs {
            ca_pem: read("ca.pem"),
            cert_pem: read("server.pem"),
            key_pem: read("server.key"),
        }
    })
}
