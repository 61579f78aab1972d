//! One account's current access token, shared by every connection to it.
//!
//! A connection asks for a token before it authenticates. The first one
//! gets it from the store (or the provider, when the stored one is near
//! its end); the others wait on the same lock and get the same token. A
//! server that refuses a token at login, or ends a session because it
//! expired, gets it marked spent ([`LoginToken`]); the next login then
//! refreshes, once for every connection that used it, and later reports
//! about the same (now replaced) token change nothing. Whether and when
//! to log in again is the throttle governor's call (`exec/governor.rs`):
//! there is no retry here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::OAuthConfig;
use super::store::TokenRecord;
use super::{command, grant};
use crate::endpoint::Secret;
use crate::error::{Error, Result};

/// Where an account's bearer tokens come from; cheap to clone, and every
/// clone (every [`crate::endpoint::ServerConfig`] of the account) shares
/// one current token.
#[derive(Clone)]
pub struct Bearer(Arc<Inner>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0.source {
            Source::Fixed(_) => "fixed",
            Source::Command(_) => "command",
            Source::Grant(_) => "grant",
        };
        write!(f, "Bearer({kind} for {})", self.0.who)
    }
}

struct Inner {
    /// The account in messages.
    who: String,
    source: Source,
    current: tokio::sync::Mutex<Current>,
    /// The newest generation a server refused or said had expired: the
    /// next [`Bearer::token`] replaces it. Apart from `current`, so a
    /// session can mark it without waiting for a refresh in progress.
    spent: AtomicU64,
    /// The newest generation a server let in.
    accepted: AtomicU64,
}

enum Source {
    /// A token given as is: nothing to refresh it with.
    Fixed(Secret),
    /// `oauth2_token_command`: run again when its token is refused.
    Command(String),
    /// mailferry's own client: refresh token in the store.
    Grant(Box<OAuthConfig>),
}

#[derive(Default)]
struct Current {
    token: Option<Secret>,
    /// For a grant, what the token came with (expiry, refresh token).
    record: Option<TokenRecord>,
    /// Bumped each time the token is replaced.
    generation: u64,
    /// It replaced a spent one: refused before any server let it in,
    /// there is nothing better to try.
    renewed: bool,
}

/// The token one connection attempt uses, and which one it was, so that
/// a refusal replaces it only once.
#[derive(Debug, Clone)]
pub struct Token {
    pub secret: Secret,
    generation: u64,
    renewed: bool,
}

/// Live handles by source, so that every job and connection of a process
/// that uses one account shares one token (entries die with their last
/// handle).
static LIVE: Mutex<Option<HashMap<String, Weak<Inner>>>> = Mutex::new(None);

fn shared(key: String, make: impl FnOnce() -> Inner) -> Bearer {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let map = live.get_or_insert_with(HashMap::new);
    map.retain(|_, w| w.strong_count() > 0);
    if let Some(inner) = map.get(&key).and_then(Weak::upgrade) {
        return Bearer(inner);
    }
    let inner = Arc::new(make());
    map.insert(key, Arc::downgrade(&inner));
    Bearer(inner)
}

fn inner(who: &str, source: Source) -> Inner {
    Inner {
        who: who.to_string(),
        source,
        current: tokio::sync::Mutex::new(Current::default()),
        spent: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
    }
}

/// Unix seconds, from the system clock (never `MAILFERRY_NOW`: token
/// lifetimes are the provider's real time).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Bearer {
    /// A token used as given (tests, a token from elsewhere).
    pub fn fixed(token: Secret) -> Bearer {
        Bearer(Arc::new(inner("token", Source::Fixed(token))))
    }

    /// `oauth2_token_command`: its first output line is the token; it is
    /// run again when a server refuses that token.
    pub fn command(cmd: &str, who: &str) -> Bearer {
        shared(format!("command\n{who}\n{cmd}"), || {
            inner(who, Source::Command(cmd.to_string()))
        })
    }

    /// mailferry's own OAuth2 client for a config account.
    pub fn grant(cfg: &OAuthConfig) -> Bearer {
        let key = match &cfg.store {
            super::TokenStore::File(p) => format!("file\n{}", p.display()),
            super::TokenStore::Command(c) => format!("store\n{}\n{c}", cfg.account),
        };
        shared(key, || {
            inner(&cfg.account, Source::Grant(Box::new(cfg.clone())))
        })
    }

    /// The token to authenticate with now: the current one while it is
    /// good and not spent, else a fresh one (refreshed, or the command
    /// run again).
    pub async fn token(&self) -> Result<Token> {
        let mut cur = self.0.current.lock().await;
        let spent = cur.token.is_some() && cur.generation <= self.0.spent.load(Ordering::SeqCst);
        match &self.0.source {
            Source::Fixed(s) => Ok(Token {
                secret: s.clone(),
                generation: 0,
                renewed: false,
            }),
            Source::Command(c) => {
                if cur.token.is_none() || spent {
                    let t = self.run_command(c).await?;
                    cur.replace(t, None, spent);
                }
                Ok(cur.handed_out())
            }
            Source::Grant(cfg) => {
                if !spent
                    && cur
                        .record
                        .as_ref()
                        .is_some_and(|r| r.fresh_access(now()).is_some())
                {
                    return Ok(cur.handed_out());
                }
                let refused = if spent { cur.token.clone() } else { None };
                self.obtain(cfg, &mut cur, refused.as_ref()).await?;
                cur.renewed = spent;
                Ok(cur.handed_out())
            }
        }
    }

    /// A server refused `t` or ended a session because it expired: the
    /// next [`Bearer::token`] gets a newer one, unless another connection
    /// already did. False when nothing newer is worth trying: a fixed
    /// token, or `t` itself replaced a spent token and no server has let
    /// it in yet.
    pub fn spend(&self, t: &Token) -> bool {
        if matches!(self.0.source, Source::Fixed(_))
            || (t.renewed && self.0.accepted.load(Ordering::SeqCst) < t.generation)
        {
            return false;
        }
        self.0.spent.fetch_max(t.generation, Ordering::SeqCst);
        true
    }

    /// A server let `t` in.
    pub fn accept(&self, t: &Token) {
        self.0.accepted.fetch_max(t.generation, Ordering::SeqCst);
    }

    /// The account, for messages.
    pub fn who(&self) -> &str {
        &self.0.who
    }

    /// What to tell the user when even a fresh token is refused.
    pub fn refused_again(&self, server: &str, msg: &str) -> Error {
        let what = match &self.0.source {
            Source::Command(_) => "the token oauth2_token_command printed when run again",
            _ => "a freshly refreshed access token",
        };
        let login = match &self.0.source {
            Source::Grant(_) => format!(", or run `mailferry login {}`", self.0.who),
            _ => String::new(),
        };
        Error::OAuth {
            account: self.0.who.clone(),
            msg: format!(
                "{server} refused {what} too ({msg}); check the user name, that the mailbox allows IMAP/POP3 with OAuth2, and the scopes{login}"
            ),
        }
    }

    async fn run_command(&self, cmd: &str) -> Result<Secret> {
        let out = command::run(cmd, &[], None, &self.0.who, "oauth2_token_command").await?;
        Ok(Secret::new(command::first_line(
            &out,
            &self.0.who,
            "oauth2_token_command",
        )?))
    }

    async fn stored(&self, cfg: &OAuthConfig) -> Result<TokenRecord> {
        cfg.store
            .load(&cfg.account)
            .await?
            .ok_or_else(|| Error::OAuth {
                account: cfg.account.clone(),
                msg: format!(
                    "not signed in yet (no token in {}); run `mailferry login {}`",
                    cfg.store.describe(),
                    cfg.account
                ),
            })
    }

    /// Puts a good token into `cur`: the stored one when it is fresh and
    /// not the one just refused (`login` or another run may have stored
    /// it), else a refreshed one. The refresh happens under the store's
    /// lock, after a second look: two processes sharing the tokens then
    /// refresh once, and a provider with single-use refresh tokens does
    /// not see the spent one again.
    async fn obtain(
        &self,
        cfg: &OAuthConfig,
        cur: &mut Current,
        refused: Option<&Secret>,
    ) -> Result<()> {
        let usable = |r: &TokenRecord| {
            r.fresh_access(now())
                .filter(|at| Some(*at) != refused)
                .cloned()
        };
        let stored = self.stored(cfg).await?;
        if let Some(at) = usable(&stored) {
            cur.replace(at, Some(stored), false);
            return Ok(());
        }
        let _lock = cfg.store.refresh_lock().await?;
        let stored = self.stored(cfg).await?;
        if let Some(at) = usable(&stored) {
            cur.replace(at, Some(stored), false);
            return Ok(());
        }
        let new = grant::refresh(cfg, &stored, now()).await?;
        cfg.store.save(&new, &cfg.owner(), &cfg.account).await?;
        let at = new
            .access_token
            .clone()
            .expect("a refresh gives an access token");
        cur.replace(at, Some(new), false);
        Ok(())
    }
}

impl Current {
    fn replace(&mut self, token: Secret, record: Option<TokenRecord>, renewed: bool) {
        self.token = Some(token);
        self.record = record;
        self.generation += 1;
        self.renewed = renewed;
    }

    fn handed_out(&self) -> Token {
        Token {
            secret: self.token.clone().expect("a token was just set"),
            generation: self.generation,
            renewed: self.renewed,
        }
    }
}

/// The token one login used, kept by its session, to report back what
/// the server made of it.
#[derive(Debug, Clone)]
pub struct LoginToken {
    pub bearer: Bearer,
    pub token: Token,
}

impl LoginToken {
    /// The next token of `b`.
    pub async fn next(b: &Bearer) -> Result<LoginToken> {
        Ok(LoginToken {
            bearer: b.clone(),
            token: b.token().await?,
        })
    }

    pub fn secret(&self) -> &Secret {
        &self.token.secret
    }

    /// The server let it in.
    pub fn accepted(&self) {
        self.bearer.accept(&self.token);
    }

    /// What a failed login's error `e` becomes: a refusal of a token that
    /// can be replaced is [`Error::TokenRefused`] (the governor logs in
    /// once more, and that login refreshes it); a refusal of the token
    /// that replaced a refused one is [`Error::OAuth`] with what to do.
    pub fn refused(&self, e: Error) -> Error {
        match e {
            Error::Auth { server, msg } => {
                if self.bearer.spend(&self.token) {
                    Error::TokenRefused { server, msg }
                } else if self.token.renewed {
                    self.bearer.refused_again(&server, &msg)
                } else {
                    Error::Auth { server, msg }
                }
            }
            e => e,
        }
    }

    /// The server ended the session with `bye`: one that says the token
    /// expired (Microsoft's `BYE … AccessTokenExpired`) spends it, so the
    /// next login, the governor's reconnection, brings a fresh one
    /// instead of being refused first.
    pub fn session_ended(&self, bye: &str) {
        let t = bye.to_ascii_lowercase();
        if t.contains("tokenexpired") || (t.contains("token") && t.contains("expired")) {
            self.bearer.spend(&self.token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_command_token_is_cached_and_rerun_only_when_refused() {
        let d = tempfile::tempdir().unwrap();
        let n = d.path().join("n");
        // Prints tok-1, tok-2, ... one per run.
        let cmd = format!(
            "n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; echo tok-$n",
            n.display()
        );
        let b = Bearer::command(&cmd, "acct");
        let same = Bearer::command(&cmd, "acct");
        let t1 = b.token().await.unwrap();
        assert_eq!(t1.secret.expose(), "tok-1");
        assert_eq!(same.token().await.unwrap().secret.expose(), "tok-1");
        // Two connections refused with tok-1: the command runs once.
        assert!(b.spend(&t1) && same.spend(&t1));
        let t2 = b.token().await.unwrap();
        let t2b = same.token().await.unwrap();
        assert_eq!(
            (t2.secret.expose(), t2b.secret.expose()),
            ("tok-2", "tok-2")
        );
        assert_eq!(std::fs::read_to_string(&n).unwrap().trim(), "2");
        // A late report about tok-1 changes nothing.
        assert!(b.spend(&t1));
        assert_eq!(b.token().await.unwrap().secret.expose(), "tok-2");
        // tok-2 replaced a refused token: refused before any server let
        // it in, there is nothing better to try.
        assert!(!b.spend(&t2));
        // Once let in, it may expire like any other.
        b.accept(&t2);
        assert!(b.spend(&t2));
        assert_eq!(b.token().await.unwrap().secret.expose(), "tok-3");
        assert_eq!(std::fs::read_to_string(&n).unwrap().trim(), "3");
    }

    /// A token endpoint that answers every request with `at-N` (N counts
    /// the requests), valid for `expires_in` seconds.
    async fn token_endpoint(expires_in: i64) -> (super::super::HttpUrl, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = super::super::HttpUrl::parse(&format!(
            "http://127.0.0.1:{}/token",
            l.local_addr().unwrap().port()
        ))
        .unwrap();
        let n = Arc::new(AtomicUsize::new(0));
        let count = n.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // Requests here are small: the head and body come together.
                while !req.ends_with(b"refresh_token=rt") && !req.ends_with(b"&client_id=c") {
                    let k = s.read(&mut buf).await.unwrap();
                    assert!(k > 0, "{}", String::from_utf8_lossy(&req));
                    req.extend_from_slice(&buf[..k]);
                }
                let text = String::from_utf8_lossy(&req);
                assert!(
                    text.contains("grant_type=refresh_token&refresh_token=rt"),
                    "{text}"
                );
                let k = count.fetch_add(1, Ordering::SeqCst) + 1;
                let body = format!(
                    r#"{{"access_token":"at-{k}","token_type":"Bearer","expires_in":{expires_in}}}"#
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(resp.as_bytes()).await.unwrap();
            }
        });
        (url, n)
    }

    fn grant_config(dir: &std::path::Path, token_url: super::super::HttpUrl) -> OAuthConfig {
        OAuthConfig {
            account: "acct".into(),
            provider: super::super::Provider::Custom,
            flow: super::super::Flow::Device,
            client_id: "c".into(),
            client_secret: None,
            scopes: vec!["s".into()],
            auth_url: None,
            token_url,
            device_url: None,
            user: "alice".into(),
            store: super::super::TokenStore::File(dir.join("t.json")),
            timeouts: crate::endpoint::Timeouts {
                connect: std::time::Duration::from_secs(5),
                command: std::time::Duration::from_secs(5),
            },
        }
    }

    #[tokio::test]
    async fn a_grant_refreshes_near_expiry_and_once_for_concurrent_refusals() {
        let d = tempfile::tempdir().unwrap();
        let (url, requests) = token_endpoint(3600).await;
        let cfg = grant_config(d.path(), url);
        let b = Bearer::grant(&cfg);
        let e = b.token().await.unwrap_err();
        assert!(e.to_string().contains("mailferry login acct"), "{e}");
        assert_eq!(e.exit_code(), crate::ExitCode::Auth);
        // Stored: a token with 30 s left of an hour, inside the margin.
        let t = now();
        let old = TokenRecord {
            refresh_token: Secret::new("rt"),
            access_token: Some(Secret::new("old")),
            expires_at: Some(t + 30),
            obtained_at: t - 3570,
        };
        cfg.store.save(&old, &cfg.owner(), "acct").await.unwrap();
        let t1 = b.token().await.unwrap();
        assert_eq!(t1.secret.expose(), "at-1");
        assert_eq!(
            Bearer::grant(&cfg).token().await.unwrap().secret.expose(),
            "at-1"
        );
        assert_eq!(
            requests.load(Ordering::SeqCst),
            1,
            "good for an hour: no second refresh"
        );
        // The refreshed token is stored (with the refresh token kept) for
        // the next run.
        let stored = cfg.store.load("acct").await.unwrap().unwrap();
        assert_eq!(stored.access_token.unwrap().expose(), "at-1");
        assert_eq!(stored.refresh_token.expose(), "rt");
        // Two connections refused at-1: one refresh for both.
        assert!(b.spend(&t1) && b.spend(&t1));
        let (a, c) = tokio::join!(b.token(), b.token());
        let (a, c) = (a.unwrap(), c.unwrap());
        assert_eq!((a.secret.expose(), c.secret.expose()), ("at-2", "at-2"));
        assert_eq!(requests.load(Ordering::SeqCst), 2);
        // The refused token is not taken back from the store either.
        assert_ne!(
            cfg.store
                .load("acct")
                .await
                .unwrap()
                .unwrap()
                .access_token
                .unwrap()
                .expose(),
            "at-1"
        );

        // Two processes (two handles outside the registry) with a token
        // near its end: one refreshes under the file lock, the other
        // then finds the new token stored.
        cfg.store.save(&old, &cfg.owner(), "acct").await.unwrap();
        let own = || {
            Bearer(Arc::new(inner(
                "acct",
                Source::Grant(Box::new(cfg.clone())),
            )))
        };
        let (p1, p2) = (own(), own());
        let (a, c) = tokio::join!(p1.token(), p2.token());
        assert_eq!(a.unwrap().secret.expose(), c.unwrap().secret.expose());
        assert_eq!(requests.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_refused_login_spends_its_token_once_then_says_what_to_do() {
        let d = tempfile::tempdir().unwrap();
        let n = d.path().join("n");
        let cmd = format!(
            "n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; echo tok-$n",
            n.display()
        );
        let b = Bearer::command(&cmd, "retry");
        let refusal = || Error::Auth {
            server: "s".into(),
            msg: "NO [AUTHENTICATIONFAILED]".into(),
        };
        let first = LoginToken::next(&b).await.unwrap();
        let e = first.refused(refusal());
        assert!(matches!(e, Error::TokenRefused { .. }), "{e}");
        assert_eq!(e.exit_code(), crate::ExitCode::Auth);
        // Not a refusal: passed on as it is, nothing spent.
        let again = LoginToken::next(&b).await.unwrap();
        assert_eq!(again.secret().expose(), "tok-2");
        let e = again.refused(Error::connect("s", "reset"));
        assert!(e.is_transient(), "{e}");
        // The fresh token refused too: what to do.
        let e = again.refused(refusal());
        assert!(matches!(e, Error::OAuth { .. }), "{e}");
        assert!(e.to_string().contains("oauth2_token_command"), "{e}");
        // A session ended for an expired token spends it; other BYEs not.
        let third = LoginToken::next(&b).await.unwrap();
        assert_eq!(third.secret().expose(), "tok-2");
        third.accepted();
        third.session_ended("Connection closed. 14");
        assert_eq!(b.token().await.unwrap().secret.expose(), "tok-2");
        third.session_ended("Session invalidated - AccessTokenExpired");
        assert_eq!(b.token().await.unwrap().secret.expose(), "tok-3");
        // A fixed token has nothing newer: the server's refusal stands.
        let fixed = LoginToken::next(&Bearer::fixed(Secret::new("x")))
            .await
            .unwrap();
        assert!(matches!(fixed.refused(refusal()), Error::Auth { .. }));
    }
}
