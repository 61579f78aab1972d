//! A local OAuth2 provider for the tests, on a free loopback port: the
//! endpoints `mailferry login` and the refresh logic talk to (device
//! authorization, token with the device-code, authorization-code + PKCE
//! and refresh-token grants, an authorize page the test "clicks") and the
//! introspection endpoint Dovecot's oauth2 passdb asks about every token.
//!
//! A stand-in only for Google and Microsoft, which a test cannot reach;
//! the mail server is the real Dovecot. Access tokens live `lifetime` on
//! the server whatever `expires_in` it advertises, so a test can make a
//! token die while mailferry still believes in it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "test-client-id";
pub const CLIENT_SECRET: &str = "test-client-secret-value";

/// What the provider did, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A token request: the grant type and whether it was granted.
    Grant(String, bool),
    /// Dovecot asked about a token: the token and the verdict.
    Introspect(String, bool),
    /// A device authorization request with these scopes.
    Device(String),
    /// An authorization request (the browser) with these query pairs.
    Authorize(Vec<(String, String)>),
}

#[derive(Default)]
struct State {
    seq: u64,
    user: String,
    lifetime: Duration,
    expires_in: u64,
    rotate: bool,
    slow_down_once: bool,
    require_secret: bool,
    /// access token → (issued, revoked)
    access: HashMap<String, (Instant, bool)>,
    /// refresh token → revoked
    refresh: HashMap<String, bool>,
    /// code → (PKCE challenge, redirect_uri)
    codes: HashMap<String, (String, String)>,
    /// device code → (user code, approved, polls)
    devices: HashMap<String, (String, bool, u32)>,
    /// Every secret handed out, to check none leaks into output.
    secrets: Vec<String>,
    seen: Vec<Seen>,
    last_issue: Option<Instant>,
}

/// The running provider; stops with the test process.
pub struct OAuthServer {
    pub port: u16,
    st: Arc<Mutex<State>>,
}

impl OAuthServer {
    /// Serves tokens for `user` that the server honours for `lifetime`
    /// and advertises as valid for `expires_in` seconds.
    pub fn start(user: &str, lifetime: Duration, expires_in: u64) -> OAuthServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let st = Arc::new(Mutex::new(State {
            user: user.to_string(),
            lifetime,
            expires_in,
            secrets: vec![CLIENT_SECRET.to_string()],
            ..Default::default()
        }));
        let st2 = st.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let st = st2.clone();
                std::thread::spawn(move || serve(c, port, &st));
            }
        });
        OAuthServer { port, st }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Each refresh also replaces the refresh token (Microsoft does).
    pub fn rotate_refresh_tokens(&self) {
        self.st.lock().unwrap().rotate = true;
    }

    /// The first device poll after approval gets `slow_down`.
    pub fn slow_down_once(&self) {
        self.st.lock().unwrap().slow_down_once = true;
    }

    /// Token requests must carry [`CLIENT_SECRET`] (Google's desktop clients).
    pub fn require_client_secret(&self) {
        self.st.lock().unwrap().require_secret = true;
    }

    /// Revokes every refresh and access token (the user withdrew consent).
    pub fn revoke_all(&self) {
        let mut st = self.st.lock().unwrap();
        st.refresh.values_mut().for_each(|r| *r = true);
        st.access.values_mut().for_each(|a| a.1 = true);
    }

    /// Revokes one access token.
    pub fn revoke(&self, token: &str) {
        if let Some(a) = self.st.lock().unwrap().access.get_mut(token) {
            a.1 = true;
        }
    }

    /// Issues an access token outside any grant (for oauth2_token_command).
    pub fn mint_access_token(&self) -> String {
        let mut st = self.st.lock().unwrap();
        issue_access(&mut st)
    }

    /// Approves the device sign-in with this user code (the user typed it).
    pub fn approve(&self, user_code: &str) -> bool {
        let mut st = self.st.lock().unwrap();
        let mut hit = false;
        for d in st.devices.values_mut() {
            if d.0 == user_code {
                d.1 = true;
                hit = true;
            }
        }
        hit
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.st.lock().unwrap().seen.clone()
    }

    /// Granted token requests of this grant type.
    pub fn grants(&self, grant_type: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| matches!(s, Seen::Grant(g, true) if g == grant_type))
            .count()
    }

    /// Every token, code and secret handed out so far.
    pub fn secrets(&self) -> Vec<String> {
        self.st.lock().unwrap().secrets.clone()
    }

    /// Time since the last access token was issued.
    pub fn since_last_issue(&self) -> Option<Duration> {
        self.st.lock().unwrap().last_issue.map(|t| t.elapsed())
    }

    /// Panics if any secret appears in `text`.
    pub fn assert_no_secret_in(&self, text: &str) {
        for s in self.secrets() {
            assert!(
                !text.contains(&s),
                "a secret leaked into the output:\n{text}"
            );
        }
    }
}

fn next(st: &mut State, prefix: &str) -> String {
    st.seq += 1;
    let mut rnd = [0u8; 9];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut rnd))
        .unwrap();
    let s = format!(
        "{prefix}-{}-{}",
        st.seq,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rnd)
    );
    st.secrets.push(s.clone());
    s
}

fn issue_access(st: &mut State) -> String {
    let t = next(st, "at");
    st.access.insert(t.clone(), (Instant::now(), false));
    st.last_issue = Some(Instant::now());
    t
}

/// A token answer: access token, expiry, and a refresh token when
/// `refresh` is given.
fn tokens(st: &mut State, refresh: Option<String>) -> Value {
    let at = issue_access(st);
    let mut v = json!({"access_token": at, "token_type": "Bearer", "expires_in": st.expires_in});
    if let Some(rt) = refresh {
        v["refresh_token"] = json!(rt);
    }
    v
}

fn new_refresh(st: &mut State) -> String {
    let rt = next(st, "rt");
    st.refresh.insert(rt.clone(), false);
    rt
}

fn err(code: &str) -> (u16, Value) {
    (
        400,
        json!({"error": code, "error_description": format!("test provider: {code}")}),
    )
}

fn serve(mut c: TcpStream, port: u16, st: &Mutex<State>) {
    c.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let Some((method, target, body)) = read_request(&mut c) else {
        return;
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let q = decode(query);
    let f = decode(&body);
    let get = |v: &[(String, String)], k: &str| {
        v.iter()
            .find(|(a, _)| a == k)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    };
    let mut st = st.lock().unwrap();
    let (status, v, chunked) = match (method.as_str(), path) {
        ("POST", "/introspect") => {
            let tok = get(&f, "token");
            let lifetime = st.lifetime;
            let active = st
                .access
                .get(&tok)
                .is_some_and(|(at, revoked)| !revoked && at.elapsed() < lifetime);
            st.seen.push(Seen::Introspect(tok, active));
            let v = if active {
                json!({"active": true, "username": st.user})
            } else {
                json!({"active": false})
            };
            (200, v, false)
        }
        ("POST", "/device") => {
            st.seen.push(Seen::Device(get(&f, "scope")));
            if get(&f, "client_id") != CLIENT_ID {
                let (s, v) = err("invalid_client");
                (s, v, false)
            } else {
                let dc = next(&mut st, "dc");
                let uc = format!("UC-{}", st.seq);
                st.devices.insert(dc.clone(), (uc.clone(), false, 0));
                let v = json!({"device_code": dc, "user_code": uc,
                    "verification_uri": format!("http://127.0.0.1:{port}/verify"),
                    "expires_in": 120, "interval": 1,
                    "message": "ignored: mailferry prints its own"});
                (200, v, false)
            }
        }
        ("GET", "/authorize") => {
            st.seen.push(Seen::Authorize(q.clone()));
            let redirect = get(&q, "redirect_uri");
            let ok = get(&q, "client_id") == CLIENT_ID
                && get(&q, "response_type") == "code"
                && get(&q, "code_challenge_method") == "S256"
                && redirect.starts_with("http://127.0.0.1:");
            if !ok {
                drop(st);
                respond_raw(&mut c, 400, "text/plain", b"bad authorization request", &[]);
                return;
            }
            let code = next(&mut st, "code");
            st.codes
                .insert(code.clone(), (get(&q, "code_challenge"), redirect.clone()));
            let location = format!(
                "{redirect}?code={}&state={}",
                code,
                urlencode(&get(&q, "state"))
            );
            drop(st);
            respond_raw(&mut c, 302, "text/plain", b"", &[("Location", &location)]);
            return;
        }
        ("POST", "/token") => {
            let grant = get(&f, "grant_type");
            let (status, v) = token(&mut st, &f, &grant);
            st.seen.push(Seen::Grant(grant, status == 200));
            (status, v, true)
        }
        _ => (404, json!({"error": "not_found"}), false),
    };
    drop(st);
    let body = v.to_string();
    if chunked {
        respond_chunked(&mut c, status, body.as_bytes());
    } else {
        respond_raw(&mut c, status, "application/json", body.as_bytes(), &[]);
    }
}

fn token(st: &mut State, f: &[(String, String)], grant: &str) -> (u16, Value) {
    let get = |k: &str| {
        f.iter()
            .find(|(a, _)| a == k)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    };
    if get("client_id") != CLIENT_ID || (st.require_secret && get("client_secret") != CLIENT_SECRET)
    {
        let (_, v) = err("invalid_client");
        return (401, v);
    }
    match grant {
        "refresh_token" => {
            let rt = get("refresh_token");
            if st.refresh.get(&rt) != Some(&false) {
                return err("invalid_grant");
            }
            let new = if st.rotate {
                st.refresh.insert(rt, true);
                Some(new_refresh(st))
            } else {
                None
            };
            (200, tokens(st, new))
        }
        "authorization_code" => {
            let Some((challenge, redirect)) = st.codes.remove(&get("code")) else {
                return err("invalid_grant");
            };
            let verifier = get("code_verifier");
            let want = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(mailferry::net::sha256(verifier.as_bytes()));
            if want != challenge || redirect != get("redirect_uri") {
                return err("invalid_grant");
            }
            let rt = new_refresh(st);
            (200, tokens(st, Some(rt)))
        }
        "urn:ietf:params:oauth:grant-type:device_code" => {
            let dc = get("device_code");
            let slow = st.slow_down_once;
            let Some(d) = st.devices.get_mut(&dc) else {
                return err("invalid_grant");
            };
            d.2 += 1;
            if !d.1 {
                return err("authorization_pending");
            }
            if slow {
                st.slow_down_once = false;
                return err("slow_down");
            }
            st.devices.remove(&dc);
            let rt = new_refresh(st);
            (200, tokens(st, Some(rt)))
        }
        _ => err("unsupported_grant_type"),
    }
}

fn read_request(c: &mut TcpStream) -> Option<(String, String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = c.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
    let len: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = c.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
    Some((method, target, body))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        _ => "Not Found",
    }
}

fn respond_raw(c: &mut TcpStream, status: u16, ctype: &str, body: &[u8], extra: &[(&str, &str)]) {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = c.write_all(head.as_bytes());
    let _ = c.write_all(body);
}

/// Token answers go out chunked, in two chunks: the client must put them
/// together.
fn respond_chunked(c: &mut TcpStream, status: u16, body: &[u8]) {
    let (a, b) = body.split_at(body.len() / 2);
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json;charset=UTF-8\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        reason(status)
    )
    .into_bytes();
    for part in [a, b] {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    let _ = c.write_all(&out);
}

pub fn decode(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A browser's GET: the status and the `Location` header, if any.
pub fn browser_get(url: &str) -> (u16, Option<String>, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (hostport, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let target = if target.is_empty() { "/" } else { target };
    let mut c = TcpStream::connect(hostport).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).ok();
    write!(
        c,
        "GET {target} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = resp
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .map(str::to_string);
    (status, location, resp)
}
