//! A real Cyrus IMAP 3.6 per test, in a temp dir on a free loopback port,
//! stopped and removed on drop.
//!
//! Why Cyrus besides Dovecot: it is the other common server layout (a
//! personal namespace `INBOX.` with `.` as separator, special-use set at
//! CREATE), and what users' backups must survive.
//!
//! Where the binaries come from: Debian's cyrus-imapd conflicts with the
//! Dovecot packages, so `.ci/run` unpacks cyrus-common and cyrus-imapd with
//! `dpkg-deb -x` into a directory (`MAILFERRY_CYRUS_ROOT`, default
//! `/opt/mailferry-cyrus`) and installs only their libraries' packages.
//! Without it, [`Cyrus::start`] returns `None` and the test says it was
//! skipped — except under CI (`CI` set), where a missing Cyrus fails.
//!
//! Authentication is SASL's `alwaystrue` check (any password): these tests
//! are about mailboxes, not about Cyrus's password store; `admin` may
//! create users. As root, services run as `nobody` (Cyrus refuses root).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::corpus::Message;

/// Any password works (`alwaystrue`); the tests pass this one.
pub const PASSWORD: &str = "cyrus-pw";

pub struct Cyrus {
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    port: u16,
}

fn cyrus_root() -> Option<PathBuf> {
    let root = std::env::var_os("MAILFERRY_CYRUS_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/mailferry-cyrus"));
    [root.clone(), PathBuf::from("/")]
        .into_iter()
        .find(|r| r.join("usr/lib/cyrus/bin/master").is_file())
}

impl Cyrus {
    /// Starts Cyrus with users `users` (each gets an INBOX), or `None`
    /// (with a note) when Cyrus is not unpacked and this is not CI.
    pub fn start(users: &[&str]) -> Option<Cyrus> {
        let Some(root) = cyrus_root() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "Cyrus not found (MAILFERRY_CYRUS_ROOT or /opt/mailferry-cyrus): .ci/run unpacks it"
            );
            eprintln!("SKIPPED: Cyrus IMAP not unpacked (see .ci/run)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("mf-cyrus-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let d = dir.path().to_path_buf();
        for sub in ["conf", "part", "sieve", "run"] {
            fs::create_dir(d.join(sub)).unwrap();
        }
        let is_root = unsafe_uid() == 0;
        let user = if is_root {
            "nobody".to_string()
        } else {
            std::env::var("USER").unwrap_or_else(|_| "nobody".into())
        };
        let bin = root.join("usr/lib/cyrus/bin");
        let libs = root.join("usr/lib/x86_64-linux-gnu");
        let conf = d.join("imapd.conf");
        let dd = d.display();
        fs::write(
            &conf,
            format!(
                "configdirectory: {dd}/conf\npartition-default: {dd}/part\nsievedir: {dd}/sieve\n\
                 admins: admin\nsasl_pwcheck_method: alwaystrue\nsasl_mech_list: PLAIN LOGIN\n\
                 allowplaintext: yes\ncyrus_user: {user}\nsyslog_prefix: mailferry-cyrus\n\
                 idlesocket: {dd}/run/idle\nnotifysocket: {dd}/run/notify\n\
                 lmtpsocket: {dd}/run/lmtp\nmboxname_lockpath: {dd}/run/lock\n\
                 proc_path: {dd}/run/proc\nunixhierarchysep: no\naltnamespace: no\n\
                 reject8bit: no\nmunge8bit: no\n"
            ),
        )
        .unwrap();
        let mut last = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            fs::write(
                d.join("cyrus.conf"),
                format!(
                    "START {{\n  recover cmd=\"{b}/ctl_cyrusdb -C {c} -r\"\n}}\n\
                     SERVICES {{\n  imap cmd=\"{b}/imapd -C {c}\" listen=\"127.0.0.1:{port}\" prefork=0\n}}\n\
                     EVENTS {{\n}}\n",
                    b = bin.display(),
                    c = conf.display()
                ),
            )
            .unwrap();
            if is_root {
                chown_tree(&d, "nobody");
            }
            fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
            let child = Command::new(bin.join("master"))
                .arg("-C")
                .arg(&conf)
                .arg("-M")
                .arg(d.join("cyrus.conf"))
                .arg("-p")
                .arg(d.join("run/master.pid"))
                .env("LD_LIBRARY_PATH", &libs)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(d.join("master.stderr")).unwrap())
                .spawn()
                .expect("start Cyrus master");
            let mut cy = Cyrus {
                dir: None,
                child: Some(child),
                port,
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(mut s) = Session::connect(port, "admin") {
                    for u in users {
                        s.ok(&format!("CREATE user.{u}"));
                    }
                    s.logout();
                    cy.dir = Some(dir);
                    return Some(cy);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            last = fs::read_to_string(d.join("master.stderr")).unwrap_or_default();
            cy.shutdown();
        }
        panic!("Cyrus did not start: {last}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts (or restarts) recording `user`'s sessions: Cyrus writes a
    /// session's protocol exchange (telemetry) to `conf/log/USER/` when
    /// that directory exists. What was recorded before is removed.
    pub fn clear_telemetry(&self, user: &str) {
        let dir = self.telemetry_dir(user);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    }

    /// The command lines (tag left out) `user`'s sessions sent since
    /// [`Cyrus::clear_telemetry`], e.g. `STATUS "INBOX.Sent" (MESSAGES)`.
    pub fn commands(&self, user: &str) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(rd) = fs::read_dir(self.telemetry_dir(user)) else {
            return out;
        };
        for e in rd.flatten() {
            let text = String::from_utf8_lossy(&fs::read(e.path()).unwrap()).into_owned();
            // `<1796692799<TAG CMD …` starts what the client sent (several
            // lines when pipelined), `>1796692799>…` what Cyrus answered.
            let mut input = false;
            for line in text.lines() {
                let mark = |c: char| {
                    let rest = line.strip_prefix(c)?;
                    let (ts, after) = rest.split_once(c)?;
                    ts.bytes().all(|b| b.is_ascii_digit()).then_some(after)
                };
                let cmd = if let Some(after) = mark('<') {
                    input = true;
                    after
                } else if mark('>').is_some() {
                    input = false;
                    continue;
                } else if input {
                    line
                } else {
                    continue;
                };
                if let Some((_, c)) = cmd.split_once(' ') {
                    out.push(c.trim_end().to_string());
                }
            }
        }
        out
    }

    fn telemetry_dir(&self, user: &str) -> PathBuf {
        let d = self.dir.as_ref().expect("started").path();
        d.join("conf/log").join(user)
    }

    /// `imap://USER@localhost:PORT` (plain: Cyrus runs without TLS here).
    pub fn url(&self, user: &str) -> String {
        format!("imap://{user}@localhost:{}", self.port)
    }

    /// A logged-in session of `user` for setup and assertions.
    pub fn session(&self, user: &str) -> Session {
        Session::connect(self.port, user).expect("log in to Cyrus")
    }

    fn shutdown(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM: master stops its imapd children too.
            let _ = Command::new("kill")
                .arg(c.id().to_string())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cyrus {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn unsafe_uid() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn chown_tree(p: &Path, user: &str) {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let f: Vec<&str> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == user)
        .unwrap_or_else(|| panic!("no user {user}"));
    let (uid, gid) = (f[2].parse().unwrap(), f[3].parse().unwrap());
    chown(p, Some(uid), Some(gid)).unwrap();
    if p.is_dir() {
        for e in fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), user);
        }
    }
}

/// A tiny synchronous IMAP client for test setup and assertions only
/// (commands one at a time, literals in replies read whole).
pub struct Session {
    r: BufReader<TcpStream>,
    w: TcpStream,
    tag: u32,
}

impl Session {
    fn connect(port: u16, user: &str) -> std::io::Result<Session> {
        Session::login(port, user, PASSWORD)
    }

    /// Logs in to any IMAP server on 127.0.0.1 without TLS (also a test
    /// Dovecot's `imap_port`), to set up with plain IMAP commands.
    pub fn login(port: u16, user: &str, password: &str) -> std::io::Result<Session> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut sess = Session {
            r: BufReader::new(s.try_clone()?),
            w: s,
            tag: 0,
        };
        let mut greet = String::new();
        sess.r.read_line(&mut greet)?;
        if !greet.starts_with("* OK") {
            return Err(std::io::Error::other(greet));
        }
        let (ok, text) = sess.cmd(&format!("LOGIN {user} \"{password}\""));
        if !ok {
            return Err(std::io::Error::other(text));
        }
        Ok(sess)
    }

    /// Sends one command; returns (tagged OK, everything received).
    pub fn cmd(&mut self, c: &str) -> (bool, String) {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        write!(self.w, "{tag} {c}\r\n").unwrap();
        self.read_until(&tag)
    }

    /// Like [`Session::cmd`], panicking unless OK.
    pub fn ok(&mut self, c: &str) -> String {
        let (ok, text) = self.cmd(c);
        assert!(ok, "Cyrus: {c} failed: {text}");
        text
    }

    fn read_until(&mut self, tag: &str) -> (bool, String) {
        let mut out = String::new();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).unwrap_or(0) == 0 {
                return (false, out);
            }
            out.push_str(&line);
            if let Some(n) = literal_len(&line) {
                let mut buf = vec![0; n];
                self.r.read_exact(&mut buf).unwrap();
                out.push_str(&String::from_utf8_lossy(&buf));
                continue;
            }
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                return (rest.starts_with("OK"), out);
            }
        }
    }

    /// APPENDs messages (LITERAL+) to `folder` (wire name, e.g.
    /// `INBOX.Sent`) and returns how many Cyrus took: it refuses some of
    /// the corpus's deliberately odd headers ("Message contains invalid
    /// header"), which Dovecot stores.
    pub fn append(&mut self, folder: &str, msgs: &[Message]) -> usize {
        let mut n = 0;
        for m in msgs {
            let raw = m.raw_crlf();
            self.tag += 1;
            let tag = format!("t{}", self.tag);
            let flags = m
                .flags
                .chars()
                .filter_map(|c| match c {
                    'S' => Some("\\Seen"),
                    'F' => Some("\\Flagged"),
                    'R' => Some("\\Answered"),
                    'D' => Some("\\Draft"),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(" ");
            write!(
                self.w,
                "{tag} APPEND \"{folder}\" ({flags}) {{{}+}}\r\n",
                raw.len()
            )
            .unwrap();
            self.w.write_all(&raw).unwrap();
            self.w.write_all(b"\r\n").unwrap();
            let (ok, text) = self.read_until(&tag);
            assert!(
                ok || text.contains("invalid header"),
                "APPEND to {folder}: {text}"
            );
            n += ok as usize;
        }
        n
    }

    /// Message-IDs in `folder` (sorted), read with FETCH ENVELOPE-free
    /// header fields so the test does not trust mailferry's parser.
    pub fn message_ids(&mut self, folder: &str) -> Vec<String> {
        self.ok(&format!("EXAMINE \"{folder}\""));
        let text = self.ok("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])");
        let mut ids: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                l.to_ascii_lowercase()
                    .starts_with("message-id:")
                    .then(|| l[11..].trim().to_string())
            })
            .collect();
        ids.sort();
        ids
    }

    pub fn logout(mut self) {
        let _ = self.cmd("LOGOUT");
    }
}

fn literal_len(line: &str) -> Option<usize> {
    let l = line.trim_end();
    let open = l.rfind('{')?;
    l.strip_suffix('}')?[open + 1..]
        .trim_end_matches('+')
        .parse()
        .ok()
}
